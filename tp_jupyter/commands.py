"""Subcommands of `tp` that talk to the daemon: connect, status, quit, list, intercept,
leave, uninstall, traffic (registered by `tp_jupyter.traffic_data`), version and
`config view`.

Each parser sets `func(args)`, which calls `tp_jupyter.api` (or `tp_jupyter.info`) and
returns its result object; the CLI prints it, the magics display it. Each one also takes
`--format default|json|yaml` (`tp_jupyter.output`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tp_jupyter import api, info, mirror_command, output, traffic_data


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _connect(args: argparse.Namespace) -> api.ConnectResult:
    return api.connect(kubeconfig=args.kubeconfig, context=args.context,
                       namespace=args.namespace, manager_namespace=args.manager_namespace,
                       proxy_mode=args.proxy_mode, progress=_progress,
                       manager_image=args.manager_image, agent_image=args.agent_image,
                       registry=args.registry, image_pull_secrets=args.image_pull_secret,
                       manager_address=args.manager_address,
                       manager_service_type=args.manager_service_type)


def _status(args: argparse.Namespace) -> api.Status:
    return api.status()


def _quit(args: argparse.Namespace) -> api.QuitResult:
    return api.quit()


def _list(args: argparse.Namespace) -> api.WorkloadListing:
    return api.list_workloads(args.namespace)


def _intercept(args: argparse.Namespace) -> api.InterceptResult:
    return api.intercept(args.workload, args.namespace, args.port,
                         http_match=args.http_match or None, name=args.name,
                         env_file=args.env_file, env_json=args.env_json, mount=args.mount,
                         replace=args.replace, progress=_progress,
                         hold=getattr(args, "hold", False),
                         hold_timeout=getattr(args, "hold_timeout", None),
                         **mirror_command.filters(args))


def _leave(args: argparse.Namespace) -> api.LeaveResult:
    return api.leave(args.name)


def _uninstall(args: argparse.Namespace) -> api.UninstallResult:
    return api.uninstall(args.agent, all_agents=args.all_agents, everything=args.everything,
                         force=args.force,
                         namespace=args.namespace)


def _version(args: argparse.Namespace) -> info.VersionReport:
    return info.version()


def _config_view(args: argparse.Namespace) -> info.ConfigView:
    return info.config_view()


def register(sub: Any) -> None:
    """Add connect, status, quit, list, intercept, leave, uninstall (and traffic)."""
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
    p.add_argument("--manager-address", metavar="auto|direct|port-forward|HOST:PORT",
                   help="reach the traffic-manager at its LoadBalancer address over TLS "
                        "(direct), through the API server (port-forward), or direct when "
                        "it answers, else port-forward (auto, the default)")
    p.add_argument("--manager-service-type", choices=["ClusterIP", "LoadBalancer"],
                   help="when this connect installs the traffic-manager: LoadBalancer also "
                        "exposes it for direct connect (default: ClusterIP)")
    output.add_format(p)
    images = p.add_argument_group("images (used when connect installs the traffic-manager)")
    images.add_argument("--registry", metavar="HOST[:PORT][/PATH]",
                        help="registry of both images (default: ghcr.io/tp-jupyter)")
    images.add_argument("--manager-image", metavar="[REGISTRY/]NAME[:TAG]",
                        help="traffic-manager image (default: traffic-manager; tag: this "
                             "client's version)")
    images.add_argument("--agent-image", metavar="[REGISTRY/]NAME[:TAG]",
                        help="traffic-agent image the manager injects (default: "
                             "traffic-agent; tag: this client's version)")
    images.add_argument("--image-pull-secret", action="append", metavar="SECRET",
                        help="imagePullSecret for a private registry (repeatable; the "
                             "Secret must exist in the manager's and workloads' namespaces)")
    p.set_defaults(func=_connect)

    p = sub.add_parser("status", help="show the daemon's and the connection's state")
    output.add_format(p)
    p.set_defaults(func=_status)

    p = sub.add_parser("quit", help="disconnect and stop the daemon")
    output.add_format(p)
    p.set_defaults(func=_quit)

    p = sub.add_parser("list", help="show the namespace's workloads and their intercepts")
    p.add_argument("-n", "--namespace", help="namespace (default: the connected one)")
    output.add_format(p)
    p.set_defaults(func=_list)

    p = sub.add_parser("intercept", help="route a workload's traffic to this workstation",
                       description="Route traffic of WORKLOAD to a local port: all of it, or "
                                   "only HTTP requests whose headers match --http-match.")
    p.add_argument("workload", metavar="WORKLOAD", help="the Deployment to intercept")
    p.add_argument("-n", "--namespace", help="its namespace (default: the connected one)")
    p.add_argument("-p", "--port", required=True, metavar="LOCAL[:SVCPORT]",
                   help="local port, and the service port (name or number) if it has several")
    p.add_argument("--http-match", action="append", metavar="KEY=REGEX",
                   help="only requests whose header KEY matches REGEX (repeat: all must "
                        "match); 'all' intercepts every connection (the default)")
    p.add_argument("--name", help="intercept name (default: WORKLOAD-NAMESPACE)")
    p.add_argument("--env-file", metavar="FILE",
                   help="write the container's environment as KEY=VALUE lines")
    p.add_argument("--env-json", metavar="FILE", help="write the environment as JSON")
    p.add_argument("--mount", default="true", metavar="true|false|DIR",
                   help="copy the container's volumes to a temp folder (true), nowhere "
                        "(false) or DIR")
    p.add_argument("--replace", action="store_true",
                   help="replace an intercept of yours with the same name")
    p.add_argument("--hold", action="store_true",
                   help="hold matching requests until you forward, answer or drop them "
                        "(`tp held`)")
    p.add_argument("--hold-timeout", type=float, metavar="SECONDS",
                   help="with --hold: an untouched request goes to the cluster after this "
                        "long (default: the setting intercept.hold_timeout)")
    mirror_command.add_filter_args(p)
    output.add_format(p)
    p.set_defaults(func=_intercept)

    mirror_command.register(sub)

    p = sub.add_parser("leave", help="remove one of your intercepts")
    p.add_argument("name", metavar="NAME", help="the intercept's name (see `tp list`)")
    output.add_format(p)
    p.set_defaults(func=_leave)

    p = sub.add_parser("uninstall", help="remove traffic-agents (and the traffic-manager)",
                       description="Remove traffic-agents, restoring workloads exactly; "
                                   "--everything also removes the traffic-manager.")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--agent", action="append", metavar="WORKLOAD",
                      help="the agent of this workload (repeatable)")
    what.add_argument("--all-agents", action="store_true", help="every traffic-agent")
    what.add_argument("--everything", action="store_true",
                      help="every traffic-agent and the traffic-manager")
    p.add_argument("-n", "--namespace", help="namespace of --agent (default: the connected one)")
    p.add_argument("--force", action="store_true",
                   help="also when other developers intercept through the agent (their "
                        "intercepts end)")
    output.add_format(p)
    p.set_defaults(func=_uninstall)

    traffic_data.register(sub)

    p = sub.add_parser("version", help="show the client's, daemon's and traffic-manager's "
                                       "versions",
                       description="Versions of this client, the daemon and the "
                                   "traffic-manager, and what to do when they differ.")
    output.add_format(p)
    p.set_defaults(func=_version)

    p = sub.add_parser("config", help="show the effective settings (`tp config view`)",
                       description="The settings of tp-jupyter (tp_protocol.settings).")
    config = p.add_subparsers(dest="config_command", metavar="ACTION",
                              parser_class=type(p))
    config.required = True
    p = config.add_parser("view", help="every effective setting and where it came from "
                                       "(default, $TP_SETTINGS file, environment)")
    output.add_format(p)
    p.set_defaults(func=_config_view)
