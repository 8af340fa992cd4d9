"""What runs in the cluster: the traffic-manager (`tp_cluster.manager`) and the
traffic-agent (`tp_cluster.agent`, injected by `tp_cluster.injector`).
`tp_cluster.manifests` describes the manager's objects; the workstation daemon creates
them on first connect and removes them on `tp uninstall --everything`.
All Kubernetes API access goes through `tp_cluster.kube`.
"""
