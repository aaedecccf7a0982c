"""An emulated Kubernetes cluster for end-to-end tests: the honest stand-in for a real one.

No kube-apiserver or kubelet can run on the machines this project is built on (no container engine,
no binaries in any registry), so this package provides one, under ``tests/`` only:

- ``store``, ``kinds``, ``selectors``, ``patches``, ``errors``: the object store with
  resourceVersions, watch history, label/field selectors and the three patch formats;
- ``registry`` + ``http_api``: the API's verbs (defaulting, admission, quota, graceful deletion)
  served over real HTTP so the official ``kubernetes`` client drives it exactly as in production;
- ``admission`` + ``webhook_config`` + ``match_conditions``: the webhook admission chain that reads
  the rendered ``cluster/`` manifests and calls webhooks over HTTPS like kube-apiserver;
- ``quota``: ResourceQuota admission and status;
- ``controllers``: namespace lifecycle and ownerReference garbage collection;
- ``scheduler``, ``kubelet``, ``sandbox``, ``device_plugins``: binding pods to nodes and running
  them as local process groups, each pod on its own 127.x.y.z address;
- ``cluster``: the facade tests use (start in a background thread, kubeconfig, stop cleanly).

Debugging: ``kubectl --kubeconfig <cluster.kubeconfig>`` works for reads (get, describe, logs,
wait) and delete; its writes send protobuf bodies, which the emulator refuses with a 415.

Why not ``kmock``: its ``KubernetesEmulator`` is a mock of storage and verbs; the tests here need the
API server's *behaviour* — admission calls, ResourceQuota, graceful pod deletion, subresources (status,
log with follow), field selectors, garbage collection — and hooks for a scheduler and kubelet. Adding
those to kmock would mean depending on its internals (and cluster-scoped POST is broken in 0.8). A
small in-repo server on tornado (already a dependency of the webhook) owns exactly what the tests need.
"""
