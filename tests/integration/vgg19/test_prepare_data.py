"""prepare_data.py: the seed's four synsets out of ImageNet-style tars, resumably; offline digits."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from tests.integration.vgg19.conftest import (
    IMAGES_PER_CLASS,
    OTHER_SYNSETS,
    SEED_SYNSETS,
    RunScript,
    class_images,
)

MakeClassTar = Callable[[Path, str, Mapping[str, bytes]], Path]


def folder_contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_extracts_only_the_four_synsets_from_the_training_tar(
    run_script: RunScript, imagenet_tar: Path, tmp_path: Path
) -> None:
    # given an outer tar of per-class tars, two of them not the seed's
    out = tmp_path / "data"
    # when the four synsets are prepared
    result = run_script(
        "prepare_data.py",
        "--imagenet-tar",
        imagenet_tar,
        "--out",
        out,
        "--expect",
        str(IMAGES_PER_CLASS),
    )
    # then each has its folder with exactly its images, and nothing else was extracted
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(SEED_SYNSETS)
    for synset in SEED_SYNSETS:
        assert folder_contents(out / synset) == class_images(synset)
    assert "red fox" in result.stderr and "ok" in result.stderr
    assert not any(other in result.stderr for other in OTHER_SYNSETS)


def test_a_rerun_resumes_and_repairs_an_interrupted_extraction(
    run_script: RunScript, imagenet_tar: Path, tmp_path: Path
) -> None:
    # given an extraction interrupted: files missing, one cut short, a stray partial file
    out = tmp_path / "data"
    args = ("--imagenet-tar", imagenet_tar, "--out", out, "--expect", str(IMAGES_PER_CLASS))
    assert run_script("prepare_data.py", *args).returncode == 0
    tench = out / "n01440764"
    (tench / "n01440764_0.JPEG").unlink()
    (tench / "n01440764_1.JPEG").unlink()
    (tench / "n01440764_2.JPEG").write_bytes(b"cut")
    (tench / "n01440764_3.JPEG.part").write_bytes(b"partial")
    # when the same command runs again
    result = run_script("prepare_data.py", *args)
    # then only the damaged files are written again, and every folder matches its tar
    assert result.returncode == 0, result.stderr
    assert (
        "n01440764: 6 images on disk, 6 in the tar, 6 expected (3 written, 3 kept) ok"
        in result.stderr
    )
    assert (
        "n01514668: 6 images on disk, 6 in the tar, 6 expected (0 written, 6 kept) ok"
        in result.stderr
    )
    assert folder_contents(tench) == class_images("n01440764")


def test_counts_that_differ_from_the_expected_1300_fail_verification(
    run_script: RunScript, imagenet_tar: Path, tmp_path: Path
) -> None:
    # given class tars of 6 images, when the default expectation of 1,300 applies
    result = run_script(
        "prepare_data.py", "--imagenet-tar", imagenet_tar, "--out", tmp_path / "data"
    )
    # then the run says which folders do not match and exits 1
    assert result.returncode == 1
    assert result.stderr.count("MISMATCH") == 4
    assert "4 class folder(s) do not match" in result.stderr


def test_reads_a_folder_of_per_class_tars(
    run_script: RunScript, make_class_tar: MakeClassTar, tmp_path: Path
) -> None:
    # given the seed's /data/imageNet layout: one tar per class in a folder
    tars = tmp_path / "imageNet"
    for synset in SEED_SYNSETS:
        make_class_tar(tars, synset, class_images(synset))
    # when it is prepared
    out = tmp_path / "data"
    result = run_script("prepare_data.py", "--imagenet-tar", tars, "--out", out, "--expect", "0")
    # then the images land in the same layout as from the big tar
    assert result.returncode == 0, result.stderr
    assert folder_contents(out / "n02489166") == class_images("n02489166")


def test_a_missing_synset_is_named_in_one_line(
    run_script: RunScript, make_class_tar: MakeClassTar, tmp_path: Path
) -> None:
    # given class tars for three of the four synsets
    for synset in SEED_SYNSETS[:3]:
        make_class_tar(tmp_path / "tars", synset, class_images(synset))
    # when it is prepared, then the fourth is named with what was expected, exit 2
    result = run_script(
        "prepare_data.py", "--imagenet-tar", tmp_path / "tars", "--out", tmp_path / "data"
    )
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(
        "prepare_data.py: error: --imagenet-tar: n02489166 (proboscis monkey) not found"
    )


def test_member_paths_cannot_escape_the_class_folder(
    run_script: RunScript, make_class_tar: MakeClassTar, tmp_path: Path
) -> None:
    # given a class tar whose members name parent and absolute paths
    tars = tmp_path / "tars"
    hostile = {
        "../../escaped.JPEG": b"a",
        "/tmp/absolute.JPEG": b"b",
        ".hidden.JPEG": b"c",
        "notes.txt": b"d",
    }
    make_class_tar(tars, "n01440764", hostile)
    for synset in SEED_SYNSETS[1:]:
        make_class_tar(tars, synset, class_images(synset, 1))
    # when it is prepared
    out = tmp_path / "out" / "data"
    result = run_script(
        "prepare_data.py", "--imagenet-tar", *sorted(tars.iterdir()), "--out", out, "--expect", "0"
    )
    # then images keep their base names inside the class folder; non-images are skipped
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (out / "n01440764").iterdir()) == [
        "absolute.JPEG",
        "escaped.JPEG",
    ]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["data"]


def test_something_that_is_not_a_tar_is_refused_in_one_line(
    run_script: RunScript, tmp_path: Path
) -> None:
    # given a text file passed as the ImageNet tar
    bogus = tmp_path / "ILSVRC2012_img_train.tar"
    bogus.write_text("not a tar\n")
    # when it is prepared, then one line says so, exit 2
    result = run_script("prepare_data.py", "--imagenet-tar", bogus, "--out", tmp_path / "data")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "is not a readable tar file" in result.stderr


def test_digits_become_four_class_folders_of_rgb_jpegs(
    run_script: RunScript, tmp_path: Path
) -> None:
    from PIL import Image

    # when the offline dataset is built with five images a class at 48 px
    result = run_script(
        "prepare_data.py", "--digits", "--per-class", "5", "--digit-size", "48", "--out", tmp_path
    )
    # then digits 0–3 each have five decodable RGB JPEGs of that size
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "digit_0",
        "digit_1",
        "digit_2",
        "digit_3",
    ]
    for folder in tmp_path.iterdir():
        files = sorted(folder.iterdir())
        assert len(files) == 5
        with Image.open(files[0]) as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (48, 48))
