"""What the webhook needs to know about the site: which Bitfusion client to inject, how to price
memory slices, where the token lives.

Loaded once at start from YAML (in the cluster: the ``bf-webhook-config`` ConfigMap, whose changes
roll the Deployment). Without a file a built-in table serves stand-alone use. Values are frozen, so
requests share the configuration without sharing anything they could change.

YAML shape (every key optional; camelCase like the Kubernetes objects it sits beside)::

    defaultClient: {os: ubuntu20, version: "450"}
    clients:
      - {os: ubuntu20, version: "450", image: bitfusion-client:4.5.0-ubuntu20,
         clientDir: /opt/bitfusion, binary: /opt/bitfusion/bin/bitfusion,
         libraryPath: /opt/bitfusion/lib/x86_64-linux-gnu/lib}
    perGpuMemory: 16Gi          # memory of one pool GPU: prices ``gpu-memory`` slices in quota units
    maxGpusPerServer: 4         # GPUs of the largest Bitfusion server (one run's GPUs share a server)
    tokenSecret: bitfusion-secret
    userConfigDir: /root/.bitfusion
    fallbackLibraryPath: /usr/local/nvidia/lib:/usr/local/nvidia/lib64
    imagePullPolicy: IfNotPresent
    initResources: {requests: {cpu: 50m, memory: 64Mi}, limits: {memory: 256Mi}}
    guardImage: bf-jupyter:0.1.0   # the bf-jupyter image: stages the slice guard, fetches the token
    tokenSource: service           # service (the token service in bf-system) or secret (per namespace)
    tokenService: {url: "https://bf-token-service.bf-system.svc", audience: bf-jupyter-token-service,
                   caFile: /etc/bf-jupyter/token-service-ca/ca.crt}
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from bf_jupyter.bitfusion.client import BitfusionClient
from bf_jupyter.contract import ANNOTATION_CLIENT_OS, ANNOTATION_CLIENT_VERSION
from bf_jupyter.quantity import QuantityError, format_bytes, parse_quantity
from bf_jupyter.version import __version__

__all__ = [
    "DEFAULT_TOKEN_AUDIENCE",
    "DEFAULT_TOKEN_SERVICE_URL",
    "ClientBuild",
    "ConfigError",
    "TokenSource",
    "UnknownClient",
    "WebhookConfig",
    "load_config",
]

_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_TOP_KEYS = frozenset(
    {
        "defaultClient",
        "clients",
        "perGpuMemory",
        "maxGpusPerServer",
        "tokenSecret",
        "userConfigDir",
        "fallbackLibraryPath",
        "imagePullPolicy",
        "initResources",
        "guardImage",
        "tokenSource",
        "tokenService",
    }
)
_TOKEN_SERVICE_KEYS = ("url", "audience", "caFile")
DEFAULT_TOKEN_SERVICE_URL = "https://bf-token-service.bf-system.svc"
DEFAULT_TOKEN_AUDIENCE = "bf-jupyter-token-service"
# Past this a CA bundle is not one CA: the PEM travels in every Bitfusion pod's spec.
_MAX_CA_BYTES = 16 << 10
_CLIENT_KEYS = ("os", "version", "image", "clientDir", "binary", "libraryPath")


class TokenSource(enum.Enum):
    """Where a pod's init container gets the Bitfusion token files."""

    # the Secret ``tokenSecret`` that every namespace running Bitfusion pods holds
    SECRET = "secret"
    # the token service in bf-system, which hands them only to admitted pods (no Secret in user
    # namespaces)
    SERVICE = "service"


class ConfigError(ValueError):
    """The configuration file is unusable; the message names the field, the value and what is accepted."""


class UnknownClient(LookupError):
    """A pod names an (os, version) pair the client table does not hold; the message lists the known pairs."""


@dataclass(frozen=True)
class ClientBuild:
    """One build of the Bitfusion client: the image holding it and where its files sit.

    The injected init container copies ``client_dir`` of ``image`` into an emptyDir that workload
    containers mount at the same path, so ``binary`` and ``library_path`` (absolute paths, normally
    under ``client_dir``) are valid in both.
    """

    os: str
    version: str
    image: str
    client_dir: str = "/opt/bitfusion"
    binary: str = "/opt/bitfusion/bin/bitfusion"
    library_path: str = "/opt/bitfusion/lib/x86_64-linux-gnu/lib"

    @property
    def binary_in_client_dir(self) -> bool:
        """Whether the binary reaches pods (only ``client_dir`` is copied into them)."""
        return PurePosixPath(self.binary).is_relative_to(self.client_dir)

    @property
    def pair(self) -> tuple[str, str]:
        return (self.os, self.version)

    @functools.cached_property
    def client(self) -> BitfusionClient:
        """The client adapter for ``binary`` (it builds the ``bitfusion run`` argv); made once."""
        return BitfusionClient((self.binary,), "path", simulated=False)


def _builtin_clients() -> tuple[ClientBuild, ...]:
    return tuple(
        ClientBuild(os_name, version, f"bitfusion-client:{release}-{os_name}")
        for version, release in (("401", "4.0.1"), ("450", "4.5.0"))
        for os_name in ("ubuntu18", "ubuntu20", "centos7", "centos8")
    )


def _default_init_resources() -> dict[str, dict[str, str]]:
    # Namespaces with a cpu/memory ResourceQuota refuse containers without requests, init ones too.
    return {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}


@dataclass(frozen=True)
class WebhookConfig:
    """The site facts the webhook applies to every pod. Build with ``load_config`` or directly."""

    clients: tuple[ClientBuild, ...] = field(default_factory=_builtin_clients)
    default_os: str = "ubuntu20"
    default_version: str = "450"
    per_gpu_memory_bytes: int | None = None
    max_gpus_per_server: int | None = None
    token_secret: str = "bitfusion-secret"
    # Injection mode: the bf-jupyter image whose init container stages the slice guard.
    guard_image: str = f"bf-jupyter:{__version__}"
    token_source: TokenSource = TokenSource.SECRET
    # The token service: where the init container asks, the audience of the service-account tokens
    # it accepts (also outside token-service mode, such a token is protected like the token), and the
    # PEM CA bundle that signed its serving certificate (public; travels in the init container).
    token_service_url: str = DEFAULT_TOKEN_SERVICE_URL
    token_audience: str | None = DEFAULT_TOKEN_AUDIENCE
    token_service_ca: str = ""
    user_config_dir: str = "/root/.bitfusion"
    fallback_library_path: str = "/usr/local/nvidia/lib:/usr/local/nvidia/lib64"
    image_pull_policy: str = "IfNotPresent"
    init_resources: Mapping[str, Mapping[str, str]] = field(default_factory=_default_init_resources)
    _table: dict[tuple[str, str], ClientBuild] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        table: dict[tuple[str, str], ClientBuild] = {}
        for build in self.clients:
            if build.pair in table:
                raise ConfigError(
                    f"clients: os {build.os} version {build.version} is listed twice: keep one entry per pair"
                )
            table[build.pair] = build
        if (self.default_os, self.default_version) not in table:
            raise ConfigError(
                f"defaultClient: os {self.default_os} version {self.default_version} is not in clients: "
                f"use one of {_describe_pairs(table)}"
            )
        object.__setattr__(self, "_table", table)
        if self.token_source is TokenSource.SERVICE and not self.token_audience:
            raise ConfigError("tokenSource service needs tokenService.audience: give one")
        if self.token_source is TokenSource.SERVICE and not self.token_service_ca.strip():
            raise ConfigError(
                "tokenSource service needs the CA of the token service's certificate: set "
                "tokenService.caFile to a PEM file (the ca.crt of Secret bf-token-service-tls)"
            )

    def client_for(self, annotations: Mapping[str, object]) -> ClientBuild:
        """The client build a pod asks for with ``bitfusion-client/os`` and ``-version``; a part it
        does not name comes from the default. Raises ``UnknownClient`` naming the known pairs."""
        os_name = str(annotations.get(ANNOTATION_CLIENT_OS) or self.default_os).strip().lower()
        version = str(annotations.get(ANNOTATION_CLIENT_VERSION) or self.default_version).strip()
        build = self._table.get((os_name, version))
        if build is None:
            raise UnknownClient(
                f"Bitfusion client for {ANNOTATION_CLIENT_OS} {os_name!r} and "
                f"{ANNOTATION_CLIENT_VERSION} {version!r} is not configured: "
                f"use one of {_describe_pairs(self._table)}"
            )
        return build

    def describe(self) -> str:
        """One line for the start-up log (no secrets in here: the token is only named)."""
        memory = format_bytes(self.per_gpu_memory_bytes) if self.per_gpu_memory_bytes else "unset"
        token = (
            f"token from {self.token_service_url} (audience {self.token_audience})"
            if self.token_source is TokenSource.SERVICE
            else f"token Secret {self.token_secret}"
        )
        return (
            f"{len(self.clients)} client builds (default {self.default_os}/{self.default_version}), "
            f"per-GPU memory {memory}, {token}"
        )


def _describe_pairs(table: Mapping[tuple[str, str], ClientBuild]) -> str:
    return ", ".join(f"{os_name}/{version}" for os_name, version in sorted(table))


# ----- loading -----------------------------------------------------------------------------------


def load_config(path: str | Path | None) -> WebhookConfig:
    """Read the YAML configuration at ``path`` (None: the built-in defaults).

    Raises ``ConfigError`` naming the file, the field, the value and what is accepted.
    """
    if path is None:
        return WebhookConfig()
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"configuration {path} cannot be read: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"configuration {path} is not YAML: {error}") from None
    try:
        return config_from_mapping(raw if raw is not None else {})
    except ConfigError as error:
        raise ConfigError(f"configuration {path}: {error}") from None


def config_from_mapping(raw: object) -> WebhookConfig:
    """Build the configuration from parsed YAML. Raises ``ConfigError``."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"top level is {type(raw).__name__}: use a mapping of settings")
    unknown = sorted(set(map(str, raw)) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"{', '.join(unknown)} unknown: use {', '.join(sorted(_TOP_KEYS))}")
    settings: dict[str, Any] = {}
    if "clients" in raw:
        settings["clients"] = _clients(raw["clients"])
    if "defaultClient" in raw:
        default = raw["defaultClient"]
        if not isinstance(default, Mapping) or set(default) != {"os", "version"}:
            raise ConfigError(
                f"defaultClient {default!r} is not usable: use {{os: ..., version: ...}}"
            )
        settings["default_os"] = _text("defaultClient.os", default["os"]).lower()
        settings["default_version"] = _text("defaultClient.version", default["version"])
    elif "clients" in raw:
        first = settings["clients"][0]
        settings["default_os"], settings["default_version"] = first.os, first.version
    settings.update(_site_settings(raw))
    return WebhookConfig(**settings)


def _site_settings(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Every setting except the client table."""
    settings: dict[str, Any] = {}
    if raw.get("perGpuMemory") is not None:
        settings["per_gpu_memory_bytes"] = _memory(raw["perGpuMemory"])
    if raw.get("maxGpusPerServer") is not None:
        settings["max_gpus_per_server"] = _positive_int("maxGpusPerServer", raw["maxGpusPerServer"])
    if "tokenSecret" in raw:
        settings["token_secret"] = _text("tokenSecret", raw["tokenSecret"])
    if "fallbackLibraryPath" in raw:
        settings["fallback_library_path"] = _text(
            "fallbackLibraryPath", raw["fallbackLibraryPath"], allow_empty=True
        )
    if "userConfigDir" in raw:
        settings["user_config_dir"] = _absolute("userConfigDir", raw["userConfigDir"])
    if "imagePullPolicy" in raw:
        policy = _text("imagePullPolicy", raw["imagePullPolicy"])
        if policy not in _PULL_POLICIES:
            raise ConfigError(
                f"imagePullPolicy {policy} is not a policy: use {', '.join(_PULL_POLICIES)}"
            )
        settings["image_pull_policy"] = policy
    if "guardImage" in raw:
        settings["guard_image"] = _text("guardImage", raw["guardImage"])
    if "initResources" in raw:
        settings["init_resources"] = _resources(raw["initResources"])
    if "tokenSource" in raw:
        source = _text("tokenSource", raw["tokenSource"]).lower()
        accepted = ", ".join(s.value for s in TokenSource)
        if source not in {s.value for s in TokenSource}:
            raise ConfigError(f"tokenSource {source} is not a token source: use {accepted}")
        settings["token_source"] = TokenSource(source)
    if "tokenService" in raw:
        settings.update(_token_service(raw["tokenService"]))
    return settings


def _token_service(value: object) -> dict[str, Any]:
    accepted = f"use a mapping of {', '.join(_TOKEN_SERVICE_KEYS)}"
    if not isinstance(value, Mapping):
        raise ConfigError(f"tokenService {value!r} is not a mapping: {accepted}")
    unknown = sorted(set(map(str, value)) - set(_TOKEN_SERVICE_KEYS))
    if unknown:
        raise ConfigError(f"tokenService has unknown {', '.join(unknown)}: {accepted}")
    settings: dict[str, Any] = {}
    if "url" in value:
        url = _text("tokenService.url", value["url"])
        if not url.startswith("https://") or any(ch.isspace() for ch in url):
            raise ConfigError(
                f"tokenService.url {url} is not an https URL: use e.g. {DEFAULT_TOKEN_SERVICE_URL}"
            )
        settings["token_service_url"] = url.rstrip("/")
    if "audience" in value:
        settings["token_audience"] = _text("tokenService.audience", value["audience"])
    if "caFile" in value:
        settings["token_service_ca"] = _ca_bundle(_absolute("tokenService.caFile", value["caFile"]))
    return settings


def _ca_bundle(path: str) -> str:
    accepted = "use the PEM ca.crt of the token service's TLS Secret"
    try:
        with Path(path).open("rb") as stream:
            data = stream.read(_MAX_CA_BYTES + 1)
    except OSError as error:
        raise ConfigError(
            f"tokenService.caFile {path} cannot be read ({error.strerror}): {accepted}"
        ) from None
    text = data.decode("ascii", errors="replace")
    if len(data) > _MAX_CA_BYTES or "-----BEGIN CERTIFICATE-----" not in text:
        raise ConfigError(f"tokenService.caFile {path} is not a PEM CA bundle: {accepted}")
    return text


def _clients(value: object) -> tuple[ClientBuild, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"clients {value!r} is not usable: use a non-empty list of client builds")
    builds = []
    for index, entry in enumerate(value):
        where = f"clients[{index}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where} {entry!r} is not a mapping: use {', '.join(_CLIENT_KEYS)}")
        unknown = sorted(set(map(str, entry)) - set(_CLIENT_KEYS))
        missing = [key for key in ("os", "version", "image") if key not in entry]
        if unknown or missing:
            problem = (
                f"has unknown {', '.join(unknown)}" if unknown else f"lacks {', '.join(missing)}"
            )
            raise ConfigError(f"{where} {problem}: use {', '.join(_CLIENT_KEYS)}")
        paths = {
            attribute: _absolute(f"{where}.{key}", entry[key])
            for key, attribute in (
                ("clientDir", "client_dir"),
                ("binary", "binary"),
                ("libraryPath", "library_path"),
            )
            if key in entry
        }
        builds.append(
            ClientBuild(
                _text(f"{where}.os", entry["os"]).lower(),
                _text(f"{where}.version", entry["version"]),
                _text(f"{where}.image", entry["image"]),
                **paths,
            )
        )
    return tuple(builds)


def _text(name: str, value: object, *, allow_empty: bool = False) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ConfigError(f"{name} {value!r} is not text: use a string")
    text = str(value).strip()
    if not text and not allow_empty:
        raise ConfigError(f"{name} is empty: give a value")
    return text


def _absolute(name: str, value: object) -> str:
    text = _text(name, value)
    if not PurePosixPath(text).is_absolute():
        raise ConfigError(f"{name} {text} is not an absolute path: use e.g. /opt/bitfusion")
    return text


def _memory(value: object) -> int:
    accepted = "use the memory of one GPU, e.g. 16Gi or 40Gi"
    try:
        number = parse_quantity(value if isinstance(value, str | int) else repr(value))
    except QuantityError:
        raise ConfigError(f"perGpuMemory {value!r} is not a quantity: {accepted}") from None
    if number.denominator != 1 or number < (1 << 20):
        raise ConfigError(f"perGpuMemory {value} is out of range: {accepted}")
    return int(number)


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} {value!r} is not a whole number ≥ 1: use e.g. 4")
    return value


def _resources(value: object) -> dict[str, dict[str, str]]:
    accepted = "use {requests: {cpu: 50m, memory: 64Mi}, limits: {memory: 256Mi}}"
    if not isinstance(value, Mapping) or not set(value) <= {"requests", "limits"}:
        raise ConfigError(f"initResources {value!r} is not usable: {accepted}")
    resources: dict[str, dict[str, str]] = {}
    for section, amounts in value.items():
        if not isinstance(amounts, Mapping):
            raise ConfigError(f"initResources.{section} {amounts!r} is not a mapping: {accepted}")
        checked: dict[str, str] = {}
        for name, amount in amounts.items():
            try:
                parse_quantity(amount)
            except QuantityError:
                raise ConfigError(
                    f"initResources.{section}.{name} {amount!r} is not a quantity: {accepted}"
                ) from None
            checked[str(name)] = str(amount)
        resources[str(section)] = checked
    return resources
