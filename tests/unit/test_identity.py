"""The current user: one rule for kernel labels and the magic's ownership checks."""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING

from bf_jupyter.identity import current_user

if TYPE_CHECKING:
    import pytest


def test_the_hub_user_wins_over_the_login_name() -> None:
    assert current_user({"JUPYTERHUB_USER": " ada "}) == "ada"


def test_without_a_hub_user_it_is_the_login_name() -> None:
    assert current_user({"JUPYTERHUB_USER": ""}) == getpass.getuser()


def test_a_process_without_a_login_name_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_passwd_entry() -> str:
        raise KeyError("getpwuid(): uid not found: 1000710000")

    monkeypatch.setattr(getpass, "getuser", no_passwd_entry)
    assert current_user({}) == "unknown"
