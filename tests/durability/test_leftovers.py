"""The record of what a daemon made on the workstation (`tp_daemon.leftovers`): kept as
things are made, dropped as they are removed, and cleaned after a daemon that died --
never while the recorded daemon still runs. No root: folders only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sandbox_testing import wait_for
from tp_daemon import leftovers


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TP_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_a_folder_is_recorded_when_made_and_dropped_when_removed(tmp_path: Path) -> None:
    folder = tmp_path / "telfs-a"
    leftovers.record("dirs", str(folder))
    assert leftovers.pending()["dirs"] == [str(folder)]
    leftovers.forget("dirs", str(folder))
    assert leftovers.pending() == {"nft_tables": [], "links": [], "dirs": []}


def test_clean_removes_what_a_dead_daemon_recorded(tmp_path: Path, home: Path) -> None:
    folder = tmp_path / "telfs-b"
    (folder / "var").mkdir(parents=True)
    # a daemon process records the folder, then dies without removing it
    code = f"from tp_daemon import leftovers; leftovers.record('dirs', {str(folder)!r})"
    subprocess.run([sys.executable, "-c", code], check=True,
                   env={"TP_HOME": str(home), "PATH": "/usr/bin:/bin"})
    assert leftovers.clean() == [f"folder {folder}"]
    assert not folder.exists() and not leftovers.state_path().exists()
    assert leftovers.clean() == []  # nothing twice


def test_clean_leaves_a_running_daemons_things_alone(tmp_path: Path) -> None:
    folder = tmp_path / "telfs-c"
    folder.mkdir()
    with subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()",
                           "tp_daemon"], stdin=subprocess.PIPE) as alive:
        cmdline = Path(f"/proc/{alive.pid}/cmdline")
        wait_for(lambda: b"tp_daemon" in cmdline.read_bytes(), 10, "the process to exec")
        state = leftovers.state_path()
        state.write_text(f'{{"pid": {alive.pid}, "dirs": ["{folder}"]}}', encoding="utf-8")
        assert leftovers.clean() == []
        assert folder.exists()
        assert alive.stdin is not None
        alive.stdin.close()
