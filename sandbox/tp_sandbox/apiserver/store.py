"""Object store: objects, one global resourceVersion counter, a bounded event history
and the live watchers of each resource type; persisted to SQLite when given a path.

Stored dicts are never mutated after `put`: every write stores a fresh dict, so the
history and the watch queues can share references without copying.

Persistence (`Store(..., path=DIR/apiserver.db)`): every write is one SQLite
transaction (object row + history row) committed before the write returns, so
an API answer is never sent for a change that a restart could lose. WAL mode with
`synchronous` from the settings: NORMAL (the default) survives any crash of the
process, SIGKILL included, since a committed transaction is in the WAL file in the
kernel's page cache; only a machine crash can lose the last transactions (FULL
fsyncs each commit to survive that too, at a few ms per write). On start the
objects, the last `history` events, the resourceVersion counter and the oldest
resumable RV (`floor`) are loaded, so RVs stay monotonic and watches resume across
restarts; a watch from an RV below the floor gets 410 Gone as on a real server.

Single-threaded by design (the asyncio loop of the API server); snapshot-and-register
in `watch` happens without an await so no event can slip between the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tp_sandbox.apiserver import errors
from tp_sandbox.apiserver.resources import ResourceType, by_plural

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


_SEP = (",", ":")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (rt TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL,
                                    body TEXT NOT NULL, PRIMARY KEY (rt, ns, name))
                                    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (rv INTEGER PRIMARY KEY, type TEXT NOT NULL,
                                   rt TEXT NOT NULL, body TEXT NOT NULL, old TEXT);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def _rt_key(rt: ResourceType) -> str:
    return f"{rt.group}/{rt.version}/{rt.plural}"


def _rt_of(key: str) -> ResourceType | None:
    group, version, plural = key.split("/")
    return by_plural(group, version, plural)


def _dump(obj: Obj) -> str:
    return json.dumps(obj, separators=_SEP)


class Store:
    def __init__(self, history: int, queue_limit: int, path: Path | None = None,
                 synchronous: str = "NORMAL") -> None:
        self._objects: dict[ResourceType, dict[tuple[str, str], Obj]] = {}
        self._history: deque[Event] = deque(maxlen=history)
        self._watchers: dict[ResourceType, set[Watcher]] = {}
        self._queue_limit = queue_limit
        self.rv = 1
        # A watch may resume from any RV >= floor; older ones get 410 Expired.
        self.floor = 1
        self._db: sqlite3.Connection | None = None
        self._in_batch = False
        self._since_trim = 0
        if path is not None:
            self._open(path, synchronous)

    @property
    def empty(self) -> bool:
        """No object at all: a fresh cluster that still needs its bootstrap objects."""
        return not any(self._objects.values())

    # -- persistence -----------------------------------------------------------
    def _open(self, path: Path, synchronous: str) -> None:
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"store synchronous mode {synchronous!r}: use NORMAL or FULL")
        # Autocommit mode: each write opens and commits its own transaction below.
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        db.executescript(_SCHEMA)
        self._db = db
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        self.rv = max(int(meta.get("rv", 1)), self.rv)
        self.floor = int(meta.get("floor", 1))
        for rt_key, body in db.execute("SELECT rt, body FROM objects"):
            rt = _rt_of(rt_key)
            if rt is None:
                log.warning("store: dropping objects of %s, a type no longer served", rt_key)
                continue
            obj = json.loads(body)
            self._objects.setdefault(rt, {})[(ns_of(obj), name_of(obj))] = obj
        maxlen = self._history.maxlen or 0
        rows = db.execute("SELECT rv, type, rt, body, old FROM events ORDER BY rv DESC "
                          "LIMIT ?", (maxlen + 1,)).fetchall()
        rows.reverse()
        if len(rows) > maxlen:
            self.floor = max(self.floor, int(rows[0][0]))
            rows = rows[1:]
        for rv, etype, rt_key, body, old in rows:
            rt = _rt_of(rt_key)
            if rt is not None:
                self._history.append(Event(etype, rt, json.loads(body),
                                           json.loads(old) if old else None, int(rv)))
            self.rv = max(self.rv, int(rv))
        log.info("store: loaded %d objects, %d events (rv %d, oldest resumable %d) from %s",
                 sum(len(o) for o in self._objects.values()), len(self._history), self.rv,
                 self.floor, path)

    def _persist(self, ev: Event, key: tuple[str, str]) -> None:
        """Write one change and its history row in one committed transaction."""
        db = self._db
        if db is None:
            return
        rk = _rt_key(ev.rt)
        body = _dump(ev.obj)
        if self._in_batch:
            self._write(db, ev, key, rk, body)
            return
        db.execute("BEGIN")
        try:
            self._write(db, ev, key, rk, body)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _write(self, db: sqlite3.Connection, ev: Event, key: tuple[str, str], rk: str,
               body: str) -> None:
        """The statements of one change, inside the caller's transaction."""
        if ev.type == "DELETED":
            db.execute("DELETE FROM objects WHERE rt=? AND ns=? AND name=?", (rk, *key))
        else:
            db.execute("INSERT OR REPLACE INTO objects VALUES (?,?,?,?)",
                       (rk, *key, body))
        db.execute("INSERT INTO events VALUES (?,?,?,?,?)",
                   (ev.rv, ev.type, rk, body,
                    _dump(ev.old) if ev.old is not None and ev.type == "MODIFIED"
                    else None))
        self._since_trim += 1
        maxlen = self._history.maxlen or 0
        if self._since_trim >= max(maxlen // 4, 1) and len(self._history) >= maxlen:
            # Rows older than the in-memory history can never be replayed again.
            self._since_trim = 0
            db.execute("DELETE FROM events WHERE rv < ?", (self.floor,))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('floor', ?)", (self.floor,))

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Commit every write inside as one transaction: all of them survive a crash or
        none does (the bootstrap objects, so that a crash while bootstrapping leaves an
        empty store that is bootstrapped again)."""
        if self._db is None or self._in_batch:
            yield
            return
        self._db.execute("BEGIN")
        self._in_batch = True
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        finally:
            self._in_batch = False

    def close(self) -> None:
        """Checkpoint and close the database (a SIGKILL skips this harmlessly)."""
        if self._db is not None:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('rv', ?)", (self.rv,))
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('floor', ?)", (self.floor,))
            self._db.close()
            self._db = None

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
        ev = Event("ADDED" if old is None else "MODIFIED", rt, obj, old, self.rv)
        try:
            self._persist(ev, key)
        except sqlite3.Error as exc:
            self.rv -= 1
            raise errors.ApiError(f"storage error: {exc}") from exc
        objs[key] = obj
        self._emit(ev)
        return obj

    def remove(self, rt: ResourceType, obj: Obj) -> Obj:
        """Delete the object; the DELETED event carries it with the deletion's RV."""
        key = (ns_of(obj), name_of(obj))
        old = self._objects.get(rt, {}).get(key)
        if old is None:
            raise errors.NotFound.of(rt.plural, rt.group, key[1])
        gone = {**old, "metadata": {**old["metadata"], "resourceVersion": self._next_rv()}}
        ev = Event("DELETED", rt, gone, None, self.rv)
        try:
            self._persist(ev, key)
        except sqlite3.Error as exc:
            self.rv -= 1
            raise errors.ApiError(f"storage error: {exc}") from exc
        del self._objects[rt][key]
        self._emit(ev)
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
