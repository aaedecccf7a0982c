"""A remote kernel's environment: what the launch chose, never what the server happens to have."""

from __future__ import annotations

from bf_jupyter.kernels.environment import kernel_environment

SERVER = {
    "PATH": "/usr/bin",
    "JUPYTER_TOKEN": "t0ken",
    "AWS_SECRET_ACCESS_KEY": "s",
    "BF_SIM_HOME": "/srv/sim",
}


def test_server_environment_is_never_copied() -> None:
    launch = {**SERVER, "JPY_SESSION_NAME": "a.ipynb"}
    env = kernel_environment(launch, server_env=SERVER)
    assert env == {"JPY_SESSION_NAME": "a.ipynb"}


def test_launch_kernel_and_bf_variables_pass() -> None:
    launch = {**SERVER, "KERNEL_USERNAME": "ada", "BF_SLICE": "1x50%"}
    assert kernel_environment(launch, server_env=SERVER) == {
        "KERNEL_USERNAME": "ada",
        "BF_SLICE": "1x50%",
    }


def test_a_server_bf_variable_is_not_the_launch_s() -> None:
    env = kernel_environment(dict(SERVER), server_env=SERVER)
    assert "BF_SIM_HOME" not in env


def test_kernelspec_variables_and_allowed_patterns_pass() -> None:
    launch = {**SERVER, "MPLBACKEND": "agg", "HTTP_PROXY": "http://proxy:3128"}
    env = kernel_environment(
        launch,
        server_env=SERVER,
        kernelspec_names=["MPLBACKEND"],
        allowed_patterns=["HTTP*"],
    )
    assert env == {"MPLBACKEND": "agg", "HTTP_PROXY": "http://proxy:3128"}


def test_configured_extras_win() -> None:
    env = kernel_environment({"BF_SLICE": "1"}, server_env={}, extra={"BF_SLICE": "2", "TZ": "UTC"})
    assert env == {"BF_SLICE": "2", "TZ": "UTC"}
