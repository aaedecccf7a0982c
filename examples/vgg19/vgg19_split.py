"""Which images the VGG19 example trains, validates and tests on: classes, file lists, a seeded split.

The seed script took its class indices from ``os.listdir`` order (which the filesystem chooses), split
without a seed and cut the test set from the unshuffled arrays, so its "test" images overlapped the
training set. Here the split is made on file lists, per class, from a seeded generator, and written
to a manifest so anyone can check that the three parts are disjoint and reproducible.

Standard library only: ``prepare_data.py`` and ``train.py --dry-run`` use it without Keras.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "IMAGE_SUFFIXES",
    "SEED_SYNSETS",
    "ClassInfo",
    "DatasetError",
    "Split",
    "discover_classes",
    "list_images",
    "split_files",
    "write_manifest",
]

# The seed's four ImageNet synsets → (label the seed gave them, common name).
SEED_SYNSETS: dict[str, tuple[int, str]] = {
    "n02489166": (0, "proboscis monkey"),
    "n01440764": (1, "tench"),
    "n01514668": (2, "cock"),
    "n02119022": (3, "red fox"),
}
IMAGE_SUFFIXES = frozenset({".jpeg", ".jpg", ".png", ".bmp", ".gif"})
TRAIN_FRACTION = 0.70
VALIDATION_FRACTION = 0.15
MANIFEST_VERSION = 1


class DatasetError(ValueError):
    """The data directory cannot be used; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class ClassInfo:
    """One class: its label index, its folder under the data directory and a readable name."""

    index: int
    folder: str
    name: str


@dataclass(frozen=True)
class Split:
    """Train, validation and test parts: (path relative to the data directory, label) pairs."""

    train: list[tuple[str, int]] = field(default_factory=list)
    validation: list[tuple[str, int]] = field(default_factory=list)
    test: list[tuple[str, int]] = field(default_factory=list)

    def parts(self) -> dict[str, list[tuple[str, int]]]:
        return {"train": self.train, "validation": self.validation, "test": self.test}


def discover_classes(data_dir: Path) -> list[ClassInfo]:
    """The classes under ``data_dir``: one per non-hidden sub-folder.

    Labels follow the seed's table when the folders are exactly its four synsets (so a model
    trained here labels like the seed's), else the sorted folder names. Raises DatasetError when
    the directory is missing or holds fewer than two class folders.
    """
    if not data_dir.is_dir():
        raise DatasetError(
            f"--data-dir {data_dir} is not a directory: create it with prepare_data.py "
            "(--digits for the offline set, --imagenet-tar for the seed's ImageNet classes)"
        )
    folders = sorted(
        p.name for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    if len(folders) < 2:
        raise DatasetError(
            f"--data-dir {data_dir} holds {len(folders)} class folder(s): "
            "expected at least two, laid out as DIR/<class>/<image>.jpg"
        )
    if set(folders) == set(SEED_SYNSETS):
        ordered = sorted(folders, key=lambda folder: SEED_SYNSETS[folder][0])
        return [ClassInfo(i, f, SEED_SYNSETS[f][1]) for i, f in enumerate(ordered)]
    return [ClassInfo(i, f, f) for i, f in enumerate(folders)]


def list_images(data_dir: Path, classes: list[ClassInfo]) -> dict[int, list[str]]:
    """Each class's image files (paths relative to ``data_dir``, sorted).

    Raises DatasetError naming the first class folder that holds no image.
    """
    files: dict[int, list[str]] = {}
    for info in classes:
        folder = data_dir / info.folder
        names = sorted(
            p.name
            for p in folder.iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )
        if not names:
            accepted = ", ".join(sorted(IMAGE_SUFFIXES))
            raise DatasetError(
                f"class folder {folder} holds no images: expected files ending in {accepted}"
            )
        files[info.index] = [f"{info.folder}/{name}" for name in names]
    return files


def split_files(files_by_class: dict[int, list[str]], seed: int) -> Split:
    """A 70/15/15 split of every class (stratified), reproducible for a given ``seed``.

    Raises DatasetError when there are too few images for each part to get at least one.
    """
    rng = random.Random(seed)
    split = Split()
    for label in sorted(files_by_class):
        files = list(files_by_class[label])
        rng.shuffle(files)
        n_train = int(len(files) * TRAIN_FRACTION)
        n_validation = int(len(files) * VALIDATION_FRACTION)
        split.train.extend((f, label) for f in files[:n_train])
        split.validation.extend((f, label) for f in files[n_train : n_train + n_validation])
        split.test.extend((f, label) for f in files[n_train + n_validation :])
    empty = [name for name, part in split.parts().items() if not part]
    if empty:
        total = sum(len(files) for files in files_by_class.values())
        raise DatasetError(
            f"{total} images are too few for a 70/15/15 split ({', '.join(empty)} would be empty): "
            "use at least 7 images per class"
        )
    # Mix the classes within each part; the order is part of what the seed reproduces.
    for part in split.parts().values():
        rng.shuffle(part)
    return split


def write_manifest(
    path: Path, *, data_dir: Path, classes: list[ClassInfo], split: Split, seed: int
) -> None:
    """Write the split as JSON: the classes, the seed and each part's (file, label) pairs."""
    manifest = {
        "version": MANIFEST_VERSION,
        "data_dir": str(data_dir),
        "seed": seed,
        "classes": [{"index": c.index, "folder": c.folder, "name": c.name} for c in classes],
        "counts": {name: len(part) for name, part in split.parts().items()},
        **{name: [[f, label] for f, label in part] for name, part in split.parts().items()},
    }
    path.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
