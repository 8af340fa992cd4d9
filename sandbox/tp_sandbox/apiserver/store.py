"""In-memory object store: objects, one global resourceVersion counter, a bounded
event history and the live watchers of each resource type.

Stored dicts are never mutated after `put`: every write stores a fresh dict, so the
history and the watch queues can share references without copying.

Single-threaded by design (the asyncio loop of the API server); snapshot-and-register
in `watch` happens without an await so no event can slip between the two.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tp_sandbox.apiserver import errors
from tp_sandbox.apiserver.resources import ResourceType

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Matcher = Callable[[Obj], bool]


@dataclass
class Event:
    """One change: `old` is the previous state for MODIFIED (used to turn a selector
    crossing into ADDED/DELETED for filtered watches)."""

    type: str  # ADDED | MODIFIED | DELETED
    rt: ResourceType
    obj: Obj
    old: Obj | None
    rv: int


@dataclass(eq=False)
class Watcher:
    rt: ResourceType
    namespace: str | None
    match: Matcher
    queue: asyncio.Queue[tuple[str, Obj] | None] = field(default_factory=asyncio.Queue)
    closed: bool = False

    def offer(self, ev: Event) -> None:
        """Queue `ev` as this watcher sees it through its namespace and selectors."""
        if self.closed:
            return
        if self.namespace is not None and ns_of(ev.obj) != self.namespace:
            return
        now = self.match(ev.obj)
        if ev.type == "MODIFIED":
            before = ev.old is not None and self.match(ev.old)
            if now and not before:
                self.queue.put_nowait(("ADDED", ev.obj))
            elif before and not now:
                self.queue.put_nowait(("DELETED", ev.obj))
            elif now:
                self.queue.put_nowait(("MODIFIED", ev.obj))
        elif now:
            self.queue.put_nowait((ev.type, ev.obj))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(None)


def ns_of(obj: Obj) -> str:
    return str(obj.get("metadata", {}).get("namespace") or "")


def name_of(obj: Obj) -> str:
    return str(obj.get("metadata", {}).get("name") or "")


class Store:
    def __init__(self, history: int, queue_limit: int) -> None:
        self._objects: dict[ResourceType, dict[tuple[str, str], Obj]] = {}
        self._history: deque[Event] = deque(maxlen=history)
        self._watchers: dict[ResourceType, set[Watcher]] = {}
        self._queue_limit = queue_limit
        self.rv = 1
        # A watch may resume from any RV >= floor; older ones get 410 Expired.
        self.floor = 1

    # -- reads ---------------------------------------------------------------
    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj | None:
        return self._objects.get(rt, {}).get((namespace, name))

    def list(self, rt: ResourceType, namespace: str | None = None) -> list[Obj]:
        objs = self._objects.get(rt, {})
        keys = sorted(k for k in objs if namespace is None or k[0] == namespace)
        return [objs[k] for k in keys]

    def all_objects(self) -> Iterator[tuple[ResourceType, Obj]]:
        for rt, objs in self._objects.items():
            for obj in objs.values():
                yield rt, obj

    # -- writes --------------------------------------------------------------
    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def put(self, rt: ResourceType, obj: Obj) -> Obj:
        """Store `obj` (a fresh dict owned by the store from now on) with a new RV."""
        key = (ns_of(obj), name_of(obj))
        objs = self._objects.setdefault(rt, {})
        old = objs.get(key)
        obj.setdefault("metadata", {})["resourceVersion"] = self._next_rv()
        objs[key] = obj
        self._emit(Event("ADDED" if old is None else "MODIFIED", rt, obj, old, self.rv))
        return obj

    def remove(self, rt: ResourceType, obj: Obj) -> Obj:
        """Delete the object; the DELETED event carries it with the deletion's RV."""
        key = (ns_of(obj), name_of(obj))
        old = self._objects.get(rt, {}).pop(key, None)
        if old is None:
            raise errors.NotFound.of(rt.plural, rt.group, key[1])
        gone = {**old, "metadata": {**old["metadata"], "resourceVersion": self._next_rv()}}
        self._emit(Event("DELETED", rt, gone, None, self.rv))
        return gone

    def _emit(self, ev: Event) -> None:
        if len(self._history) == self._history.maxlen:
            self.floor = self._history[0].rv
        self._history.append(ev)
        for w in list(self._watchers.get(ev.rt, ())):
            w.offer(ev)
            if w.queue.qsize() > self._queue_limit:
                # A client that does not read is cut off; it re-lists like after any drop.
                log.warning("watch on %s fell %d events behind; closing it",
                            ev.rt.plural, w.queue.qsize())
                self.unwatch(w)

    # -- watches -------------------------------------------------------------
    def watch(self, rt: ResourceType, namespace: str | None, match: Matcher,
              since: int | None) -> Watcher:
        """Register a watcher. `since` None: ADDED for every current object first;
        else replay history after `since` (410 when it is older than the history)."""
        w = Watcher(rt, namespace, match)
        if since is None:
            for obj in self.list(rt, namespace):
                if match(obj):
                    w.queue.put_nowait(("ADDED", obj))
        else:
            if since < self.floor:
                raise errors.Gone(f"too old resource version: {since} ({self.floor})")
            for ev in self._history:
                if ev.rv > since and ev.rt == rt:
                    w.offer(ev)
        self._watchers.setdefault(rt, set()).add(w)
        return w

    def unwatch(self, w: Watcher) -> None:
        self._watchers.get(w.rt, set()).discard(w)
        w.close()

    def close_all(self) -> None:
        for ws in self._watchers.values():
            for w in list(ws):
                w.close()
            ws.clear()
