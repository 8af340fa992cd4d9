"""The root of every error the cluster side raises on purpose, and where each one lives.

    ClusterError                   (a tp_protocol.errors.TpJupyterError)
    ├── kube.KubeError             an API call failed (translated once, in the adapter)
    │   ├── kube.KubeNotFound      404
    │   └── kube.KubeConflict      409
    ├── manifests.ManifestError    bad manager namespace or image (also a ValueError)
    ├── injector.InjectError       the workload cannot take the agent (also a ValueError)
    ├── manager.server.CannotServe       the manager cannot serve (port taken, ...)
    ├── manager.server.DialRefused       a client could not reach its local target
    ├── manager.state.StateError         a request the manager refuses; .code is its gRPC
    │   ├── SessionNotFound, InterceptInvalid, NoSuchIntercept, InterceptExists,
    │   │   InterceptClash, NoClient
    │   └── manager.workloads.WorkloadError  WorkloadNotFound, PortNotFound,
    │       AmbiguousService, NotInterceptable, AgentFailed, AgentTimeout
    ├── manager.dns.DNSLookupError       a name the cluster cannot resolve (also a ValueError)
    ├── manager.tunnel.TunnelAborted     one side of a tunnel broke
    ├── agent.AgentError                 the agent cannot run (bad config)
    ├── agent.TunnelFailed               the intercept's side is unreachable (-> 502)
    ├── agent.link.SessionLost           the manager ended the agent's session
    └── agent.http.UpstreamFailed        the app or the local side broke mid-exchange

The classes stay in the modules that raise them; this module only gives them one root,
so a caller can tell "ours, with a message meant for a person" from a bug.
"""

from __future__ import annotations

from tp_protocol.errors import TpJupyterError


class ClusterError(TpJupyterError):
    """Base of every error `tp_cluster` raises on purpose."""
