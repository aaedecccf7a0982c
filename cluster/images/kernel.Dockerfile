# The notebook kernel image: Python, bf-jupyter (its in-pod launcher, the %bitfusion magic, the
# Keras callback) and nothing of the Bitfusion client — the mutating webhook injects the client and
# wraps the container's command in `bitfusion run` when the pod asks for a GPU slice.
# Build from the repository root (add frameworks with EXTRAS, e.g. --build-arg EXTRAS=tensorflow):
#   docker build -f cluster/images/kernel.Dockerfile -t bf-jupyter/kernel:0.1.0 .
# The kernelspec "Python 3 (Bitfusion GPU, Kubernetes)" uses this image by default; point it at
# yours with `bf-jupyter kernelspec install --backend kubernetes --image REGISTRY/kernel:TAG`.
# Everything is installed at build time; a kernel pod downloads nothing. The `gpu` extra
# (nvidia-ml-py) lets the kernel report its GPU meter to the server.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS=""
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bf_jupyter ./bf_jupyter
COPY kernelspecs ./kernelspecs
RUN python -m venv /opt/bf-jupyter \
 && /opt/bf-jupyter/bin/pip install --no-cache-dir ".[gpu${EXTRAS:+,$EXTRAS}]" \
 && /opt/bf-jupyter/bin/python -m bf_jupyter.kernels.launcher --help > /dev/null \
 && /opt/bf-jupyter/bin/python -c "import ipykernel, bf_jupyter.notebook.magic"

FROM ${PYTHON_IMAGE}
COPY --from=build /opt/bf-jupyter /opt/bf-jupyter
ENV PATH=/opt/bf-jupyter/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/jovyan
RUN useradd --uid 1000 --create-home --home-dir /home/jovyan --shell /usr/sbin/nologin jovyan
USER 1000:1000
WORKDIR /home/jovyan
# The kernel pod sets its own command (the kernelspec's argv plus ports); this default documents it.
CMD ["python", "-m", "bf_jupyter.kernels.launcher", "--help"]
