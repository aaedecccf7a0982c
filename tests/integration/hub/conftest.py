"""KubeSpawner loads a kubeconfig when it is built; give it one that points nowhere (no API call is
made while building pod manifests)."""

from __future__ import annotations

from pathlib import Path

import pytest

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: none, user: {token: unused}}]
contexts: [{name: none, context: {cluster: none, user: none, namespace: hub}}]
current-context: none
"""


@pytest.fixture(autouse=True)
def unreachable_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", str(config))
    # kubernetes_asyncio reads $KUBECONFIG once, at import.
    kube_config = pytest.importorskip("kubernetes_asyncio.config.kube_config")
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(config))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
