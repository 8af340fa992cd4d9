"""The traffic-manager: `python -m tp_cluster.manager` (the traffic-manager image's entry).

Modules: `server` (gRPC service, lifecycle), `state` (sessions, intercepts),
`tunnel` (Tunnel streams), `dns` (LookupDNS), `clusterinfo` (discovery).
"""
