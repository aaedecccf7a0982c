"""What a zero-to-jupyterhub ``values.yaml`` implies for the hub's configuration, for the keys
``examples/hub/values.yaml`` uses (the chart cannot be installed here). Mirrors what the chart's
own ``jupyterhub_config.py`` does with them: ``singleuser.image`` → ``KubeSpawner.image``,
``singleuser.cmd`` → ``KubeSpawner.cmd``, ``singleuser.serviceAccountName`` →
``KubeSpawner.service_account``, ``singleuser.extraLabels`` → ``KubeSpawner.extra_labels``,
``cull`` → the ``jupyterhub-idle-culler`` service and its role, and each ``hub.extraConfig``
snippet run in key order. Any other key is refused, so the example cannot drift unchecked."""

from __future__ import annotations

from typing import Any

KNOWN = {
    "hub": {"image", "extraConfig"},
    "singleuser": {"image", "cmd", "serviceAccountName", "extraLabels"},
    "cull": {"enabled", "timeout", "every"},
}


def render_hub_config(values: dict[str, Any]) -> str:
    """The ``jupyterhub_config.py`` text ``values`` implies. Raises ``ValueError`` for a key this
    renderer does not know."""
    for section, keys in values.items():
        unknown = set(keys) - KNOWN.get(section, set())
        if unknown:
            raise ValueError(f"{section}: {sorted(unknown)} are not rendered here")
    single, cull = values.get("singleuser", {}), values.get("cull", {})
    lines = [
        "c = get_config()  # noqa: F821",
        'c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"',
    ]
    if "image" in single:
        lines.append(
            f"c.KubeSpawner.image = {single['image']['name'] + ':' + single['image']['tag']!r}"
        )
    if "cmd" in single:
        cmd = single["cmd"] if isinstance(single["cmd"], list) else [single["cmd"]]
        lines.append(f"c.KubeSpawner.cmd = {cmd!r}")
    if "serviceAccountName" in single:
        lines.append(f"c.KubeSpawner.service_account = {single['serviceAccountName']!r}")
    if "extraLabels" in single:
        lines.append(f"c.KubeSpawner.extra_labels = {dict(single['extraLabels'])!r}")
    lines += ["c.JupyterHub.services = []", "c.JupyterHub.load_roles = []"]
    if cull.get("enabled"):
        command = [
            "-m", "jupyterhub_idle_culler",
            f"--timeout={cull.get('timeout', 3600)}", f"--cull-every={cull.get('every', 600)}",
        ]  # fmt: skip
        lines += [
            "import sys",
            f'c.JupyterHub.services.append({{"name": "idle-culler", "command": [sys.executable, *{command!r}]}})',
            'c.JupyterHub.load_roles.append({"name": "idle-culler", "services": ["idle-culler"], '
            '"scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]})',
        ]
    for name in sorted((values.get("hub") or {}).get("extraConfig") or {}):
        lines += [f"# hub.extraConfig.{name}", values["hub"]["extraConfig"][name]]
    return "\n".join(lines) + "\n"
