"""`tp hold` and `tp held`: hold and edit intercepted requests from the command line (the
same grammar as `%tp hold` / `%tp held`; `tp intercept --hold` is in `commands`).

    tp hold NAME [--timeout S]       hold the requests of a running intercept
    tp hold NAME --off               stop holding (what waits goes to the cluster)
    tp held [--intercept NAME]       the requests waiting
    tp held ID                       one of them, with headers and body
    tp held ID --forward local|cluster [--method M] [--path P] [-H 'K: V'] [--body B]
    tp held ID --respond STATUS [--body B] [-H 'K: V']
    tp held ID --drop
"""

from __future__ import annotations

import argparse
from typing import Any

from tp_jupyter import output
from tp_jupyter.errors import UsageError


def _hold(args: argparse.Namespace) -> Any:
    from tp_jupyter import holding as hold

    return hold.hold(args.name, on=not args.off, timeout=args.timeout)


def _headers(given: list[str] | None) -> dict[str, str]:
    headers = {}
    for h in given or []:
        name, sep, value = h.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"-H {h!r}: give a header as 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers


def _held(args: argparse.Namespace) -> Any:
    from tp_jupyter import holding as hold

    edits = args.method or args.path or args.header or args.body is not None
    if args.id is None:
        if args.forward or args.respond is not None or args.drop or edits:
            raise UsageError("name the held request to decide: tp held ID --forward ... "
                             "(ids are listed by `tp held`)")
        return hold.held(args.intercept)
    if (args.drop or args.respond is not None) and (args.method or args.path):
        raise UsageError("--method and --path edit a forwarded request; with --respond "
                         "give --body and -H only")
    if args.drop and (args.header or args.body is not None):
        raise UsageError("--drop takes no --body or -H")
    if edits and not (args.forward or args.respond is not None):
        raise UsageError("edits go with --forward local|cluster (or --respond STATUS)")
    headers = _headers(args.header)
    request = hold.get(args.id)
    if args.drop:
        return request.drop()
    if args.respond is not None:
        return request.respond(args.respond, args.body or b"", headers)
    if args.forward:
        if args.method:
            request.method = args.method
        if args.path:
            request.path = args.path
        request.headers.update(headers)
        if args.body is not None:
            request.body = args.body.encode()
        return request.forward(to=args.forward)
    if not request.method:
        raise UsageError(f"no held request {args.id!r} is waiting; see `tp held`")
    return request


def register(sub: Any) -> None:
    p = sub.add_parser("hold", help="hold the requests of a running intercept for editing",
                       description="Matching requests of intercept NAME wait until you "
                                   "forward, answer or drop them (`tp held`); untouched, "
                                   "they go to the cluster after the hold timeout.")
    p.add_argument("name", metavar="NAME", help="your intercept (see `tp list`)")
    p.add_argument("--off", action="store_true",
                   help="stop holding; requests still waiting go to the cluster")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="send an untouched request to the cluster after this long "
                        "(default: the setting intercept.hold_timeout)")
    output.add_format(p)
    p.set_defaults(func=_hold)

    p = sub.add_parser("held", help="list held requests; forward, respond to or drop one",
                       description="Without ID: the requests waiting. With ID: show it, or "
                                   "decide it (--forward, --respond, --drop).")
    p.add_argument("id", nargs="?", metavar="ID", help="a held request (see `tp held`)")
    p.add_argument("--intercept", metavar="NAME", help="only this intercept's requests")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--forward", choices=["local", "cluster"],
                      help="send it (with the edits) to the local target or the cluster")
    what.add_argument("--respond", type=int, metavar="STATUS", help="answer it with STATUS")
    what.add_argument("--drop", action="store_true",
                      help="drop it (its caller gets a 502 saying so)")
    p.add_argument("--method", help="forward with this method")
    p.add_argument("--path", help="forward to this path (with query)")
    p.add_argument("-H", "--header", action="append", metavar="'NAME: VALUE'",
                   help="set a header (repeatable)")
    p.add_argument("--body", help="the body to forward or respond with")
    output.add_format(p)
    p.set_defaults(func=_held)
