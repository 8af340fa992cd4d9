"""Heavy imports off the daemon's start path, in named background threads.

The daemon answers on its socket with only gRPC and the protocol stubs imported; what
`connect` needs (`tp_daemon.session`: ~40 ms of CPU, since a static kubeconfig is read
without the official client, `tp_daemon.kubestatic`) is imported by a `Preload` thread
meanwhile, and the RPCs that need it await `Preload.wait()`. The port-forward is
imported by a preload that `connect` starts as soon as it knows it will use one (a direct
connect never needs it), and the resolver's DNS library by another, so both import while
connect waits on its first network round trips (routing uses iproute2's `ip`, not
pyroute2); the intercept bookkeeping once connect answered; aiohttp (for its C WebSocket
mask) only once a port-forward sends a large frame (`tp_daemon.podws`). The
official client is not on a static context's connect path at all: its kubeconfig
loader serves the other contexts, and its API modules (~250 pydantic models, 0.5-1 s)
are imported by `tp list`/`tp intercept` on first use, in their worker thread. They
are not warmed after connect on purpose: the import holds the GIL in long C calls and
stalled the fresh tunnel (p99 2 ms -> 50 ms).

The main thread imports what it shares with a preload (grpc, the stubs) before starting
it: Python's per-module import locks make concurrent imports safe, but a module half
imported by another thread is best not raced for.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import importlib
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence

log = logging.getLogger(__name__)

def resume_gc() -> None:
    """The cyclic collector back on after the start's imports (`__main__` turned it off):
    called when the first connect ended, and by a timer (`connect.daemon_start_gc_pause`)
    for a daemon never asked to connect. Idempotent. What the start allocated (modules,
    classes) is frozen first, so later full collections do not scan it again."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
        log.info("garbage collector on after the start's imports")


_C_SET_DEFAULT_VERIFY_PATHS = ssl.SSLContext.set_default_verify_paths
_patch_lock = threading.Lock()


@contextlib.contextmanager
def no_default_cas_in_this_thread() -> Iterator[None]:
    """TLS contexts made by this thread meanwhile get no system CA bundle.

    aiohttp builds two default contexts when imported, each parsing the system bundle
    (~150 certificates: 50-60 ms of CPU in all, most of its import). The daemon never uses
    them: every request it makes passes the kubeconfig's own context
    (`Kube.endpoint`), so they stay empty and would refuse any server (fail closed).
    Other threads' contexts are untouched (`load_default_certs` goes through
    `set_default_verify_paths`, which checks the calling thread)."""
    me = threading.get_ident()

    def set_default_verify_paths(self: ssl.SSLContext) -> None:
        if threading.get_ident() != me:
            _C_SET_DEFAULT_VERIFY_PATHS(self)

    with _patch_lock:
        ssl.SSLContext.set_default_verify_paths = set_default_verify_paths  # type: ignore[method-assign]
        try:
            yield
        finally:
            del ssl.SSLContext.set_default_verify_paths  # the C method again


CONNECT_MODULES = ("tp_daemon.session",)
"""What `connect` needs; `tp_daemon.session` imports the adapter, tunnel, proxy, routing."""


class Preload:
    """Imports `modules` once in a named daemon thread; failures are logged and re-raised
    by `wait()` (a daemon thread: an import still running never holds up the exit)."""

    def __init__(self, modules: Sequence[str], name: str, *,
                 after: Preload | Sequence[Preload | None] | None = None,
                 default_cas: bool = True,
                 then: Callable[[], object] | None = None) -> None:
        self.modules = tuple(modules)
        self.name = name
        # imports once those are done: what is needed first goes first
        self._after = [p for p in (after if isinstance(after, Sequence) else [after])
                       if p is not None]
        self._default_cas = default_cas  # False: `no_default_cas_in_this_thread`
        self._then = then  # run in the thread once imported (a failure is only logged)
        self._done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Preload:
        self._thread.start()
        return self

    @property
    def started(self) -> bool:
        return self._thread.ident is not None

    def _run(self) -> None:
        if self._after:  # their failures are their waiters' to report
            concurrent.futures.wait([p._done for p in self._after])
        start = time.monotonic()
        try:
            with (contextlib.nullcontext() if self._default_cas
                  else no_default_cas_in_this_thread()):
                for module in self.modules:
                    importlib.import_module(module)
            log.info("%s: imported %s in %.2f s", self.name, ", ".join(self.modules),
                     time.monotonic() - start)
        except BaseException as e:  # an ImportError here must reach the RPC that waits
            log.exception("%s: importing %s failed", self.name, ", ".join(self.modules))
            self._done.set_exception(e)
        else:
            self._done.set_result(None)
            if self._then is not None:
                try:
                    self._then()
                except Exception:
                    log.exception("%s: after the import", self.name)

    async def wait(self) -> None:
        """Until every module is imported (raises what the import raised)."""
        await asyncio.wrap_future(self._done)

