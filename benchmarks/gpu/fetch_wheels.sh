#!/usr/bin/env bash
# Download Keras and what it imports into benchmarks/gpu/wheels/ (git-ignored) for the GPU machine,
# which has JAX and NumPy but no Keras and no internet; the device tool carries the folder there.
# optree is the one compiled dependency: wheels for CPython 3.10–3.13 on x86-64 Linux (~5 MB in all).
set -euo pipefail
dest="$(cd "$(dirname "$0")" && pwd)/wheels"
pip=(python3 -m pip download --quiet --no-deps --dest "$dest")
mkdir -p "$dest"
"${pip[@]}" nvidia-ml-py  # the GPU meter (gpu_checks.py)
"${pip[@]}" keras namex absl-py rich markdown-it-py mdurl pygments packaging typing-extensions
for version in 3.10 3.11 3.12 3.13; do
  "${pip[@]}" --only-binary=:all: --platform manylinux2014_x86_64 --python-version "$version" optree
done
du -sh "$dest"
