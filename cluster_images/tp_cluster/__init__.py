"""What runs in the cluster: the traffic-manager (`tp_cluster.manager`) and, later, the
traffic-agent. `tp_cluster.manifests` describes the manager's objects; `tp_cluster.install`
creates them on first connect and removes them on `tp uninstall --everything`.
All Kubernetes API access goes through `tp_cluster.kube`.
"""
