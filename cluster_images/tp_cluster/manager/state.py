"""The traffic-manager's in-memory state: sessions, intercepts, pending dials, traffic.

Single-threaded: everything runs on the manager's event loop. Watchers (intercept
snapshots) call `State.wait_change`; every mutation bumps `State.version`.

Errors::

    StateError                   a request the state refuses; .code names the gRPC status
    +-- SessionNotFound          unknown or expired session       (NOT_FOUND)
    +-- NotYourSession           another identity's session       (PERMISSION_DENIED)
    +-- InterceptInvalid         bad intercept spec               (INVALID_ARGUMENT)
    +-- NoSuchIntercept          no such intercept                (NOT_FOUND)
    +-- InterceptExists          same name for the same client    (ALREADY_EXISTS)
    +-- InterceptClash           clashes with another intercept   (FAILED_PRECONDITION)
    +-- NoClient                 nobody to hand a connection to   (UNAVAILABLE)
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import timestamp_pb2
from tp_protocol import VERSION, intercept_spec
from tp_protocol import manager_pb2 as pb

from tp_cluster.errors import ClusterError
from tp_cluster.manifests import version_skew

log = logging.getLogger(__name__)

S = pb.InterceptState


class StateError(ClusterError):
    code = "INTERNAL"


class SessionNotFound(StateError):
    code = "NOT_FOUND"


class NotYourSession(StateError):
    code = "PERMISSION_DENIED"


class InterceptInvalid(StateError):
    code = "INVALID_ARGUMENT"


class NoSuchIntercept(StateError):
    code = "NOT_FOUND"


class InterceptExists(StateError):
    code = "ALREADY_EXISTS"


class InterceptClash(StateError):
    code = "FAILED_PRECONDITION"


class NoClient(StateError):
    code = "UNAVAILABLE"


class InterceptGone(NoClient):
    """The intercept an agent dials for was removed (a leave, an expiry)."""


@dataclass
class TrafficWatch:
    """One WatchTraffic stream of a client: a bounded queue, oldest rows dropped."""

    intercept_names: frozenset[str]
    include_unmatched: bool
    queue: collections.deque[Any]
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: int = 0


@dataclass
class Session:
    id: str
    kind: str  # "client" | "agent"
    last_seen: float
    client: Any = None  # pb.ClientInfo
    agent: Any = None  # pb.AgentInfo
    dials: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    dial_receivers: int = 0
    traffic: list[TrafficWatch] = field(default_factory=list)
    owner: str = ""  # the authenticated identity that arrived (auth.Caller.key)
    username: str = ""  # its Kubernetes username, shown to other developers
    # proves a raw dial comes from the owner (told only in the ArriveAsClient answer)
    dial_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    @property
    def workload(self) -> tuple[str, str]:
        return (self.agent.namespace, self.agent.name) if self.agent else ("", "")

    @property
    def namespace(self) -> str:
        return str(self.client.namespace) if self.client else str(self.agent.namespace)


@dataclass
class PendingDial:
    client_session: str
    future: asyncio.Future[Any]


def check_spec(spec: Any) -> None:
    """The shared intercept-spec check (tp_protocol.intercept_spec) as INVALID_ARGUMENT."""
    try:
        intercept_spec.validate(spec)
    except intercept_spec.InvalidInterceptSpec as exc:
        raise InterceptInvalid(str(exc)) from exc


def _set_link_pods(ic: Any, agents: list[Session]) -> None:
    """The agent pods that serve direct links for `ic` (manager.proto "Agent links")."""
    pods = sorted({(a.agent.namespace, a.agent.pod_name, a.agent.link_port)
                   for a in agents if a.agent.link_port})
    if [(p.namespace, p.pod, p.port) for p in ic.link_pods] != pods:
        del ic.link_pods[:]
        ic.link_pods.extend(pb.AgentLinkPod(namespace=n, pod=p, port=port)
                            for n, p, port in pods)


def agent_skew(agent: Any) -> str:
    """One line when an agent's version is not the manager's ("" when equal)."""
    return version_skew(
        f"traffic-agent of pod {agent.pod_name}", agent.version, "traffic-manager", VERSION,
        f"run `tp uninstall --agent {agent.name} -n {agent.namespace}` and intercept again; "
        f"if it stays, reinstall with `tp uninstall --everything` and `tp connect "
        f"--agent-image` of {VERSION}")


class State:
    """Sessions with a TTL and the intercepts they own.

    `gated`: the manager can see the cluster, so an agent's ACTIVE review only marks the
    intercept as taken; `dispose` (the dispositions loop) makes it ACTIVE once the
    Service reaches only agent pods. Ungated (no Kubernetes access) the review decides.
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic,
                 gated: bool = False) -> None:
        self.ttl = ttl
        self.clock = clock
        self.gated = gated
        self.sessions: dict[str, Session] = {}
        self.intercepts: dict[str, Any] = {}  # id -> pb.InterceptInfo
        self.taken: set[str] = set()  # intercept ids an agent reviewed ACTIVE
        # what an ACTIVE disposition says (an agent's version skew), by intercept id
        self.active_notes: dict[str, str] = {}
        self.pending: dict[str, PendingDial] = {}
        # mirror id -> agent pod -> (copied, dropped): each agent reports its own totals
        self.mirror_counts: dict[str, dict[str, tuple[int, int]]] = {}
        self.version = 0
        self._changed = asyncio.Event()
        self._dial_ids = itertools.count(1)

    # --- change notification ----------------------------------------------------------

    def _bump(self) -> None:
        # swap the event so that each waiter sees exactly the changes after its snapshot
        self.version += 1
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def wait_change(self, seen: int) -> int:
        """Wait until `version` differs from `seen`; returns the new version."""
        if self.version == seen:
            await self._changed.wait()
        return self.version

    # --- sessions ---------------------------------------------------------------------

    def arrive_client(self, info: Any, owner: str = "", username: str = "") -> Session:
        session = Session(id=f"c-{uuid.uuid4().hex[:16]}", kind="client",
                          last_seen=self.clock(), client=info, owner=owner, username=username)
        self.sessions[session.id] = session
        log.info("client %s arrived (namespace %s, version %s) as %s",
                 info.name, info.namespace, info.version, session.id)
        self._bump()
        return session

    def arrive_agent(self, info: Any, owner: str = "", username: str = "") -> Session:
        session = Session(id=f"a-{uuid.uuid4().hex[:16]}", kind="agent",
                          last_seen=self.clock(), agent=info, owner=owner, username=username)
        self.sessions[session.id] = session
        log.info("agent %s.%s (pod %s, version %s) arrived as %s",
                 info.name, info.namespace, info.pod_name, info.version, session.id)
        self._refresh_intercept_states()
        self._bump()
        return session

    def get(self, session_id: str, kind: str | None = None,
            owner: str | None = None) -> Session:
        """The live session (touched: any call counts as a sign of life); with `owner`,
        only when that identity arrived as it."""
        session = self.sessions.get(session_id)
        if session is None or (kind and session.kind != kind):
            what = f"{kind} session" if kind else "session"
            raise SessionNotFound(f"unknown or expired {what} {session_id!r}: arrive again")
        if owner is not None and session.owner != owner:
            # no touch: a stranger's calls must not keep someone else's session alive
            raise NotYourSession(f"session {session_id!r} belongs to another identity: "
                                 "arrive as yourself")
        session.last_seen = self.clock()
        return session

    def depart(self, session_id: str, reason: str = "departed") -> None:
        session = self.sessions.pop(session_id, None)
        if session is None:
            return
        log.info("%s session %s %s", session.kind, session_id, reason)
        if session.kind == "client":
            for iid in [i for i, ic in self.intercepts.items() if ic.client_session == session_id]:
                del self.intercepts[iid]
                log.info("intercept %s removed: its client %s", iid, reason)
            for dial_id, pending in list(self.pending.items()):
                if pending.client_session == session_id:
                    del self.pending[dial_id]
                    if not pending.future.done():
                        pending.future.set_exception(NoClient(f"client {reason}"))
        for watch in session.traffic:
            watch.wakeup.set()
        self._refresh_intercept_states()
        self._bump()

    def expire(self) -> list[str]:
        """Depart every session silent for longer than the TTL; returns their ids."""
        deadline = self.clock() - self.ttl
        expired = [sid for sid, s in self.sessions.items() if s.last_seen < deadline]
        for sid in expired:
            self.depart(sid, reason="expired")
        return expired

    # --- intercepts -------------------------------------------------------------------

    def _agents_of(self, namespace: str, workload: str) -> list[Session]:
        return [s for s in self.sessions.values()
                if s.kind == "agent" and s.workload == (namespace, workload)]

    def has_agent(self, namespace: str, workload: str) -> bool:
        """Whether a traffic-agent of the workload has arrived (and not departed)."""
        return bool(self._agents_of(namespace, workload))

    def remove_workload_intercepts(self, namespace: str, workload: str,
                                   reason: str) -> list[str]:
        """Drop every intercept of the workload (all clients); returns their ids."""
        gone = [iid for iid, ic in self.intercepts.items()
                if (ic.spec.namespace, ic.spec.workload) == (namespace, workload)]
        for iid in gone:
            del self.intercepts[iid]
            log.info("intercept %s removed: %s", iid, reason)
        if gone:
            self._bump()
        return gone

    def _refresh_intercept_states(self) -> None:
        self.taken &= set(self.intercepts)
        self.active_notes = {k: v for k, v in self.active_notes.items() if k in self.taken}
        for ic in self.intercepts.values():
            agents = self._agents_of(ic.spec.namespace, ic.spec.workload)
            has_agent = bool(agents)
            _set_link_pods(ic, agents)
            if not has_agent and ic.state != S.INTERCEPT_STATE_NO_AGENT:
                self.taken.discard(ic.id)
                ic.state = S.INTERCEPT_STATE_NO_AGENT
                ic.message = (f"{ic.spec.workload}.{ic.spec.namespace} has no traffic-agent; "
                              "it becomes active when one arrives")
            elif has_agent and ic.state in (S.INTERCEPT_STATE_NO_AGENT,
                                            S.INTERCEPT_STATE_UNSPECIFIED):
                ic.state = S.INTERCEPT_STATE_WAITING
                ic.message = "waiting for the traffic-agent to take it"

    def create_intercept(self, session_id: str, spec: Any) -> Any:
        session = self.get(session_id, "client")
        spec = type(spec).FromString(spec.SerializeToString())
        check_spec(spec)
        if not spec.namespace:
            raise InterceptInvalid("an intercept needs a namespace: give -n NAMESPACE")
        spec.name = spec.name or f"{spec.workload}-{spec.namespace}" + (
            "-wiretap" if spec.mirror else "")
        spec.client = session.client.name
        spec.owner = session.username
        spec.target_host = spec.target_host or "127.0.0.1"
        if spec.mechanism == pb.MECHANISM_UNSPECIFIED:
            spec.mechanism = pb.MECHANISM_HTTP if (
                spec.header_matches or spec.mirror or intercept_spec.has_filters(spec)
            ) else pb.MECHANISM_TCP
        iid = f"{session_id}:{spec.name}"
        if iid in self.intercepts:
            raise InterceptExists(f"you already have an intercept named {spec.name!r}: "
                                  "leave it first or choose another --name")
        for other in self.intercepts.values():
            same_port = (other.spec.namespace, other.spec.workload, other.spec.service_port) == (
                spec.namespace, spec.workload, spec.service_port)
            mirror = spec.mirror or other.spec.mirror   # a copy takes nothing away
            if same_port and not mirror and pb.MECHANISM_TCP in (other.spec.mechanism,
                                                                 spec.mechanism):
                raise InterceptClash(
                    f"{spec.workload}.{spec.namespace} is already intercepted by "
                    f"{other.spec.name!r} of {other.spec.client}: a global intercept excludes "
                    "others; leave it or use --http-match")
        # the key a daemon shows an agent on a direct link ("Agent links")
        info = pb.InterceptInfo(spec=spec, id=iid, client_session=session_id,
                                state=S.INTERCEPT_STATE_UNSPECIFIED,
                                link_key=secrets.token_urlsafe(24))
        now = timestamp_pb2.Timestamp()
        now.GetCurrentTime()
        info.created.CopyFrom(now)
        self.intercepts[iid] = info
        self._refresh_intercept_states()
        log.info("intercept %s created (%s)", iid, S.Name(info.state))
        self._bump()
        return info

    def remove_intercept(self, session_id: str, name: str) -> None:
        self.get(session_id, "client")
        iid = f"{session_id}:{name}"
        if self.intercepts.pop(iid, None) is None:
            raise NoSuchIntercept(f"no intercept named {name!r}: see `tp list` for yours")
        log.info("intercept %s removed", iid)
        self._bump()

    def client_snapshot(self, session_id: str) -> list[Any]:
        return [ic for ic in self.intercepts.values() if ic.client_session == session_id]

    def agent_snapshot(self, session_id: str) -> list[Any]:
        session = self.sessions.get(session_id)
        if session is None:
            return []
        ns, name = session.workload
        return [ic for ic in self.intercepts.values()
                if (ic.spec.namespace, ic.spec.workload) == (ns, name)]

    def review(self, session_id: str, request: Any) -> None:
        session = self.get(session_id, "agent")
        ic = self.intercepts.get(request.intercept_id)
        if ic is None or (ic.spec.namespace, ic.spec.workload) != session.workload:
            raise NoSuchIntercept(f"no intercept {request.intercept_id!r} for this agent")
        if request.state not in (S.INTERCEPT_STATE_ACTIVE, S.INTERCEPT_STATE_AGENT_ERROR):
            raise InterceptInvalid("an agent reviews an intercept as ACTIVE or AGENT_ERROR")
        skew = agent_skew(session.agent)
        if request.state == S.INTERCEPT_STATE_ACTIVE and self.gated:
            self.taken.add(ic.id)
            self.active_notes[ic.id] = skew
            if ic.state != S.INTERCEPT_STATE_ACTIVE:
                ic.state = S.INTERCEPT_STATE_WAITING
                ic.message = ("the traffic-agent took it; waiting until the service reaches "
                              "only pods with the agent")
            else:  # a replaced agent pod took it again: say if its version differs
                ic.message = skew
        else:
            ic.state = request.state
            ic.message = request.message or skew
        ic.agent_pod = f"{session.agent.pod_name}.{session.agent.namespace}"
        ic.pod_ip = request.pod_ip or session.agent.pod_ip
        ic.volumes_port = request.volumes_port
        ic.volumes_token = request.volumes_token
        ic.sftp_port = request.sftp_port
        ic.environment.clear()
        ic.environment.update(request.environment)
        del ic.mounts[:]
        ic.mounts.extend(request.mounts)
        self._bump()

    def dispose(self, iid: str, state: Any, message: str) -> None:
        """Set an intercept's disposition (the manager's own verdict); no-op if unchanged."""
        ic = self.intercepts.get(iid)
        if ic is None:
            return
        if state == S.INTERCEPT_STATE_ACTIVE and not message:
            message = self.active_notes.get(iid, "")
        if (ic.state, ic.message) == (state, message):
            return
        log.info("intercept %s is %s%s", iid, S.Name(state), f": {message}" if message else "")
        ic.state = state
        ic.message = message
        self._bump()

    # --- intercepted connections ------------------------------------------------------

    def request_dial(self, agent_session: str, to_client: Any) -> tuple[Any, asyncio.Future[Any]]:
        """Ask the intercept's client for a connection; the future gets its endpoint."""
        agent = self.get(agent_session, "agent")
        ic = self.intercepts.get(to_client.intercept_id)
        if ic is None or (ic.spec.namespace, ic.spec.workload) != agent.workload:
            raise InterceptGone(f"intercept {to_client.intercept_id!r} is gone")
        client = self.sessions.get(ic.client_session)
        if client is None or client.dial_receivers == 0:
            raise NoClient(f"the client of intercept {ic.spec.name!r} is not receiving dials")
        dial_id = f"d-{next(self._dial_ids)}-{uuid.uuid4().hex[:8]}"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[dial_id] = PendingDial(client.id, future)
        client.dials.put_nowait(pb.DialRequest(
            dial_id=dial_id, intercept_id=ic.id, target_host=ic.spec.target_host,
            target_port=ic.spec.target_port, source_ip=to_client.source_ip,
            source_port=to_client.source_port))
        return dial_id, future

    def accept_dial(self, client_session: str, dial_id: str) -> asyncio.Future[Any]:
        self.get(client_session, "client")
        pending = self.pending.get(dial_id)
        if pending is None or pending.client_session != client_session:
            raise NoClient(f"dial {dial_id!r} is not pending for this client (timed out?)")
        del self.pending[dial_id]
        return pending.future

    def forget_dial(self, dial_id: str) -> None:
        self.pending.pop(dial_id, None)

    # --- traffic ----------------------------------------------------------------------

    def mirror_counters(self, agent: Session, counters: Any) -> None:
        """An agent's totals per mirror of its workload, summed into the InterceptInfo."""
        changed = False
        for c in counters:
            ic = self.intercepts.get(c.intercept_id)
            if ic is None or (ic.spec.namespace, ic.spec.workload) != agent.workload:
                continue
            per_pod = self.mirror_counts.setdefault(ic.id, {})
            per_pod[agent.agent.pod_name] = (c.copied, c.dropped)
            copied = sum(v[0] for v in per_pod.values())
            dropped = sum(v[1] for v in per_pod.values())
            if (ic.mirror_copied, ic.mirror_dropped) != (copied, dropped):
                ic.mirror_copied, ic.mirror_dropped = copied, dropped
                changed = True
        for iid in [i for i in self.mirror_counts if i not in self.intercepts]:
            del self.mirror_counts[iid]
        if changed:
            self._bump()

    def publish_traffic(self, record: Any, agent: Session | None = None) -> None:
        """Hand a row to every client watch that wants it (bounded; oldest dropped).
        From `agent`, only rows of its own workload count (an agent reports only those)."""
        if agent is not None and (record.namespace, record.workload) != agent.workload:
            log.warning("agent %s reported traffic of %s.%s, not its own workload: dropped",
                        agent.id, record.workload, record.namespace)
            return
        owner_ic = self.intercepts.get(record.intercept_id) if record.intercept_id else None
        if record.client_session and (owner_ic is None
                                      or owner_ic.client_session != record.client_session):
            # only the owner of the intercept that matched may see the row
            if owner_ic is None:
                return  # its intercept is gone: nobody's to see
            record.client_session = owner_ic.client_session
        # Every client intercepting the workload sees its unmatched rows: personal
        # intercepts of several developers share one workload.
        watchers: dict[tuple[str, str], set[str]] = {}
        for ic in self.intercepts.values():
            watchers.setdefault((ic.spec.namespace, ic.spec.workload), set()).add(
                ic.client_session)
        interested = watchers.get((record.namespace, record.workload), set())
        for session in self.sessions.values():
            for watch in session.traffic:
                owner = record.client_session == session.id
                unmatched = (not record.client_session and watch.include_unmatched
                             and session.id in interested)
                if not (owner or unmatched):
                    continue
                if watch.intercept_names and record.intercept_name not in watch.intercept_names:
                    continue
                if len(watch.queue) == watch.queue.maxlen:
                    watch.dropped += 1
                watch.queue.append(record)
                watch.wakeup.set()
