"""What a container would see, made for a local process: volumes, environment and paths.

A pod gets a directory ``<kubelet dir>/pods/<uid>/`` holding ``volumes/<name>/`` (emptyDir, secret
and configMap volumes materialised there, hostPath volumes used in place) and ``home/``.

**How mountPath maps for a process.** A process cannot see a volume at its ``mountPath``, so every
string the kubelet hands the process — ``command``, ``args``, env values and ``workingDir`` — has
each of its container's mount paths rewritten to the volume's directory wherever the path appears
as a path (at the start, or after ``:``, ``=``, whitespace or a quote, and followed by ``/``, the end,
``:``, whitespace or a quote). ``cp /src /bitfusion/`` with ``/bitfusion`` mounted becomes
``cp /src <pod dir>/volumes/bitfusion/``; ``LD_LIBRARY_PATH=/bitfusion/lib:/usr/lib`` keeps
``/usr/lib``. A ConfigMap's files are configuration that names paths too: each container gets its own
copy of a mounted ConfigMap volume with the same rewriting. Other paths a program computes at run
time are not rewritten; ``BF_EMULATOR_POD_DIR`` names
the pod directory for tests that need it. The "image" is this machine: ``PATH`` starts with the
directory of the running Python so ``python`` and the project's scripts resolve; an image's files
are this machine's files (a client "image" names its directory on this machine, e.g. ``clientDir``
in the webhook's client table).

Secrets and ConfigMaps are read from the API server as the node (``fetch``): the Node authorizer
lets a kubelet read exactly those its pods reference. Projected volumes get their ``secret``,
``configMap``, ``downwardAPI`` and ``serviceAccountToken`` sources. What else the node provides —
image files, remapped hostPaths, tokens, a kubeconfig for in-cluster clients, cluster DNS — is
described in ``node_runtime``.
"""

from __future__ import annotations

import base64
import os
import re
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bf_jupyter.kubeapi import KubeApiError, KubeUnavailable
from tests.cluster.kubelet.node_runtime import (
    CLUSTER_DNS_ENV,
    POD_PYTHON,
    SERVICE_ACCOUNT_DIR,
    NodeRuntime,
)

Obj = dict[str, Any]
Fetch = Callable[[str, str, str], Awaitable[Obj | None]]  # (kind, namespace, name) → object
POD_DIR_ENV = "BF_KUBELET_POD_DIR"
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_FIELD_REF = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class ContainerConfigError(Exception):
    """The container cannot be created yet (kubelet's CreateContainerConfigError); message as it says."""


class MountError(Exception):
    """A volume cannot be set up yet (kubelet's FailedMount event); message as it says."""


@dataclass
class ContainerPlan:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    mounts: dict[str, Path] = field(default_factory=dict)


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined names are replaced, ``$$`` is a literal ``$``,
    unknown references stay as written."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REFERENCE.sub(replace, text)


def field_value(obj: Obj, path: str) -> str:
    """The string form of a dotted field (``status.podIP``); missing fields read as ""."""
    current: Any = obj
    for part in path.split("."):
        current = current.get(part) if isinstance(current, dict) else None
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


def downward_value(pod: Obj, path: str) -> str:
    """A ``fieldRef``'s value: a dotted field, one label or annotation, or all of them as the
    kubelet writes them into a downwardAPI file (``key="value"`` lines)."""
    if match := _FIELD_REF.match(path):
        return str(((pod["metadata"].get(match[1])) or {}).get(match[2], ""))
    if path in ("metadata.labels", "metadata.annotations"):
        values = pod["metadata"].get(path.split(".")[1]) or {}
        return "".join(f'{key}="{values[key]}"\n' for key in sorted(values))
    return field_value(pod, path)


def rewrite_paths(text: str, mounts: dict[str, Path]) -> str:
    """Replace each mount path appearing as a path in ``text`` by its directory, in one pass (the
    longest mount path wins; a replaced path is never rewritten again, e.g. by a ``/tmp`` mount)."""
    paths = sorted((p.rstrip("/") for p in mounts if p.rstrip("/")), key=len, reverse=True)
    if not paths:
        return text
    targets = {p.rstrip("/"): str(folder) for p, folder in mounts.items() if p.rstrip("/")}
    pattern = re.compile(
        r"(?<![^\s:='\"])(" + "|".join(re.escape(p) for p in paths) + r")(?=$|[/:\s'\"])"
    )
    return pattern.sub(lambda match: targets[match.group(1)], text)


class PodSandbox:
    """One pod's directory, volumes and per-container plans."""

    def __init__(
        self, root: Path, pod: Obj, fetch: Fetch, runtime: NodeRuntime | None = None
    ) -> None:
        self.dir = root / pod["metadata"]["uid"]
        self.pod = pod
        self.fetch = fetch
        self.runtime = runtime or NodeRuntime()
        self.volumes: dict[str, Path] = {}
        self.token_files: dict[str, Path] = {}  # volume name → its service-account token file
        self.config_volumes: set[str] = set()  # ConfigMap volumes: rewritten per container

    async def setup_volumes(self) -> None:
        """Materialise every volume; raises ``MountError`` (with kubelet's wording) if one cannot be."""
        (self.dir / "home").mkdir(parents=True, exist_ok=True)
        namespace = self.pod["metadata"]["namespace"]
        for volume in (self.pod.get("spec") or {}).get("volumes") or []:
            name = volume.get("name", "")
            target = self.dir / "volumes" / name
            if "hostPath" in volume:
                self.volumes[name] = self.runtime.host_path(volume["hostPath"].get("path", "/"))
                continue
            target.mkdir(parents=True, exist_ok=True)
            self.volumes[name] = target
            if "secret" in volume:
                source = volume["secret"]
                await self._write_items(
                    target,
                    volume=name,
                    kind="Secret",
                    name=source.get("secretName", ""),
                    namespace=namespace,
                    source=source,
                    decode=True,
                )
            elif "configMap" in volume:
                self.config_volumes.add(name)
                source = volume["configMap"]
                await self._write_items(
                    target,
                    volume=name,
                    kind="ConfigMap",
                    name=source.get("name", ""),
                    namespace=namespace,
                    source=source,
                    decode=False,
                )
            elif "downwardAPI" in volume:
                self._write_downward(target, volume["downwardAPI"].get("items") or [])
            elif "projected" in volume:
                await self._write_projected(target, name, volume["projected"], namespace)

    async def _write_projected(
        self, target: Path, volume: str, source: Obj, namespace: str
    ) -> None:
        for part in source.get("sources") or []:
            if "secret" in part:
                ref = part["secret"]
                await self._write_items(
                    target, volume=volume, kind="Secret", name=ref.get("name", ""),
                    namespace=namespace, source=ref, decode=True,
                )  # fmt: skip
            elif "configMap" in part:
                ref = part["configMap"]
                await self._write_items(
                    target, volume=volume, kind="ConfigMap", name=ref.get("name", ""),
                    namespace=namespace, source=ref, decode=False,
                )  # fmt: skip
            elif "downwardAPI" in part:
                self._write_downward(target, part["downwardAPI"].get("items") or [])
            elif "serviceAccountToken" in part:
                await self._write_token(target, volume, part["serviceAccountToken"])

    async def _write_token(self, target: Path, volume: str, source: Obj) -> None:
        if self.runtime.request_token is None:
            raise MountError(
                f'MountVolume.SetUp failed for volume "{volume}" : this node issues no tokens'
            )
        meta, spec = self.pod["metadata"], self.pod.get("spec") or {}
        try:
            audience = str(source.get("audience", ""))
            token = await self.runtime.request_token(
                meta["namespace"],
                spec.get("serviceAccountName") or "default",
                {
                    "audiences": [audience] if audience else [],
                    "expirationSeconds": max(int(source.get("expirationSeconds", 3600)), 600),
                    "boundObjectRef": {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "name": meta["name"],
                        "uid": meta["uid"],
                    },
                },
            )
        except (KubeApiError, KubeUnavailable) as error:
            raise MountError(f'MountVolume.SetUp failed for volume "{volume}" : {error}') from None
        file = target / str(source.get("path", "token"))
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(token)
        file.chmod(0o600)
        self.token_files.setdefault(volume, file)

    def _write_downward(self, target: Path, items: list[Obj]) -> None:
        for item in items:
            path = item.get("path", "")
            if "fieldRef" not in item or not path:
                continue
            file = target / path
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(downward_value(self.pod, item["fieldRef"].get("fieldPath", "")))

    async def _write_items(
        self,
        target: Path,
        *,
        volume: str,
        kind: str,
        name: str,
        namespace: str,
        source: Obj,
        decode: bool,
    ) -> None:
        try:
            obj = await self.fetch(kind, namespace, name)
        except (KubeApiError, KubeUnavailable) as error:
            raise MountError(f'MountVolume.SetUp failed for volume "{volume}" : {error}') from None
        if obj is None:
            if source.get("optional"):
                return
            raise MountError(
                f'MountVolume.SetUp failed for volume "{volume}" : {kind.lower()} "{name}" not found'
            )
        data: dict[str, bytes] = {
            k: base64.b64decode(v) if decode else str(v).encode()
            for k, v in (obj.get("data") or {}).items()
        }
        if not decode:
            data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        items = source.get("items")
        chosen = (
            [(i["key"], i.get("path", i["key"]), i.get("mode")) for i in items]
            if items
            else [(k, k, None) for k in data]
        )
        default_mode = int(source.get("defaultMode", 0o644))
        for key, path, mode in chosen:
            if key not in data:
                raise MountError(
                    f'MountVolume.SetUp failed for volume "{volume}" : configmap references non-existent config key: {key}'
                )
            file = target / path
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(data[key])
            file.chmod(int(mode) if mode is not None else default_mode)

    async def plan(
        self,
        container: Obj,
        pod: Obj,
        extra_env: dict[str, str],
        device_mounts: dict[str, Path] | None = None,
    ) -> ContainerPlan:
        """argv, env and working directory for one container (``device_mounts``: what device
        plugins mount, container path → host path); raises ``ContainerConfigError``."""
        mounts: dict[str, Path] = self.runtime.files_of(str(container.get("image", "")))
        mounts.update(device_mounts or {})
        in_cluster_token: Path | None = None
        for mount in container.get("volumeMounts") or []:
            volume = self.volumes.get(mount.get("name", ""))
            mount_path = str(mount.get("mountPath", ""))
            if volume is None or mount_path in ("", "/"):
                raise ContainerConfigError(
                    f'cannot mount volume "{mount.get("name")}" at "{mount_path}"'
                )
            mounts[mount_path] = volume / mount["subPath"] if mount.get("subPath") else volume
            token = self.token_files.get(mount.get("name", ""))
            if mount_path.rstrip("/") == SERVICE_ACCOUNT_DIR and token is not None:
                in_cluster_token = mounts[mount_path] / token.name
        for mount in container.get("volumeMounts") or []:
            if mount.get("name") in self.config_volumes and not mount.get("subPath"):
                mount_path = str(mount["mountPath"])
                mounts[mount_path] = self._rewritten_copy(container, mount["name"], mounts)
        env = await self._environment(container, pod, extra_env)
        for name, value in env.items():
            env[name] = rewrite_paths(value, mounts)
        self._node_environment(env, in_cluster_token)  # paths on this machine already
        words = [*(container.get("command") or []), *(container.get("args") or [])]
        if not container.get("command"):
            raise ContainerConfigError(
                f'container "{container.get("name")}" has no command: the process-kubelet runs the '
                f'command as a local process and knows no entrypoint for image "{container.get("image")}"'
            )
        argv = [rewrite_paths(expand(str(word), env), mounts) for word in words]
        work = container.get("workingDir")
        cwd = Path(rewrite_paths(work, mounts)) if work else self.dir / "home"
        return ContainerPlan(argv, env, cwd, mounts)

    def _rewritten_copy(self, container: Obj, volume: str, mounts: dict[str, Path]) -> Path:
        """This container's copy of a ConfigMap volume, its text files' mount paths rewritten."""
        source = self.volumes[volume]
        folder: Path = self.dir / "containers" / str(container.get("name")) / volume
        for file in source.rglob("*"):
            if not file.is_file():
                continue
            target = folder / file.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                target.write_text(rewrite_paths(file.read_text(), mounts))
            except UnicodeDecodeError:
                target.write_bytes(file.read_bytes())
            target.chmod(file.stat().st_mode & 0o777)
        return folder

    def _node_environment(self, env: dict[str, str], in_cluster_token: Path | None) -> None:
        """What stands in for in-cluster API access and cluster DNS (``node_runtime``)."""
        if in_cluster_token is not None and "KUBECONFIG" not in env:
            kubeconfig = self.dir / "in-cluster.kubeconfig"
            kubeconfig.write_text(
                self.runtime.kubeconfig_text(in_cluster_token, self.pod["metadata"]["namespace"])
            )
            env["KUBECONFIG"] = str(kubeconfig)
        if self.runtime.cluster_dns is not None:
            env[CLUSTER_DNS_ENV] = str(self.runtime.cluster_dns)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(POD_PYTHON), env.get("PYTHONPATH", "")) if p
        )

    async def _environment(
        self, container: Obj, pod: Obj, extra_env: dict[str, str]
    ) -> dict[str, str]:
        interpreter_bin = str(Path(sys.executable).parent)
        env = {
            "PATH": os.pathsep.join([interpreter_bin, os.environ.get("PATH", "/usr/bin:/bin")]),
            "HOME": str(self.dir / "home"),
            "HOSTNAME": pod["metadata"]["name"],
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            POD_DIR_ENV: str(self.dir),
        }
        env.update(extra_env)
        namespace = pod["metadata"]["namespace"]
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                if key in source:
                    ref = source[key]
                    obj = await self._fetch_for_env(kind, namespace, ref.get("name", ""))
                    if obj is None:
                        if ref.get("optional"):
                            continue
                        raise ContainerConfigError(f'{kind.lower()} "{ref.get("name")}" not found')
                    for name, value in (obj.get("data") or {}).items():
                        env[prefix + name] = (
                            base64.b64decode(value).decode() if kind == "Secret" else str(value)
                        )
        for variable in container.get("env") or []:
            name = variable.get("name", "")
            if "value" in variable or "valueFrom" not in variable:
                env[name] = expand(str(variable.get("value", "")), env)
                continue
            resolved = await self._value_from(variable["valueFrom"], pod, container, namespace)
            if resolved is not None:
                env[name] = resolved
        return env

    async def _fetch_for_env(self, kind: str, namespace: str, name: str) -> Obj | None:
        try:
            return await self.fetch(kind, namespace, name)
        except (KubeApiError, KubeUnavailable) as error:
            raise ContainerConfigError(str(error)) from None

    async def _value_from(
        self, source: Obj, pod: Obj, container: Obj, namespace: str
    ) -> str | None:
        if "fieldRef" in source:
            return downward_value(pod, source["fieldRef"].get("fieldPath", ""))
        if "resourceFieldRef" in source:
            ref = source["resourceFieldRef"]
            section, _, resource = str(ref.get("resource", "")).partition(".")
            return str(((container.get("resources") or {}).get(section) or {}).get(resource, "0"))
        for kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
            if key in source:
                ref = source[key]
                obj = await self._fetch_for_env(kind, namespace, ref.get("name", ""))
                data = (obj or {}).get("data") or {}
                if obj is None or ref.get("key") not in data:
                    if ref.get("optional"):
                        return None
                    if obj is None:
                        raise ContainerConfigError(f'{kind.lower()} "{ref.get("name")}" not found')
                    raise ContainerConfigError(
                        f"couldn't find key {ref.get('key')} in {kind} {namespace}/{ref.get('name')}"
                    )
                value = data[ref["key"]]
                return base64.b64decode(value).decode() if kind == "Secret" else str(value)
        return None
