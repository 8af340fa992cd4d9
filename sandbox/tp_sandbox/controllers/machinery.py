"""Informers, work queues, expectations and the event recorder shared by all
controllers -- the client-go machinery, in threads.

An `Informer` lists then watches one resource from the list's resourceVersion into
a cache and calls handlers; a 410 (or a broken stream) leads to a relist whose
differences are replayed as add/update/delete. Each watch lasts `resync_interval`,
after which every cached object is replayed as an update (the resync).
"""

from __future__ import annotations

import heapq
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from tp_protocol.settings import ControllerSettings

from ..eventlog import Aggregator
from . import errors
from .kube import EVENTS, Kube, Obj, Res
from .objects import key_of

log = logging.getLogger(__name__)


class Handler(Protocol):
    def on_add(self, obj: Obj) -> None: ...
    def on_update(self, old: Obj, new: Obj) -> None: ...
    def on_delete(self, obj: Obj) -> None: ...


class FuncHandler:
    """A Handler from callables (missing ones do nothing)."""

    def __init__(self, add: Callable[[Obj], None] | None = None,
                 update: Callable[[Obj, Obj], None] | None = None,
                 delete: Callable[[Obj], None] | None = None) -> None:
        self._add, self._update, self._delete = add, update, delete

    def on_add(self, obj: Obj) -> None:
        if self._add:
            self._add(obj)

    def on_update(self, old: Obj, new: Obj) -> None:
        if self._update:
            self._update(old, new)

    def on_delete(self, obj: Obj) -> None:
        if self._delete:
            self._delete(obj)


class Informer:
    """List+watch of one resource into a cache, shared by every controller using it."""

    def __init__(self, kube: Kube, res: Res, settings: ControllerSettings) -> None:
        self.kube, self.res, self.settings = kube, res, settings
        self._lock = threading.RLock()
        self._store: dict[str, Obj] = {}
        self._handlers: list[Handler] = []
        self._stop = threading.Event()
        self._stream: Any = None
        self.synced = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"informer-{res}", daemon=True)

    def add_handler(self, handler: Handler) -> None:
        with self._lock:
            self._handlers.append(handler)
            items = list(self._store.values())
        for obj in items:  # late subscribers see what is already known
            self._call(handler.on_add, obj)

    def items(self) -> list[Obj]:
        with self._lock:
            return list(self._store.values())

    def get(self, key: str) -> Obj | None:
        with self._lock:
            return self._store.get(key)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.close()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("informer %s did not stop within %.1fs", self.res, timeout)

    def _call(self, fn: Callable[..., None], *args: Obj) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("handler for %s failed", self.res)

    def _dispatch(self, kind: str, obj: Obj) -> None:
        key = key_of(obj)
        with self._lock:
            old = self._store.get(key)
            if kind == "DELETED":
                self._store.pop(key, None)
            else:
                self._store[key] = obj
            handlers = list(self._handlers)
        for h in handlers:
            if kind == "DELETED":
                self._call(h.on_delete, obj)
            elif old is None:
                self._call(h.on_add, obj)
            else:
                self._call(h.on_update, old, obj)

    def _relist(self) -> str:
        items, rv = self.kube.list_all(self.res)
        fresh = {key_of(o): o for o in items}
        with self._lock:
            gone = [o for k, o in self._store.items() if k not in fresh]
        for obj in gone:
            self._dispatch("DELETED", obj)
        for obj in items:
            self._dispatch("MODIFIED", obj)
        self.synced.set()
        return rv

    def _resync(self) -> None:
        with self._lock:
            items = list(self._store.values())
            handlers = list(self._handlers)
        for obj in items:
            for h in handlers:
                self._call(h.on_update, obj, obj)

    def _run(self) -> None:
        backoff = self.settings.retry_backoff_initial
        rv = ""
        while not self._stop.is_set():
            try:
                if not rv:
                    rv = self._relist()
                self._stream = self.kube.watch(self.res, rv,
                                               max(1, int(self.settings.resync_interval)))
                if self._stop.is_set():
                    self._stream.close()
                for kind, obj in self._stream:
                    if self._stop.is_set():
                        break
                    new_rv = obj.get("metadata", {}).get("resourceVersion")
                    if kind == "BOOKMARK":
                        rv = new_rv or rv
                        continue
                    obj.setdefault("kind", self.res.kind)
                    obj.setdefault("apiVersion", self.res.api_version)
                    self._dispatch(kind, obj)
                    rv = new_rv or rv
                backoff = self.settings.retry_backoff_initial
                if not self._stop.is_set():
                    self._resync()
            except errors.Expired:
                log.info("watch of %s expired; relisting", self.res)
                rv = ""
            except errors.ControllerError as exc:
                if self._stop.is_set():
                    break
                log.warning("watch of %s failed (%s); retrying in %.1fs", self.res, exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.settings.retry_backoff_max)
                rv = ""  # relist: the window of lost events is unknown
            except Exception:
                log.exception("informer %s crashed; restarting", self.res)
                self._stop.wait(backoff)
                rv = ""
            finally:
                self._stream = None


class Informers:
    """One shared informer per resource."""

    def __init__(self, kube: Kube, settings: ControllerSettings) -> None:
        self.kube, self.settings = kube, settings
        self._by_res: dict[Res, Informer] = {}

    def get(self, res: Res) -> Informer:
        if res not in self._by_res:
            self._by_res[res] = Informer(self.kube, res, self.settings)
        return self._by_res[res]

    def all(self) -> list[Informer]:
        return list(self._by_res.values())


class WorkQueue:
    """A de-duplicating queue of keys (client-go's workqueue): a key is handed to at
    most one worker at a time; re-adds while processing are kept for afterwards;
    failed keys come back after an exponential, jittered delay."""

    def __init__(self, name: str, backoff_initial: float, backoff_max: float) -> None:
        self.name = name
        self._cond = threading.Condition()
        self._queue: list[str] = []
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._delayed: list[tuple[float, int, str]] = []
        self._seq = 0
        self._failures: dict[str, int] = {}
        self._shutdown = False
        self._backoff_initial, self._backoff_max = backoff_initial, backoff_max

    def add(self, key: str) -> None:
        with self._cond:
            if self._shutdown or key in self._dirty:
                return
            self._dirty.add(key)
            if key not in self._processing:
                self._queue.append(key)
                self._cond.notify()

    def add_after(self, key: str, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            self._seq += 1
            heapq.heappush(self._delayed, (time.monotonic() + delay, self._seq, key))
            self._cond.notify()

    def retry(self, key: str) -> float:
        """Re-add after the key's next back-off; returns the delay."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        delay: float = min(self._backoff_initial * (2.0 ** n), self._backoff_max)
        delay *= random.uniform(0.8, 1.2)  # jitter: no thundering herd
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def get(self) -> str | None:
        """Next key (blocks); None once shut down."""
        with self._cond:
            while True:
                if self._shutdown:
                    return None
                now = time.monotonic()
                while self._delayed and self._delayed[0][0] <= now:
                    _, _, key = heapq.heappop(self._delayed)
                    if key not in self._dirty:
                        self._dirty.add(key)
                        if key not in self._processing:
                            self._queue.append(key)
                if self._queue:
                    key = self._queue.pop(0)
                    self._processing.add(key)
                    self._dirty.discard(key)
                    return key
                timeout = self._delayed[0][0] - now if self._delayed else None
                self._cond.wait(timeout)

    def done(self, key: str) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
                self._cond.notify()

    def shutdown(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    def get_is_shutdown(self) -> bool:
        with self._cond:
            return self._shutdown

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)


class Expectations:
    """Creations/deletions a controller has asked for but not yet seen in its
    informer (client-go ControllerExpectations): until they are observed, or
    `timeout` passes, the controller must not act on its stale cache again."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._lock = threading.Lock()
        self._adds: dict[str, int] = {}
        self._dels: dict[str, set[str]] = {}
        self._since: dict[str, float] = {}

    def expect(self, key: str, adds: int = 0, deletes: set[str] | None = None) -> None:
        with self._lock:
            self._adds[key] = adds
            self._dels[key] = set(deletes or ())
            self._since[key] = time.monotonic()

    def created(self, key: str) -> None:
        with self._lock:
            if self._adds.get(key, 0) > 0:
                self._adds[key] -= 1

    def creation_failed(self, key: str) -> None:
        self.created(key)

    def deleted(self, key: str, pod_key: str) -> None:
        with self._lock:
            self._dels.get(key, set()).discard(pod_key)

    def satisfied(self, key: str) -> bool:
        with self._lock:
            if key not in self._since:
                return True
            if self._adds.get(key, 0) <= 0 and not self._dels.get(key):
                return True
            if time.monotonic() - self._since[key] > self._timeout:
                log.warning("expectations of %s timed out; resyncing from the cache", key)
                return True
            return False

    def forget(self, key: str) -> None:
        with self._lock:
            self._adds.pop(key, None)
            self._dels.pop(key, None)
            self._since.pop(key, None)


class EventRecorder:
    """Writes core/v1 Events as `kubectl describe` lists them, repeats aggregated into
    one Event's `count` (best effort: an event that cannot be written is logged, never
    fails the controller)."""

    def __init__(self, kube: Kube, component: str) -> None:
        self.kube, self.component = kube, component
        self.aggregator = Aggregator(component)

    def event(self, obj: Obj, etype: str, reason: str, message: str) -> None:
        write = self.aggregator.record(obj, etype, reason, message)
        try:
            if write.patch is None:
                self.kube.create(EVENTS, write.namespace, write.body)
                return
            try:
                self.kube.merge_patch(EVENTS, write.namespace, write.name, write.patch)
            except errors.NotFound:
                self.aggregator.forget(write)
                self.event(obj, etype, reason, message)
        except errors.ControllerError as exc:
            log.warning("could not record event %s on %s: %s", reason,
                        obj.get("metadata", {}).get("name"), exc)
