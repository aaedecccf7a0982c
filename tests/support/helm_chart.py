"""The Helm chart ``cluster/helm/bf-jupyter`` driven by the pinned helm (``make helm-binary``), and
what makes its objects comparable with ``kubectl kustomize``'s.

``Helm`` runs the binary with argv lists (a kubeconfig for the commands that reach a cluster);
``render`` is ``helm template`` parsed into objects; ``comparable`` takes off what differs by design
between the two renderings: Helm's own labels, the hash suffix of the webhook's ConfigMap (both tools
hash its content, each its own way), the CA bundle (made at install by Helm, by ``bf-jupyter certs``
for kustomize) and the comments of the webhook's configuration file (compared parsed).
"""

from __future__ import annotations

import copy
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.binaries import find_helm

Obj = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "cluster" / "helm" / "bf-jupyter"
RELEASE = "bf-jupyter"
HELM_LABELS = frozenset(
    {
        "app.kubernetes.io/managed-by",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/version",
        "helm.sh/chart",
    }
)
_CONFIG_NAME = re.compile(r"^bf-webhook-config-[a-z0-9]{10}$")


class HelmError(RuntimeError):
    """helm exited non-zero; the message holds its argv and stderr."""


@dataclass(frozen=True)
class Helm:
    """The pinned helm, on ``kubeconfig``'s cluster (None: only offline commands), with its own
    cache, config and data folders under ``home`` so it never reads the user's."""

    home: Path
    kubeconfig: Path | None = None

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``helm args...``; a non-zero exit does not raise (read ``returncode``/``stderr``)."""
        env = {
            "HOME": str(self.home),
            "PATH": "/usr/bin:/bin",
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        return subprocess.run(
            [str(find_helm()), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def check(self, *args: str, timeout: float = 60) -> str:
        """Run ``helm args...`` and return its stdout; raises ``HelmError`` on a non-zero exit."""
        result = self.run(*args, timeout=timeout)
        if result.returncode != 0:
            raise HelmError(f"helm {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def render(self, *options: str, namespace: str = "bf-system") -> list[Obj]:
        """``helm template`` of the chart with ``options`` (``--set``, ``-f``...), as objects."""
        out = self.check("template", RELEASE, str(CHART), "--namespace", namespace, *options)
        return [doc for doc in yaml.safe_load_all(out) if doc]


def identity(obj: Obj) -> tuple[str, str, str]:
    meta = obj["metadata"]
    name = _CONFIG_NAME.sub("bf-webhook-config", meta["name"])
    return (obj["kind"], meta.get("namespace", ""), name)


def comparable(obj: Obj) -> Obj:
    """``obj`` without what differs by design between Helm's and kustomize's rendering."""
    out: Obj = _strip_config_hash(copy.deepcopy(obj))
    for labels in _label_maps(out):
        for key in HELM_LABELS:
            labels.pop(key, None)
    if out["kind"] in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        for webhook in out["webhooks"]:
            webhook["clientConfig"].pop("caBundle", None)
    if out["kind"] == "ConfigMap" and "config.yaml" in out.get("data", {}):
        out["data"]["config.yaml"] = yaml.safe_load(out["data"]["config.yaml"])
    return out


def _label_maps(obj: Obj) -> list[dict[str, str]]:
    maps = [obj["metadata"].get("labels") or {}]
    template = obj.get("spec", {}).get("template")
    if isinstance(template, dict):
        maps.append(template.get("metadata", {}).get("labels") or {})
    return maps


def _strip_config_hash(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _strip_config_hash(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_strip_config_hash(item) for item in value]
    if isinstance(value, str):
        return _CONFIG_NAME.sub("bf-webhook-config", value)
    return value
