"""Fixtures for the admission rules: a site configuration, pod builders, a patch applier, and
cluster facts that answer from memory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
import pytest

from bf_jupyter.cluster.webhook.config import WebhookConfig
from bf_jupyter.cluster.webhook.mutate import mutate_pod
from bf_jupyter.cluster.webhook.validate import FactUnavailable, QuotaLeft

GIB = 1 << 30
Pod = dict[str, Any]


@pytest.fixture
def config() -> WebhookConfig:
    """The built-in client table with 16 GiB GPUs and servers of at most 4 GPUs."""
    return WebhookConfig(per_gpu_memory_bytes=16 * GIB, max_gpus_per_server=4)


@pytest.fixture
def gpu_container() -> Callable[..., dict[str, Any]]:
    """``gpu_container(name, command=..., args=..., amount=..., percent=..., memory=..., section=...)``"""

    def build(
        name: str = "main",
        *,
        command: list[str] | None = None,
        args: list[str] | None = None,
        amount: str | None = "1",
        percent: str | None = "50",
        memory: str | None = None,
        section: str = "limits",
        **extra: Any,
    ) -> dict[str, Any]:
        resources: dict[str, str] = {"cpu": "1"}
        for key, value in (("amount", amount), ("percent", percent), ("memory", memory)):
            if value is not None:
                resources[f"bitfusion.io/gpu-{key}"] = value
        container: dict[str, Any] = {
            "name": name,
            "image": "tensorflow/tensorflow:2.16.1-gpu",
            "command": ["python", "train.py"] if command is None else command,
            "resources": {section: resources},
            **extra,
        }
        if args is not None:
            container["args"] = args
        return container

    return build


@pytest.fixture
def make_pod() -> Callable[..., Pod]:
    """``make_pod(*containers, annotations=..., management="all", **spec)``"""

    def build(
        *containers: dict[str, Any],
        annotations: dict[str, str] | None = None,
        management: str | None = "all",
        **spec: Any,
    ) -> Pod:
        notes = dict(annotations or {})
        if management is not None:
            notes["auto-management/bitfusion"] = management
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "train", "namespace": "team-a", "annotations": notes},
            "spec": {"containers": list(containers), **spec},
        }

    return build


@pytest.fixture
def mutated(config: WebhookConfig) -> Callable[..., Pod]:
    """Mutate a pod, require it to be allowed, apply the patch with jsonpatch, return the result."""

    def run(pod: Pod, site: WebhookConfig | None = None) -> Pod:
        verdict = mutate_pod(pod, site or config)
        assert verdict.allowed, verdict.problems
        result: Pod = jsonpatch.apply_patch(pod, list(verdict.patch))
        return result

    return run


@dataclass
class MemoryFacts:
    """Cluster facts held in memory; ``unavailable`` makes every call fail like a lost API."""

    quota: tuple[QuotaLeft, ...] = ()
    largest_node: int = 800
    secret_keys: frozenset[str] | None = frozenset({"ca.crt", "client.yaml", "servers.conf"})
    unavailable: str | None = None
    asked: list[str] = field(default_factory=list)
    blocking: bool = False

    def _check(self, what: str) -> None:
        self.asked.append(what)
        if self.unavailable:
            raise FactUnavailable(self.unavailable)

    def quotas(self, namespace: str) -> tuple[QuotaLeft, ...]:
        self._check(f"quotas {namespace}")
        return self.quota

    def largest_node_units(self) -> int:
        self._check("nodes")
        return self.largest_node

    def token_secret_keys(self, namespace: str, name: str) -> frozenset[str] | None:
        self._check(f"secret {namespace}/{name}")
        return self.secret_keys


@pytest.fixture
def facts() -> MemoryFacts:
    return MemoryFacts()
