"""`tp replace WORKLOAD` (as Telepresence 2.22): a global intercept during which the app
container does not run in the cluster at all (no queue reader, no cron inside it); its
environment and volumes come to this workstation as with `tp intercept`. `tp leave NAME`
gives the workload its exact pod template back and the app runs again.

The traffic-manager takes the app container out of the pod template (the traffic-agent
keeps copies of its env and mounts) and restores it once the replace intercept is gone
(leave, quit, or an expired session). A workload someone else intercepts is refused, and
so is an intercept of a replaced workload.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from tp_jupyter import api, output


@dataclass(repr=False)
class ReplaceResult(api.InterceptResult):
    """`tp intercept`'s block, plus what replacing means."""

    def __str__(self) -> str:
        return (super().__str__() + f"\nThe app container of {self.info.spec.workload} is "
                f"stopped while replaced; `tp leave {self.name}` brings it back")

    def to_dict(self) -> dict[str, Any]:
        """`--format json|yaml` (schema: tp_jupyter/schemas/replace.json)."""
        data = super().to_dict()
        data["replaced"] = True
        return data


def replace(workload: str, namespace: str | None = None, port: int | str = 8080, *,
            name: str | None = None, env_file: str | None = None,
            env_json: str | None = None, mount: bool | str | None = True,
            progress: api.ProgressCallback | None = None) -> ReplaceResult:
    """Replace `workload`'s app with the local one on `port` (see the module)."""
    result = api.intercept(workload, namespace, port, name=name, env_file=env_file,
                           env_json=env_json, mount=mount, progress=progress,
                           replace_app=True)
    return ReplaceResult(result.info, result.workload_kind, result.mount_point,
                         result.env_files)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _replace(args: argparse.Namespace) -> ReplaceResult:
    return replace(args.workload, args.namespace, args.port, name=args.name,
                   env_file=args.env_file, env_json=args.env_json, mount=args.mount,
                   progress=_progress)


def register(sub: Any) -> None:
    """Add `replace`."""
    p = sub.add_parser("replace", help="run a workload's app here instead of in the cluster",
                       description="Like a global intercept, but the app container stops "
                                   "running in the cluster until `tp leave NAME`.")
    p.add_argument("workload", metavar="WORKLOAD", help="the Deployment to replace")
    p.add_argument("-n", "--namespace", help="its namespace (default: the connected one)")
    p.add_argument("-p", "--port", required=True, metavar="LOCAL[:SVCPORT]",
                   help="local port, and the service port (name or number) if it has several")
    p.add_argument("--name", help="intercept name (default: WORKLOAD-NAMESPACE)")
    p.add_argument("--env-file", metavar="FILE",
                   help="write the container's environment as KEY=VALUE lines")
    p.add_argument("--env-json", metavar="FILE", help="write the environment as JSON")
    p.add_argument("--mount", default="true", metavar="true|false|DIR",
                   help="copy the container's volumes to a temp folder (true), nowhere "
                        "(false) or DIR")
    output.add_format(p)
    p.set_defaults(func=_replace)
