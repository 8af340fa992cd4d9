"""An IPython shell inside a sandbox laptop, driven from a test.

Run as a script (inside the laptop) it is the server: a real `InteractiveShell` with
`%load_ext tp_jupyter` that reads one JSON request per line on stdin and answers each with
one line `@@TP@@ {json}` on stdout (other stdout lines -- handler prints -- are ignored).

    {"op": "line", "line": "connect"}              %tp connect
    {"op": "cell", "line": "intercept ...", "cell": "def handler(r): ..."}
    {"op": "eval", "code": "len(df)"}              an expression in the user namespace
    {"op": "complete", "code": "%tp list -n "}     the words Tab offers at the end

Answers: {"ok": true, "text": str(result), "html": result._repr_html_(), "value": ...} or
{"ok": false, "error": "UsageError", "message": "..."}.

Imported (by the tests) it is the client, `LaptopShell`.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

PREFIX = "@@TP@@ "


class ShellError(Exception):
    """The shell answered with an exception: `.error` is its type name."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(f"{error}: {message}")
        self.error, self.message = error, message


class LaptopShell:
    """The client: starts the server in a laptop and calls it."""

    def __init__(self, lap: Any, env: dict[str, str]) -> None:
        self.proc = lap.popen([sys.executable, "-u", str(Path(__file__).resolve())],
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, bufsize=1)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.log: list[str] = []   # everything the shell printed (for failure messages)
        self._reader = threading.Thread(target=self._read, name="laptop-shell-reader",
                                        daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.append(line)
            if line.startswith(PREFIX):
                self.lines.put(line[len(PREFIX):])
        self.lines.put(None)

    def call(self, request: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the laptop shell did not answer {request} in {timeout}s:\n"
                                 + "".join(self.log[-40:])) from None
        if line is None:
            raise AssertionError("the laptop shell exited:\n" + "".join(self.log[-40:]))
        answer: dict[str, Any] = json.loads(line)
        if not answer["ok"]:
            raise ShellError(answer["error"], answer["message"])
        return answer

    def line(self, line: str, timeout: float = 120) -> dict[str, Any]:
        """`%tp LINE`."""
        return self.call({"op": "line", "line": line}, timeout)

    def cell(self, line: str, cell: str, timeout: float = 120) -> dict[str, Any]:
        """`%%tp LINE` with the cell body."""
        return self.call({"op": "cell", "line": line, "cell": cell}, timeout)

    def eval(self, code: str) -> Any:
        return self.call({"op": "eval", "code": code})["value"]

    def complete(self, code: str) -> list[str]:
        """What Tab offers at the end of `code` in the shell."""
        words: list[str] = self.call({"op": "complete", "code": code})["value"]
        return words

    def close(self) -> None:
        """Unload the extension (leaving intercepts) and end the shell."""
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.close()   # EOF: the server unloads and exits
                self.proc.wait(60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(10)


def _serve() -> None:
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "tp_jupyter")
    out = sys.stdout

    def answer(payload: dict[str, Any]) -> None:
        out.write("\n" + PREFIX + json.dumps(payload, default=str) + "\n")
        out.flush()

    try:
        for raw in sys.stdin:
            request = json.loads(raw)
            try:
                if request["op"] == "line":
                    result = ip.run_line_magic("tp", request["line"])
                elif request["op"] == "cell":
                    result = ip.run_cell_magic("tp", request["line"], request["cell"])
                elif request["op"] == "complete":
                    from IPython.core.completer import provisionalcompleter

                    code = request["code"]
                    with provisionalcompleter():
                        words = [c.text for c in ip.Completer.completions(code, len(code))]
                    answer({"ok": True, "value": words})
                    continue
                else:
                    answer({"ok": True, "value": eval(request["code"], ip.user_ns)})
                    continue
            except Exception as e:
                answer({"ok": False, "error": type(e).__name__, "message": str(e)})
                continue
            html = getattr(result, "_repr_html_", None)
            answer({"ok": True, "text": str(result), "html": html() if html else "",
                    "type": type(result).__name__})
    finally:
        ip.run_line_magic("unload_ext", "tp_jupyter")


if __name__ == "__main__":
    _serve()
