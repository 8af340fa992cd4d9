"""`tp wiretap` (mirror mode) and the request filters `intercept` and `wiretap` share.

    tp wiretap WORKLOAD [-n NS] -p LOCAL[:SVCPORT] [--http-match K=V ...]
               [--http-path-equal P | --http-path-prefix P | --http-path-regex RE]
               [--http-method M ...] [--name NAME] [--hold [--hold-timeout S]]
    %%tp wiretap WORKLOAD ...            (the cell's handler gets the copies)

A wiretap leaves the cluster's app answering every caller; a copy of each matching
request goes to the local port (or cell handler) through the same path as intercepted
requests, marked with the header `x-tp-mirror: <name>`. Each traffic row of a mirror
carries both answers (see `tp_jupyter.traffic_data`). Copies are queued per mirror with
a bound in the traffic-agent: when the local side is slower than the traffic, copies
are dropped and counted (`tp list`, `tp status`, the panel), never waited for.

With `--hold` each copy waits on the workstation (`tp held`, `tp_jupyter.held()`) for
forward(to="local"), respond or drop; the cluster already answered the caller, so a
copy is never forwarded to the cluster, and one left untouched for the hold's timeout
is dropped (counted in `tp held`).

The filters (Telepresence's `--http-path-*`, mirrord's method filter) are ANDed with
`--http-match`; paths are matched without the query.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tp_jupyter import api, output


def add_filter_args(p: argparse.ArgumentParser) -> None:
    """The path and method filters, for `intercept` and `wiretap`."""
    g = p.add_argument_group("request filters (all ANDed with --http-match; paths without "
                             "the query)")
    g.add_argument("--http-path-equal", metavar="PATH", help="only requests for this path")
    g.add_argument("--http-path-prefix", metavar="PREFIX",
                   help="only requests whose path starts with PREFIX")
    g.add_argument("--http-path-regex", metavar="REGEX",
                   help="only requests whose path matches REGEX (re.search)")
    g.add_argument("--http-method", action="append", metavar="METHOD",
                   help="only requests with this method (repeat: any of them)")


def filters(args: argparse.Namespace) -> dict[str, Any]:
    """The parsed filters as `api.intercept` keyword arguments."""
    return {"http_path_equal": getattr(args, "http_path_equal", None),
            "http_path_prefix": getattr(args, "http_path_prefix", None),
            "http_path_regex": getattr(args, "http_path_regex", None),
            "http_method": getattr(args, "http_method", None)}


def wiretap(workload: str, namespace: str | None = None, port: int | str = 8080, *,
            http_match: list[str] | str | None = None, name: str | None = None,
            http_path_equal: str | None = None, http_path_prefix: str | None = None,
            http_path_regex: str | None = None, http_method: list[str] | str | None = None,
            progress: api.ProgressCallback | None = None, hold: bool = False,
            hold_timeout: float | None = None) -> api.InterceptResult:
    """Mirror the workload's matching requests to `port`; the app keeps answering.

    Nothing of the workload's volumes is copied (a wiretap only watches); on any error
    nothing is left behind, as for `intercept`. `hold` holds each copy for
    `tp_jupyter.held()` (see the module doc)."""
    return api.intercept(workload, namespace, port, http_match=http_match, name=name,
                         mount=False, progress=progress, mirror=True, hold=hold,
                         hold_timeout=hold_timeout,
                         http_path_equal=http_path_equal, http_path_prefix=http_path_prefix,
                         http_path_regex=http_path_regex, http_method=http_method)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _wiretap(args: argparse.Namespace) -> api.InterceptResult:
    return wiretap(args.workload, args.namespace, args.port, http_match=args.http_match,
                   name=args.name, progress=_progress, hold=args.hold,
                   hold_timeout=args.hold_timeout, **filters(args))


def register(sub: Any) -> None:
    """Add `tp wiretap` to the `tp` grammar."""
    p = sub.add_parser("wiretap", help="mirror a workload's requests to this workstation "
                                       "(the app keeps answering)",
                       description="Send a copy of each matching HTTP request of WORKLOAD "
                                   "(and the app's answer) to a local port; callers always "
                                   "get the app's answer. Rows in `tp traffic` carry both "
                                   "answers; copies the local side cannot keep up with are "
                                   "dropped and counted, never waited for.")
    p.add_argument("workload", metavar="WORKLOAD", help="the workload to mirror")
    p.add_argument("-n", "--namespace", help="its namespace (default: the connected one)")
    p.add_argument("-p", "--port", required=True, metavar="LOCAL[:SVCPORT]",
                   help="local port that gets the copies, and the service port (name or "
                        "number) if it has several")
    p.add_argument("--http-match", action="append", metavar="KEY=REGEX",
                   help="only requests whose header KEY matches REGEX (repeat: all must match)")
    add_filter_args(p)
    p.add_argument("--name", help="mirror name (default: WORKLOAD-NAMESPACE-wiretap)")
    p.add_argument("--hold", action="store_true",
                   help="hold each copy until you forward it to local, answer or drop it "
                        "(`tp held`); an untouched copy is dropped after the hold timeout")
    p.add_argument("--hold-timeout", type=float, metavar="SECONDS",
                   help="with --hold: drop an untouched copy after this long (default: the "
                        "setting intercept.hold_timeout)")
    output.add_format(p)
    p.set_defaults(func=_wiretap)
