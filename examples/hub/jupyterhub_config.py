"""A plain JupyterHub whose users pick a GPU slice on the spawn page (README, "JupyterHub: GPU
slices at spawn time"). Run it where a kubeconfig or the in-cluster token of the hub's service
account (``cluster/hub``) is at hand::

    jupyterhub -f examples/hub/jupyterhub_config.py

tests/e2e/hub loads this file as it is and adds only its addresses, authenticator and namespace.
"""

import sys

from bf_jupyter.hub import gpu_slice_profile
from bf_jupyter.hub_form import FORM_TEMPLATES, fitting_profile_list

c = get_config()  # noqa: F821

c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
c.KubeSpawner.namespace = "jhub"  # where cluster/hub is applied
c.KubeSpawner.image = "registry.local/bf-notebook:1.0"
# The server command: the GPU profile moves it to the container's command, which the webhook wraps
# in `bitfusion run`. Never repeat it in a profile's `command` (KubeSpawner also puts it in args).
c.KubeSpawner.cmd = ["jupyterhub-singleuser"]
# Read per user (and again at spawn) with the hub's account: choices the namespace's quota or the
# nodes cannot hold are shown disabled with the reason, and the remaining quota is shown.
c.KubeSpawner.profile_list = fitting_profile_list(
    [
        {"display_name": "CPU only", "slug": "cpu", "default": True},
        gpu_slice_profile(slices=["1x25%", "1x50%", "1"]),
    ]
)
c.KubeSpawner.additional_profile_form_template_paths = [FORM_TEMPLATES]

# An idle server holds its slice (the whole server runs under `bitfusion run`): cull it. The culler
# stops servers idle for an hour; it may only list users, read their activity and stop servers.
c.JupyterHub.services = [
    {
        "name": "idle-culler",
        "command": [
            sys.executable,
            "-m",
            "jupyterhub_idle_culler",
            "--timeout=3600",
            "--cull-every=300",
        ],
    }
]
c.JupyterHub.load_roles = [
    {
        "name": "idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    }
]
