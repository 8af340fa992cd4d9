"""`tp sandbox ...`: the sandbox subcommands of the `tp` command line.

`register(subparsers)` adds `tp sandbox up|down|status|kubeconfig|exec|demo|images`; each
sets `func(args) -> result` whose str() is printed (an int is the exit status).
Errors are `tp_sandbox.errors.SandboxError`s, which `tp_jupyter.cli.main` prints as
one line. The instance is `--name`, else `$TP_SANDBOX_NAME`, else the default.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from tp_sandbox import images  # lifecycle (certificates, netns) on use: `tp connect` never needs it
from tp_sandbox.errors import SandboxUsageError
from tp_sandbox.paths import Instance


def _instance(args: argparse.Namespace) -> Instance:
    name = args.name if args.name is not None else os.environ.get("TP_SANDBOX_NAME", "")
    try:
        return Instance(name)
    except ValueError as e:
        raise SandboxUsageError(str(e)) from e


def _users(text: str | None) -> list[str]:
    return [u.strip() for u in (text or "").split(",") if u.strip()]


def _up(args: argparse.Namespace) -> Any:
    from tp_sandbox import lifecycle

    return lifecycle.up(_instance(args), laptops=args.laptops, node=not args.no_node,
                        laptop_users=_users(args.laptop_users))


def _down(args: argparse.Namespace) -> Any:
    from tp_sandbox import lifecycle

    return lifecycle.down(_instance(args), keep_logs=not args.delete_logs)


def _status(args: argparse.Namespace) -> Any:
    from tp_sandbox import lifecycle

    result = lifecycle.status(_instance(args))
    if getattr(args, "in_notebook", False):
        return result
    # On the command line the exit status tells scripts whether the sandbox is healthy.
    print(result)
    return result.exit_code


def _kubeconfig(args: argparse.Namespace) -> Any:
    if args.admin and args.user:
        raise SandboxUsageError("give --admin or --user USER, not both")
    from tp_sandbox import lifecycle

    return lifecycle.kubeconfig_path(_instance(args), args.laptop,
                                     "admin" if args.admin else args.user)


def _exec(args: argparse.Namespace) -> Any:
    argv = list(args.cmd)
    if argv and argv[0] == "--":
        argv = argv[1:]
    from tp_sandbox import lifecycle

    return lifecycle.exec_in_laptop(argv, args.laptop, _instance(args))


def _demo(args: argparse.Namespace) -> Any:
    from tp_sandbox import lifecycle

    return lifecycle.demo(_instance(args), namespace=args.namespace)


def _images(args: argparse.Namespace) -> Any:
    return images.table()


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `tp sandbox ...` to the `tp` grammar."""
    sandbox = subparsers.add_parser(
        "sandbox", help="the local sandbox cluster (up, down, status, exec, ...)",
        description="A Kubernetes-compatible cluster on this machine, in network namespaces.")
    sub = sandbox.add_subparsers(dest="sandbox_command", metavar="SUBCOMMAND")
    sub.required = True

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--name", default=None,
                       help="instance name (default: $TP_SANDBOX_NAME, else the default one)")
        return p

    p = add("up", "start the sandbox (idempotent); prints the kubeconfig path last")
    p.add_argument("--laptops", type=int, default=1, metavar="N",
                   help="laptop namespaces to create (default 1)")
    p.add_argument("--no-node", action="store_true", help="run without the node (no pods)")
    p.add_argument("--laptop-users", default=None, metavar="U1,U2",
                   help="laptop K's kubeconfig acts as the K-th of these users (default: "
                        "laptop 1 alice, 2 bob, 3 carol, ...; 'admin' for the admin)")
    p.set_defaults(func=_up)

    p = add("down", "stop the sandbox and remove everything it made (idempotent)")
    p.add_argument("--delete-logs", action="store_true",
                   help="delete the logs instead of moving them to /tmp")
    p.set_defaults(func=_down)

    p = add("status", "health of the API server, node, controllers and laptops "
                      "(exit status 1 when unhealthy, 3 when not up)")
    p.set_defaults(func=_status)

    p = add("kubeconfig", "print the path of a kubeconfig: the host's (the admin's), or "
                          "laptop K's (its developer's)")
    p.add_argument("--laptop", type=int, default=None, metavar="K")
    p.add_argument("--user", default=None, metavar="USER",
                   help="a named user's kubeconfig (alice, bob, ...)")
    p.add_argument("--admin", action="store_true",
                   help="the admin's (system:masters), e.g. laptop K's: --laptop K --admin")
    p.set_defaults(func=_kubeconfig)

    p = add("exec", "run a command inside laptop K (its netns, resolv.conf, KUBECONFIG)")
    p.add_argument("--laptop", type=int, default=1, metavar="K")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD...")
    p.set_defaults(func=_exec)

    p = add("images", "the images pods can use, and what each one runs")
    p.set_defaults(func=_images)

    p = add("demo", "deploy the demo application and wait until it is Available")
    p.add_argument("-n", "--namespace", default="telepresence-demo")
    p.set_defaults(func=_demo)
