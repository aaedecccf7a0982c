"""The state folder is 0700 and the database 0600: created so, tightened when looser, refused
when shared."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from bf_jupyter.bitfusion.sim.errors import SimError
from bf_jupyter.bitfusion.sim.store import DB_NAME, Store


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_state_folder_is_private_to_its_user(tmp_path: Path) -> None:
    home = tmp_path / "deep" / "sim"
    Store.open(home).close()
    assert _mode(home) == 0o700
    assert _mode(home / DB_NAME) == 0o600
    for companion in home.glob(f"{DB_NAME}-*"):
        assert _mode(companion) & 0o077 == 0


@pytest.mark.parametrize(("home_mode", "db_mode"), [(0o755, 0o644), (0o777, 0o666), (0o750, 0o640)])
def test_an_existing_looser_folder_and_database_are_tightened(
    tmp_path: Path, home_mode: int, db_mode: int
) -> None:
    # given the state of an earlier version, readable (or writable) by others
    home = tmp_path / "sim"
    Store.open(home).close()
    home.chmod(home_mode)
    for part in home.glob(f"{DB_NAME}*"):
        part.chmod(db_mode)
    # when the pool is next opened
    Store.open(home).close()
    # then nobody else can read or write it
    assert _mode(home) == home_mode & 0o700
    for part in home.glob(f"{DB_NAME}*"):
        assert _mode(part) & 0o077 == 0, part.name


def test_a_shared_folder_is_refused_rather_than_made_private(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    with pytest.raises(SimError, match=r"is a shared folder \(mode 1777\): set BF_SIM_HOME"):
        Store.open(shared)
    assert _mode(shared) == 0o1777
    assert not (shared / DB_NAME).exists()


def test_a_file_in_place_of_the_folder_is_refused_in_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SimError, match="BF_SIM_HOME"):
        Store.open(blocker)
