#!/usr/bin/env python3
"""Train the seed's VGG19 classifier, fixed and fast.

Same model and schedule as the seed (VGG19 without its top, Flatten, Dropout 0.5, Dense 30 relu,
Dense softmax; Adam 1e-4; batch 64; up to 100 epochs; early stopping on val_loss with patience 5,
best weights restored; 70/15/15 split), with its defects fixed: classes in a stable order, a seeded
split of file lists (manifest written), RGB images through VGG19's own preprocessing, uint8 images
cached at the training size instead of a float32 copy of the dataset, the test split evaluated,
the model and the history saved.

    python train.py --data-dir data/ --output-dir out/                 # the seed's run
    python train.py --data-dir digits/ --image-size 32 --epochs 2 --weights none
    KERAS_BACKEND=jax python train.py ...                              # any Keras 3 backend

Writes to --output-dir: split.json (the manifest), model.keras (takes uint8 RGB images) and
history.json (per-epoch metrics, the test results and a confusion matrix).
Exit status: 0 done, 1 training failed, 2 bad input (one line on stderr naming what to change).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vgg19_model import MIXED_POLICIES, WeightsError, build_model, configure_tensorflow
from vgg19_split import (
    ClassInfo,
    DatasetError,
    Split,
    discover_classes,
    list_images,
    split_files,
    write_manifest,
)

MIN_IMAGE_SIZE = 32  # VGG19's five poolings need at least 32×32 inputs
LOADERS = ("auto", "tf.data", "python")


class UsageError(ValueError):
    """An option cannot be used as given; the message names it and what is accepted."""


def log(message: str) -> None:
    print(f"[vgg19] {message}", flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="train.py",
        description="Fine-tune VGG19 on a folder of images (DIR/<class>/<image>.jpg).",
        epilog="Outputs: split.json, model.keras, history.json in --output-dir.",
    )
    parser.add_argument("--data-dir", type=Path, required=True, help="folder of class folders")
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=Path("vgg19-output"),
        help="where the model, history and split manifest go (default: %(default)s)",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=224,
        help="side of the square input in pixels, at least 32 (default: %(default)s)",
    )
    parser.add_argument(
        "--epochs", type=int, default=100, help="at most this many epochs (default: %(default)s)"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="(default: %(default)s)")
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=1e-4,
        help="Adam's learning rate (default: %(default)s)",
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=5,
        help="epochs without a better val_loss before stopping (default: %(default)s)",
    )
    parser.add_argument(
        "--weights",
        default="imagenet",
        help="imagenet (downloads once), none (random) or the PATH of a VGG19 no-top weights file (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=42,
        help="seeds the split, the shuffles and the initial weights (default: %(default)s)",
    )
    parser.add_argument(
        "--mixed-precision",
        nargs="?",
        const="float16",
        default="off",
        choices=["off", *MIXED_POLICIES],
        help="compute in float16 (the flag alone; any CUDA GPU since Volta) or bfloat16 (A100, H100, TPU); default: off",
    )
    parser.add_argument(
        "--cache",
        default="memory",
        help="where tf.data keeps the resized images after the first epoch: memory, none, or a DIRECTORY for cache files (default: %(default)s)",
    )
    parser.add_argument(
        "--loader",
        default="auto",
        choices=LOADERS,
        help="tf.data, or python (Pillow) where TensorFlow is absent; auto picks tf.data when installed",
    )
    parser.add_argument(
        "--no-live-curves",
        dest="live_curves",
        action="store_false",
        help="do not attach bf-jupyter's live-curve callback",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check the data, write the split manifest, print the plan and stop",
    )
    args = parser.parse_args(argv)
    _check_ranges(args)
    return args


def _check_ranges(args: argparse.Namespace) -> None:
    limits = {
        "image-size": (args.image_size, MIN_IMAGE_SIZE),
        "epochs": (args.epochs, 1),
        "batch-size": (args.batch_size, 1),
        "patience": (args.patience, 0),
    }
    for name, (value, low) in limits.items():
        if value < low:
            raise UsageError(f"--{name} {value} is too small: use an integer ≥ {low}")
    if not args.learning_rate > 0:
        raise UsageError(
            f"--learning-rate {args.learning_rate} must be a positive number, e.g. 1e-4"
        )


def resolve_weights(value: str) -> str | None:
    """``"imagenet"``, ``None`` for random weights, or the path of a readable weights file."""
    if value.lower() == "imagenet":
        return "imagenet"
    if value.lower() == "none":
        return None
    path = Path(value).expanduser()
    if not path.is_file() or not os.access(path, os.R_OK):
        raise UsageError(
            f"--weights {value}: no readable file there; use imagenet, none, or the path of a VGG19 "
            "no-top weights file such as vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
        )
    return str(path)


def plan_split(args: argparse.Namespace) -> tuple[list[ClassInfo], Split]:
    classes = discover_classes(args.data_dir)
    return classes, split_files(list_images(args.data_dir, classes), args.seed)


def writable_directory(option: str, directory: Path) -> Path:
    """``directory``, created if missing; UsageError naming ``option`` when it cannot be written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"{option} {directory}: cannot create it ({error.strerror})") from error
    if not os.access(directory, os.W_OK):
        raise UsageError(f"{option} {directory} is not writable: choose another directory")
    return directory


def configure_keras(args: argparse.Namespace) -> Any:
    """Import Keras, pick the loader, seed everything and set the precision policy."""
    if args.loader == "auto":
        args.loader = "tf.data" if importlib.util.find_spec("tensorflow") else "python"
    if args.loader == "tf.data" and importlib.util.find_spec("tensorflow") is None:
        raise UsageError(
            "--loader tf.data needs TensorFlow: pip install tensorflow, or use --loader python"
        )
    if importlib.util.find_spec("h5py") is None:
        # Found out now rather than after hours of training: model.keras stores weights with h5py.
        raise UsageError("saving model.keras needs h5py, which is not installed: pip install h5py")
    # TensorFlow's C++ start-up chatter buries the progress lines in `kubectl logs`.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    if args.loader == "tf.data":
        configure_tensorflow(keras.backend.backend())
    keras.utils.set_random_seed(args.seed)
    if args.mixed_precision != "off":
        keras.mixed_precision.set_dtype_policy(MIXED_POLICIES[args.mixed_precision])
    return keras


def make_inputs(args: argparse.Namespace, split: Split) -> dict[str, Any]:
    """One dataset per split part; only the training part is shuffled."""
    inputs: dict[str, Any] = {}
    for name, part in split.parts().items():
        files = [str(args.data_dir / path) for path, _ in part]
        labels = [label for _, label in part]
        common = {
            "image_size": args.image_size,
            "batch_size": args.batch_size,
            "shuffle": name == "train",
            "seed": args.seed,
        }
        if args.loader == "tf.data":
            from vgg19_input import tf_dataset

            inputs[name] = tf_dataset(files, labels, cache=args.cache, name=name, **common)
        else:
            from vgg19_input import FolderSequence

            inputs[name] = FolderSequence(files, labels, **common)
    return inputs


def live_curve_callbacks(args: argparse.Namespace) -> list[Any]:
    """bf-jupyter's live-curve callback when it is installed (a widget in a notebook, metric
    records in a batch job); training goes on without it otherwise."""
    if not args.live_curves:
        return []
    try:
        from bf_jupyter.notebook.keras_callback import LiveCurvesCallback
    except ImportError:
        log(
            "live curves off: bf-jupyter is not installed here (pip install bf-jupyter to get them)"
        )
        return []
    # tf.data hides the batch size from fit(); with it the curves show images/s, not batches/s.
    title = f"VGG19 on {args.data_dir.name} ({args.image_size} px)"
    return [LiveCurvesCallback(batch_size=args.batch_size, title=title)]


def epoch_timer(keras: Any) -> Any:
    class EpochTimer(keras.callbacks.Callback):  # type: ignore[misc]
        """Keeps each epoch's duration in ``seconds`` (for history.json, not the progress line)."""

        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.seconds.append(time.perf_counter() - self.started)

    return EpochTimer()


def confusion_matrix(true: Sequence[int], predicted: Sequence[int], size: int) -> list[list[int]]:
    matrix = [[0] * size for _ in range(size)]
    for t, p in zip(true, predicted, strict=True):
        matrix[t][p] += 1
    return matrix


def train(
    args: argparse.Namespace, weights: str | None, classes: list[ClassInfo], split: Split
) -> dict[str, Any]:
    """Fit, evaluate on the test part, save the model; returns what history.json records."""
    keras = configure_keras(args)
    devices = ", ".join(keras.distribution.list_devices())
    log(
        f"Keras {keras.__version__} on {keras.backend.backend()} ({devices}), loader {args.loader}, policy {keras.mixed_precision.dtype_policy().name}"
    )
    inputs = make_inputs(args, split)
    model = build_model(
        keras, num_classes=len(classes), image_size=args.image_size, weights=weights
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=args.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    trainable = sum(int(keras.ops.size(w)) for w in model.trainable_weights)
    log(
        f"model: VGG19 base + Flatten, Dropout, Dense 30, Dense {len(classes)}: {model.count_params():,} parameters, {trainable:,} trainable"
    )
    stopper = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=args.patience, restore_best_weights=True, verbose=1
    )
    timer = epoch_timer(keras)
    callbacks = [timer, stopper, *live_curve_callbacks(args)]
    started = time.perf_counter()
    history = model.fit(
        inputs["train"],
        validation_data=inputs["validation"],
        epochs=args.epochs,
        callbacks=callbacks,
        shuffle=False,  # the training input reshuffles itself every epoch
        verbose=1 if sys.stdout.isatty() else 2,
    )
    fit_seconds = time.perf_counter() - started
    log(
        f"trained {len(history.epoch)} epoch(s) in {fit_seconds:.1f} s; best val_loss at epoch {stopper.best_epoch + 1}"
    )

    test = model.evaluate(inputs["test"], return_dict=True, verbose=0)
    probabilities = keras.ops.convert_to_numpy(model.predict(inputs["test"], verbose=0))
    predicted = [int(row.argmax()) for row in probabilities]
    log(
        f"test split: {len(split.test)} images, loss {test['loss']:.4f}, accuracy {test['accuracy']:.4f}"
    )
    save_model(model, args.output_dir / "model.keras")
    return {
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "classes": [info.name for info in classes],
        "epochs_run": len(history.epoch),
        "best_epoch": stopper.best_epoch + 1,
        "stopped_early": stopper.stopped_epoch > 0,
        "fit_seconds": fit_seconds,
        "epoch_seconds": timer.seconds,
        "history": {key: [float(v) for v in values] for key, values in history.history.items()},
        "test": {
            "images": len(split.test),
            **{key: float(value) for key, value in test.items()},
            "confusion_matrix": confusion_matrix(
                [label for _, label in split.test], predicted, len(classes)
            ),
        },
    }


def save_model(model: Any, path: Path) -> None:
    # Save beside the target, then rename: a crash never leaves a truncated model.keras.
    partial = path.with_name(f".partial-{path.name}")
    try:
        model.save(partial)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    log(f"saved {path}")


def undecodable_image(
    args: argparse.Namespace, split: Split, error: Exception
) -> tuple[str, str] | None:
    """When training failed on an image (TensorFlow's decode error names no file), which one."""
    decode_error = type(error).__name__ in {"InvalidArgumentError", "UnidentifiedImageError"}
    if not decode_error or args.loader not in {"tf.data", "python"}:
        return None
    from vgg19_input import first_undecodable

    log("training stopped on an image that cannot be decoded; looking for it")
    files = [str(args.data_dir / path) for part in split.parts().values() for path, _ in part]
    return first_undecodable(files, loader=args.loader)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        weights = resolve_weights(args.weights)
        classes, split = plan_split(args)
        output = writable_directory("--output-dir", args.output_dir)
        if args.cache not in {"memory", "none"}:
            writable_directory("--cache", Path(args.cache))
        write_manifest(
            output / "split.json",
            data_dir=args.data_dir,
            classes=classes,
            split=split,
            seed=args.seed,
        )
    except (DatasetError, UsageError) as error:
        print(f"train.py: error: {error}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{info.name} ({info.folder})" for info in classes)
    log(f"{len(classes)} classes: {counts}")
    log(
        f"split (seed {args.seed}): {len(split.train)} train, {len(split.validation)} validation, {len(split.test)} test; manifest {output / 'split.json'}"
    )
    if args.dry_run:
        return 0
    try:
        result = train(args, weights, classes, split)
    except (UsageError, WeightsError) as error:
        print(f"train.py: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        bad = undecodable_image(args, split, error)
        if bad is None:
            raise
        print(
            f"train.py: error: image {bad[0]} cannot be decoded ({bad[1]}): remove or replace it",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        log("interrupted: nothing saved")
        return 130
    (output / "history.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    log(f"saved {output / 'history.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
