"""What a node's "container runtime" is on this machine, beyond the process itself.

- **Image files.** A container's image is this machine, except for the folders an image is known to
  hold: ``image_files`` maps an image repository (``bitfusion-client``, any tag) to ``{path in the
  image: folder on this machine}``; those paths are rewritten like mount paths (a real mount of the
  same path wins).
- **hostPath volumes** are used in place, except those ``host_paths`` maps elsewhere (the device
  plugin's ``/var/lib/kubelet/device-plugins`` is this kubelet's registration folder).
- **Service-account tokens.** A projected ``serviceAccountToken`` source gets a real token from the
  API server (TokenRequest, bound to the pod, with the source's audience and expiry), requested as
  the node, which the Node authorizer allows only for pods bound to it. In-cluster clients read the
  token at a fixed path a process cannot see, so a container that mounts one at
  ``/var/run/secrets/kubernetes.io/serviceaccount`` is given ``KUBECONFIG``: a file naming the API
  server, the cluster CA and that token file (``tokenFile``, re-read as a kubelet refreshes it).
- **Pod network.** Pods share this machine's network, each with its own 127.x address. Python
  processes get ``tests/cluster/kubelet/pod_python`` first on ``PYTHONPATH``, whose sitecustomize
  makes a wildcard listen (``0.0.0.0:8443``) listen on the pod's address, as in a network namespace,
  and resolves ``<service>.<namespace>.svc`` names from the Service table the kube-proxy stand-in
  writes (``cluster_dns``). Programs in other languages get neither.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
POD_PYTHON = Path(__file__).resolve().parent / "pod_python"
CLUSTER_DNS_ENV = "BF_TEST_CLUSTER_DNS"
POD_IP_ENV = "BF_TEST_POD_IP"  # wildcard listens of Python servers land on the pod's address

# (namespace, service account, TokenRequest spec) → token
RequestToken = Callable[[str, str, dict[str, Any]], Awaitable[str]]


@dataclass
class NodeRuntime:
    image_files: Mapping[str, Mapping[str, Path]] = field(default_factory=dict)
    host_paths: dict[str, Path] = field(default_factory=dict)
    cluster_dns: Path | None = None
    apiserver: str = ""  # https://host:port, for the kubeconfig pods get
    ca_file: Path | None = None
    request_token: RequestToken | None = None

    def files_of(self, image: str) -> dict[str, Path]:
        """The folders ``image`` (``repository[:tag]``, ``registry/repository@digest``) holds."""
        repository = image.split("@", 1)[0]
        if ":" in repository.rsplit("/", 1)[-1]:
            repository = repository.rsplit(":", 1)[0]
        return dict(self.image_files.get(repository, {}))

    def host_path(self, path: str) -> Path:
        return self.host_paths.get(path.rstrip("/") or "/", Path(path))

    def kubeconfig_text(self, token_file: Path, namespace: str) -> str:
        """A kubeconfig for in-cluster access with the token in ``token_file``."""
        return (
            "apiVersion: v1\nkind: Config\n"
            "clusters:\n- name: in-cluster\n  cluster:\n"
            f"    server: {self.apiserver}\n    certificate-authority: {self.ca_file}\n"
            "users:\n- name: pod\n  user:\n"
            f"    tokenFile: {token_file}\n"
            "contexts:\n- name: in-cluster\n  context:\n"
            f"    cluster: in-cluster\n    user: pod\n    namespace: {namespace}\n"
            "current-context: in-cluster\n"
        )
