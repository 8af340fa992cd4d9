"""`python -m tp_daemon [--proxy-mode] [--ready-fd FD]`: the workstation daemon process.

One per user and network namespace (see `tp_daemon.paths`); a second one started
while the first answers exits at once. Logs go to the log file, SIGTERM/SIGINT
disconnect cleanly. With `--ready-fd`, the daemon writes one line to that inherited
pipe and closes it once its socket answers, so the starter waits on the pipe (EOF
without the line: the daemon died) instead of polling the socket.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
from pathlib import Path

from tp_protocol.bytecode import enable_cache

from tp_daemon import paths

# The daemon forks only to exec (ip, nft, sshfs). gRPC's fork handlers, run around such a
# fork while its threads are busy ("skipping fork() handlers"), could leave the daemon's
# server unable to answer: a fresh daemon then looked dead to `tp connect` (grpc/grpc#13873
# and kin). Read when gRPC loads, so set before anything imports it.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
# before the heavy imports: they load compiled code even under PYTHONDONTWRITEBYTECODE
enable_cache(paths.bytecode_cache())
# and run without the cyclic collector (tp_daemon.preload.resume_gc turns it back on)
gc.disable()

# kubernetes.dynamic imports kubernetes_validate (and with it jsonschema's format
# checkers) when it can, which costs seconds at start; the daemon never validates
# client-side, so it is hidden before anything imports the official client.
sys.modules.setdefault("kubernetes_validate", None)  # type: ignore[arg-type]

from tp_protocol.settings import get_settings  # noqa: E402

from tp_daemon import leftovers, routing  # noqa: E402,F401  (the preparation's, before the preload)
from tp_daemon.preload import CONNECT_MODULES, Preload  # noqa: E402
from tp_daemon.server import serve  # noqa: E402


def _socket_alive(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


def _signal_ready(fd: int | None) -> None:
    if fd is None:
        return
    try:
        os.write(fd, b"ready\n")
    except OSError as e:  # the starter gave up waiting; serving goes on
        logging.getLogger("tp_daemon").warning("could not signal readiness: %s", e)
    finally:
        os.close(fd)


async def _main(args: argparse.Namespace, preload: Preload) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(str(args.socket), get_settings().connect, force_proxy=args.proxy_mode,
                stop=stop, preload=preload, ready=lambda: _signal_ready(args.ready_fd))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tp_daemon")
    parser.add_argument("--proxy-mode", action="store_true",
                        help="use a SOCKS5 proxy instead of routes and DNS, even as root")
    parser.add_argument("--socket", type=Path, default=None, help="Unix socket path")
    parser.add_argument("--log-file", type=Path, default=None)
    parser.add_argument("--ready-fd", type=int, default=None, metavar="FD",
                        help="inherited pipe: one line is written once the socket answers")
    args = parser.parse_args(argv)
    args.socket = args.socket or paths.socket_path()
    log_file = args.log_file or paths.log_path()
    logging.basicConfig(
        filename=str(log_file), level=os.environ.get("TP_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s")
    if _socket_alive(args.socket):
        print(f"tp-daemon: already running on {args.socket}", file=sys.stderr)
        return 1
    with contextlib.suppress(FileNotFoundError):
        args.socket.unlink()
    pid_file = paths.pid_path()
    pid_file.write_text(str(os.getpid()), encoding="utf-8")
    # Only now (not a second daemon): the connect path imports while the socket opens.
    preload = Preload(CONNECT_MODULES, "tp-preload").start()
    try:
        if get_settings().connect.daemon_uvloop:
            import uvloop

            return uvloop.run(_main(args, preload))
        return asyncio.run(_main(args, preload))
    except Exception:
        logging.getLogger("tp_daemon").exception("daemon failed")
        return 1
    finally:
        with contextlib.suppress(FileNotFoundError):
            args.socket.unlink()
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()


if __name__ == "__main__":
    sys.exit(main())
