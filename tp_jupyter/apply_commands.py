"""`tp apply -f FILE` and `tp delete -f FILE` (declarative sessions, `sessionfile`),
`tp gather-logs` (`gatherlogs`) and `tp replace` (`replace_command`)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from tp_jupyter import output

if TYPE_CHECKING:  # imported by the commands: it brings yaml, not needed by `tp connect`
    from tp_jupyter import sessionfile


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _apply(args: argparse.Namespace) -> sessionfile.ApplyResult:
    from tp_jupyter import sessionfile

    return sessionfile.apply(sessionfile.load(args.file), progress=_progress)


def _delete(args: argparse.Namespace) -> sessionfile.DeleteResult:
    from tp_jupyter import sessionfile

    return sessionfile.delete(sessionfile.load(args.file))


def register(sub: Any) -> None:
    """Add `apply`, `delete`, `gather-logs` and `replace`."""
    from tp_jupyter.replace_command import register as register_replace

    register_replace(sub)
    register_gather_logs(sub)
    p = sub.add_parser("apply", help="make the session a file describes (connection, "
                                     "intercepts)",
                       description="Connect and make the intercepts match FILE (see "
                                   "docs/session-file.md): new ones are created, changed ones "
                                   "replaced, removed ones left, the rest untouched.")
    p.add_argument("-f", "--file", required=True, metavar="FILE", help="the session file")
    output.add_format(p)
    p.set_defaults(func=_apply)

    p = sub.add_parser("delete", help="leave every intercept a session file made",
                       description="Leave the intercepts the session of FILE applied.")
    p.add_argument("-f", "--file", required=True, metavar="FILE", help="the session file")
    output.add_format(p)
    p.set_defaults(func=_delete)


def _gather_logs(args: argparse.Namespace) -> Any:
    from tp_jupyter.gatherlogs import gather_logs

    return gather_logs(args.output, args.max_bytes)


def register_gather_logs(sub: Any) -> None:
    """Add `gather-logs`."""
    p = sub.add_parser("gather-logs", help="zip the daemon's, traffic-manager's and "
                                           "traffic-agents' logs",
                       description="Collect the daemon's log and, through the "
                                   "traffic-manager, its own and every traffic-agent's, into "
                                   "one zip with a manifest.json.")
    p.add_argument("-o", "--output", metavar="FILE.zip",
                   help="where to write the zip (default: ./tp-logs.zip)")
    p.add_argument("--max-bytes", type=int, metavar="N",
                   help="most bytes of each log (its tail; default: the setting "
                        "connect.gather_logs_max_bytes)")
    output.add_format(p)
    p.set_defaults(func=_gather_logs)
