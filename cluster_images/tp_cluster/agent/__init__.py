"""The traffic-agent: a sidecar in the intercepted pod (shares the app's network namespace).

Parts, in the order data flows:

- `config`: what the injector told the agent through its environment;
- `runtime.Agent`: starts the listeners, then the manager link; stops them in order;
- `link`: the manager session (arrive, Remain, intercept snapshots, reviews, traffic
  reports), reconnecting with back-off; it keeps `intercepts.Registry` current;
- `forward`: one listener per taken-over port; each connection goes to the app
  (`pipes` splice, no parsing), to a global intercept's client (Tunnel), or through
  the per-request HTTP/1.1 router (`http`) when personal intercepts exist;
- `tunnel`: the agent's end of a `Tunnel` stream (open.to_client rendezvous);
- `capture`: one TrafficRecord per HTTP exchange on intercepted ports.

Run with `python -m tp_cluster.agent` (the image's entry point).

Errors::

    AgentError              the agent cannot run (bad configuration: one line, what to fix)
    TunnelFailed            the intercept's client could not be reached (-> 502 with reason)
"""

from __future__ import annotations

from tp_cluster.errors import ClusterError


class AgentError(ClusterError):
    """The agent cannot run; the message says what to fix."""


class TunnelFailed(ClusterError):
    """The intercept's side is unreachable or broke (the message is the 502's reason)."""


class InterceptGone(TunnelFailed):
    """The manager no longer has the intercept (it was left a moment ago): its client never
    saw the request, so the app answers it, as it answers every request from now on."""
