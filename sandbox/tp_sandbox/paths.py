"""Where a sandbox instance keeps its files, and how its kernel objects are named.

An instance has a name ("" for the default). Named instances let several test runs
(or developers) have sandboxes side by side: every network namespace, state folder
and host port is derived from the name.

State folder layout (``state_dir``)::

    pki/            ca.crt ca.key apiserver.crt apiserver.key
    tokens.json     static bearer tokens -> user (admin token for kubeconfigs)
    kubeconfig      works from this machine's own shell (API on host loopback)
    laptops/N/      kubeconfig and resolv.conf of laptop N; ns/mnt its mount namespace
    logs/           one log file per sandbox process
    run/            pid files, the kubelet's unix socket
    state.json      what `up` made, so `down` can undo it after a crash
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

_NAME_RE = re.compile(r"^[a-z0-9]{0,8}$")


def base_dir() -> Path:
    """Root of all instances' state: `$TP_SANDBOX_HOME`, else /run/tp-sandbox."""
    return Path(os.environ.get("TP_SANDBOX_HOME", "/run/tp-sandbox"))


@dataclass(frozen=True)
class Instance:
    """Names and paths of one sandbox instance."""

    name: str = ""

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name) or self.name == "default":
            raise ValueError(
                f"invalid sandbox name {self.name!r}: "
                "use up to 8 lowercase letters or digits, not 'default'"
            )

    @staticmethod
    def from_env() -> Instance:
        """The instance named by `$TP_SANDBOX_NAME` (default instance when unset)."""
        return Instance(os.environ.get("TP_SANDBOX_NAME", ""))

    @property
    def prefix(self) -> str:
        """Prefix of every network namespace of this instance: `tp-` or `tp-<name>-`."""
        return f"tp-{self.name}-" if self.name else "tp-"

    @property
    def node_netns(self) -> str:
        return f"{self.prefix}node"

    def laptop_netns(self, k: int) -> str:
        return f"{self.prefix}laptop-{k}"

    def pod_netns(self, pod_uid: str) -> str:
        return f"{self.prefix}pod-{pod_uid[:13]}"

    @property
    def state_dir(self) -> Path:
        return base_dir() / (self.name or "default")

    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def tokens_file(self) -> Path:
        return self.state_dir / "tokens.json"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def kubelet_socket(self) -> Path:
        return self.run_dir / "kubelet.sock"

    def laptop_dir(self, k: int) -> Path:
        return self.state_dir / "laptops" / str(k)
