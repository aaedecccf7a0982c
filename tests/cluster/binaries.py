"""Where the test cluster's binaries are: the cache that ``make cluster-binaries``
(``tests/cluster/build/build.sh``) fills from the release pinned in ``tests/cluster/build/go.mod``,
and the helm that ``make helm-binary`` (``tests/cluster/build/helm/build.sh``) builds from the one
pinned in ``tests/cluster/build/helm/go.mod``.

The build scripts own the cache keys; this module asks them for the folder (``build.sh --bin-dir``,
which builds nothing) so each key is computed in one place only.
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass, fields
from pathlib import Path

BUILD_SCRIPT = Path(__file__).resolve().parent / "build" / "build.sh"
HELM_BUILD_SCRIPT = Path(__file__).resolve().parent / "build" / "helm" / "build.sh"


class MissingBinariesError(RuntimeError):
    """The pinned control plane has not been built on this machine."""


@dataclass(frozen=True)
class ControlPlaneBinaries:
    """Paths of the executables of one pinned Kubernetes release and its etcd."""

    etcd: Path
    kube_apiserver: Path
    kube_scheduler: Path
    kube_controller_manager: Path
    kubectl: Path

    @classmethod
    def in_folder(cls, folder: Path) -> ControlPlaneBinaries:
        """The binaries in ``folder``, named as the build names them (``kube-apiserver``, …).

        Raises ``MissingBinariesError`` naming the first one that is absent or not executable.
        """
        paths = {field.name: folder / field.name.replace("_", "-") for field in fields(cls)}
        for path in paths.values():
            if not path.is_file():
                raise MissingBinariesError(
                    f"{path} is missing: run `make cluster-binaries` to build the test cluster's "
                    "control plane"
                )
        return cls(**paths)


def cache_folder(build_script: Path = BUILD_SCRIPT) -> Path:
    """The folder that holds (or will hold) the binaries of the current pin of ``build_script``."""
    result = subprocess.run(
        ["bash", str(build_script), "--bin-dir"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise MissingBinariesError(result.stderr.strip() or f"{build_script} --bin-dir failed")
    return Path(result.stdout.strip())


@functools.cache
def find_binaries() -> ControlPlaneBinaries:
    """The cached binaries of the pinned release, found once per process (later callers may run
    under a test's own ``$HOME``, which would move the cache).

    Raises ``MissingBinariesError`` (one line: run ``make cluster-binaries``) when they are absent.
    """
    return ControlPlaneBinaries.in_folder(cache_folder())


@functools.cache
def find_helm() -> Path:
    """The cached helm of the pinned release, found once per process.

    Raises ``MissingBinariesError`` (one line: run ``make helm-binary``) when it is absent.
    """
    helm = cache_folder(HELM_BUILD_SCRIPT) / "helm"
    if not helm.is_file():
        raise MissingBinariesError(
            f"{helm} is missing: run `make helm-binary` to build the helm the chart's tests use"
        )
    return helm
