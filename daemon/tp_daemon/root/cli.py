"""`tp daemon install|uninstall|status`, registered next to the front's commands."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tp_daemon.root import paths


def _install(args: argparse.Namespace) -> str:
    from tp_daemon.root import service

    return service.install(args.group)


def _uninstall(args: argparse.Namespace) -> str:
    from tp_daemon.root import service

    return service.uninstall(force=args.force)


def _status(args: argparse.Namespace) -> str:
    from tp_daemon.root import service

    st = service.status()
    if args.json:
        return json.dumps(st)
    if not st["running"]:
        head = ("Root daemon: installed but not answering" if st["installed"]
                else "Root daemon: not installed")
        return "\n".join([head, f"  {st['problem'] or 'see ' + st['log_file']}"])
    lines = [f"Root daemon: running ({st['kind'] or 'unknown kind'}) for group {st['group']}",
             f"  Socket  : {st['socket']}", f"  Log file: {st['log_file']}"]
    lines += [f"  {lease['user']}: context {lease['context']}, routes "
              f"{', '.join(lease['ranges'])}" for lease in st["leases"]] or ["  no users routed"]
    return "\n".join(lines)


def register(sub: Any) -> None:
    daemon = sub.add_parser("daemon", help="the root daemon service (routes and DNS for "
                            "non-root users)")
    commands = daemon.add_subparsers(dest="daemon_command", required=True)
    p = commands.add_parser("install", help="install and start it (as root)")
    p.add_argument("--group", default=paths.DEFAULT_GROUP,
                   help=f"who may use it (default {paths.DEFAULT_GROUP}; created if missing)")
    p.set_defaults(func=_install)
    p = commands.add_parser("uninstall", help="stop and remove it (as root)")
    p.add_argument("--force", action="store_true",
                   help="even while users are connected through it")
    p.set_defaults(func=_uninstall)
    p = commands.add_parser("status", help="whether it runs, and whom it routes")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.set_defaults(func=_status)
