"""The shipped webhook configuration (cluster/base/webhook/config.yaml) as the cluster loads it.

In the cluster ``tokenService.caFile`` is the token service's CA, mounted from a Secret; here it is
a stand-in PEM file, so the rest of the file is loaded exactly as shipped."""

from __future__ import annotations

from pathlib import Path

import yaml

from bf_jupyter.cluster.webhook.config import WebhookConfig, config_from_mapping

SHIPPED = Path(__file__).parents[2] / "cluster" / "base" / "webhook" / "config.yaml"
STAND_IN_CA = "-----BEGIN CERTIFICATE-----\nMIIBstandin\n-----END CERTIFICATE-----\n"


def shipped_raw() -> dict[str, object]:
    raw = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    assert isinstance(raw, dict)
    return raw


def load_shipped_config(folder: Path) -> WebhookConfig:
    """The shipped configuration with its CA file replaced by a stand-in written under ``folder``."""
    raw = shipped_raw()
    ca = folder / "token-service-ca.crt"
    ca.write_text(STAND_IN_CA, encoding="ascii")
    service = dict(raw.get("tokenService") or {})  # type: ignore[call-overload]
    service["caFile"] = str(ca)
    return config_from_mapping({**raw, "tokenService": service})
