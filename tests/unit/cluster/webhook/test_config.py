"""The webhook configuration: the shipped ConfigMap and the built-in table load, and every bad
setting is refused naming the field and what is accepted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bf_jupyter.cluster.webhook.config import (
    ConfigError,
    TokenSource,
    UnknownClient,
    WebhookConfig,
    config_from_mapping,
    load_config,
)
from tests.support.shipped_config import SHIPPED, STAND_IN_CA, load_shipped_config


def test_the_shipped_configuration_prices_memory_slices_upstream_defect_6(tmp_path: Path) -> None:
    config = load_shipped_config(tmp_path)
    # upstream shipped TOTAL_GPU_MEMORY "0", so memory mode always failed
    assert config.per_gpu_memory_bytes == 16 << 30
    assert config.client_for({}).image == "bitfusion-client:4.5.0-ubuntu20"


def test_without_a_file_the_built_in_table_serves() -> None:
    config = load_config(None)
    assert config.client_for({"bitfusion-client/os": "centos8"}).pair == ("centos8", "450")
    assert config.token_secret == "bitfusion-secret"


def test_a_missing_part_of_the_pair_comes_from_the_default() -> None:
    config = WebhookConfig()
    assert config.client_for({"bitfusion-client/version": "401"}).pair == ("ubuntu20", "401")
    with pytest.raises(UnknownClient, match="use one of centos7/401, centos7/450"):
        config.client_for({"bitfusion-client/os": "ubuntu22"})


def test_a_client_table_of_its_own_makes_its_first_entry_the_default() -> None:
    config = config_from_mapping(
        {
            "clients": [
                {
                    "os": "Ubuntu22",
                    "version": 500,
                    "image": "reg.local/bf:5",
                    "binary": "/bf/bitfusion",
                }
            ]
        }
    )
    build = config.client_for({})
    assert build.pair == ("ubuntu22", "500") and build.binary == "/bf/bitfusion"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "top level is list"),
        ({"perGpuMem": "16Gi"}, "perGpuMem unknown"),
        ({"perGpuMemory": "sixteen"}, "perGpuMemory 'sixteen' is not a quantity"),
        ({"perGpuMemory": "0"}, "perGpuMemory 0 is out of range"),
        ({"maxGpusPerServer": 0}, "maxGpusPerServer 0 is not a whole number"),
        ({"clients": []}, "clients [] is not usable"),
        ({"clients": [{"os": "u", "version": "1"}]}, "clients[0] lacks image"),
        ({"clients": [{"os": "u", "version": "1", "image": "i", "tag": "x"}]}, "has unknown tag"),
        (
            {"clients": [{"os": "u", "version": "1", "image": "i", "binary": "bin/bf"}]},
            "not an absolute path",
        ),
        (
            {"clients": [{"os": "u", "version": "1", "image": "i"}] * 2},
            "os u version 1 is listed twice",
        ),
        (
            {"defaultClient": {"os": "beos", "version": "1"}},
            "defaultClient: os beos version 1 is not in clients",
        ),
        ({"imagePullPolicy": "Sometimes"}, "use Always, IfNotPresent, Never"),
        ({"initResources": {"requests": {"cpu": "lots"}}}, "initResources.requests.cpu 'lots'"),
        ({"tokenSecret": ""}, "tokenSecret is empty"),
    ],
)
def test_a_bad_setting_is_refused_naming_it(raw: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(raw)
    assert message in str(caught.value)


def test_an_unreadable_or_broken_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("clients: [\n")
    with pytest.raises(ConfigError, match=r"broken.yaml is not YAML"):
        load_config(broken)


# ----- token source ------------------------------------------------------------------------------


def test_new_installs_get_the_token_from_the_token_service(tmp_path: Path) -> None:
    config = load_shipped_config(tmp_path)
    assert config.token_source is TokenSource.SERVICE
    assert config.token_service_url == "https://bf-token-service.bf-system.svc"
    assert config.token_audience == "bf-jupyter-token-service"
    assert config.token_service_ca == STAND_IN_CA


def test_the_shipped_file_names_a_ca_file_the_cluster_mounts() -> None:
    # in the cluster the file is mounted; here it is absent, and the error says which field
    with pytest.raises(
        ConfigError,
        match=r"tokenService.caFile /etc/bf-jupyter/token-service-ca/ca.crt cannot be read",
    ):
        load_config(SHIPPED)


def test_secret_mode_stays_an_option_and_is_the_built_in_default() -> None:
    assert WebhookConfig().token_source is TokenSource.SECRET
    assert config_from_mapping({"tokenSource": "secret"}).token_source is TokenSource.SECRET


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"tokenSource": "vault"}, "tokenSource vault is not a token source: use secret, service"),
        ({"tokenSource": "service"}, "needs the CA of the token service's certificate"),
        ({"tokenService": "https://x"}, "tokenService 'https://x' is not a mapping"),
        ({"tokenService": {"port": 1}}, "tokenService has unknown port"),
        ({"tokenService": {"url": "http://x"}}, "tokenService.url http://x is not an https URL"),
        (
            {"tokenService": {"caFile": "ca.crt"}},
            "tokenService.caFile ca.crt is not an absolute path",
        ),
        ({"tokenService": {"caFile": "/nonexistent/ca.crt"}}, "cannot be read"),
    ],
)
def test_a_bad_token_source_setting_is_refused_naming_it(raw: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError) as refused:
        config_from_mapping(raw)
    assert words in str(refused.value)


def test_a_ca_file_that_is_not_pem_is_refused(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_bytes(b"not a certificate")
    with pytest.raises(ConfigError, match="is not a PEM CA bundle"):
        config_from_mapping({"tokenService": {"caFile": str(ca)}})
