"""The workstation daemon: session with the traffic-manager, the tunnel, routing and DNS.

Run as ``python -m tp_daemon`` (started by ``tp connect``); it logs to a file and serves
the daemon API (gRPC) on a Unix socket, both under `tp_daemon.paths`.

Modules: `kube` (the one Kubernetes adapter), `portforward` (asyncio WebSocket
port-forward), `streams` (byte-stream plumbing), `proxy` (transparent proxy and SOCKS5),
`dns` (the resolver), `routing` (TUN link, routes, nftables), `session` (connect, keep
alive, reconnect), `server` (the daemon API); the package `root` is the root daemon
service that routes for non-root users (docs/root-daemon.md). Errors are in
`tp_daemon.errors`.
"""
