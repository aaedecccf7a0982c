"""The committed gRPC modules are what `make protos` generates from api.proto today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
PROTO = "bf_jupyter/cluster/deviceplugin/api.proto"
GENERATED = ("api_pb2.py", "api_pb2.pyi", "api_pb2_grpc.py")


def test_generated_modules_match_api_proto(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            str(ROOT),
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            str(ROOT / PROTO),
        ],
        check=True,
    )
    package = Path(PROTO).parent
    for name in GENERATED:
        fresh = (tmp_path / package / name).read_text()
        committed = (ROOT / package / name).read_text()
        assert fresh == committed, f"{package / name} is stale: run `make protos` and commit it"


def test_the_wire_names_are_the_kubelets() -> None:
    from bf_jupyter.cluster.deviceplugin import api_pb2

    services = api_pb2.DESCRIPTOR.services_by_name
    assert api_pb2.DESCRIPTOR.package == "v1beta1"
    assert set(services["Registration"].methods_by_name) == {"Register"}
    assert set(services["DevicePlugin"].methods_by_name) == {
        "GetDevicePluginOptions",
        "ListAndWatch",
        "GetPreferredAllocation",
        "Allocate",
        "PreStartContainer",
    }


def test_the_command_module_loads_without_grpc() -> None:
    code = "import sys, bf_jupyter.cli; bf_jupyter.cli.build_parser();print('grpc' in sys.modules)"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "False"
