"""Non-root users inside sandbox laptops, for tests that run `tp` as a normal user.

Users are made with `useradd` and removed afterwards (with every process of theirs). They
cannot run the test's interpreter (it may live under /root), so `user_python` makes one
they can: a `venv` of the system's /usr/bin/python3 (same minor version, hence the same
ABI) whose .pth adds this worktree's environment (world-readable, an editable install of
the worktree) -- the same packages as `pip install -e .` would give, without a download.
Each user's command runs inside a laptop through `setpriv` with a clean environment
(HOME, PATH, KUBECONFIG: a copy of the laptop's kubeconfig in the user's home).
"""

from __future__ import annotations

import contextlib
import grp
import importlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sysconfig
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sandbox_testing import Laptop


def in_every_laptop(sandbox: Any, script: str) -> None:
    """Run `script` in every laptop's mount namespace: each laptop keeps its own, so a
    mount made on the host after `up` does not show there by itself."""
    from tp_sandbox import lifecycle

    for k in range(1, sandbox.laptops + 1):
        subprocess.run(lifecycle.exec_argv(sandbox.instance, k, ["sh", "-c", script]),
                       check=True)


@contextlib.contextmanager
def user_python(sandbox: Any, base: Path) -> Iterator[str]:
    """An interpreter every user may run, with this worktree's packages (see above)."""
    venv = base / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True)
    site = sysconfig.get_paths()["purelib"]  # the worktree's environment
    bound = None
    if not world_readable(Path(site)):
        # e.g. CI's interpreter under /root (mode 0700): show the same directory at a path
        # other users can reach, read-only, for this module only
        bound = base / "site"
        bound.mkdir(parents=True)
        subprocess.run(["mount", "--bind", site, str(bound)], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(bound)], check=True)
        in_every_laptop(sandbox, f"mount --bind {site} {bound} && "
                                 f"mount -o remount,bind,ro {bound}")
        site = str(bound)
    bounds = [bound] if bound is not None else []
    # an editable install's sources in a private checkout (CI's `mktemp -d`, 0700): each
    # package (0755 itself) bound read-only where others reach it, first on their sys.path
    # (a bind mount of the checkout itself would keep its 0700)
    packages = [Path(str(importlib.import_module(name).__file__)).parent
                for name in ("tp_jupyter", "tp_daemon", "tp_protocol", "tp_cluster",
                             "tp_sandbox")]
    first: list[str] = []
    if not all(world_readable(p) for p in packages):
        src = base / "src"
        for package in packages:
            target = src / package.name
            target.mkdir(parents=True)
            script = f"mount --bind {package} {target} && mount -o remount,bind,ro {target}"
            subprocess.run(["sh", "-c", script], check=True)
            in_every_laptop(sandbox, script)
            bounds.append(target)
        src.chmod(0o755)
        first = [str(src)]
    user_site = next(venv.glob("lib/python3*/site-packages"))
    (user_site / "tp-worktree.pth").write_text(
        f"import site, sys; site.addsitedir({site!r}); sys.path[:0] = {first!r}\n")
    base.chmod(0o755)
    try:
        yield str(venv / "bin" / "python")
    finally:
        for mounted in bounds:
            with contextlib.suppress(subprocess.CalledProcessError):
                in_every_laptop(sandbox, f"umount --lazy {mounted}")
            subprocess.run(["umount", "--lazy", str(mounted)], check=False)
        if not any(m.is_mount() for m in bounds):  # never delete through a bind mount
            shutil.rmtree(base, ignore_errors=True)


def world_readable(path: Path) -> bool:
    """Every directory from / down to `path` lets others in (x) and `path` lets them list."""
    parts = [path, *path.parents]
    return all(p.stat().st_mode & 0o001 for p in parts) and bool(path.stat().st_mode & 0o004)


class User:
    """A non-root account made for a test module; runs commands inside a laptop.

    `home` is the account's home unless given (e.g. a short /tmp path: the daemon's
    socket path must fit in 108 bytes); `kubeconfig(lap)` is the user's copy of the
    laptop's own kubeconfig (its developer's)."""

    def __init__(self, name: str, python: str, home: Path | None = None) -> None:
        self.name, self.python = name, python
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], check=True)
        entry = pwd.getpwnam(name)
        self.uid = entry.pw_uid
        self.home = home or Path(entry.pw_dir)
        if home is not None:
            home.mkdir(parents=True, exist_ok=True)
            os.chown(home, self.uid, self.uid)
            home.chmod(0o700)
        self.tp = f"{python} -m tp_jupyter.cli"

    def join(self, group: str) -> None:
        subprocess.run(["usermod", "-aG", group, self.name], check=True)

    def give(self, source: Path, name: str) -> Path:
        """A copy of `source` in the user's home, owned by the user (e.g. a kubeconfig)."""
        target = self.home / name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chown(target.parent, self.uid, self.uid)
        shutil.copy(source, target)
        os.chown(target, self.uid, self.uid)
        target.chmod(0o600)
        return target

    def write(self, name: str, text: str, mode: int = 0o600) -> Path:
        """A file of the user's, in its home."""
        target = self.home / name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chown(target.parent, self.uid, self.uid)
        target.write_text(text)
        os.chown(target, self.uid, self.uid)
        target.chmod(mode)
        return target

    def kubeconfig(self, lap: Laptop) -> Path:
        path = self.home / f"kubeconfig-{lap.k}"
        return path if path.exists() else self.give(lap.kubeconfig, path.name)

    def argv(self, lap: Laptop, cmd: str, groups: str = "") -> list[str]:
        """`cmd` (sh) as this user inside `lap`, with a clean environment."""
        kubeconfig = self.kubeconfig(lap)
        ids = ["--groups", groups] if groups else ["--init-groups"]
        return lap.argv(["setpriv", "--reuid", str(self.uid), "--regid", str(self.uid), *ids,
                         "env", "-i", f"--chdir={self.home}", f"HOME={self.home}",
                         f"USER={self.name}",
                         f"KUBECONFIG={kubeconfig}", "PATH=/usr/local/bin:/usr/bin:/bin",
                         "LANG=C.UTF-8", "sh", "-c", cmd])

    def run(self, lap: Laptop, cmd: str, timeout: float = 120, groups: str = ""
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(lap, cmd, groups), capture_output=True, text=True,
                              timeout=timeout, check=False)

    def python_code(self, lap: Laptop, code: str, timeout: float = 180
                    ) -> subprocess.CompletedProcess[str]:
        script = self.home / f"script-{secrets.token_hex(3)}.py"
        script.write_text(textwrap.dedent(code))
        os.chown(script, self.uid, self.uid)
        return self.run(lap, f"{self.python} {script}", timeout=timeout)

    def remove(self) -> None:
        for pid in pids_of(self.uid):  # only processes of this account, made by us
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        subprocess.run(["userdel", "-r", "-f", self.name], capture_output=True, check=False)


def pids_of(uid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True
