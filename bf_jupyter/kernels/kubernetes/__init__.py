"""The Kubernetes leaf of the kernel provisioners: kernels in pods.

``provisioner`` (the ``bitfusion-kubernetes`` and ``gpu-kubernetes`` provisioners), ``pod_builder``
(slice -> pod spec), ``pod_status`` (a pod's state in one sentence), ``pod_watch`` (the watch
streams), ``pod_startup`` (from created to answering) and ``reaper`` (orphaned kernel pods). What
any remote kernel shares lives one level up, in ``bf_jupyter.kernels.remote``.
"""
