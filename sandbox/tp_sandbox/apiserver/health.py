"""`/healthz`, `/livez`, `/readyz` as a real API server words them.

Plain: `ok` (200) or `<endpoint> check failed` (500). `?verbose` lists each check as
`[+]name ok` / `[-]name failed: reason withheld` and ends with `<endpoint> check passed`;
`?exclude=name` skips a check; `/<endpoint>/<check>` answers one check.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

# The checks the sandbox can truthfully report (a subset of upstream's names).
_COMMON = ("ping", "log", "etcd", "poststarthook/start-apiserver-admission-initializer",
           "poststarthook/generic-apiserver-start-informers",
           "poststarthook/start-system-namespaces-controller",
           "poststarthook/bootstrap-controller", "poststarthook/rbac/bootstrap-roles")
CHECKS: dict[str, tuple[str, ...]] = {
    "healthz": _COMMON,
    "livez": _COMMON,
    "readyz": ("ping", "log", "etcd", "etcd-readiness", "informer-sync", *_COMMON[3:],
               "shutdown"),
}


def answer(path: str, request: web.Request, stopping: Callable[[], bool]) -> web.Response:
    """The response to a health path (`/readyz`, `/livez/ping`, ...)."""
    endpoint, _, one = path.strip("/").partition("/")
    checks = CHECKS[endpoint]

    def passing(name: str) -> bool:
        return not (name == "shutdown" and stopping())

    if one:
        if one not in checks:
            return web.Response(status=404, text="404 page not found\n")
        if passing(one):
            return web.Response(text="ok")
        return web.Response(status=500, text=f"internal server error: {one} failed\n")
    excluded = set(request.query.getall("exclude", []))
    lines, ok = [], True
    for name in checks:
        if name in excluded:
            continue
        if passing(name):
            lines.append(f"[+]{name} ok")
        else:
            ok = False
            lines.append(f"[-]{name} failed: reason withheld")
    verbose = "verbose" in request.query
    if ok:
        if verbose:
            return web.Response(text="\n".join([*lines, f"{endpoint} check passed"]) + "\n")
        return web.Response(text="ok")
    return web.Response(status=500,
                        text="\n".join([*lines, f"{endpoint} check failed"]) + "\n")
