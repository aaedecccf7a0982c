"""The Job controller (batch/v1), the part tests lean on: pods made from the template through the
API (so admission webhooks and quota apply), owned by the Job, retried up to ``backoffLimit``,
with ``status`` (active, succeeded, failed, Complete/Failed conditions) kept current."""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import TYPE_CHECKING, Any

from tests.emulator import errors
from tests.emulator.events import EventRecorder
from tests.emulator.kinds import ResourceType, resource_for_kind
from tests.emulator.store import now_rfc3339

if TYPE_CHECKING:
    from tests.emulator.registry import Registry

Obj = dict[str, Any]
_log = logging.getLogger(__name__)
CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"


def default_job(job: Obj) -> None:
    """The API's Job defaults, and the one rule tests can break (template restartPolicy)."""
    spec = job.setdefault("spec", {})
    spec.setdefault("completions", 1)
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    template = spec.setdefault("template", {})
    policy = (template.get("spec") or {}).get("restartPolicy")
    if policy not in ("Never", "OnFailure"):
        raise errors.invalid(
            "Job",
            job["metadata"].get("name", ""),
            [
                (
                    "spec.template.spec.restartPolicy",
                    f'Unsupported value: "{policy or "Always"}": supported values: "OnFailure", "Never"',
                )
            ],
        )


class JobController:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.store = registry.store
        self.events = EventRecorder(self.store, "job-controller")
        self._jobs = resource_for_kind("Job")
        self._pods = resource_for_kind("Pod")
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.store.subscribe(self._on_change)

    def _on_change(self, event_type: str, resource: ResourceType, obj: Obj) -> None:
        meta = obj["metadata"]
        if resource.kind == "Job" and event_type != "DELETED":
            self._spawn(meta["namespace"], meta["name"])
        elif resource.kind == "Pod":
            for ref in meta.get("ownerReferences") or []:
                if ref.get("kind") == "Job" and ref.get("controller"):
                    self._spawn(meta["namespace"], ref["name"])

    def _spawn(self, namespace: str, name: str) -> None:
        task = asyncio.get_running_loop().create_task(self._sync(namespace, name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _sync(self, namespace: str, name: str) -> None:
        async with self._locks.setdefault(f"{namespace}/{name}", asyncio.Lock()):
            try:
                await self._reconcile(namespace, name)
            except Exception:
                _log.exception("job %s/%s could not be synced", namespace, name)

    async def _reconcile(self, namespace: str, name: str) -> None:
        job = self.store.find(self._jobs, namespace, name)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return
        uid, spec = job["metadata"]["uid"], job["spec"]
        pods = [
            p for p in self.store.list(self._pods, namespace)
            if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences") or [])
        ]  # fmt: skip
        phases = [(p.get("status") or {}).get("phase") for p in pods]
        succeeded, failed = phases.count("Succeeded"), phases.count("Failed")
        active = len(pods) - succeeded - failed
        status = copy.deepcopy(job.get("status") or {})
        status.setdefault("startTime", now_rfc3339())
        finished = any(c.get("status") == "True" for c in status.get("conditions") or [])
        if not finished and succeeded >= int(spec["completions"]):
            status["conditions"] = [
                {"type": "Complete", "status": "True", "lastTransitionTime": now_rfc3339()}
            ]
            status["completionTime"] = now_rfc3339()
            self.events.record(job, "Normal", "Completed", "Job completed")
        elif not finished and failed > int(spec["backoffLimit"]):
            message = "Job has reached the specified backoff limit"
            status["conditions"] = [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": message,
                    "lastTransitionTime": now_rfc3339(),
                }
            ]
            self.events.record(job, "Warning", "BackoffLimitExceeded", message)
        elif not finished:
            wanted = min(int(spec["parallelism"]), int(spec["completions"]) - succeeded) - active
            for _ in range(max(wanted, 0)):
                if await self._create_pod(job):
                    active += 1
        status.update(active=active, succeeded=succeeded, failed=failed)
        current = self.store.find(self._jobs, namespace, name)
        if (
            current is not None
            and current["metadata"]["uid"] == uid
            and current.get("status") != status
        ):
            current["status"] = status
            self.registry.update_status_now(self._jobs, current)

    async def _create_pod(self, job: Obj) -> bool:
        meta = job["metadata"]
        template = copy.deepcopy(job["spec"]["template"])
        labels = {
            **(template.get("metadata") or {}).get("labels", {}),
            CONTROLLER_UID: meta["uid"],
            JOB_NAME: meta["name"],
            "job-name": meta["name"],
        }
        pod = {
            "metadata": {
                **(template.get("metadata") or {}),
                "generateName": f"{meta['name']}-",
                "labels": labels,
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": template.get("spec") or {},
        }
        try:
            created = await self.registry.create(
                self._pods,
                meta["namespace"],
                pod,
                user={
                    "username": "system:serviceaccount:kube-system:job-controller",
                    "groups": ["system:serviceaccounts", "system:authenticated"],
                },
            )
        except errors.ApiError as error:
            self.events.record(job, "Warning", "FailedCreate", f"Error creating: {error.message}")
            return False
        self.events.record(
            job, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}"
        )
        return True

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
