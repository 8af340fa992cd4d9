"""The sandbox cluster: a Kubernetes-compatible cluster on one machine.

Components (each a module or subpackage):

- `paths`       where an instance keeps its state, logs, PKI and kubeconfigs;
- `pki`         the generated CA and serving/client certificates;
- `apiserver`   the Kubernetes-compatible API server (HTTPS, bearer tokens);
- `controllers` deployment/replicaset/endpoints/GC/namespace controllers, via the API;
- `node`        the node agent: pods as network namespaces and processes, kube-proxy, DNS;
- `lifecycle`   `tp sandbox up|down|status|kubeconfig|exec|demo`.

Sandbox code never imports the front (`tp_jupyter`).
"""
