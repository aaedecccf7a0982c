#!/usr/bin/env python3
"""Lay out the VGG19 example's images as DIR/<class>/<image>: four ImageNet synsets, or offline digits.

    python prepare_data.py --imagenet-tar /data/ILSVRC2012_img_train.tar --out data/
    python prepare_data.py --imagenet-tar /data/imageNet/ --out data/        # folder of per-class tars
    python prepare_data.py --imagenet-tar n01440764.tar n01514668.tar ... --out data/
    python prepare_data.py --digits --out digits/                          # no download needed

ImageNet: only the seed's four synsets (n01440764 tench, n01514668 cock, n02119022 red fox,
n02489166 proboscis monkey) are read. The 138 GB training tar is never unpacked: its member headers
are skipped over with seeks, and the four class tars are streamed file by file into DIR/<synset>/.
Each image is written to a ``.part`` file and renamed, so an interrupted run resumes where it stopped
(images already present with the right size are kept). At the end every class folder is checked
against its tar and against --expect images (1,300 in ILSVRC2012).

Digits: scikit-learn's load_digits (real 8×8 scans of handwritten digits) for 0–3, upscaled to
--digit-size pixels and saved as RGB JPEGs in DIR/digit_<n>/, for demos and tests without ImageNet.

Exit status: 0 done, 1 counts do not match, 2 bad input (one line naming what to change).
"""

from __future__ import annotations

import argparse
import sys
import tarfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from vgg19_split import IMAGE_SUFFIXES, SEED_SYNSETS

IMAGES_PER_SYNSET = 1300
DIGIT_CLASSES = (0, 1, 2, 3)
COPY_CHUNK = 1 << 20


class InputError(ValueError):
    """The input cannot be used; the message names it and what is accepted."""


@dataclass
class ClassReport:
    """What happened to one class folder."""

    folder: str
    in_archive: int = 0
    written: int = 0
    kept: int = 0
    on_disk: int = 0


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def class_archives(
    paths: Sequence[Path], wanted: set[str]
) -> Iterator[tuple[str, tarfile.TarFile]]:
    """Yield (synset, open class tar) for each wanted synset found in ``paths``, each once.

    A path may be the ILSVRC2012 training tar (a tar of ``<synset>.tar`` members), a folder of
    class tars, or one class tar named ``<synset>.tar``. Raises InputError for a path that is none.
    """
    remaining = set(wanted)
    for path in paths:
        if path.is_dir():
            for synset in sorted(remaining):
                class_tar = path / f"{synset}.tar"
                if class_tar.is_file():
                    remaining.discard(synset)
                    with _open_tar(class_tar) as inner:
                        yield synset, inner
            continue
        if path.stem in remaining:
            remaining.discard(path.stem)
            with _open_tar(path) as inner:
                yield path.stem, inner
            continue
        with _open_tar(path) as outer:
            # Iterating a seekable tar reads headers and seeks past data: no 138 GB read.
            for member in outer:
                synset = PurePosixPath(member.name).name.removesuffix(".tar")
                if member.isfile() and member.name.endswith(".tar") and synset in remaining:
                    remaining.discard(synset)
                    fileobj = outer.extractfile(member)
                    assert fileobj is not None  # a regular file always has a file object
                    with tarfile.open(fileobj=fileobj, mode="r:") as inner:
                        yield synset, inner
                if not remaining:
                    break


def _open_tar(path: Path) -> tarfile.TarFile:
    if not path.exists():
        raise InputError(f"--imagenet-tar {path}: no such file or folder")
    try:
        return tarfile.open(path, mode="r:*")
    except OSError as error:
        raise InputError(f"--imagenet-tar {path}: {error.strerror or error}") from error
    except tarfile.TarError as error:
        raise InputError(
            f"--imagenet-tar {path} is not a readable tar file: expected ILSVRC2012_img_train.tar, "
            "a folder of <synset>.tar files, or <synset>.tar files"
        ) from error


def extract_class(inner: tarfile.TarFile, folder: Path, report: ClassReport) -> None:
    """Copy the class tar's images into ``folder``, keeping complete files from an earlier run."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.part"):
        stale.unlink()
    members = [m for m in inner.getmembers() if m.isfile() and _image_name(m.name)]
    report.in_archive = len(members)
    step = max(1, len(members) // 10)
    started = time.perf_counter()
    for done, member in enumerate(members, start=1):
        target = folder / _image_name(member.name)
        if target.is_file() and target.stat().st_size == member.size:
            report.kept += 1
        else:
            _copy_member(inner, member, target)
            report.written += 1
        if done % step == 0 or done == len(members):
            rate = done / max(time.perf_counter() - started, 1e-9)
            say(f"  {report.folder}: {done}/{len(members)} images ({rate:.0f}/s)")


def _image_name(member_name: str) -> str:
    # Only the base name is used: a member named ../x or /etc/x cannot escape the folder.
    name = PurePosixPath(member_name).name
    ok = not name.startswith(".") and PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES
    return name if ok else ""


def _copy_member(inner: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    partial = target.with_name(target.name + ".part")
    source = inner.extractfile(member)
    assert source is not None
    try:
        with source, partial.open("wb") as out:
            while chunk := source.read(COPY_CHUNK):
                out.write(chunk)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def prepare_imagenet(paths: Sequence[Path], out: Path, expect: int) -> int:
    """Extract the seed's synsets from ``paths`` into ``out``; 0 when every count matches, else 1."""
    wanted = set(SEED_SYNSETS)
    reports: dict[str, ClassReport] = {}
    for synset, inner in class_archives(paths, wanted):
        label, name = SEED_SYNSETS[synset]
        say(f"{synset} ({name}, seed label {label}) → {out / synset}")
        report = reports[synset] = ClassReport(synset)
        extract_class(inner, out / synset, report)
    missing = sorted(wanted - set(reports))
    if missing:
        shown = ", ".join(f"{s} ({SEED_SYNSETS[s][1]})" for s in missing)
        raise InputError(
            f"--imagenet-tar: {shown} not found: expected members or files named <synset>.tar"
        )
    return verify(out, reports.values(), expect)


def verify(out: Path, reports: Iterable[ClassReport], expect: int) -> int:
    """Count each class folder's images against its tar and ``expect`` (0: any count); print a table."""
    problems = 0
    for report in reports:
        folder = out / report.folder
        report.on_disk = sum(1 for p in folder.iterdir() if p.is_file() and _image_name(p.name))
        wrong = report.on_disk != report.in_archive or (expect and report.on_disk != expect)
        problems += bool(wrong)
        verdict = "MISMATCH" if wrong else "ok"
        say(
            f"{report.folder}: {report.on_disk} images on disk, {report.in_archive} in the tar"
            f"{f', {expect} expected' if expect else ''} ({report.written} written, {report.kept} kept) {verdict}"
        )
    if problems:
        say(f"{problems} class folder(s) do not match: rerun to resume, or check the tar")
    return 1 if problems else 0


def prepare_digits(out: Path, per_class: int, size: int) -> int:
    """Write load_digits' images of 0–3 as ``size``-pixel RGB JPEGs into ``out/digit_<n>/``."""
    try:
        import numpy as np
        from PIL import Image
        from sklearn.datasets import load_digits
    except ImportError as missing:
        raise InputError(
            f"--digits needs scikit-learn and Pillow ({missing.name} is missing): pip install scikit-learn pillow"
        ) from missing
    digits = load_digits()
    for digit in DIGIT_CLASSES:
        folder = out / f"digit_{digit}"
        folder.mkdir(parents=True, exist_ok=True)
        scans = digits.images[digits.target == digit][: per_class or None]
        for number, scan in enumerate(scans):
            gray = np.clip(np.rint(scan * (255 / 16)), 0, 255).astype(np.uint8)  # 0–16 ink levels
            image = Image.fromarray(gray, mode="L").resize((size, size), Image.Resampling.BICUBIC)
            image.convert("RGB").save(folder / f"digit_{digit}_{number:04d}.jpg", quality=95)
        say(f"{folder}: {len(scans)} images")
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="prepare_data.py", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--imagenet-tar",
        type=Path,
        nargs="+",
        metavar="PATH",
        help="ILSVRC2012_img_train.tar, a folder of <synset>.tar files, or class tars",
    )
    source.add_argument(
        "--digits",
        action="store_true",
        help="build the small offline dataset from scikit-learn's load_digits",
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="output folder; one sub-folder per class"
    )
    parser.add_argument(
        "--expect",
        type=int,
        default=IMAGES_PER_SYNSET,
        help="images each ImageNet class must end with, 0 for any (default: %(default)s)",
    )
    parser.add_argument(
        "--per-class",
        type=int,
        default=0,
        help="digits: at most this many images per class, 0 for all (~180)",
    )
    parser.add_argument(
        "--digit-size",
        type=int,
        default=64,
        help="digits: side of the saved images in pixels (default: %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        for name in ("expect", "per_class"):
            if getattr(args, name) < 0:
                raise InputError(
                    f"--{name.replace('_', '-')} {getattr(args, name)} is negative: use 0 or more"
                )
        if args.digit_size < 8:
            raise InputError(f"--digit-size {args.digit_size} is too small: use 8 or more pixels")
        args.out.mkdir(parents=True, exist_ok=True)
        if args.digits:
            return prepare_digits(args.out, args.per_class, args.digit_size)
        return prepare_imagenet(args.imagenet_tar, args.out, args.expect)
    except InputError as error:
        print(f"prepare_data.py: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(
            f"prepare_data.py: error: {error.filename or args.out}: {error.strerror}",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        say("interrupted: rerun the same command to resume")
        return 130


if __name__ == "__main__":
    sys.exit(main())
