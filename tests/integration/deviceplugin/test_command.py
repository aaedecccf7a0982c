"""``bf-jupyter device-plugin`` as the DaemonSet runs it: a process, signals, flags."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bf_jupyter.cli import main
from tests.integration.deviceplugin.conftest import RESOURCE

if TYPE_CHECKING:
    from tests.support.fake_bitfusion import FakeBitfusionClient
    from tests.support.fake_kubelet import FakeKubelet


async def test_command_registers_restarts_on_sighup_and_stops_cleanly_on_sigterm(
    kubelet: FakeKubelet, pool: FakeBitfusionClient, tmp_path: Path
) -> None:
    # Given the command running against the kubelet's plugin directory
    log = tmp_path / "device-plugin.log"
    with log.open("w") as stderr:
        process = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "bf_jupyter", "device-plugin"],
            *["--plugin-dir", str(kubelet.plugin_dir), "--kubelet-check-interval", "0.05"],
            env=pool.env(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        view = await kubelet.wait_registered(RESOURCE, timeout=60)
        assert view.allocatable == 200

        # When it gets SIGHUP, then it registers again
        process.send_signal(signal.SIGHUP)
        await kubelet.wait_registered(RESOURCE, count=2)

        # When it gets SIGTERM, then it exits 0, its socket removed
        process.send_signal(signal.SIGTERM)
        exit_code = await asyncio.wait_for(process.wait(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert exit_code == 0
    assert list(kubelet.plugin_dir.glob("bf-jupyter-*.sock")) == []
    text = log.read_text()
    assert "restarting: restart requested (SIGHUP)" in text
    assert "Traceback" not in text


@pytest.mark.parametrize(
    ("flags", "complaint"),
    [
        (
            ["--units-per-gpu", "0"],
            "argument --units-per-gpu: '0' is not a whole number from 1 to 1000",
        ),
        (["--units-per-gpu", "lots"], "argument --units-per-gpu: 'lots' is not a whole number"),
        (["--health-interval", "0"], "argument --health-interval: '0' is not a number of seconds"),
        (
            ["--resource-name", "gpu"],
            "resource name 'gpu' is not an extended resource name: use <domain>/<name>",
        ),
        (["--resource-name", "kubernetes.io/gpu"], "is in the kubernetes.io domain"),
        (
            ["--plugin-dir", "/nonexistent/device-plugins"],
            "--plugin-dir /nonexistent/device-plugins is not a directory",
        ),
    ],
)
def test_bad_flags_fail_with_one_clear_line(
    flags: list[str], complaint: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    exit_code, last_line = run_cli(["device-plugin", "--plugin-dir", str(tmp_path), *flags], capsys)

    assert exit_code == 2
    assert last_line.startswith("bf-jupyter device-plugin: error: ")
    assert complaint in last_line


def test_a_plugin_dir_too_deep_for_a_unix_socket_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    deep = tmp_path / ("d" * 100)
    deep.mkdir()

    exit_code, last_line = run_cli(["device-plugin", "--plugin-dir", str(deep)], capsys)

    assert exit_code == 2
    assert f"plugin directory {deep} is too long for a unix socket path" in last_line


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit code and last line of stderr, whether argparse or the command itself refused."""
    try:
        exit_code = main(argv)
    except SystemExit as exit_:
        exit_code = int(str(exit_.code))
    return exit_code, capsys.readouterr().err.strip().splitlines()[-1]


def test_help_explains_what_the_plugin_advertises_and_how_it_restarts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["device-plugin", "--help"])

    text = capsys.readouterr().out
    assert exit_.value.code == 0
    for phrase in (
        "--plugin-dir DIR",
        "/var/lib/kubelet/device-plugins",
        "bitfusion.io/gpu",
        "--units-per-gpu N",
        "--health-interval SECONDS",
        "kubelet.sock",
        "SIGHUP",
        "SIGTERM",
        "$BF_BITFUSION_BIN",
    ):
        assert phrase in text
