"""Kernel traffic is encrypted (CurveZMQ) by default where jupyter_client offers it, and a user's
own ``KernelManager.transport_encryption`` choice is kept."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import KernelManager

from bf_jupyter.kernels.encryption import encryption_policy
from tests.support.kernelspec_files import write_kernelspec
from tests.support.server_api import kernel_output

pytestmark = pytest.mark.skipif(
    encryption_policy(KernelManager, False) is None,
    reason="this jupyter_client (or pyzmq) offers no transport encryption",
)


@pytest.fixture(autouse=True)
def _curve_kernelspec(jp_data_dir: Path) -> None:
    write_kernelspec(
        jp_data_dir,
        "python3-curve",
        display_name="Python 3 (curve)",
        metadata={"supported_encryption": ["curve"]},
    )


def test_a_kernel_that_declares_curve_runs_encrypted_by_default(
    jp_serverapp: Any, run: Callable[[Awaitable[Any]], Any]
) -> None:
    kernels = jp_serverapp.kernel_manager
    kernel_id = run(kernels.start_kernel(kernel_name="python3-curve"))
    connection = kernels.get_kernel(kernel_id).get_connection_info()
    assert connection.get("curve_publickey")  # the manager provisioned the keys
    assert run(kernel_output(jp_serverapp, kernel_id, "print(6 * 7)")).strip() == "42"


def test_a_policy_the_user_chose_is_kept() -> None:
    assert encryption_policy(KernelManager, configured=True) is None
    assert encryption_policy(KernelManager, configured=False) == "auto"
