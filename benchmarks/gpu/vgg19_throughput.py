"""VGG19 training throughput on one accelerator: Keras 3 on JAX, bf16 mixed precision, 224×224.

    benchmarks/gpu/run_vgg19_throughput.sh                  # on the GPU machine (installs Keras)
    KERAS_BACKEND=jax python benchmarks/gpu/vgg19_throughput.py --batch-sizes 2 --steps 2 \
        --warmup 1 --image-size 32                          # smoke test on a CPU

The model is examples/vgg19/vgg19_model.py's, as train.py trains it (VGG19 without top, Flatten, Dropout, Dense 30, Dense 4,
preprocessing inside), trained with Adam from random weights. Images and labels are generated on
the device once, so the figure is the accelerator's, not the input pipeline's. Each batch size is
compiled and warmed up, then timed over --steps steps ending with a device sync. MFU counts
118 GFLOP per 224×224 training image (VGG19's 19.6 G multiply-adds forward, ×3 for forward and
backward), scaled by (size/224)² for other sizes, against --peak-tflops (default 989: H100 SXM
dense bf16 from NVIDIA's datasheet; pass 1979 for "with sparsity" figures, or another GPU's peak).
Stops starting new batch sizes after --budget-seconds so a run stays within its time slot.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "vgg19"
GFLOP_PER_IMAGE_224 = 118.0
H100_BF16_DENSE_TFLOPS = 989.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--batch-sizes", default="128,256", help="comma-separated (default: %(default)s)"
    )
    parser.add_argument(
        "--steps", type=int, default=40, help="timed steps per batch size (default: %(default)s)"
    )
    parser.add_argument(
        "--warmup", type=int, default=5, help="untimed steps after compiling (default: %(default)s)"
    )
    parser.add_argument("--image-size", type=int, default=224, help="(default: %(default)s)")
    parser.add_argument(
        "--precision", choices=["bf16", "fp32"], default="bf16", help="(default: %(default)s)"
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=H100_BF16_DENSE_TFLOPS,
        help="the MFU denominator (default: %(default)s)",
    )
    parser.add_argument(
        "--budget-seconds",
        type=float,
        default=360,
        help="start no new batch size after this (default: %(default)s)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args()


def make_train_step(keras: Any, model: Any, optimizer: Any) -> Callable[..., Any]:
    """A jitted, stateless Keras 3 training step: (state, images, labels) → (state, loss)."""
    import jax

    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    def compute_loss(trainable: Any, non_trainable: Any, images: Any, labels: Any) -> Any:
        predictions, non_trainable = model.stateless_call(
            trainable, non_trainable, images, training=True
        )
        return loss_fn(labels, predictions), non_trainable

    gradients = jax.value_and_grad(compute_loss, has_aux=True)

    @partial(jax.jit, donate_argnums=0)
    def train_step(state: Any, images: Any, labels: Any) -> Any:
        trainable, non_trainable, optimizer_vars = state
        (loss, non_trainable), grads = gradients(trainable, non_trainable, images, labels)
        trainable, optimizer_vars = optimizer.stateless_apply(optimizer_vars, grads, trainable)
        return (trainable, non_trainable, optimizer_vars), loss

    return train_step  # type: ignore[no-any-return]


def measure(keras: Any, args: argparse.Namespace, batch_size: int) -> dict[str, float]:
    """Compile, warm up and time one batch size; images/s and MFU."""
    import jax
    from vgg19_model import build_model  # the example's own model (EXAMPLE is on sys.path)

    model = build_model(keras, num_classes=4, image_size=args.image_size, weights=None)
    optimizer = keras.optimizers.Adam(learning_rate=1e-4)
    optimizer.build(model.trainable_variables)
    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in optimizer.variables],
    )
    key_images, key_labels = jax.random.split(jax.random.key(0))
    shape = (batch_size, args.image_size, args.image_size, 3)
    images = jax.random.randint(key_images, shape, 0, 256, dtype="int32").astype("uint8")
    labels = jax.random.randint(key_labels, (batch_size,), 0, 4, dtype="int32")
    train_step = make_train_step(keras, model, optimizer)

    started = time.perf_counter()
    state, loss = train_step(state, images, labels)
    loss.block_until_ready()
    compile_seconds = time.perf_counter() - started
    for _ in range(args.warmup):
        state, loss = train_step(state, images, labels)
    loss.block_until_ready()
    started = time.perf_counter()
    for _ in range(args.steps):
        state, loss = train_step(state, images, labels)
    loss.block_until_ready()
    seconds = time.perf_counter() - started

    images_per_second = args.steps * batch_size / seconds
    gflop_per_image = GFLOP_PER_IMAGE_224 * (args.image_size / 224) ** 2
    tflops = images_per_second * gflop_per_image / 1000
    return {
        "batch_size": batch_size,
        "compile_seconds": compile_seconds,
        "step_ms": 1000 * seconds / args.steps,
        "images_per_second": images_per_second,
        "tflops": tflops,
        "mfu": tflops / args.peak_tflops,
        "final_loss": float(loss),
    }


def main() -> int:
    args = parse_args()
    started = time.perf_counter()
    if os.environ.setdefault("KERAS_BACKEND", "jax") != "jax":
        raise SystemExit(
            f"KERAS_BACKEND={os.environ['KERAS_BACKEND']}: this benchmark runs Keras on JAX"
        )
    import jax
    import keras

    sys.path.insert(0, str(EXAMPLE))
    if args.precision == "bf16":
        keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    device = jax.devices()[0]
    print(
        f"Keras {keras.__version__}, JAX {jax.__version__}, device {device.platform}: "
        f"{getattr(device, 'device_kind', device)}; policy {keras.mixed_precision.dtype_policy().name}; "
        f"{args.image_size}×{args.image_size}; MFU against {args.peak_tflops:g} TFLOP/s",
        flush=True,
    )
    results = []
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        if results and time.perf_counter() - started > args.budget_seconds:
            print(f"batch {batch_size}: skipped, --budget-seconds {args.budget_seconds:g} spent")
            continue
        try:
            row = measure(keras, args, batch_size)
        except Exception as error:  # e.g. out of device memory at a large batch: report, go on
            print(
                f"batch {batch_size}: failed: {type(error).__name__}: {str(error).splitlines()[0][:200]}"
            )
            continue
        results.append(row)
        print(
            f"batch {batch_size:>4}: {row['images_per_second']:8.0f} img/s  {row['step_ms']:8.1f} ms/step  "
            f"{row['tflops']:6.1f} TFLOP/s  MFU {100 * row['mfu']:5.1f} %  "
            f"(compile {row['compile_seconds']:.0f} s, loss {row['final_loss']:.3f})",
            flush=True,
        )
    if not results:
        return 1
    best = max(results, key=lambda r: r["images_per_second"])
    print(
        f"best: {best['images_per_second']:.0f} img/s at batch {best['batch_size']}, "
        f"MFU {100 * best['mfu']:.1f} % of {args.peak_tflops:g} TFLOP/s; "
        f"total {time.perf_counter() - started:.0f} s"
    )
    if args.json:
        report = {
            "device": str(getattr(device, "device_kind", device)),
            "peak_tflops": args.peak_tflops,
            "results": results,
        }
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
