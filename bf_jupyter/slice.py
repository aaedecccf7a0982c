"""The GPU-slice contract: the one owner of how a slice is parsed, validated and rendered.

A slice is N GPUs × one share of each: a whole percent, an amount of memory, a named MIG profile
(``mig-1g.10gb``) or one shared replica (``shared``, time-slicing or MPS); optionally a compute
share (``cores=30``, percent of each GPU's compute) and filter terms (``device.name=V100``,
``device.name!=T4``, ``device.uuid=GPU-…``). Which of these a GPU-sharing stack honours is the
backends' business (``bf_jupyter.backends``); this module only parses, validates and formats. It travels unchanged from the picker,
the magic and the hub profile through the server, the provisioner and the pod spec to the webhook
and the ``bitfusion run`` command line, so nothing else in the project parses or formats one.

Pure: no I/O, no imports of the rest of the project.
"""

from __future__ import annotations

import functools
import math
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from bf_jupyter.argv import option_words
from bf_jupyter.contract import (
    ANNOTATION_FILTER,
    RESOURCE_AMOUNT,
    RESOURCE_MEMORY,
    RESOURCE_PERCENT,
    SLICE_RESOURCE_KEYS,
    UNITS_PER_GPU,
)
from bf_jupyter.quantity import MIB, QuantityError, format_bytes, parse_quantity

__all__ = [
    "BITFUSION_FILTER_KEYS",
    "FILTER_KEYS",
    "MAX_AMOUNT",
    "TEXT_FORMS",
    "TEXT_SHAPE",
    "Filter",
    "GpuSlice",
    "SliceError",
    "parse_filters",
]

BITFUSION_FILTER_KEYS = frozenset(
    {
        "server.addr",
        "server.hostname",
        "server.has-rdma",
        "server.cuda-version",
        "server.driver-version",
        "device.id",
        "device.name",
        "device.phy-memory",
    }
)
# device.uuid selects GPUs by UUID (HAMi's use-gpuuuid); Bitfusion has no such filter.
FILTER_KEYS = BITFUSION_FILTER_KEYS | {"device.uuid"}
# A Bitfusion server holds a handful of GPUs; the bound only catches typos and keeps units int64.
MAX_AMOUNT = 64
_MIN_MEMORY = MIB
_MAX_MEMORY = 1 << 40
TEXT_FORMS = (
    "N, NxP%, NxMEMORY, NxMIG-PROFILE or Nxshared, optionally cores=C, "
    "e.g. 1, 1x50%, 2x8Gi, 1x8Gi cores=30, mig-1g.10gb, 1xshared"
)
# The text form's coarse shape, for a form field's pattern (checked before anything is sent);
# GpuSlice.parse gives the precise error.
TEXT_SHAPE = r"^\s*(\d+\s*([x×X*]\s*\S+)?|[mM][iI][gG]-\S+|[sS]hared)(\s+\S+=\S+)*\s*$"
_MIG_PROFILE = re.compile(r"^mig-(?P<slices>\d+)g\.(?P<gb>\d+)gb(?:\+me)?$")
SHARED = "shared"
_CLIENT_FORMS = "-n N with -p FRACTION or -m MIB, and --filter KEY=VALUE"
_SHELL_BLANKS = re.compile(r"[ \t\r\n]+")  # what shlex splits on
_SPEC = re.compile(r"^(?P<amount>[^x×X*]+)(?:[x×X*](?P<share>.*))?$")


class SliceError(ValueError):
    """A slice was refused. The message names the field, the value given and what is accepted."""

    def __init__(self, field: str, value: object, problem: str, accepted: str) -> None:
        self.field = field
        self.value = value
        self.accepted = accepted
        shown = f" {value}" if isinstance(value, str) else f" {value!r}"
        super().__init__(f"{field}{shown if shown.strip() else ''} {problem}: {accepted}")


@dataclass(frozen=True, order=True)
class Filter:
    """One Bitfusion ``--filter KEY=VALUE`` term."""

    key: str
    value: str
    negated: bool = False  # ``KEY!=VALUE``: GPUs that do not match

    def __post_init__(self) -> None:
        if self.key not in FILTER_KEYS:
            raise SliceError(
                "filter", self.key, "is not a filter key", "use " + ", ".join(sorted(FILTER_KEYS))
            )
        if not self.value or any(ch.isspace() and ch != " " for ch in self.value):
            raise SliceError(
                "filter", f"{self.key}={self.value}", "has no usable value", "use KEY=VALUE"
            )

    @classmethod
    def parse(cls, text: str) -> Filter:
        key, sep, value = text.partition("=")
        if not sep:
            raise SliceError(
                "filter", text, "is not KEY=VALUE", "use e.g. device.name=V100 or device.name!=T4"
            )
        negated = key.endswith("!")
        return cls(key.removesuffix("!").strip(), value.strip(), negated)

    def __str__(self) -> str:
        return f"{self.key}{'!=' if self.negated else '='}{self.value}"


def parse_filters(text: str) -> tuple[Filter, ...]:
    """Parse whitespace-separated ``KEY=VALUE`` terms (each optionally after ``--filter``), as in the
    ``bitfusion-client/filter`` annotation. Values may be shell-quoted."""
    try:
        tokens = _split(text)
    except ValueError as error:
        raise SliceError(
            "filter", text, f"cannot be split ({error})", "use KEY=VALUE terms"
        ) from None
    return tuple(Filter.parse(token) for token in tokens if token != "--filter")


@dataclass(frozen=True)
class GpuSlice:
    """``amount`` GPUs × one share of each (``percent`` | ``memory_bytes`` | ``mig_profile`` |
    ``shared`` replica), optionally ``cores`` (compute percent per GPU), with ``filters``.

    Constructing one validates it; every rejection is a ``SliceError``.
    """

    amount: int
    percent: int | None = None
    memory_bytes: int | None = None
    filters: tuple[Filter, ...] = field(default=())
    cores: int | None = None
    mig_profile: str | None = None
    shared: bool = False

    def __post_init__(self) -> None:
        _check_range("gpu-amount", self.amount, 1, MAX_AMOUNT)
        self._check_kind()
        if self.percent is None and self.memory_bytes is None and self.kind == "percent":
            object.__setattr__(self, "percent", 100)
        if self.percent is not None and self.memory_bytes is not None:
            raise SliceError(
                "gpu-memory",
                format_bytes(self.memory_bytes),
                "cannot be combined with gpu-percent",
                "set one of them",
            )
        if self.percent is not None:
            _check_range("gpu-percent", self.percent, 1, 100)
        if self.memory_bytes is not None and (
            isinstance(self.memory_bytes, bool)
            or not isinstance(self.memory_bytes, int)
            or not _MIN_MEMORY <= self.memory_bytes <= _MAX_MEMORY
        ):
            raise SliceError(
                "gpu-memory", str(self.memory_bytes), "is out of range", "use 1Mi–1Ti per GPU"
            )
        if self.cores is not None:
            _check_range("cores", self.cores, 1, 100)
        object.__setattr__(self, "filters", tuple(self.filters))

    def _check_kind(self) -> None:
        """At most one special share (MIG profile, shared replica), never beside percent/memory,
        and no compute share on either."""
        if self.mig_profile is not None:
            profile = str(self.mig_profile).strip().lower()
            if not _MIG_PROFILE.match(profile):
                raise SliceError(
                    "mig-profile",
                    str(self.mig_profile),
                    "is not a MIG profile",
                    "use mig-<slices>g.<GB>gb, e.g. mig-1g.10gb",
                )
            object.__setattr__(self, "mig_profile", profile)
        special = [
            name
            for name, on in (("mig-profile", self.mig_profile is not None), (SHARED, self.shared))
            if on
        ]
        plain = self.percent is not None or self.memory_bytes is not None
        if len(special) > 1 or (special and plain):
            raise SliceError(
                special[-1],
                self.mig_profile or SHARED,
                "cannot be combined with another share",
                "give one share per slice: a percent, a memory, a MIG profile or shared",
            )
        if special and self.cores is not None:
            raise SliceError(
                "cores",
                str(self.cores),
                f"cannot be combined with {'a MIG profile' if self.mig_profile else 'a shared replica'}",
                "drop cores=, or use a share such as 1x8Gi cores=30",
            )

    @property
    def kind(self) -> str:
        """Which share this slice asks for: ``percent``, ``memory``, ``mig`` or ``shared``."""
        if self.mig_profile is not None:
            return "mig"
        if self.shared:
            return "shared"
        return "memory" if self.memory_bytes is not None else "percent"

    @property
    def is_whole(self) -> bool:
        """Whole GPUs: 100 % of each, no compute cap."""
        return self.percent == 100 and self.cores is None

    @property
    def mig_memory_gb(self) -> int | None:
        """The memory a MIG profile's name promises (``mig-1g.10gb`` → 10), or None."""
        match = _MIG_PROFILE.match(self.mig_profile or "")
        return int(match["gb"]) if match else None

    # ----- parsing -------------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> GpuSlice:
        """Parse the text form (``1``, ``1x50%``, ``2x8Gi``, ``1x0.5``, then ``KEY=VALUE`` filters)
        or the client's own flags (``-n 1 -p 0.5 --filter device.name=V100``)."""
        try:
            tokens = _split(str(text))
        except ValueError as error:
            raise SliceError(
                "slice", text, f"cannot be split ({error})", f"use {TEXT_FORMS}"
            ) from None
        if not tokens:
            raise SliceError("slice", text, "is empty", f"use {TEXT_FORMS}")
        if tokens[0].startswith("-"):
            return cls.from_client_args(tokens)
        cut = next((i for i, t in enumerate(tokens) if _starts_filters(t)), len(tokens))
        spec = "".join(tokens[:cut])
        cores = None
        filter_tokens = []
        for token in tokens[cut:]:
            if token.startswith("cores="):
                cores = _parse_int(
                    "cores", token.removeprefix("cores="), "use 1–100, e.g. cores=30"
                )
            elif token != "--filter":
                filter_tokens.append(token)
        filters = tuple(Filter.parse(t) for t in filter_tokens)
        if spec.lower() == SHARED or spec.lower().startswith("mig-"):
            spec = "1x" + spec  # one shared replica, one MIG device
        match = _SPEC.match(spec)
        if not match:
            raise SliceError("slice", spec, "is not a GPU slice", f"use {TEXT_FORMS}")
        amount = _parse_int("gpu-amount", match["amount"], f"use {TEXT_FORMS}")
        share = match["share"]
        if share is None:
            return cls(amount, filters=filters, cores=cores)
        if share.strip().lower() == SHARED:
            return cls(amount, filters=filters, cores=cores, shared=True)
        if share.strip().lower().startswith("mig-"):
            return cls(amount, filters=filters, cores=cores, mig_profile=share.strip())
        percent, memory = _parse_share(share)
        return cls(amount, percent, memory, filters, cores)

    @classmethod
    def from_client_args(cls, args: Sequence[str]) -> GpuSlice:
        """Parse the Bitfusion client's slice flags: ``-n N (-p F | -m MIB) [--filter K=V]...``
        (long forms ``--num_gpus``, ``--partial``, ``--memory`` too)."""
        values: dict[str, str] = {}
        filters: list[Filter] = []
        names = {
            "-n": "-n",
            "--num_gpus": "-n",
            "-p": "-p",
            "--partial": "-p",
            "-m": "-m",
            "--memory": "-m",
        }
        for word in option_words(list(args), dict.fromkeys([*names, "--filter"], True)):
            if word.flag is None:
                raise SliceError(
                    "argument", word.words[0], "is not a slice option", f"use {_CLIENT_FORMS}"
                )
            if word.value is None:
                raise SliceError(word.flag, "", "needs a value", f"use {_CLIENT_FORMS}")
            if word.flag == "--filter":
                filters.append(Filter.parse(word.value))
            else:
                values[names[word.flag]] = word.value
        if "-n" not in values:
            raise SliceError("-n", "", "is missing", f"use {_CLIENT_FORMS}")
        if "-p" in values and "-m" in values:
            raise SliceError(
                "-m",
                values["-m"],
                "cannot be combined with -p",
                "use -p FRACTION or -m MIB, not both",
            )
        amount = _parse_int("-n", values["-n"], f"use 1–{MAX_AMOUNT}")
        _check_range("-n", amount, 1, MAX_AMOUNT)
        if "-m" in values:
            mib = _parse_int("-m", values["-m"], "use memory per GPU in MiB, e.g. -m 8192")
            _check_range("-m", mib, 1, _MAX_MEMORY // MIB)
            return cls(amount, memory_bytes=mib * MIB, filters=tuple(filters))
        if "-p" in values:
            return cls(amount, _fraction_to_percent("-p", values["-p"]), filters=tuple(filters))
        return cls(amount, filters=tuple(filters))

    @classmethod
    def from_resources(
        cls, resources: Mapping[str, object], *, filters: Iterable[Filter] = ()
    ) -> GpuSlice:
        """Parse a flat resource dict holding ``bitfusion.io/gpu-amount`` and optionally
        ``-percent`` or ``-memory``, values as strings or integers as the Kubernetes API returns them."""
        if RESOURCE_AMOUNT not in resources:
            present = [k for k in SLICE_RESOURCE_KEYS if k in resources]
            raise SliceError(
                "gpu-amount",
                "",
                f"is missing{' beside ' + ', '.join(present) if present else ''}",
                f"set {RESOURCE_AMOUNT} (1–{MAX_AMOUNT})",
            )
        amount = _parse_int("gpu-amount", resources[RESOURCE_AMOUNT], f"use 1–{MAX_AMOUNT}")
        percent = memory = None
        if RESOURCE_PERCENT in resources:
            percent = _parse_int("gpu-percent", resources[RESOURCE_PERCENT], "use 1–100")
        if RESOURCE_MEMORY in resources:
            memory = _parse_memory("gpu-memory", resources[RESOURCE_MEMORY])
        return cls(amount, percent, memory, tuple(filters))

    @classmethod
    def from_container(
        cls, container: Mapping[str, object], annotations: Mapping[str, str] | None = None
    ) -> GpuSlice | None:
        """The slice a pod container asks for (its limits and requests merged, filters from the pod's
        ``bitfusion-client/filter`` annotation), or None when it carries no slice keys."""
        resources = container.get("resources") or {}
        if not isinstance(resources, Mapping):
            raise SliceError(
                "resources", str(resources), "is not a mapping", "use limits/requests maps"
            )
        merged: dict[str, object] = {}
        for section in ("requests", "limits"):
            values = resources.get(section) or {}
            if not isinstance(values, Mapping):
                raise SliceError(
                    f"resources.{section}",
                    str(values),
                    "is not a mapping",
                    "use resource: value pairs",
                )
            for key in SLICE_RESOURCE_KEYS:
                if key in values:
                    if key in merged and str(merged[key]) != str(values[key]):
                        raise SliceError(
                            key.split("/")[1],
                            str(values[key]),
                            f"in limits differs from requests ({merged[key]})",
                            "set the same value in both, or only in limits",
                        )
                    merged[key] = values[key]
        if not merged:
            return None
        filter_text = (annotations or {}).get(ANNOTATION_FILTER, "")
        if all(type(v) is str for v in (*merged.values(), filter_text)):  # hashable, and 1 != True
            return _parsed_once(tuple(merged.items()), filter_text)
        return cls.from_resources(merged, filters=parse_filters(filter_text) if filter_text else ())

    # ----- rendering -----------------------------------------------------------------------------

    @property
    def is_memory_mode(self) -> bool:
        return self.memory_bytes is not None

    @property
    def memory_mib(self) -> int | None:
        """Memory per GPU in whole MiB, rounded up (what ``-m`` takes)."""
        return None if self.memory_bytes is None else -(-self.memory_bytes // MIB)

    def fraction_text(self) -> str | None:
        """The share of each GPU as the shortest exact decimal (``0.5``, ``1``, ``0.05``)."""
        if self.percent is None:
            return None
        whole, hundredths = divmod(self.percent, 100)
        return f"{whole}.{hundredths:02d}".rstrip("0").rstrip(".")

    def share_text(self) -> str:
        """The share of each GPU as the text form writes it: ``50%``, ``8Gi``, ``mig-1g.10gb``,
        ``shared``."""
        if self.mig_profile is not None:
            return self.mig_profile
        if self.shared:
            return SHARED
        return f"{self.percent}%" if self.memory_bytes is None else format_bytes(self.memory_bytes)

    def to_text(self) -> str:
        """The text form, e.g. ``1x50%`` or ``2x8Gi cores=30 device.name=V100``; ``parse`` reads
        it back."""
        cores = f" cores={self.cores}" if self.cores is not None else ""
        return f"{self.amount}x{self.share_text()}{cores} {self.filter_annotation()}".rstrip()

    def __str__(self) -> str:
        return self.to_text()

    def describe(self) -> str:
        """For people: ``1 GPU × 50 %``, ``2 GPUs × 8Gi each``."""
        plural = "s" if self.amount != 1 else ""
        if self.mig_profile is not None:
            head = f"{self.amount} MIG device{plural} {self.mig_profile}"
        elif self.shared:
            head = f"{self.amount} shared GPU replica{plural}"
        else:
            share = f"{self.percent} %"
            if self.memory_bytes is not None:
                share = f"{format_bytes(self.memory_bytes)} each"
            head = f"{self.amount} GPU{plural} × {share}"
        cores = f", {self.cores} % of compute" if self.cores is not None else ""
        extra = "".join(f", {f}" for f in self.filters)
        return f"{head}{cores}{extra}"

    def to_resources(self) -> dict[str, str]:
        """Bitfusion's container resource keys, values as strings (the way the API stores them).
        Raises ``SliceError`` for a share Bitfusion has no key for (MIG profile, shared replica)."""
        self._require_bitfusion_share()
        resources = {RESOURCE_AMOUNT: str(self.amount)}
        if self.percent is not None:
            resources[RESOURCE_PERCENT] = str(self.percent)
        else:
            resources[RESOURCE_MEMORY] = format_bytes(self.memory_bytes or 0)
        return resources

    def filter_annotation(self) -> str:
        """The ``bitfusion-client/filter`` annotation value ('' when there are no filters)."""
        return " ".join(shlex.quote(str(f)) for f in self.filters)

    def client_args(self) -> list[str]:
        """``bitfusion run`` slice arguments: ``-n N -p F`` or ``-n N -m MIB``, then ``--filter K=V``."""
        self._require_bitfusion_share()
        args = ["-n", str(self.amount)]
        fraction = self.fraction_text()
        args += ["-p", fraction] if fraction is not None else ["-m", str(self.memory_mib)]
        for term in self.filters:
            args += ["--filter", str(term)]
        return args

    def quota_units(self, per_gpu_memory_bytes: int | None = None) -> int:
        """Units of ``bitfusion.io/gpu`` this slice costs: amount × percent, or in memory mode
        amount × ceil(100 × memory / per-GPU memory). Memory mode needs ``per_gpu_memory_bytes``."""
        self._require_bitfusion_share()
        if self.percent is not None:
            return self.amount * self.percent
        memory = self.memory_bytes or 0
        if not per_gpu_memory_bytes or per_gpu_memory_bytes <= 0:
            raise SliceError(
                "gpu-memory",
                format_bytes(memory),
                "cannot be priced in quota units without the per-GPU memory",
                "configure the per-GPU memory, or use gpu-percent",
            )
        if memory > per_gpu_memory_bytes:
            limit = format_bytes(per_gpu_memory_bytes)
            raise SliceError(
                "gpu-memory",
                format_bytes(memory),
                f"exceeds the {limit} of one GPU",
                f"use at most {limit}",
            )
        return self.amount * math.ceil(Fraction(UNITS_PER_GPU * memory, per_gpu_memory_bytes))

    def _require_bitfusion_share(self) -> None:
        if self.kind in {"mig", "shared"}:
            raise SliceError(
                "mig-profile" if self.mig_profile else SHARED,
                self.share_text(),
                "has no Bitfusion form",
                "use a percent or a memory share, e.g. 1x50% or 1x8Gi",
            )


# ----- private parsers ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)  # kernels of one profile repeat these; a GpuSlice is immutable
def _parsed_once(resources: tuple[tuple[str, str], ...], filter_text: str) -> GpuSlice:
    return GpuSlice.from_resources(dict(resources), filters=parse_filters(filter_text))


def _split(text: str) -> list[str]:
    """``shlex.split``, skipping shlex where no quote or backslash could change the result (the
    admission webhook splits a filter annotation per pod, and shlex is slow)."""
    if "'" in text or '"' in text or "\\" in text:
        return shlex.split(text)
    return [token for token in _SHELL_BLANKS.split(text) if token]


def _check_range(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SliceError(name, repr(value), "is not a whole number", f"use {low}–{high}")
    if not low <= value <= high:
        raise SliceError(name, str(value), "is out of range", f"use {low}–{high}")


def _parse_int(name: str, value: object, accepted: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise SliceError(name, repr(value), "is not a whole number", accepted)
    try:
        number = parse_quantity(value)
    except QuantityError:
        raise SliceError(name, str(value), "is not a whole number", accepted) from None
    if number.denominator != 1:
        raise SliceError(name, str(value), "is not a whole number", accepted)
    return int(number)


def _parse_memory(name: str, value: object) -> int:
    accepted = "use a quantity per GPU such as 8Gi or 8000Mi"
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise SliceError(name, repr(value), "is not a memory quantity", accepted)
    try:
        number = parse_quantity(value)
    except QuantityError:
        raise SliceError(name, str(value), "is not a memory quantity", accepted) from None
    if number.denominator != 1 or not _MIN_MEMORY <= number <= _MAX_MEMORY:
        raise SliceError(name, str(value), "is out of range", "use 1Mi–1Ti per GPU, e.g. 8Gi")
    return int(number)


def _fraction_to_percent(name: str, text: str) -> int:
    accepted = "use a fraction 0.01–1 in whole percent, e.g. 0.5"
    try:
        fraction = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise SliceError(name, text, "is not a fraction", accepted) from None
    if not 0 < fraction <= 1:
        raise SliceError(name, text, "is out of range", accepted)
    percent = fraction * 100
    if percent.denominator != 1:
        raise SliceError(name, text, "is not a whole percent", accepted)
    return int(percent)


def _starts_filters(token: str) -> bool:
    return "=" in token or token == "--filter" or token.startswith(("server.", "device."))


def _parse_share(share: str) -> tuple[int | None, int | None]:
    """``50%`` → percent; ``0.5`` → percent; ``8Gi`` → memory bytes."""
    share = share.strip()
    if share.endswith("%"):
        return _parse_int("gpu-percent", share[:-1].strip(), "use 1–100, e.g. 50%"), None
    if re.fullmatch(r"\d*\.?\d+|\d+\.", share):
        if Fraction(share) <= 1:
            return _fraction_to_percent("gpu-percent", share), None
        raise SliceError(
            "slice", share, "has no unit", "use a percent such as 50% or a memory such as 8Gi"
        )
    return None, _parse_memory("gpu-memory", share)
