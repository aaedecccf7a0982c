"""VGG19 example: the seed's image loader against ours, on the same generated JPEGs, in one run.

    .venv/bin/python benchmarks/vgg19_input_pipeline.py [--images 2000] [--image-size 224]

Generates --images JPEGs at ImageNet's average size (469×387) in a temporary folder (4 class
folders, photo-like content: smooth colour fields, edges and grain), then runs each loader in its
own process and prints, side by side:
- images/s from the start of loading (after imports) to the end of the first epoch, i.e. until every
  image is decoded, resized and ready to train on;
- CPU time per image (all threads; less sensitive than wall time to other users of the machine);
- peak resident memory of the whole process (ru_maxrss from wait4, imports included), and how much
  of it loading added on top of the process's RSS after its imports.

The seed's loader is its read_all_samples + preprocess_images: cv2.imread and cv2.resize in a loop,
np.array, then float32 / 255 and one-hot labels, after importing TensorFlow as its script does.
Ours is examples/vgg19/vgg19_input.tf_dataset as train.py builds it for the training split:
parallel decode and resize, uint8 cache in memory, shuffle, batch 64, prefetch.
Needs opencv-python-headless (the dev extra) for the seed's loader.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "vgg19"
WIDTH, HEIGHT = 469, 387
CLASSES = 4

# Each loader prints one JSON line: images loaded, wall seconds and CPU seconds (all threads) from
# the start of loading (imports done) to the end of the first epoch, and its RSS at that start.
SEED_LOADER = r"""
import json, os, resource, sys, time
import cv2, numpy as np
import tensorflow as tf
samples_dir, size = sys.argv[1], int(sys.argv[2])
rss = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS"))
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu, start = usage.ru_utime + usage.ru_stime, time.perf_counter()
images, labels = [], []
for number, directory in enumerate(os.listdir(samples_dir)):
    folder = os.path.join(samples_dir, directory)
    for name in os.listdir(folder):
        image = cv2.imread(os.path.join(folder, name))
        images.append(cv2.resize(image, (size, size)))
        labels.append(number)
data, label = np.array(images), np.array(labels)
data = data.astype("float32") / 255
label = tf.keras.utils.to_categorical(label, 4)
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"images": int(data.shape[0]), "seconds": time.perf_counter() - start,
                  "cpu_seconds": usage.ru_utime + usage.ru_stime - cpu, "start_rss_kib": rss}))
"""

OUR_LOADER = r"""
import json, resource, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from vgg19_input import tf_dataset
samples_dir, size, cache = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[4]
with tempfile.TemporaryDirectory(prefix="vgg19-cache-") as cache_dir:
    rss = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS"))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu, start = usage.ru_utime + usage.ru_stime, time.perf_counter()
    classes = sorted(p for p in samples_dir.iterdir() if p.is_dir())
    files = [(str(f), i) for i, c in enumerate(classes) for f in sorted(c.iterdir())]
    dataset = tf_dataset([f for f, _ in files], [l for _, l in files], image_size=size,
                         batch_size=64, shuffle=True, seed=42, name="train",
                         cache=cache_dir if cache == "file" else cache)
    count = sum(int(images.shape[0]) for images, _ in dataset)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"images": count, "seconds": time.perf_counter() - start,
                      "cpu_seconds": usage.ru_utime + usage.ru_stime - cpu, "start_rss_kib": rss}))
"""


def generate_images(folder: Path, count: int, seed: int = 0) -> int:
    """Write ``count`` photo-like JPEGs (469×387, quality 90) into 4 class folders; total bytes.

    Three octaves of smoothly upscaled random colour plus sensor grain: about 90 KiB a file, close
    to ImageNet's average, so decoding costs what it costs on real photos.
    """
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    total = 0
    for number in range(count):
        klass = folder / f"class_{number % CLASSES}"
        klass.mkdir(exist_ok=True)
        field = np.zeros((HEIGHT, WIDTH, 3), np.float32)
        for (rows, cols), weight in (((6, 7), 0.5), ((48, 58), 0.3), ((194, 234), 0.2)):
            coarse = Image.fromarray(rng.integers(0, 256, size=(rows, cols, 3), dtype=np.uint8))
            field += weight * np.asarray(coarse.resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC))
        field += rng.normal(0, 8, (HEIGHT, WIDTH, 1)).astype(np.float32)
        path = klass / f"img_{number:05d}.jpg"
        Image.fromarray(np.clip(field, 0, 255).astype(np.uint8)).save(path, quality=90)
        total += path.stat().st_size
    return total


def measure(code: str, *args: str) -> dict[str, float]:
    """Run ``code`` in a fresh Python; its JSON result plus the process's peak RSS in MiB."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    assert process.stdout is not None and process.stderr is not None
    stdout, stderr = process.stdout.read(), process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"loader failed ({process.returncode}):\n{stderr.decode()[-3000:]}")
    result: dict[str, float] = json.loads(stdout.decode().strip().splitlines()[-1])
    result["peak_rss_mib"] = usage.ru_maxrss / 1024  # Linux reports KiB
    return result


LOADERS = {
    "seed: cv2 loop → float32 array": (SEED_LOADER, ()),
    "ours: tf.data, uint8 cache in memory": (OUR_LOADER, ("memory",)),
    "ours: tf.data, uint8 cache in files": (OUR_LOADER, ("file",)),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--images", type=int, default=2000, help="JPEGs to generate (default: %(default)s)"
    )
    parser.add_argument(
        "--image-size", type=int, default=224, help="training size (default: %(default)s)"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="runs of each loader, interleaved; the best is shown (default: %(default)s)",
    )
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in LOADERS}
    with tempfile.TemporaryDirectory(prefix="vgg19-bench-") as tmp:
        started = time.perf_counter()
        size_bytes = generate_images(Path(tmp), args.images)
        print(
            f"generated {args.images} JPEGs {WIDTH}×{HEIGHT} ({size_bytes / args.images / 1024:.0f} KiB "
            f"average) in {time.perf_counter() - started:.1f} s; {os.cpu_count()} CPUs; "
            f"load average {os.getloadavg()[0]:.2f}; training size {args.image_size}; "
            f"best of {args.repeats} interleaved runs"
        )
        # Interleaved so that load from other users of the machine hits every loader alike.
        for _ in range(args.repeats):
            for name, (code, extra) in LOADERS.items():
                runs[name].append(measure(code, tmp, str(args.image_size), str(EXAMPLE), *extra))
    print(
        f"{'loader':<38}{'images':>7}{'seconds':>9}{'images/s':>10}{'CPU ms/img':>12}"
        f"{'peak RSS MiB':>14}{'of it loading':>15}"
    )
    best: dict[str, dict[str, float]] = {}
    for name, results in runs.items():
        fastest = min(results, key=lambda r: r["seconds"])
        peak = max(results, key=lambda r: r["peak_rss_mib"])
        best[name] = row = {
            **fastest,
            "images_per_second": fastest["images"] / fastest["seconds"],
            "cpu_ms": 1000 * min(r["cpu_seconds"] / r["images"] for r in results),
            "peak_rss_mib": peak["peak_rss_mib"],
            # What loading added to the process after its imports (TensorFlow alone is ~0.7 GiB).
            "loading_rss_mib": peak["peak_rss_mib"] - peak["start_rss_kib"] / 1024,
        }
        print(
            f"{name:<38}{row['images']:>7.0f}{row['seconds']:>9.2f}{row['images_per_second']:>10.0f}"
            f"{row['cpu_ms']:>12.2f}{row['peak_rss_mib']:>14.0f}{row['loading_rss_mib']:>15.0f}"
        )
    seed = best["seed: cv2 loop → float32 array"]
    for name in list(LOADERS)[1:]:
        ours = best[name]
        print(
            f"{name.removeprefix('ours: ')} / seed: throughput "
            f"{ours['images_per_second'] / seed['images_per_second']:.2f}× (target ≥ 3×), "
            f"peak RSS {ours['peak_rss_mib'] / seed['peak_rss_mib']:.2f}× (target ≤ 0.25×), "
            f"RSS added by loading {ours['loading_rss_mib'] / seed['loading_rss_mib']:.2f}×"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
