"""The VGG19 classifier of the seed, and the device settings it trains with. Keras 3 API only.

Used by train.py and by benchmarks/gpu/vgg19_throughput.py, so both measure the same network.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MIXED_POLICIES", "WeightsError", "build_model", "configure_tensorflow"]

# --mixed-precision value → Keras dtype policy.
MIXED_POLICIES = {"float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}


class WeightsError(ValueError):
    """The requested VGG19 weights cannot be had; the message says what to pass instead."""


def build_model(keras: Any, *, num_classes: int, image_size: int, weights: str | None) -> Any:
    """The seed's network (VGG19 without top, Flatten, Dropout 0.5, Dense 30 relu, Dense softmax)
    behind VGG19's own preprocessing, so the model takes uint8 RGB images [B, S, S, 3].

    ``weights`` is "imagenet", None or a weights file's path; raises WeightsError when they cannot
    be downloaded or loaded.
    """
    shape = (image_size, image_size, 3)
    try:
        base = keras.applications.VGG19(include_top=False, weights=weights, input_shape=shape)
    except Exception as error:  # Keras reports download and file errors with many types
        where = (
            "could not download them (offline?)" if weights == "imagenet" else "could not load them"
        )
        raise WeightsError(
            f"--weights {weights}: {where}: {error}; pass --weights PATH to a local "
            "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5, or --weights none"
        ) from error
    base.trainable = True
    images = keras.Input(shape=shape, dtype="uint8", name="image")
    # RGB → BGR and ImageNet mean subtraction, as the pretrained VGG19 weights expect.
    x = keras.applications.vgg19.preprocess_input(keras.ops.cast(images, "float32"))
    x = base(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.5)(x)
    x = keras.layers.Dense(30, activation="relu")(x)
    # Softmax in float32 even under mixed precision, for a stable loss.
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32")(x)
    return keras.Model(images, outputs, name="vgg19_classifier")


def configure_tensorflow(backend: str) -> None:
    """Set TensorFlow's GPUs for a tf.data-fed run on Keras ``backend``; call before first use."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            if backend == "tensorflow":
                # A fractional Bitfusion GPU is shared: take memory as needed, not all of it upfront.
                tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised (e.g. a notebook kernel): keep its settings
            pass
    if backend != "tensorflow":
        # tf.data only feeds batches here; the model runs on JAX/PyTorch, which own the GPUs.
        tf.config.set_visible_devices([], "GPU")
