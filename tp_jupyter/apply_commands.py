"""`tp apply -f FILE` and `tp delete -f FILE`: declarative sessions (`sessionfile`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tp_jupyter import output, sessionfile


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _apply(args: argparse.Namespace) -> sessionfile.ApplyResult:
    return sessionfile.apply(sessionfile.load(args.file), progress=_progress)


def _delete(args: argparse.Namespace) -> sessionfile.DeleteResult:
    return sessionfile.delete(sessionfile.load(args.file))


def register(sub: Any) -> None:
    """Add `apply` and `delete`."""
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
