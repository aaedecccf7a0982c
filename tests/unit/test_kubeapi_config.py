"""Where ``KubeApi`` finds its cluster: ``$KUBECONFIG`` as it is when connecting."""

from __future__ import annotations

from typing import TYPE_CHECKING

import yaml

from bf_jupyter.kubeapi import KubeApi

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def _kubeconfig(path: Path, namespace: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": "u", "user": {"token": "not-a-secret"}}],
                "contexts": [
                    {"name": "x", "context": {"cluster": "c", "user": "u", "namespace": namespace}}
                ],
                "current-context": "x",
            }
        )
    )
    return path


def test_kubeconfig_set_after_the_client_was_imported_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kubernetes.config  # noqa: F401 - the client reads $KUBECONFIG once, at import

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path / "config", "ml-team")))

    api = KubeApi.connect()

    try:
        assert api._client.configuration.host == "https://127.0.0.1:6443"
    finally:
        api.close()
    assert KubeApi.default_namespace() == "ml-team"
