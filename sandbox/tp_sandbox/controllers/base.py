"""The shape every controller shares: informers feed keys into a work queue,
named worker threads run `sync(key)`, failures are logged and retried with back-off."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from tp_protocol.settings import ControllerSettings

from . import errors
from .kube import Kube, Obj
from .machinery import EventRecorder, Expectations, Informer, Informers, WorkQueue
from .objects import controller_ref, key_of

log = logging.getLogger(__name__)


@dataclass
class Context:
    kube: Kube
    informers: Informers
    settings: ControllerSettings


class Controller:
    """Subclasses set `name`, subscribe to informers in `__init__`, implement `sync`."""

    name = "controller"
    component = ""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.kube = ctx.kube
        self.settings = ctx.settings
        self.queue = WorkQueue(self.name, ctx.settings.retry_backoff_initial,
                               ctx.settings.retry_backoff_max)
        self.recorder = EventRecorder(ctx.kube, self.component or self.name)
        self._needs: list[Informer] = []
        self._threads: list[threading.Thread] = []

    def informer(self, res_informer: Informer) -> Informer:
        self._needs.append(res_informer)
        return res_informer

    def enqueue(self, obj: Obj) -> None:
        self.queue.add(key_of(obj))

    def sync(self, key: str) -> None:
        raise NotImplementedError

    def start(self) -> None:
        for i in range(max(1, self.settings.workers)):
            t = threading.Thread(target=self._worker, name=f"{self.name}-worker-{i}",
                                 daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self.queue.shutdown()

    def join(self, timeout: float) -> None:
        for t in self._threads:
            t.join(timeout)
            if t.is_alive():
                log.warning("%s did not stop within %.1fs", t.name, timeout)

    def _wait_synced(self) -> bool:
        for inf in self._needs:
            while not inf.synced.wait(0.5):
                if self.queue.get_is_shutdown():
                    return False
        return True

    def _worker(self) -> None:
        if not self._wait_synced():
            return
        while (key := self.queue.get()) is not None:
            try:
                self.sync(key)
                self.queue.forget(key)
            except (errors.Conflict, errors.AlreadyExists, errors.NotFound) as exc:
                # the cache was stale: normal, retry quietly
                delay = self.queue.retry(key)
                log.debug("%s %s: %s; retry in %.2fs", self.name, key, exc, delay)
            except errors.KubeError as exc:
                delay = self.queue.retry(key)
                # a namespace being deleted refuses new objects until it is gone
                quiet = exc.status == 403 and "being terminated" in exc.message
                log.log(logging.DEBUG if quiet else logging.WARNING,
                        "%s %s: %s; retry in %.2fs", self.name, key, exc, delay)
            except errors.ControllerError as exc:
                delay = self.queue.retry(key)
                log.warning("%s %s: %s; retry in %.2fs", self.name, key, exc, delay)
            except Exception:
                delay = self.queue.retry(key)
                log.exception("%s %s failed; retry in %.2fs", self.name, key, delay)
            finally:
                self.queue.done(key)


class PodOwnerController(Controller):
    """A controller of pods that name it in their controller reference (`owner_kind`):
    each pod event wakes its owner, and a pod that appears fulfils one expected create."""

    owner_kind = ""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.expectations = Expectations(ctx.settings.expectations_timeout)

    def _owner_key(self, pod: Obj) -> str | None:
        ref = controller_ref(pod)
        if ref and ref.get("kind") == self.owner_kind:
            return f"{pod['metadata']['namespace']}/{ref['name']}"
        return None

    def _pod_added(self, pod: Obj) -> None:
        owner = self._owner_key(pod)
        if owner:
            self.expectations.created(owner)
            self.queue.add(owner)

    def _pod_event(self, pod: Obj) -> None:
        owner = self._owner_key(pod)
        if owner:
            self.queue.add(owner)
