"""A caller the root daemon refuses always reads why, even when its request comes after
the refusal (a slow or busy caller): the daemon half-closes and lets it finish writing
instead of closing on an unread request, which failed the caller's write with EPIPE and
hid the refusal behind that error ("Broken pipe" instead of "not in group")."""

from __future__ import annotations

import asyncio
import dataclasses
import grp
import json
import os
import pwd
import select
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest
from tp_daemon.root.server import RootDaemon
from tp_protocol.settings import get_settings

pytestmark = pytest.mark.root


def _caller(path: Path, uid: int, gid: int, held: int, report: int) -> None:
    """In a forked child: become `uid` holding gid `held` without being a member, wait
    until the daemon has refused and shut its side, only then send a request, and report
    the line read (or the error)."""
    try:
        os.setgroups([held])
        os.setgid(gid)
        os.setuid(uid)
        deadline = time.monotonic() + 20
        while not path.exists():   # the daemon starts after the fork
            if time.monotonic() > deadline:
                raise TimeoutError("no root daemon socket")
            select.select([], [], [], 0.02)
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(20)
            s.connect(str(path))
            # send only once the daemon said its last word (it shut down or closed
            # its side): the slowest caller there can be
            poll = select.poll()
            poll.register(s, select.POLLRDHUP)
            poll.poll(20_000)
            s.sendall(b'{"op": "status"}\n')
            result = s.makefile("rb").readline()
    except Exception as e:
        result = f"{type(e).__name__}: {e}".encode()
    os.write(report, result)
    os._exit(0)


def test_a_refused_caller_that_writes_after_the_refusal_still_reads_it() -> None:
    if os.geteuid() != 0:
        pytest.skip("the root daemon and a caller of another uid need root")
    caller = pwd.getpwnam("nobody")
    member_of = os.getgrouplist(caller.pw_name, caller.pw_gid)
    # the daemon's group: one the caller holds (setgroups) without being a member
    group = next(g for g in grp.getgrall() if g.gr_gid not in member_of and g.gr_gid != 0)
    settings = dataclasses.replace(get_settings().root_daemon,
                                   nft_prefix=f"tp-test-refusal-{os.getpid()}-")
    folder = Path(tempfile.mkdtemp(prefix="tp-refusal-", dir="/tmp"))  # the caller may enter
    folder.chmod(0o755)
    socket_path = folder / "root.sock"
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        _caller(socket_path, caller.pw_uid, caller.pw_gid, group.gr_gid, write_end)
    os.close(write_end)

    async def scenario() -> bytes:
        daemon = RootDaemon(group.gr_name, settings, get_settings().connect.socket_mark)
        await daemon.start(socket_path)
        try:
            return await asyncio.wait_for(asyncio.to_thread(os.read, read_end, 65536), 30)
        finally:
            await daemon.close()

    try:
        line = asyncio.run(scenario())
    finally:
        os.waitpid(child, 0)
        os.close(read_end)
        shutil.rmtree(folder, ignore_errors=True)
    assert line.startswith(b"{"), line.decode(errors="replace")   # not an error of the caller
    reply = json.loads(line)
    assert f"is not in group {group.gr_name}" in reply["error"], reply
