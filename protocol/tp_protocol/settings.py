"""Every timeout, TTL, limit and default of tp-jupyter, in one settings object.

`Settings` is made of one section per component; each field carries its default
and a docstring that says what it governs. Code reads `get_settings()` instead of
hard-coding numbers. A JSON file named by `$TP_SETTINGS` overrides fields, e.g.
``{"connect": {"session_ttl": 30}}``.

Sections add fields in their own class only (helpers editing in parallel).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SandboxSettings:
    """The sandbox cluster as a whole: processes, addresses, lifecycle."""

    api_port: int = 16443
    """Host-loopback port of the default sandbox's API server (named instances pick a free one)."""

    api_address: str = "172.30.0.1"
    """API server address inside the sandbox (on the node's loopback; laptops route only to it)."""

    api_inner_port: int = 6443
    """API server port on `api_address`, as seen from pods and laptops."""

    dns_address: str = "172.30.0.10"
    """Cluster DNS server address on the node's loopback (the kube-dns Endpoints)."""

    pod_cidr: str = "10.244.0.0/16"
    """Cluster-wide pod range."""

    node_pod_cidr: str = "10.244.0.0/24"
    """The node's `spec.podCIDR`; pod addresses are /32s from it."""

    service_cidr: str = "10.96.0.0/16"
    """Service ClusterIP range; a Service outside it is refused with the range in the message."""

    cluster_domain: str = "cluster.local"
    """Cluster DNS domain."""

    dns_service_ip: str = "10.96.0.10"
    """ClusterIP of the cluster DNS service named in pods' resolv.conf."""

    laptop_address_prefix: str = "172.31.0."
    """Laptop K gets `<prefix>K`; its only routes lead to `api_address` and the
    LoadBalancer range."""

    load_balancer_cidr: str = "172.29.0.0/24"
    """Addresses of `type: LoadBalancer` Services (`status.loadBalancer.ingress[].ip`), as a
    cloud's load balancers: routed from every laptop to the node, realised by kube-proxy."""

    up_timeout: float = 30.0
    """Seconds `tp sandbox up` waits for the API server (and node) to serve."""

    stop_grace: float = 5.0
    """Seconds a sandbox process gets after SIGTERM before SIGKILL on `down`."""

    restart_backoff_max: float = 10.0
    """Ceiling of the supervisor's back-off between restarts of a crashed sandbox process."""

    restart_backoff_initial: float = 0.5
    """First back-off before the supervisor restarts a crashed process (doubles up to the max)."""

    restart_reset_after: float = 10.0
    """Seconds a restarted process must stay up before its back-off starts over."""

    supervisor_stop_timeout: float = 30.0
    """Seconds `down` waits for the supervisor to stop its children and exit before SIGKILL."""

    poll_interval: float = 0.2
    """Seconds between checks while waiting for a condition (readiness, exit, rollout)."""

    max_laptops: int = 16
    """Most laptops one instance may have (`up --laptops N`)."""

    demo_timeout: float = 180.0
    """Seconds `tp sandbox demo` waits for the demo deployments to become Available."""

    manager_install_timeout: float = 120.0
    """Seconds `tp sandbox up` waits for the traffic-manager it installs as the admin to
    become available."""

    laptop_dns_ttl: int = 30
    """TTL of the answers of a laptop's stub resolver (zone `laptop.test`)."""

    laptop_dns_tcp_idle: float = 10.0
    """Seconds a laptop's stub resolver keeps an idle TCP connection open."""

    command_timeout: float = 30.0
    """Seconds one `ip`/`nft`/`sysctl`/`umount` command may take before it counts as failed."""

    status_probe_timeout: float = 5.0
    """Seconds `up`/`status` give one request that asks the API server whether the node is Ready."""

    node_stale_after: float = 40.0
    """Seconds without a node heartbeat (Node Ready's lastHeartbeatTime, run/node.heartbeat)
    after which status calls the node NotReady (upstream's node-monitor-grace-period)."""

    controllers_stale_after: float = 15.0
    """Seconds without a controllers heartbeat (run/controllers.heartbeat) after which
    status calls the controllers stalled."""

    health_grace: float = 5.0
    """Seconds a process may be (re)starting before status counts a missing heartbeat or an
    unanswered API as unhealthy; the API server is "restarting" meanwhile."""


@dataclass
class ApiServerSettings:
    """The sandbox's Kubernetes-compatible API server."""

    watch_history: int = 5000
    """Events kept for resuming watches; an older resourceVersion gets 410 Gone."""

    watch_bookmark_interval: float = 30.0
    """Seconds between BOOKMARK events on watches that asked for them."""

    watch_default_timeout: float = 1800.0
    """Seconds a watch stays open when the client sets no timeoutSeconds."""

    request_body_limit: int = 3 * 1024 * 1024
    """Largest request body accepted (bytes), as etcd's object limit."""

    watch_queue_limit: int = 10000
    """Events queued for one slow watch client before the server closes that watch."""

    service_node_port_range: str = "30000-32767"
    """NodePorts allocated to NodePort/LoadBalancer Services (upstream default range)."""

    token_default_expiration: int = 3600
    """Lifetime (s) of a TokenRequest token when the request names none."""

    token_max_expiration: int = 48 * 3600
    """Longest lifetime (s) granted to a TokenRequest token."""

    kubelet_connect_timeout: float = 10.0
    """Seconds to reach the kubelet API socket for pods/log, exec and portforward."""

    relay_max_message: int = 64 * 1024 * 1024
    """Largest WebSocket frame relayed for exec/portforward (bytes)."""

    shutdown_timeout: float = 5.0
    """Seconds open connections get to finish when the server stops."""

    store_file: str = "apiserver.db"
    """File in the state dir that holds the objects; "" keeps them in memory only (lost
    when the API server restarts; for comparisons)."""

    store_synchronous: str = "NORMAL"
    """SQLite `synchronous` of the object store (WAL): NORMAL survives a crash of the
    API server process (SIGKILL included), FULL also a crash of the machine (an fsync
    per write)."""


@dataclass
class ControllerSettings:
    """Controllers of the sandbox (deployments, replica sets, endpoints, GC, namespaces)."""

    resync_interval: float = 30.0
    """Seconds between full resyncs of each controller's informer."""

    heartbeat_interval: float = 2.0
    """Seconds between writes of the controllers' heartbeat file (`--heartbeat`)."""

    progress_deadline_default: int = 600
    """Deployment `progressDeadlineSeconds` when the spec leaves it out."""

    revision_history_limit_default: int = 10
    """Deployment `revisionHistoryLimit` when the spec leaves it out (old ReplicaSets kept)."""

    workers: int = 2
    """Worker threads per controller (each key is handled by one worker at a time)."""

    retry_backoff_initial: float = 0.05
    """First delay before a failed key (or a broken watch) is retried; doubles per failure."""

    retry_backoff_max: float = 10.0
    """Ceiling of that retry delay (client-go uses 1000 s; the sandbox keeps tests quick)."""

    request_timeout: float = 15.0
    """Seconds one API request (not a watch) may take before it counts as unreachable."""

    expectations_timeout: float = 60.0
    """Seconds a ReplicaSet waits to observe pods it created/deleted before trusting its
    cache again (client-go uses 300 s)."""

    stop_timeout: float = 3.0
    """Seconds each controller thread gets to finish on SIGTERM before it is abandoned."""

    namespace_recheck_interval: float = 0.5
    """Seconds between checks of a Terminating namespace that still holds objects."""

    connection_pool_size: int = 64
    """HTTP connections kept to the API server (one per watch plus the workers' requests)."""


@dataclass
class NodeSettings:
    """The sandbox node: kubelet, kube-proxy and cluster DNS."""

    node_name: str = "sandbox-node"
    """Name of the single Node object."""

    status_interval: float = 10.0
    """Seconds between Node status heartbeats."""

    crashloop_backoff_initial: float = 1.0
    """First restart back-off of a crashing container (doubles up to the maximum)."""

    crashloop_backoff_max: float = 20.0
    """Largest restart back-off (Kubernetes uses 300 s; the sandbox keeps tests quick)."""

    image_pull_backoff: float = 2.0
    """Seconds between retries of an image that is not in the catalog."""

    image_pull_error_seconds: float = 1.0
    """Seconds a failed pull shows `ErrImagePull` before `ImagePullBackOff` (as a kubelet
    does between the failure and its back-off)."""

    default_grace_period: int = 30
    """terminationGracePeriodSeconds when the pod spec leaves it out."""

    log_max_bytes: int = 16 * 1024 * 1024
    """Largest container log kept per container (older bytes are dropped)."""

    api_timeout: float = 10.0
    """Seconds the kubelet waits for one API request (status write, token, config map...)."""

    watch_timeout: int = 300
    """Server-side timeoutSeconds of the kubelet's pod watch; it then re-lists and watches again."""

    watch_retry_backoff: float = 1.0
    """Seconds before the kubelet retries a failed list/watch or Node update."""

    token_expiration: int = 3600
    """expirationSeconds asked of the TokenRequest API; the token is renewed at 80 % of it."""

    config_volume_sync: float = 3.0
    """Seconds between a pod's syncs of its configMap/secret volumes with the API (a real
    kubelet's sync period plus cache TTL is about a minute; kept short for tests)."""

    shutdown_grace: float = 5.0
    """Ceiling of each pod's grace period when the node process itself stops (sandbox down)."""

    stream_chunk: int = 256 * 1024
    """Bytes read at once when relaying port-forward, exec and log streams."""

    log_follow_poll: float = 0.2
    """Seconds between checks of a followed container log for new lines."""

    exec_probe_timeout_default: float = 1.0
    """Probe timeout when the probe leaves timeoutSeconds out (Kubernetes' default, 1 s)."""

    services_watch_timeout: int = 60
    """Server-side timeoutSeconds of kube-proxy's and DNS's watches (then resumed)."""

    services_retry_backoff: float = 1.0
    """Seconds kube-proxy and DNS wait before retrying an API call that failed."""

    proxy_sync_delay: float = 0.05
    """Seconds kube-proxy gathers further changes before it rewrites its nft table."""

    proxy_resync_interval: float = 30.0
    """Seconds between re-applications of kube-proxy's nft table even without changes."""

    dns_ttl: int = 5
    """TTL of cluster DNS answers (CoreDNS' default for the kubernetes plugin)."""

    dns_tcp_idle_timeout: float = 10.0
    """Seconds cluster DNS keeps an idle TCP connection open."""

    dns_start_timeout: float = 10.0
    """Seconds `ClusterDNS.start()` waits for its UDP and TCP sockets to listen."""

    demo_call_timeout: float = 5.0
    """Seconds the demo's verylargejavaservice waits for each backend it calls."""

    demo_shutdown_grace: float = 3.0
    """Seconds a demo app lets in-flight requests finish after SIGTERM."""

    status_coalesce_delay: float = 0.05
    """Seconds a pod's status writer gathers further changes before it writes one status."""

    watch_thread_join: float = 0.5
    """Seconds the kubelet waits for its pod-watch thread on stop (a daemon thread: it may
    linger until its watch ends)."""


@dataclass
class ConnectSettings:
    """Workstation side of `tp connect`: daemon, session, routing and DNS."""

    manager_namespace: str = "ambassador"
    """Namespace of the traffic-manager (the seed's default)."""

    manager_image: str = ""
    """Image `tp connect` installs the traffic-manager from (`--manager-image`): "" is
    `<image_registry>/traffic-manager:<client version>`; a bare `NAME[:TAG]` goes under
    `image_registry`; a reference with a `/` is used as it is; no tag means the client's."""

    agent_image: str = ""
    """Image of the traffic-agent the manager injects (`--agent-image`), same rules as
    `manager_image` with the name `traffic-agent`; it reaches the manager's env at install."""

    image_registry: str = ""
    """Registry (and path) of both images (`--registry`, e.g. `registry.example.com/team`);
    "" is the released images' `ghcr.io/tp-jupyter`."""

    image_pull_secrets: list[str] = field(default_factory=list)
    """Names of `kubernetes.io/dockerconfigjson` Secrets for a private registry
    (`--image-pull-secret`, repeatable): given to the manager pod, and to every pod the
    agent is injected into (each workload's namespace needs a Secret of that name)."""

    session_ttl: float = 15.0
    """Seconds the manager keeps a silent client session before it expires with its intercepts."""

    remain_interval: float = 5.0
    """Seconds between the daemon's `Remain` calls."""

    rpc_timeout: float = 10.0
    """Default timeout of a unary gRPC call."""

    install_timeout: float = 120.0
    """Seconds to wait for the traffic-manager rollout on first connect."""

    connect_timeout: float = 30.0
    """Seconds `tp connect` waits for the daemon to report connected."""

    reconnect_backoff_max: float = 2.0
    """Ceiling of the back-off between reconnects when the port-forward or manager drops
    (each attempt is one pod list; a new manager pod is found this long after Ready)."""

    status_probe_timeout: float = 2.0
    """Seconds `tp status` lets the daemon ask the manager whether it still answers
    (longer: it says "cluster unreachable")."""

    dns_timeout: float = 4.0
    """Seconds the daemon's resolver waits for an answer (manager or upstream)."""

    manager_port: int = 8081
    """The traffic-manager pod's gRPC port, reached through the pod port-forward."""

    api_timeout: float = 10.0
    """Seconds the daemon waits for one Kubernetes API request (and to test reachability)."""

    dial_timeout: float = 10.0
    """Seconds to open one port-forward WebSocket or one `Tunnel` stream."""

    daemon_start_timeout: float = 30.0
    """Seconds `tp connect` waits for a freshly started daemon to answer on its socket."""

    daemon_start_gc_pause: float = 10.0
    """Seconds at most a fresh daemon runs without Python's cyclic garbage collector: its
    start is ~0.4 s of imports (allocation-heavy, next to no garbage) that the collector
    slows by ~8%; it is back on once the first connect ends, or after this."""

    daemon_uvloop: bool = True
    """Run the user daemon on uvloop's event loop (its TLS and socket transports are C):
    the tunnel moved ~12% more bytes than on asyncio's own loop in bench/tunnel.py, where
    the daemon's one thread decrypting and copying is the bottleneck."""

    manager_uvloop: bool = True
    """Run the traffic-manager on uvloop's event loop (its TLS and socket transports are
    C, asyncio's TLS is Python): direct connect's p50 in bench/tunnel.py fell from
    0.81-0.94x to 0.75x of kubectl port-forward's; off: asyncio's own loop."""

    quit_timeout: float = 15.0
    """Seconds `tp quit` waits for the daemon to clean up (depart, routes, nft) and exit."""

    portforward_heartbeat: float = 15.0
    """Seconds between WebSocket pings on port-forwards (finds dead connections)."""

    dns_cache_ttl: float = 5.0
    """Seconds the daemon caches the manager's answer for one (name, type)."""

    tun_name: str = "tp0"
    """Name of the TUN link that carries the routes for the cluster ranges."""

    nft_table: str = "tp-daemon"
    """Name of the daemon's nftables table (family ip)."""

    socket_mark: int = 0x7470
    """SO_MARK of the daemon's own DNS queries upstream, so its nft rules skip them."""

    ip_command_timeout: float = 10.0
    """Seconds one iproute2 `ip` command of the daemon's routing (route listing, the
    link-and-routes batch) may take before connect fails (it answers in milliseconds)."""

    manager_reap_interval: float = 1.0
    """Seconds between the traffic-manager's sweeps for sessions silent longer than the TTL."""

    pod_route: bool = True
    """Port-forward mode: send a connection to a Service or pod address as one
    pods/portforward WebSocket straight to a pod behind it (the manager's `ResolveDial`
    names the pod), not as a `Tunnel` through the manager. False: always a Tunnel."""

    pod_route_ttl: float = 2.0
    """Seconds the daemon reuses the manager's answer for one cluster address (a route to
    a pod, or "use a Tunnel"); a dial that fails drops it at once, and so does a change
    of the daemon's own intercepts. Another developer's new intercept is seen at most
    this long late, as kube-proxy lags behind Endpoints."""

    pod_route_linger: float = 2.0
    """Seconds a pod port-forward keeps reading the answer after the local side stopped
    sending, counted from the last data (v4 port-forwards have no half-close: without
    it a closed client would keep the pod's connection open until the app drops it)."""

    pod_route_replay_bytes: int = 1024 * 1024
    """Most bytes a pod port-forward keeps of what the client sent before the first
    answer, to send them again over a Tunnel when the kubelet reports that it could not
    connect to the pod (a pod going away in a rollout); beyond it no such retry."""

    manager_route_ttl: float = 1.0
    """Seconds the traffic-manager reuses its list of Services when it answers
    `ResolveDial` (Endpoints are read at each question)."""

    manager_tunnel_dial_timeout: float = 5.0
    """Seconds the traffic-manager waits to connect to a `Tunnel`'s in-cluster destination."""

    manager_tunnel_chunk: int = 1024 * 1024
    """Largest `data` message the traffic-manager sends on a `Tunnel` (bytes read at once).
    A read returns what is buffered, so messages grow to this size only under load: large
    messages cut per-message costs (gRPC, protobuf, wake-ups) without adding latency."""

    manager_kube_timeout: float = 10.0
    """Seconds the traffic-manager waits for one Kubernetes API request."""

    manager_cluster_info_ttl: float = 30.0
    """Seconds the traffic-manager reuses discovered cluster info before discovering again."""

    manager_auth_ttl: float = 10.0
    """Seconds the traffic-manager trusts one TokenReview / SubjectAccessReview answer
    before asking the API server again (a revoked token or binding works that long)."""

    manager_auth_cache_size: int = 4096
    """Most review answers the traffic-manager keeps (oldest dropped first)."""

    manager_stop_grace: float = 5.0
    """Seconds in-flight calls and tunnels get when the traffic-manager is asked to stop."""

    manager_max_message: int = 8 * 1024 * 1024
    """Largest gRPC message the traffic-manager sends or accepts (bytes)."""

    gather_logs_max_bytes: int = 1024 * 1024
    """`tp gather-logs`: most bytes kept of each component's log (the daemon's, the
    traffic-manager's, each traffic-agent's); a longer log keeps its tail and is marked
    truncated in the zip's manifest.json. The manager caps it at a quarter of
    `manager_max_message` (each log is one gRPC message)."""

    gather_logs_tail_lines: int = 20000
    """`tp gather-logs`: most lines the traffic-manager asks pods/log for per agent
    container (bounds the read before `gather_logs_max_bytes` trims it)."""

    gather_logs_timeout: float = 60.0
    """Seconds `tp gather-logs` waits for the traffic-manager to collect every log."""

    manager_log_buffer: int = 4 * 1024 * 1024
    """Bytes of its own recent log the traffic-manager keeps in memory for
    `tp gather-logs` (oldest lines dropped first)."""

    manager_address: str = "auto"
    """How `tp connect` reaches the traffic-manager (`--manager-address`): "auto" is its
    LoadBalancer address when the Service `traffic-manager-direct` has one that answers
    (TLS, the certificate pinned from the API server), else the API server's port-forward
    (one line says why); "direct" only the LoadBalancer address (an error when it does not
    answer); "port-forward" never direct; "HOST:PORT" direct to that address (a NodePort,
    a DNS name in front of the LoadBalancer)."""

    manager_service_type: str = "ClusterIP"
    """Service type a first `tp connect` installs for the traffic-manager
    (`--manager-service-type`): "LoadBalancer" also creates `traffic-manager-direct`, the
    TLS port on a LoadBalancer address, for direct connect (the admin's opt-in)."""

    direct_connect_timeout: float = 2.0
    """Seconds `tp connect` gives the LoadBalancer address to answer (TLS and `Version`)
    before it falls back to the port-forward."""

    manager_tls_days: int = 3650
    """Validity of the self-signed certificate the traffic-manager makes for direct
    connect (kept in the Secret `traffic-manager-tls`; delete it to make a new one)."""

    raw_dial_chunk: int = 1024 * 1024
    """Most bytes read at once from a raw dial's TLS connection and its TCP connection
    (daemon and traffic-manager; a connection's buffers start at 64 KiB and double while
    reads fill them): large reads keep per-chunk work (wake-ups, TLS records, sends, the
    local application's reads) small against the bytes moved. 1 MiB moved 50 MB ~1.3x
    faster than 256 KiB on the sandbox (2 MiB was slower again: caches)."""

    raw_dial_connect_timeout: float = 2.0
    """Seconds the daemon gives the raw dial port (TCP connect and TLS handshake) before it
    tunnels that connection through gRPC instead (and every connection, for
    `raw_dial_retry_interval`)."""

    raw_dial_retry_interval: float = 30.0
    """Seconds the daemon tunnels through gRPC after the raw dial port did not answer,
    before it tries that port again (one log line each time it gives up)."""

    raw_dial_header_timeout: float = 5.0
    """Seconds the traffic-manager waits for a raw dial's TLS handshake and header before
    it closes the connection (nothing is dialed)."""

    raw_dial_accept_backoff: float = 0.1
    """Seconds the traffic-manager's raw dial listener pauses after a failed accept (e.g.
    out of file descriptors) before it accepts again."""


@dataclass
class InterceptSettings:
    """Intercepts, traffic-agent and traffic capture."""

    agent_port_offset: int = 9900
    """First containerPort given to the traffic-agent's listeners (9900, 9901, ... skipping
    ports the pod already uses)."""

    activate_timeout: float = 60.0
    """Seconds `tp intercept` waits for the agent to arrive and the intercept to be ACTIVE."""

    capture_body_limit: int = 4096
    """Bytes of each request/response body kept in a traffic row."""

    capture_redact_headers: tuple[str, ...] = ("authorization", "proxy-authorization",
                                               "cookie", "set-cookie")
    """Headers whose values traffic rows record as "[redacted]" (case-insensitive; a
    replay drops them: pass the header again to send it). () keeps every value."""

    traffic_history: int = 10000
    """Traffic rows the daemon keeps (oldest dropped first)."""

    local_dial_timeout: float = 5.0
    """Seconds to reach the local destination before answering 502."""

    dial_accept_timeout: float = 10.0
    """Seconds the manager waits for the owning client to accept an intercepted connection."""

    traffic_watch_queue: int = 1000
    """Traffic rows the manager buffers per watching client (oldest dropped when it lags)."""

    manager_write_retries: int = 5
    """Times the manager re-reads and rewrites a workload when its write loses a race (409)."""

    manager_rollout_poll: float = 1.0
    """Seconds between the manager's looks at the agent rollout's pods while it waits."""

    agent_chunk: int = 256 * 1024
    """Bytes the traffic-agent reads at once when relaying a connection or a body."""

    agent_app_dial_timeout: float = 5.0
    """Seconds the traffic-agent waits to connect to the app container on localhost."""

    agent_rpc_timeout: float = 10.0
    """Seconds one unary gRPC call of the traffic-agent to the manager may take."""

    agent_reconnect_backoff_max: float = 5.0
    """Ceiling of the agent's back-off between attempts to reach the manager."""

    agent_reconnect_backoff_initial: float = 0.1
    """First back-off of the agent before it tries the manager again (doubles up to the max)."""

    agent_depart_timeout: float = 1.0
    """Seconds a stopping agent gives its `Depart` call (the session TTL removes it anyway)."""

    agent_traffic_queue: int = 1000
    """Traffic rows the agent buffers for the manager (oldest dropped, never blocks traffic)."""

    agent_max_head_bytes: int = 64 * 1024
    """Largest HTTP request/response head the agent parses on intercepted ports."""

    agent_sniff_timeout: float = 0.5
    """Seconds the agent waits for a connection's first bytes to answer a failed global
    intercept with an HTTP 502 (non-HTTP connections are just closed)."""

    agent_tunnel_close_timeout: float = 5.0
    """Seconds the agent waits for the client side of a finished exchange's Tunnel to close."""

    relay_buffer_bytes: int = 4 * 1024 * 1024
    """Unsent data bytes a Relay stream queues (agent, manager, daemon) before its
    connections wait: the multiplexed stream's back-pressure."""

    traffic_batch_bytes: int = 1024 * 1024
    """Most bytes of traffic rows sent in one message (agent -> manager ReportTraffic,
    manager -> client WatchTrafficBatches): rows queued together travel together."""

    agent_traffic_batch_delay: float = 0.1
    """Seconds a traffic-agent gathers traffic rows before sending them to the manager, so
    a busy port sends one message per interval rather than one per request (the rows'
    delay on their way to `tp traffic`). A gRPC stream message costs ~0.4 ms of CPU
    whatever it carries, in the agent and again in the manager and each watching daemon
    (bench/load.py: at 10 ms that was ~40 us per request across them at 2,000 rps); rows
    queued meanwhile are bounded by `agent_traffic_queue`."""

    agent_uvloop: bool = True
    """Run the traffic-agent on uvloop's event loop (its socket transports and loop are C):
    the agent's CPU per relayed request is what caps one pod's request rate
    (bench/load.py); off: asyncio's own loop."""

    agent_retire_idle: float = 1.0
    """When a port gets its first intercept, unparsed keep-alive connections to the app are
    closed after being quiet this long once a response followed the last request, so that
    pooled callers reconnect and get routed (a gap this long inside a response would cut it)."""

    daemon_prepare_margin: float = 30.0
    """Seconds the daemon's PrepareIntercept call may take beyond `activate_timeout`
    (the manager's Kubernetes writes, and its restore when the agent never arrives)."""

    daemon_stream_retry: float = 1.0
    """Seconds the daemon waits before reopening a ReceiveDials/WatchIntercepts/WatchTraffic
    stream that ended (e.g. while the channel to the manager is rebuilt)."""

    daemon_reply_margin: float = 0.5
    """Seconds of a daemon RPC's deadline kept for its reply: the work gets what the caller
    gave minus this, then the reply says what was still pending."""

    daemon_mount_timeout: float = 60.0
    """Seconds the daemon takes to copy the intercepted container's volumes to the mount point."""

    daemon_mount_limit: int = 256 * 1024 * 1024
    """Most bytes of volume contents copied to the mount point (a larger copy is an error)."""

    daemon_uninstall_timeout: float = 120.0
    """Seconds `tp uninstall` waits for the manager to restore the workloads."""

    daemon_manager_removal_timeout: float = 60.0
    """Seconds `tp uninstall --everything` waits for the traffic-manager's objects to go."""

    hold_timeout: float = 60.0
    """Seconds a held request (`tp intercept --hold`) waits for a decision before it goes
    to the cluster unchanged, so a forgotten hold never hangs its caller."""

    hold_body_limit: int = 16 * 1024 * 1024
    """Largest request body (bytes) the daemon holds; a larger one gets a 413."""

    hold_answered_kept: int = 1000
    """Answered held-request ids the daemon remembers, so deciding one again says what
    already happened to it."""

    hold_forward_timeout: float = 30.0
    """Seconds a forwarded held request may take to be answered (local or cluster)
    before its caller gets a 502."""

    # --- mirror (`tp wiretap`) ---

    mirror_queue: int = 256
    """Copies a traffic-agent queues per mirror; when full a copy is dropped (and counted),
    never waited for: copies never slow the caller."""

    mirror_workers: int = 8
    """Copies of one mirror the traffic-agent sends to the workstation at the same time."""

    mirror_answer_timeout: float = 10.0
    """Seconds the traffic-agent waits for the workstation's answer to one copy (the row
    then says it timed out)."""

    mirror_body_limit: int = 1024 * 1024
    """Largest request body a mirror copies (a larger request's copy is dropped and
    counted: the agent would have to keep all of it)."""

    mirror_counters_interval: float = 0.5
    """Seconds between a traffic-agent's reports of its mirrors' copied/dropped counters
    (only when they changed), so `tp list` and `tp status` stay current under load."""

    # --- agentlink: direct daemon <-> agent links (manager.proto "Agent links") ---
    agent_link_port: int = 0
    """Port the traffic-agent's link server listens on, on 127.0.0.1 inside its pod
    (reached only through a pods/portforward); 0 = any free port (reported to the
    manager in AgentInfo.link_port)."""

    agent_links: bool = True
    """Whether the daemon opens direct links to the agents of its personal intercepts
    (False: every matched request goes through the manager's Relay)."""

    link_hello_timeout: float = 10.0
    """Seconds a new link waits for the other side's `link_hello` before it is closed
    (agent: the daemon's keys; daemon: the agent's answer)."""

    link_backoff: float = 0.5
    """Seconds the daemon waits before opening a broken or refused link again (doubled
    after each failure up to `link_backoff_max`; the manager's Relay carries the
    requests meanwhile)."""

    link_backoff_max: float = 15.0
    """Longest wait between two attempts to open a link to one agent pod."""

    link_max_frame_bytes: int = 64 * 1024 * 1024
    """Largest length-prefixed RelayBatch a link accepts; a bigger one closes the link."""


@dataclass
class NotebookSettings:
    """The notebook front."""

    widget_refresh_interval: float = 0.5
    """Seconds between refreshes of the live traffic widget."""

    widget_rows: int = 20
    """Most recent traffic rows the live traffic table shows."""

    handler_timeout: float = 30.0
    """Seconds a cell handler may take for one request before the caller gets a 504."""

    handler_threads: int = 64
    """Connections a cell handler server serves at once; each has a thread that also runs
    synchronous handlers and WSGI apps (further connections wait to be accepted)."""

    handler_body_limit: int = 16 * 1024 * 1024
    """Largest request body (bytes) a cell handler accepts; larger requests get a 413."""

    handler_start_timeout: float = 10.0
    """Seconds to wait for the in-kernel handler server's event loop to start listening."""

    handler_stop_timeout: float = 5.0
    """Seconds in-flight handler requests get when the server stops (unload, `%tp leave`)."""

    kernel_traffic_rows: int = 2000
    """Exchanges served by cell handlers that the kernel keeps (oldest dropped first)."""

    traffic_rpc_timeout: float = 10.0
    """Seconds to read the daemon's kept traffic rows (`%tp traffic`, `tp_jupyter.traffic()`)."""

    traffic_wait: float = 10.0
    """Most seconds `tp traffic --at-least N` (`traffic(at_least=N)`) waits for N rows: a
    row reaches the daemon a moment after its answer reached the caller."""

    traffic_wait_poll: float = 0.05
    """Seconds between looks at the daemon's rows while waiting for `--at-least`."""

    daemon_probe_timeout: float = 2.0
    """Seconds the front waits for the daemon's Version answer when it checks whether a
    daemon runs (before connect, status, quit and every intercept command)."""

    daemon_call_timeout: float = 30.0
    """Deadline of the front's quick daemon calls (Version, Status, List, Leave, Quit): the
    daemon answers within it or says what it waits for."""

    connect_call_timeout: float = 180.0
    """Deadline of `tp connect`'s Connect call, which may install the traffic-manager and
    wait for its rollout (the daemon's own steps fit inside it)."""

    intercept_call_timeout: float = 360.0
    """Deadline of one Intercept call: agent injection and rollout, the wait for ACTIVE,
    the volume copy, and the undo of a failure (the daemon's own steps fit inside it)."""

    uninstall_call_timeout: float = 240.0
    """Deadline of one Uninstall call (`--everything` also removes the traffic-manager)."""

    daemon_stop_timeout: float = 15.0
    """Seconds `tp quit` waits for the daemon process to exit after its Quit call answered."""

    replay_timeout: float = 30.0
    """Seconds `tp_jupyter.replay()` waits for the replayed exchange."""

    watch_retry_interval: float = 2.0
    """Seconds the live traffic widget waits before re-opening a traffic stream that ended."""

    demo_step_timeout: float = 120.0
    """Seconds one step of the scripted demo (`tp_jupyter.demo`) may take."""

    demo_rollout_step_timeout: float = 300.0
    """Seconds a demo step that rolls pods out (deploy, intercept, uninstall) may take."""

    completion_timeout: float = 1.0
    """Deadline of each daemon call made by tab completion of `%tp` (namespaces,
    workloads, intercept names): a slow daemon gives no live words, never a stuck prompt."""

    held_poll_interval: float = 1.0
    """Seconds between the panel's looks at the daemon's held requests."""

    hold_call_timeout: float = 60.0
    """Deadline of deciding a held request (`.forward()`, `.respond()`, `.drop()`): the
    forwarded exchange and its answer fit inside it."""


@dataclass
class RootDaemonSettings:
    """The root daemon service (`sudo tp daemon install`) and the user daemon's use of it."""

    tun_name: str = "tp-root"
    """The one TUN link the root daemon routes every user's cluster ranges to."""

    nft_prefix: str = "tp-root-u"
    """nft tables of the root daemon are `<prefix><uid>`, one per connected user."""

    request_timeout: float = 10.0
    """Seconds the user daemon waits for the root daemon to set up (or refuse) its routes."""

    request_limit: int = 65536
    """Bytes of one request line the root daemon reads before it refuses the caller."""

    refusal_linger: float = 2.0
    """Seconds a refused caller's connection stays half-open after the refusal, what it
    still sends discarded: closed with its request unread, the caller's write would fail
    (EPIPE) and that error hide the refusal waiting in its buffer."""

    max_ranges: int = 64
    """Cluster ranges one user may ask the root daemon to route."""

    min_prefix: int = 8
    """Shortest prefix length accepted for a cluster range (no /0../7 catch-alls)."""

    relay_timeout: float = 3.0
    """Seconds the DNS relay waits for the user daemon's resolver before asking upstream."""

    start_timeout: float = 15.0
    """Seconds `tp daemon install` waits for the service's socket to answer."""

    stop_timeout: float = 10.0
    """Seconds `tp daemon uninstall` waits for the service to stop (then SIGKILL)."""

    restart_backoff: float = 1.0
    """Seconds the supervisor waits before restarting a root daemon that died."""

    restart_backoff_max: float = 30.0
    """Upper bound of the supervisor's doubling restart back-off."""

    relink_backoff: float = 0.2
    """Seconds a user daemon whose root daemon died waits before asking the restarted one
    for its routes and DNS again (doubling after each failed try)."""

    relink_backoff_max: float = 2.0
    """Upper bound of that doubling back-off (the supervisor restarts the root daemon
    after `restart_backoff`)."""


@dataclass
class Settings:
    """All of tp-jupyter's settings, one section per component."""

    sandbox: SandboxSettings = field(default_factory=SandboxSettings)
    apiserver: ApiServerSettings = field(default_factory=ApiServerSettings)
    controllers: ControllerSettings = field(default_factory=ControllerSettings)
    node: NodeSettings = field(default_factory=NodeSettings)
    connect: ConnectSettings = field(default_factory=ConnectSettings)
    intercept: InterceptSettings = field(default_factory=InterceptSettings)
    notebook: NotebookSettings = field(default_factory=NotebookSettings)
    root_daemon: RootDaemonSettings = field(default_factory=RootDaemonSettings)

    def override(self, values: dict[str, Any]) -> None:
        """Apply ``{"section": {"field": value}}``; unknown names are an error."""
        for section_name, fields in values.items():
            section = getattr(self, section_name, None)
            if section is None or not dataclasses.is_dataclass(section):
                raise ValueError(f"unknown settings section {section_name!r}")
            known = {f.name for f in dataclasses.fields(section)}
            for name, value in fields.items():
                if name not in known:
                    raise ValueError(f"unknown setting {section_name}.{name}")
                setattr(section, name, value)


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, with `$TP_SETTINGS` (a JSON file) applied once."""
    settings = Settings()
    path = os.environ.get("TP_SETTINGS")
    if path:
        with open(path, encoding="utf-8") as f:
            settings.override(json.load(f))
    return settings
