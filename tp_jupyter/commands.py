"""Subcommands of `tp` that talk to the daemon: connect, status, quit.

Each parser sets `func(args)`, which calls `tp_jupyter.api` and returns its result
object; the CLI prints it, the magics display it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tp_jupyter import api


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _connect(args: argparse.Namespace) -> api.ConnectResult:
    return api.connect(kubeconfig=args.kubeconfig, context=args.context,
                       namespace=args.namespace, manager_namespace=args.manager_namespace,
                       proxy_mode=args.proxy_mode, progress=_progress)


def _status(args: argparse.Namespace) -> api.Status:
    return api.status()


def _quit(args: argparse.Namespace) -> api.QuitResult:
    return api.quit()


def register(sub: Any) -> None:
    """Add connect, status and quit to the `tp` grammar."""
    p = sub.add_parser("connect", help="make the cluster reachable from this workstation",
                       description="Start the daemon if needed and connect it to the cluster "
                                   "of a kubeconfig context.")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or "
                                        "~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context (default: the current context)")
    p.add_argument("-n", "--namespace", help="namespace single-label names resolve in "
                                             "(default: the context's)")
    p.add_argument("--manager-namespace",
                   help="namespace of the traffic-manager (default: ambassador)")
    p.add_argument("--proxy-mode", action="store_true",
                   help="use a SOCKS5 proxy instead of routes and DNS, even as root")
    p.set_defaults(func=_connect)

    p = sub.add_parser("status", help="show the daemon's and the connection's state")
    p.set_defaults(func=_status)

    p = sub.add_parser("quit", help="disconnect and stop the daemon")
    p.set_defaults(func=_quit)
