"""`python -m tp_daemon.root serve|supervise|cleanup --group G` (started by the service)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys

# it forks only to exec (ip, nft): no gRPC fork handlers (see tp_daemon.__main__)
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from tp_protocol.aio import wait_at_most
from tp_protocol.settings import get_settings

from tp_daemon.root import paths, service

log = logging.getLogger("tp_daemon.root")


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _serve(group: str) -> None:
    from tp_daemon.root.server import serve

    await serve(paths.socket_path(), group, _stop_event())


async def _supervise(group: str) -> None:
    """Run the root daemon, restart it when it dies, stop it on SIGTERM."""
    stop = _stop_event()
    settings = get_settings().root_daemon
    backoff = settings.restart_backoff
    while not stop.is_set():
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tp_daemon.root", "serve", "--group", group,
            stdin=asyncio.subprocess.DEVNULL)
        log.info("root daemon started (pid %d)", proc.pid)
        waiting = asyncio.ensure_future(proc.wait())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if stop.is_set():
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(waiting, settings.stop_timeout)
                except TimeoutError:
                    proc.kill()
                    await waiting
            break
        removed = await asyncio.to_thread(service.cleanup)
        log.error("root daemon exited with %s; removed %s; restarting in %.1fs",
                  proc.returncode, removed, backoff)
        await wait_at_most(stop.wait(), backoff)
        backoff = min(backoff * 2, settings.restart_backoff_max)
    await asyncio.to_thread(service.cleanup)
    log.info("supervisor stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tp_daemon.root")
    parser.add_argument("command", choices=["serve", "supervise", "cleanup"])
    parser.add_argument("--group", default=paths.DEFAULT_GROUP)
    args = parser.parse_args(argv)
    if args.command == "cleanup":
        service.cleanup()
        return 0
    paths.LOG_DIR.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        filename=str(paths.log_path()), level=os.environ.get("TP_LOG_LEVEL", "INFO"),
        format=f"%(asctime)s %(levelname)s {args.command}[%(process)d] %(name)s %(message)s")
    try:
        if args.command == "serve":
            asyncio.run(_serve(args.group))
            return 0
        paths.home().mkdir(parents=True, exist_ok=True, mode=0o755)
        paths.pid_path().write_text(str(os.getpid()), encoding="utf-8")
        try:
            asyncio.run(_supervise(args.group))
        finally:
            with contextlib.suppress(FileNotFoundError):
                paths.pid_path().unlink()
        return 0
    except Exception:
        log.exception("%s failed", args.command)
        return 1


if __name__ == "__main__":
    sys.exit(main())
