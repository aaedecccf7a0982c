"""``examples/hub/values.yaml`` (zero-to-jupyterhub) implies the hub configuration the README
describes: the slices' callable profile list and form template, the server command once, the
notebook service account and label, and the idle culler. The chart cannot be installed here:
``tests.support.z2jh_values`` renders the keys the example uses as the chart does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from traitlets.config.loader import PyFileConfigLoader

from bf_jupyter.hub_form import FORM_TEMPLATES
from tests.support.z2jh_values import render_hub_config

REPO = Path(__file__).resolve().parents[3]


def hub_config(tmp_path: Path) -> Any:
    values = yaml.safe_load((REPO / "examples" / "hub" / "values.yaml").read_text())
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(render_hub_config(values))
    return PyFileConfigLoader(config.name, path=str(tmp_path)).load_config()


def test_the_values_fragment_offers_slices_with_the_fit_check_and_culls(tmp_path: Path) -> None:
    config = hub_config(tmp_path)
    spawner = config.KubeSpawner
    assert spawner.cmd == ["jupyterhub-singleuser"]
    assert spawner.image == "registry.local/bf-notebook:1.0"
    assert spawner.service_account == "bf-jupyter-notebook"
    assert spawner.extra_labels == {"bf-jupyter/role": "notebook-server"}
    assert callable(spawner.profile_list)  # fitting_profile_list: marked per user
    assert spawner.additional_profile_form_template_paths == [FORM_TEMPLATES]
    (culler,) = config.JupyterHub.services
    assert culler["command"][1:] == [
        "-m", "jupyterhub_idle_culler", "--timeout=3600", "--cull-every=300",
    ]  # fmt: skip
    (role,) = config.JupyterHub.load_roles
    assert set(role["scopes"]) == {
        "list:users",
        "read:users:activity",
        "read:servers",
        "delete:servers",
    }


def test_the_values_fragment_and_the_plain_example_offer_the_same_profiles(tmp_path: Path) -> None:
    from_values = hub_config(tmp_path).KubeSpawner.profile_list
    plain = PyFileConfigLoader(
        "jupyterhub_config.py", path=str(REPO / "examples" / "hub")
    ).load_config()
    assert _offered(from_values) == _offered(plain.KubeSpawner.profile_list)


def _offered(profile_list: Any) -> list[tuple[str, list[str]]]:
    return [
        (p["slug"], list((p.get("profile_options") or {}).get("gpu", {}).get("choices", {})))
        for p in profile_list.profiles
    ]
