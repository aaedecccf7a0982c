"""Property-based fuzzing: more than 10,000 generated AdmissionReviews (random pods, garbage values,
missing fields, wrong kinds, broken JSON). Whatever arrives: never a 5xx, never a crash, always a
valid AdmissionReview reply echoing the uid; a patch always applies, mutation is idempotent, and a
patched pod passes validation (and the Pod schema when the pod it came from did).

Most examples go through the in-process service (the code behind the HTTP handler); a sample goes
over real HTTPS. Examples are derandomized, so every run checks the same reviews; a failure names
its seed, and ``random_pod(Random(seed))`` (or ``random_body``) rebuilds the review.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from random import Random
from typing import Any

import jsonpatch
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes_validate.utils import schema_contents
from referencing import Registry, Resource

from bf_jupyter.cluster.webhook.config import WebhookConfig
from bf_jupyter.cluster.webhook.service import AdmissionService, Reply

from .conftest import GoodCluster, RunningWebhook, admission_review

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# ----- generators ----------------------------------------------------------------------------------
# Hypothesis draws a seed per example and these functions grow the review from it: drawing every
# field through hypothesis costs ~13 ms per pod here, a seed ~0.5 ms, and 10,000 examples must stay
# fast. The pools hold what matters: shell metacharacters, quotes, unicode, empty and bad quantities.

STRINGS = [
    "",
    "x",
    "two words",
    "it's",
    '"q"',
    "$(rm -rf /)",
    "a;b|c",
    "--",
    "-n",
    "é€😀",
    "\\",
    "x" * 300,
]
NAMES = ["main", "a", "b", "side", "trainer", "eval-1"]
AMOUNTS: list[Any] = ["1", "2", "4", "64", "65", "0", "-1", "1.5", "1k", "x", 1, 3, 0, True, None]
PERCENTS: list[Any] = ["1", "25", "50", "100", "101", "0", "50%", "0.5", 50, 7, 1.5]
MEMORIES: list[Any] = ["1Gi", "8Gi", "16Gi", "17Gi", "512Mi", "0", "8G", "lots", "1Ti", 1 << 30]
ENV = [
    {"name": "LD_LIBRARY_PATH", "value": "/usr/local/cuda/lib64"},
    {"name": "LD_LIBRARY_PATH", "value": ""},
    {"name": "LD_LIBRARY_PATH", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
    {"name": "EPOCHS", "value": "3"},
]
MANAGEMENT = ["all", "injection", "none", "yes", "ON", "", "inject"]
OPTIONAL = 0.5


def some(rng: Random, pool: list[Any], most: int = 3) -> list[Any]:
    return [rng.choice(pool) for _ in range(rng.randint(0, most))]


def text(rng: Random) -> str:
    if rng.random() < 0.8:
        return str(rng.choice(STRINGS))
    return "".join(chr(rng.randint(1, 0x2FFF)) for _ in range(rng.randint(0, 5)))


def slice_keys(rng: Random) -> dict[str, Any]:
    if rng.random() < 0.7:  # a well-formed slice, so that most pods get through to a patch
        keys: dict[str, Any] = {"bitfusion.io/gpu-amount": rng.choice(["1", "2", "4", 3])}
        if rng.random() < 0.7:
            keys["bitfusion.io/gpu-percent"] = rng.choice(["1", "25", "50", "100", 30])
        else:
            keys["bitfusion.io/gpu-memory"] = rng.choice(["1Gi", "8Gi", "16Gi", "1500Mi"])
        return keys
    keys = {}
    for key, pool in (
        ("bitfusion.io/gpu-amount", AMOUNTS),
        ("bitfusion.io/gpu-percent", PERCENTS),
        ("bitfusion.io/gpu-memory", MEMORIES),
        ("cpu", ["100m", "1"]),
    ):
        if rng.random() < OPTIONAL:
            keys[key] = rng.choice(pool)
    return keys


def container(rng: Random, name: str) -> dict[str, Any]:
    built: dict[str, Any] = {"name": name, "image": "tf:2"}
    if rng.random() < 0.9:
        built["command"] = [
            text(rng) for _ in range(rng.randint(1 if rng.random() < 0.9 else 0, 3))
        ]
    if rng.random() < OPTIONAL:
        built["args"] = [text(rng) for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.8:
        keys = slice_keys(rng)
        sections = rng.choice([("limits",), ("requests",), ("limits", "requests")])
        built["resources"] = {section: dict(keys) for section in sections}
    if rng.random() < OPTIONAL:
        built["env"] = list({e["name"]: e for e in some(rng, ENV, 2)}.values())
    if rng.random() < 0.2:
        built["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    return built


def random_pod(rng: Random) -> dict[str, Any]:
    """A pod in the Pod API's shape, with slice keys that are right, wrong or missing."""
    annotations: dict[str, Any] = {}
    choices: tuple[tuple[str, Callable[[], str]], ...] = (
        ("auto-management/bitfusion", lambda: rng.choice(MANAGEMENT[:2] * 3 + MANAGEMENT)),
        ("bitfusion-client/os", lambda: rng.choice(["ubuntu18", "centos7", "centos8", "ubuntu99"])),
        (
            "bitfusion-client/filter",
            lambda: rng.choice(
                [
                    "device.name=V100",
                    "server.addr=1.2.3.4 device.id=0",
                    "device.name='Tesla V100'",
                    "bogus=1",
                    "'",
                ]
            ),
        ),
        ("team", lambda: text(rng)),
    )
    for key, choose in choices:
        if rng.random() < (0.85 if key == "auto-management/bitfusion" else 0.3):
            annotations[key] = choose()
    spec: dict[str, Any] = {
        "containers": [container(rng, name) for name in rng.sample(NAMES, rng.randint(1, 4))]
    }
    if rng.random() < 0.3:
        spec["initContainers"] = [{"name": "setup", "image": "busybox", "command": ["true"]}]
    if rng.random() < 0.3:
        spec["volumes"] = [{"name": "data", "emptyDir": {}}]
    metadata: dict[str, Any] = {"name": "p", "namespace": "team-a"}
    if annotations or rng.random() < OPTIONAL:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def random_value(rng: Random, depth: int = 0) -> Any:
    """Any JSON value: scalars of every type, huge integers, nested lists and objects."""
    kind = rng.randint(0, 7 if depth < 3 else 5)
    scalars: list[Any] = [
        None,
        rng.random() < 0.5,
        rng.randint(-(2**70), 2**70),
        rng.uniform(-1e9, 1e9),
        text(rng),
        "",
    ]
    if kind < 6:
        return scalars[kind]
    if kind == 6:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {text(rng): random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def random_body(rng: Random) -> bytes:
    """Anything: broken bytes, JSON that is no review, reviews with wrong kinds or garbage objects."""
    choice = rng.randint(0, 7)
    if choice == 0:
        return rng.randbytes(rng.randint(0, 64))
    if choice == 1:
        return json.dumps(random_value(rng)).encode()
    fields = ["uid", "kind", "operation", "namespace", "object", "subResource"]
    request: dict[str, Any] = {f: random_value(rng) for f in rng.sample(fields, rng.randint(0, 6))}
    if choice >= 3:
        request["uid"] = text(rng)
        pod_kind = {"group": "", "version": "v1", "kind": "Pod"}
        request["kind"] = (
            pod_kind if rng.random() < 0.8 else rng.choice([{"kind": "Pod"}, "Pod", None])
        )
        request["operation"] = (
            "CREATE" if rng.random() < 0.8 else rng.choice(["UPDATE", "DELETE", 7])
        )
    if choice >= 4:  # a pod with one part replaced by garbage
        pod = random_pod(rng)
        value = random_value(rng)
        target = rng.choice(["metadata", "spec", "containers", "annotations", "container"])
        if target in ("metadata", "spec"):
            pod[target] = value
        elif target == "containers":
            pod["spec"]["containers"] = value
        elif target == "annotations":
            pod["metadata"]["annotations"] = {"auto-management/bitfusion": "all", "k": value}
        else:
            field = rng.choice(["command", "args", "env", "resources", "volumeMounts", "name"])
            pod["spec"]["containers"][0][field] = value
        request["object"] = pod
    version = "admission.k8s.io/v1" if rng.random() < 0.9 else rng.choice(["v1", None])
    review = {"apiVersion": version, "kind": "AdmissionReview", "request": request}
    return json.dumps(review).encode()


seeds = st.integers(0, 2**64)


# ----- checks ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def service() -> AdmissionService:
    # no server-size limit here: that check belongs to validation and would refuse valid mutations
    return AdmissionService(
        WebhookConfig(per_gpu_memory_bytes=16 << 30), GoodCluster(blocking=False)
    )


class PodSchema:
    """The Kubernetes 1.30 Pod schema (strict), compiled once (kubernetes-validate reloads it per call)."""

    def __init__(self) -> None:
        folder = "kubernetes-json-schema/v1.30.0-local-strict"
        schema = schema_contents(f"{folder}/pod-v1.json", "1.30.0")
        definitions = schema_contents(f"{folder}/_definitions.json", "1.30.0")
        registry = Resource.from_contents(definitions) @ (
            Resource.from_contents(schema) @ Registry()
        )
        self._validator = jsonschema.validators.Draft202012Validator(schema, registry=registry)

    def is_valid(self, pod: dict[str, Any]) -> bool:
        return bool(self._validator.is_valid(pod))

    def errors(self, pod: dict[str, Any]) -> list[str]:
        return [error.message for error in self._validator.iter_errors(pod)]

    def __repr__(self) -> str:
        return "PodSchema(1.30 strict)"


@pytest.fixture(scope="module")
def pod_schema() -> PodSchema:
    return PodSchema()


def read_reply(status: int, body: bytes, uid: str | None) -> dict[str, Any]:
    """Check a reply is a well-formed AdmissionReview (and not a server error); return its response."""
    assert status < 500, body
    reply = json.loads(body)
    assert reply["apiVersion"] == "admission.k8s.io/v1" and reply["kind"] == "AdmissionReview"
    response = reply["response"]
    assert isinstance(response["allowed"], bool) and isinstance(response["uid"], str)
    if uid is not None:
        assert response["uid"] == uid
    if not response["allowed"]:
        assert response["status"]["code"] in (400, 403) and response["status"]["message"]
    return dict(response)


def patched(pod: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    if "patch" not in response:
        return pod
    assert response["patchType"] == "JSONPatch"
    result: dict[str, Any] = jsonpatch.apply_patch(
        pod, json.loads(base64.b64decode(response["patch"]))
    )
    return result


def check_pod(
    reply: Reply, pod: dict[str, Any], service: AdmissionService, schema: PodSchema | None
) -> None:
    """The reply is valid; a patch applies, is idempotent and passes validation; with ``schema``, a
    schema-valid pod stays schema-valid."""
    assert reply.outcome != "error"
    response = read_reply(reply.status, reply.body, "fuzz")
    if not response["allowed"] or "patch" not in response:
        return
    result = patched(pod, response)
    again = read_reply(*_answer(service.mutate(admission_review(result, uid="fuzz"))), "fuzz")
    assert again["allowed"] and "patch" not in again, "mutation is not idempotent"
    judged = read_reply(*_answer(service.validate(admission_review(result, uid="fuzz"))), "fuzz")
    assert judged["allowed"], judged["status"]["message"]
    if schema is not None and schema.is_valid(pod):
        assert not schema.errors(result)


def _answer(reply: Reply) -> tuple[int, bytes]:
    assert reply.outcome != "error"
    return reply.status, reply.body


@settings(FUZZ, max_examples=6500)
@given(seed=seeds)
def test_fuzzed_pods_get_valid_replies_and_idempotent_valid_patches(
    seed: int, service: AdmissionService, pod_schema: PodSchema
) -> None:
    pod = random_pod(Random(seed))
    # the schema check costs ~8 ms a pod, so one pod in ten gets it (hundreds per run)
    schema = pod_schema if seed % 10 == 0 else None
    check_pod(service.mutate(admission_review(pod, uid="fuzz")), pod, service, schema)
    assert service.validate(admission_review(pod, uid="fuzz")).outcome != "error"


@settings(FUZZ, max_examples=3500)
@given(seed=seeds)
def test_garbage_reviews_get_valid_replies(seed: int, service: AdmissionService) -> None:
    body = random_body(Random(seed))
    for reply in (service.mutate(body), service.validate(body)):
        assert reply.outcome != "error"
        read_reply(reply.status, reply.body, None)


@settings(FUZZ, max_examples=300)
@given(seed=seeds)
def test_fuzzed_reviews_over_https(seed: int, webhook: RunningWebhook) -> None:
    rng = Random(seed)
    body = admission_review(random_pod(rng), uid="fuzz") if rng.random() < 0.7 else random_body(rng)
    for path in ("/mutate", "/validate"):
        status, raw = webhook.client.request("POST", path, body)
        read_reply(status, raw, None)
