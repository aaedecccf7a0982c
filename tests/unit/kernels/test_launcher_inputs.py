"""The in-pod launcher's inputs: ports, key from the environment (then removed), pod address."""

from __future__ import annotations

import argparse

import pytest

from bf_jupyter.kernels.launcher import (
    LaunchError,
    connection_file_content,
    format_ports,
    parse_ports,
)

PORTS = {"shell": 1, "iopub": 2, "stdin": 3, "control": 4, "hb": 5}


def _options(**overrides: object) -> argparse.Namespace:
    values: dict[str, object] = {
        "ip": None,
        "ports": format_ports(PORTS),
        "signature_scheme": "hmac-sha256",
        "key_env": "BF_KERNEL_KEY",
    }
    values.update(overrides)
    return argparse.Namespace(**values)


def test_ports_round_trip() -> None:
    assert parse_ports(format_ports(PORTS)) == PORTS


def test_ports_missing_a_channel_are_refused() -> None:
    with pytest.raises(LaunchError, match="--ports lacks hb"):
        parse_ports("shell=1,iopub=2,stdin=3,control=4")


def test_key_is_taken_out_of_the_environment() -> None:
    environ = {"BF_KERNEL_KEY": "k3y", "BF_KERNEL_IP": "10.0.0.9"}
    content = connection_file_content(_options(), environ)
    assert content["key"] == "k3y" and content["ip"] == "10.0.0.9" and content["hb_port"] == 5
    assert "BF_KERNEL_KEY" not in environ


def test_no_key_or_no_address_says_where_it_should_come_from() -> None:
    with pytest.raises(LaunchError, match="Secret"):
        connection_file_content(_options(), {"BF_KERNEL_IP": "10.0.0.9"})
    with pytest.raises(LaunchError, match=r"status\.podIP"):
        connection_file_content(_options(), {"BF_KERNEL_KEY": "k"})


def test_curve_keys_join_the_connection_file_and_leave_the_environment() -> None:
    environ = {
        "BF_KERNEL_KEY": "k",
        "BF_KERNEL_IP": "10.0.0.9",
        "BF_KERNEL_CURVE_SECRETKEY": "sec",
        "BF_KERNEL_CURVE_PUBLICKEY": "pub",
    }
    content = connection_file_content(_options(), environ)
    assert (content["curve_secretkey"], content["curve_publickey"]) == ("sec", "pub")
    assert not any(name.startswith("BF_KERNEL_CURVE") for name in environ)


def test_half_a_curve_keypair_is_refused() -> None:
    environ = {"BF_KERNEL_KEY": "k", "BF_KERNEL_IP": "10.0.0.9", "BF_KERNEL_CURVE_SECRETKEY": "sec"}
    with pytest.raises(LaunchError, match="both CurveZMQ keys"):
        connection_file_content(_options(), environ)
