"""How results look in IPython (tp_jupyter.render): CLI text for text/plain, and progress
lines that replace each other in one display and vanish when the operation ends."""

from __future__ import annotations

from typing import Any

import pytest

from tp_jupyter import render

pytestmark = pytest.mark.timeout(30)


class Handle:
    """Stands in for IPython's DisplayHandle: records every update."""

    def __init__(self) -> None:
        self.updates: list[dict[str, str]] = []

    def update(self, bundle: dict[str, str], raw: bool = False) -> None:
        self.updates.append(bundle)


def test_results_show_the_cli_text_as_plain_text(ip: Any) -> None:
    result = ip.run_line_magic("tp", "status")
    data, _ = ip.display_formatter.format(result)
    assert data["text/plain"] == str(result) == "Daemon: not running"
    assert "text/html" in data


def test_results_render_themselves_without_the_extension() -> None:
    from IPython.core.interactiveshell import InteractiveShell

    from tp_jupyter import api

    shell = InteractiveShell.instance()
    assert "tp" not in shell.magics_manager.magics["line"]
    data, _ = shell.display_formatter.format(api.QuitResult(was_running=False))
    assert data["text/plain"] == "tp daemon is not running"
    assert data["text/html"] == "tp daemon is not running"


def test_progress_lines_replace_each_other_and_vanish_at_the_end() -> None:
    handle = Handle()
    stream = render._ProgressStream(handle)
    stream.write("creating intercept x\nwaiting: ")
    stream.write("pod y\n\n")
    stream.clear()
    assert [u["text/plain"] for u in handle.updates] == [
        "creating intercept x", "waiting: pod y", ""]
    assert "creating intercept x&hellip;" in handle.updates[0]["text/html"]


def test_outside_a_kernel_progress_leaves_stderr_alone(capsys: pytest.CaptureFixture[str],
                                                       ip: Any) -> None:
    import sys

    with render.progress(ip):
        print("loading kubeconfig", file=sys.stderr)
    assert "loading kubeconfig" in capsys.readouterr().err
