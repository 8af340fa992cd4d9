"""The sandbox node agent: kubelet, kube-proxy and cluster DNS in one process.

Modules:

- `kubelet`    the Node object, the pod watch and one worker per pod;
- `pods`       a pod's life: setup, init containers, restarts, probes, status, teardown;
- `network`    pod netns + veth + routed /32 (IPAM from the node's podCIDR);
- `podconfig`  resolv.conf, hosts, volumes, service-account token, environment;
- `runtime`    containers as processes (through the `enter` launcher), mount points;
- `logs`       CRI-format container logs, bounded, previous instance kept;
- `probes`     httpGet / tcpSocket / exec probes;
- `server`     the kubelet API on run/kubelet.sock (logs, exec, port-forward);
- `kubeapi`    the kubelet's one adapter to the API server (official client);
- `proxy`, `dns`  kube-proxy (nftables) and cluster DNS.

Run: ``python -m tp_sandbox.node --name NAME --kubeconfig PATH``.
"""
