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


FORMATS = ("default", "json", "yaml")
"""As the front's `--format` (tp_jupyter.output, which this package may not import)."""


class Status:
    """`tp daemon status`: text by default, `to_dict()` for `--format json|yaml`."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        return self.data

    def __str__(self) -> str:
        return _status_text(self.data)


def _status(args: argparse.Namespace) -> Any:
    from tp_daemon.root import service

    st = service.status()
    if args.json:  # the old flag, kept as a hidden alias of --format json
        return json.dumps(st)
    return Status(st)


def _status_text(st: dict[str, Any]) -> str:
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
    p.add_argument("--format", choices=FORMATS, default="default",
                   help="output format: default (text), json or yaml (the fields of "
                        "docs/root-daemon.md)")
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=_status)
