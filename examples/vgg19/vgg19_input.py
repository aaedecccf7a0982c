"""Input pipelines for the VGG19 example: tf.data when TensorFlow is present, else a Keras PyDataset.

Both decode JPEG/PNG files to RGB, resize them once to the training size and keep them as uint8
(224×224×3 is 147 KiB an image: 783 MB for the seed's 5,200 images, where its float32 arrays took
3.1 GB). Scaling and VGG's mean subtraction happen inside the model, so batches stay uint8 until
they reach the accelerator and the saved model takes plain RGB images.

- ``tf_dataset``: read and decode in parallel, resize, cache (memory or files), shuffle each epoch,
  batch, prefetch. Works with every Keras backend (Keras converts tf.data batches for JAX).
- ``FolderSequence``: the fallback when TensorFlow is not installed (e.g. a JAX-only image); Pillow
  decodes in worker threads and the resized images are kept in one preallocated uint8 array.
"""

from __future__ import annotations

import hashlib
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras

__all__ = [
    "FILE_CACHE_SHUFFLE_WINDOW",
    "FolderSequence",
    "cache_prefix",
    "first_undecodable",
    "tf_dataset",
]

# Images a file-cached training set shuffles among (75 MB at 224×224).
FILE_CACHE_SHUFFLE_WINDOW = 512


def cache_prefix(cache_dir: Path, name: str, files: Sequence[str], image_size: int) -> Path:
    """Where a file cache for these files at this size lives; another file list gets another name.

    tf.data never checks that a cache matches its input, so the name carries a digest of it.
    """
    digest = hashlib.sha256("\n".join([str(image_size), *files]).encode()).hexdigest()[:12]
    return cache_dir / f"vgg19-{name}-{image_size}px-{digest}"


def tf_dataset(
    files: Sequence[str],
    labels: Sequence[int],
    *,
    image_size: int,
    batch_size: int,
    shuffle: bool,
    seed: int,
    cache: str,
    name: str,
) -> Any:
    """A ``tf.data.Dataset`` of (uint8 images [B, S, S, 3] RGB, int32 labels [B]).

    ``cache`` is "memory", "none" or a directory for cache files (created if missing). Decoding
    errors surface as TensorFlow's InvalidArgumentError naming the file on first iteration.
    """
    import tensorflow as tf

    def load(path: Any, label: Any) -> tuple[Any, Any]:
        raw = tf.io.read_file(path)
        image = tf.io.decode_image(raw, channels=3, expand_animations=False)
        # Bilinear like the seed's cv2.resize; antialias=True would cost 3× the decode's CPU time.
        image = tf.image.resize(image, [image_size, image_size], method="bilinear")
        # Bilinear values stay within 0–255, so +0.5 and truncation round without a clip.
        image = tf.cast(image + 0.5, tf.uint8)
        image.set_shape([image_size, image_size, 3])
        return image, label

    dataset = tf.data.Dataset.from_tensor_slices(
        (tf.constant(list(files), tf.string), tf.constant(list(labels), tf.int32))
    )
    if shuffle and cache == "none":
        # Nothing is kept: shuffling the file names each epoch holds no images at all.
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    if cache == "memory":
        dataset = dataset.cache()
    elif cache != "none":
        prefix = cache_prefix(Path(cache), name, files, image_size)
        prefix.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_lock(prefix)
        dataset = dataset.cache(str(prefix))
    if shuffle and cache != "none":
        # After a memory cache the buffer shares the cached tensors, so it spans the whole set for
        # free; after a file cache it would hold every image again, so it is a window there (the
        # files already come in the split's seeded random order).
        window = len(files) if cache == "memory" else min(len(files), FILE_CACHE_SHUFFLE_WINDOW)
        dataset = dataset.shuffle(window, seed=seed, reshuffle_each_iteration=True)
    # Ordered output keeps a seeded run reproducible; parallel decoding still runs.
    options = tf.data.Options()
    options.deterministic = True
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE).with_options(options)


def _remove_stale_lock(prefix: Path) -> None:
    # A run killed while writing its cache leaves a lock file that makes the next run fail.
    for lock in prefix.parent.glob(f"{prefix.name}*.lockfile"):
        print(f"[vgg19] removing {lock}, left by an interrupted run", file=sys.stderr)
        lock.unlink(missing_ok=True)


class FolderSequence(keras.utils.PyDataset):  # type: ignore[misc]
    """Batches of (uint8 images, int32 labels) decoded by Pillow, for Keras without TensorFlow.

    Each image is decoded and resized once, on first use, into a preallocated uint8 array;
    ``workers`` threads decode in parallel. Raises ImportError (with what to install) when Pillow
    is missing, and OSError naming the file when one cannot be decoded.
    """

    def __init__(
        self,
        files: Sequence[str],
        labels: Sequence[int],
        *,
        image_size: int,
        batch_size: int,
        shuffle: bool,
        seed: int,
        workers: int = 4,
    ) -> None:
        import numpy as np

        try:
            import PIL.Image  # noqa: F401  (checked here so the error comes before training)
        except ImportError as missing:
            raise ImportError(
                "the Python loader needs Pillow: pip install pillow (or install TensorFlow for tf.data)"
            ) from missing
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=8)
        self._files = list(files)
        self._labels = np.asarray(labels, dtype=np.int32)
        self._size = image_size
        self._batch = batch_size
        self._shuffle = shuffle
        self._rng = np.random.default_rng(seed)
        self._images = np.zeros((len(self._files), image_size, image_size, 3), dtype=np.uint8)
        self._decoded = np.zeros(len(self._files), dtype=bool)
        count = len(self._files)
        self._order = self._rng.permutation(count) if shuffle else np.arange(count)

    def __len__(self) -> int:
        return math.ceil(len(self._files) / self._batch)

    def __getitem__(self, batch: int) -> tuple[Any, Any]:
        indices = self._order[batch * self._batch : (batch + 1) * self._batch]
        for i in indices:
            if not self._decoded[i]:
                self._images[i] = self._decode(self._files[i])
                self._decoded[i] = True
        return self._images[indices], self._labels[indices]

    def on_epoch_end(self) -> None:
        if self._shuffle:
            # A new array, not an in-place shuffle: worker threads may still read the old order.
            self._order = self._rng.permutation(len(self._files))

    def _decode(self, path: str) -> Any:
        import numpy as np
        from PIL import Image

        with Image.open(path) as image:
            rgb = image.convert("RGB").resize((self._size, self._size), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)


def first_undecodable(files: Sequence[str], *, loader: str) -> tuple[str, str] | None:
    """The first file the ``loader`` ("tf.data" or "python") cannot decode, with the reason.

    For error reports only: tf.data's decode errors do not say which file failed, so this decodes
    the files one by one until one fails (a few seconds for the seed's 5,200 images).
    """
    for path in files:
        try:
            if loader == "tf.data":
                import tensorflow as tf

                tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
            else:
                from PIL import Image

                with Image.open(path) as image:
                    image.convert("RGB")
        except Exception as error:  # TensorFlow and Pillow raise many types for bad files
            text = (
                str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
            )
            # TensorFlow wraps its message in {{function_node ...}} and [Op:...] noise.
            return path, re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:.*$", "", text)
    return None
