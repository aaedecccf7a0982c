"""The process-kubelet: the one stand-in left in the test cluster (no container runtime here).

``ProcessKubelet`` (``kubelet``) is a node of a real kube-apiserver: it talks to it with its own
node credentials, runs the pods bound to it as local process groups (``pod_worker``, ``sandbox``),
writes their status (``pod_status``) and events (``events``), serves their logs to the apiserver
(``kubelet_server``, ``container_logs``) and hosts device plugins (``device_plugins``).
"""

from tests.cluster.kubelet.kubelet import PodAddresses, ProcessKubelet
from tests.cluster.kubelet.pod_worker import Backoff

__all__ = ["Backoff", "PodAddresses", "ProcessKubelet"]
