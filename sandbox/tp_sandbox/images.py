"""The sandbox's image catalog: which container images the node can "pull".

The sandbox runs containers as host processes, so an image is only a name for a
default argv. References are matched without registry, tag or digest:
``ghcr.io/tp-jupyter/traffic-manager:0.1.0`` and ``traffic-manager`` are the same
entry. Two kinds of entries:

- our images (the cluster side of tp-jupyter and the demo application) name a Python
  module that is run with this interpreter;
- generic images (busybox, alpine, python, ...) stand for the host's tools; their
  default argv is a shell or the Python interpreter, and a pod usually gives a
  `command` anyway.

An image that is not in the catalog is unknown (`resolve` returns None); the kubelet
turns that into `ErrImagePull` / `ImagePullBackOff`.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CatalogEntry:
    """One image the sandbox can run."""

    name: str
    """Image name without registry and tag (the catalog key)."""

    argv: tuple[str, ...]
    """Default argv when the container sets no `command`."""

    description: str
    """One line for `tp sandbox status`."""

    generic: bool = False
    """True for stand-ins of public base images (they run host tools)."""

    applets: bool = False
    """Busybox applets the host lacks (nslookup, nc, ping...) are on the container's PATH
    (after the host's tools), when the host has `busybox`."""
    user: int = 0
    """The image's `USER` (uid), used when the pod sets no `runAsUser`."""


def _standin(name: str, kind: str, description: str) -> CatalogEntry:
    return CatalogEntry(name, (sys.executable, "-m", "tp_sandbox.standins", kind),
                        description, generic=True)



NON_ROOT_UID = 10001
"""The `USER` of the traffic-manager and traffic-agent images (their Dockerfiles)."""


def _module(name: str, module: str, description: str, user: int = 0) -> CatalogEntry:
    return CatalogEntry(name, (sys.executable, "-m", module), description, user=user)


def _generic(name: str, argv: tuple[str, ...], description: str) -> CatalogEntry:
    return CatalogEntry(name, argv, description, generic=True)


_SHELL = ("sh",)
_PYTHON = (sys.executable,)

CATALOG: tuple[CatalogEntry, ...] = (
    _module("traffic-manager", "tp_cluster.manager", "tp-jupyter traffic-manager",
            user=NON_ROOT_UID),
    _module("traffic-agent", "tp_cluster.agent", "tp-jupyter traffic-agent sidecar",
            user=NON_ROOT_UID),
    _module("demo-dataprocessingservice", "tp_sandbox.demo.dataprocessingservice",
            "demo app: answers GET /color on port 3000"),
    _module("demo-verylargedatastore", "tp_sandbox.demo.verylargedatastore",
            "demo app: a small data endpoint on port 8080"),
    _module("demo-verylargejavaservice", "tp_sandbox.demo.verylargejavaservice",
            "demo app: the web page that calls the other two, port 8080"),
    _standin("nginx", "nginx", "web server on :80: /usr/share/nginx/html, else the welcome "
             "page"),
    _standin("nginx-slim", "nginx", "as nginx (the Kubernetes StatefulSet tutorial's image)"),
    _standin("httpd", "httpd", "web server on :80: /usr/local/apache2/htdocs, else "
             "\"It works!\""),
    CatalogEntry("redis", ("redis-server", "--save", "", "--appendonly", "no",
                           "--protected-mode", "no"),
                 "the host's redis-server on :6379 (redis-cli too)", generic=True),
    CatalogEntry("busybox", _SHELL, "host shell and tools, busybox applets for the rest",
                 generic=True, applets=True),
    CatalogEntry("alpine", _SHELL, "host shell and tools, busybox applets for the rest",
                 generic=True, applets=True),
    _generic("ubuntu", _SHELL, "host shell and tools"),
    _generic("debian", _SHELL, "host shell and tools"),
    _generic("curlimages/curl", _SHELL, "host shell with curl"),
    _generic("python", _PYTHON, "this machine's Python interpreter"),
)
"""Every image the sandbox knows, in display order."""

_BY_NAME = {entry.name: entry for entry in CATALOG}


def image_name(image: str) -> str:
    """The catalog key of an image reference: no registry, tag or digest, lower case.

    ``ghcr.io/tp-jupyter/traffic-manager:0.1.0`` -> ``traffic-manager``;
    ``docker.io/library/busybox:1.36`` -> ``busybox``; ``curlimages/curl`` stays.
    """
    ref = image.strip().lower()
    ref = ref.split("@", 1)[0]
    # A colon after the last slash is a tag; one before it belongs to a registry port.
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        ref = ref[:colon]
    parts = ref.split("/")
    # A first component with a dot or port (or `localhost`) is a registry host.
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]
    if len(parts) > 1 and parts[0] == "library":
        parts = parts[1:]
    full = "/".join(parts)
    if full in _BY_NAME:
        return full
    # `ghcr.io/tp-jupyter/traffic-manager`: the organisation is not part of the key.
    return parts[-1] if parts else ""


def lookup(image: str) -> CatalogEntry | None:
    """The catalog entry of an image reference, or None when unknown."""
    return _BY_NAME.get(image_name(image))


def resolve(image: str) -> list[str] | None:
    """The default argv of an image, or None for an image the sandbox cannot run."""
    entry = lookup(image)
    return list(entry.argv) if entry is not None else None


def applets_dir() -> Path | None:
    """A directory of symlinks to the host's busybox for each applet the host lacks
    (created once, shared by every container); None without busybox on the host."""
    busybox = shutil.which("busybox")
    if busybox is None:
        return None
    out = Path(tempfile.gettempdir()) / "tp-sandbox-busybox-applets"
    if (out / ".done").exists():
        return out
    out.mkdir(exist_ok=True)
    listing = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=False)
    for applet in listing.stdout.split():
        if "/" in applet or shutil.which(applet, path=_HOST_PATH):
            continue
        with contextlib.suppress(FileExistsError):
            (out / applet).symlink_to(busybox)
    (out / ".done").touch()
    return out


_HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def table() -> str:
    """`tp sandbox images`: one line per catalog entry (name, what it runs)."""
    width = max(len(e.name) for e in CATALOG)
    lines = [f"{'IMAGE':<{width}}  RUNS"]
    for e in CATALOG:
        lines.append(f"{e.name:<{width}}  {e.description}")
    lines.append("any other image: ErrImagePull, then ImagePullBackOff")
    return "\n".join(lines)


def user_of(image: str) -> int:
    """The uid an image runs as without `runAsUser` (0 for generic and unknown images)."""
    entry = lookup(image)
    return entry.user if entry is not None else 0


def known(image: str) -> bool:
    """True when the image is in the catalog (the node can "pull" it)."""
    return lookup(image) is not None
