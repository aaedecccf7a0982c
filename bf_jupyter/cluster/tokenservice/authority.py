"""The cluster side of the token service, through ``bf_jupyter.kubeapi``.

Three calls, each covered by the service's least-privilege ClusterRole and Role: create a
TokenReview, get the caller's pod, get the one token Secret in the service's own namespace. Any
failure but a 404 becomes ``AuthorityUnavailable`` (the request is answered 503).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from bf_jupyter.cluster.tokenservice.issuer import AuthorityUnavailable

if TYPE_CHECKING:
    from bf_jupyter.kubeapi import KubeApi

__all__ = ["KubeTokenAuthority"]


class KubeTokenAuthority:
    """Asks a live API server. Holds no state but the connection; safe to share between threads."""

    def __init__(self, api: KubeApi, *, namespace: str, secret: str) -> None:
        self._api = api
        self._namespace = namespace
        self._secret = secret

    def review(self, token: str, audience: str) -> Mapping[str, Any]:
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": [audience]},
        }
        review = _ask(lambda: self._api.create("TokenReview", body))
        if review is None:
            raise AuthorityUnavailable("the API server does not serve authentication.k8s.io/v1")
        return review

    def pod(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return _ask(lambda: self._api.get("Pod", name, namespace))

    def token_files(self) -> Mapping[str, str] | None:
        secret = _ask(lambda: self._api.get("Secret", self._secret, self._namespace))
        if secret is None:
            return None
        data = secret.get("data")
        return data if isinstance(data, dict) else {}


def _ask(call: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    """Run one API call: None for a 404, ``AuthorityUnavailable`` for any other failure."""
    from bf_jupyter.kubeapi import KubeApiError, KubeUnavailable

    try:
        return call()
    except KubeApiError as error:
        if error.not_found:
            return None
        raise AuthorityUnavailable(f"{error.reason or error.status}: {error}") from None
    except KubeUnavailable as error:
        raise AuthorityUnavailable(str(error)) from None
