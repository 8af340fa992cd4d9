"""Tab completion of `%tp` / `%%tp` lines, from the one `tp` grammar and the daemon.

    candidates(line, token, live)   the words that may replace `token` at the end of
                                    `line` (the text before the cursor)
    Live()                          namespaces, workloads and intercept names from the
                                    daemon, each call bounded by
                                    `notebook.completion_timeout`; nothing when no daemon
                                    runs or it is not connected
    install(shell) / uninstall(shell)
                                    an IPython 9 completion matcher (API v2) in
                                    `shell.Completer.custom_matchers`

Subcommands, flags and choices (`--format json`) come from the parser itself, so a new
subcommand completes with no change here. Values come from the daemon for `-n/--namespace`
(the connected namespace and those of the current intercepts: the daemon API lists no
namespaces), `intercept WORKLOAD`, `uninstall --agent WORKLOAD`, and `leave NAME`.

Errors: none; completion never raises (a slow or absent daemon gives no live words).
"""

from __future__ import annotations

import argparse
import logging
import shlex
from collections.abc import Sequence
from typing import Any, Protocol

from tp_daemon import paths
from tp_protocol import daemon_pb2 as dpb
from tp_protocol.settings import get_settings

from tp_jupyter import cli, daemon_client
from tp_jupyter.errors import TpError

log = logging.getLogger(__name__)

MAGICS = ("%tp", "%%tp")


class LiveSource(Protocol):
    def namespaces(self) -> list[str]: ...
    def workloads(self, namespace: str | None) -> list[str]: ...
    def intercepts(self) -> list[str]: ...


class Live:
    """Values known to the daemon, asked with a short deadline (see the module)."""

    def _status(self) -> dpb.StatusInfo | None:
        if not paths.socket_path().exists():   # no daemon: no call at all
            return None
        with daemon_client.DaemonClient() as client:
            status = client.status(timeout=get_settings().notebook.completion_timeout)
        return status if status.connected else None

    def namespaces(self) -> list[str]:
        status = self._status()
        if status is None:
            return []
        found = {status.connection.namespace}
        found.update(ic.spec.namespace for ic in status.intercepts)
        return sorted(n for n in found if n)

    def workloads(self, namespace: str | None) -> list[str]:
        if self._status() is None:
            return []
        with daemon_client.DaemonClient() as client:
            reply = client.list_workloads(dpb.ListRequest(namespace=namespace or ""),
                                          timeout=get_settings().notebook.completion_timeout)
        return sorted(w.name for w in reply.workloads)

    def intercepts(self) -> list[str]:
        status = self._status()
        return [] if status is None else sorted(ic.spec.name for ic in status.intercepts)


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:   # an open quote: complete from the plain words
        return text.split()


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action | None:
    return parser._option_string_actions.get(flag)


def _values(action: argparse.Action, words: Sequence[str], live: LiveSource) -> list[str]:
    """What may follow an option, or fill a positional."""
    if action.choices is not None:
        return [str(c) for c in action.choices]
    if action.dest == "namespace":
        return live.namespaces()
    if action.dest in ("workload", "agent"):
        return live.workloads(_given(words, "-n", "--namespace"))
    if action.dest == "name" and action.option_strings == []:
        return live.intercepts()
    return []


def _given(words: Sequence[str], *flags: str) -> str | None:
    """The value of an option already on the line (`-n demo`, `--namespace=demo`)."""
    for i, w in enumerate(words):
        if w in flags and i + 1 < len(words):
            return words[i + 1]
        for f in flags:
            if f.startswith("--") and w.startswith(f + "="):
                return w.partition("=")[2]
    return None


def candidates(line: str, token: str, live: LiveSource) -> list[str]:
    """Completions of `token`, the last (maybe empty) word of `line` (text before the
    cursor), when `line` starts with `%tp` or `%%tp`."""
    words = _split(line)
    if not words or words[0] not in MAGICS:
        return []
    words = words[1:]
    complete = line.endswith((" ", "\t"))
    done = words if complete else words[:-1]     # the words before the one being typed
    current = "" if complete else words[-1]
    parser = cli.build_parser()
    # descend through subcommands (`config view`)
    consumed = 0
    while True:
        subs = _subcommands(parser)
        if not subs:
            break
        if consumed < len(done):
            if done[consumed] not in subs:
                return []
            parser = subs[done[consumed]]
            consumed += 1
            continue
        if line.lstrip().startswith("%%"):
            subs = {k: v for k, v in subs.items() if k in ("intercept", "wiretap")}
        return _matching(sorted(subs), current)
    args = done[consumed:]
    if current.startswith("--") and "=" in current:   # --format=js
        flag, _, value = current.partition("=")
        action = _option(parser, flag)
        found = _values(action, args, live) if action is not None else []
        return [f"{flag}={v}" for v in _matching(found, value)]
    if args:
        action = _option(parser, args[-1])
        if action is not None and action.nargs != 0:
            return _matching(_values(action, args, live), current)
    if current.startswith("-"):
        flags = [s for a in parser._actions for s in a.option_strings
                 if s.startswith("--") or len(s) == 2]
        return _matching(sorted(set(flags)), current)
    positional = _next_positional(parser, args)
    found = _values(positional, args, live) if positional is not None else []
    if not current and not found:
        return sorted({s for a in parser._actions for s in a.option_strings
                       if s.startswith("--")})
    return _matching(found, current)


def _next_positional(parser: argparse.ArgumentParser, args: Sequence[str]
                     ) -> argparse.Action | None:
    """The positional the next bare word fills (options and their values skipped)."""
    bare = 0
    i = 0
    while i < len(args):
        action = _option(parser, args[i])
        if action is not None:
            i += 1 if action.nargs == 0 else 2
            continue
        if not args[i].startswith("-"):
            bare += 1
        i += 1
    positionals = [a for a in parser._actions if not a.option_strings]
    for a in positionals:
        if a.nargs in ("*", "+"):
            return a
        if bare == 0:
            return a
        bare -= 1
    return None


def _matching(words: Sequence[str], prefix: str) -> list[str]:
    return [w for w in words if w.startswith(prefix)]


def _relative(words: Sequence[str], line: str, token: str) -> list[str]:
    """`candidates` complete the whole last word; IPython replaces only its token (it
    splits `--format=js` at the `=`)."""
    last = "" if line.endswith((" ", "\t")) else (_split(line) or [""])[-1]
    head = last[:len(last) - len(token)] if token and last.endswith(token) else ""
    if not token and last.endswith("="):
        head = last
    return [w[len(head):] for w in words if w.startswith(head)]


def matcher(live: LiveSource) -> Any:
    """An IPython 9 completion matcher (API v2) of `%tp`/`%%tp` lines: it runs first and,
    when it has words, suppresses the others (Python names and files mean nothing here)."""
    from IPython.core.completer import SimpleCompletion, context_matcher

    @context_matcher(priority=_PRIORITY)  # type: ignore[untyped-decorator]
    def tp_matcher(context: Any) -> dict[str, Any]:
        line = context.text_until_cursor if hasattr(context, "text_until_cursor") else (
            context.line_with_cursor[:context.cursor_position])
        words: list[str] = []
        if line.lstrip().startswith(MAGICS):
            try:
                words = _relative(candidates(line.lstrip(), context.token, live), line.lstrip(),
                                  context.token)
            except (TpError, OSError) as e:   # a slow or broken daemon: no live words
                log.debug("tp completion failed: %s", e)
        return {"completions": [SimpleCompletion(w, type="tp") for w in words],
                "suppress": bool(words)}

    return tp_matcher


_PRIORITY = 100
"""Above IPython's own matchers (0..), so `%tp` words come first and suppress the rest."""


def install(shell: Any, live: LiveSource | None = None) -> None:
    """Complete `%tp` and `%%tp` lines in `shell` (IPython's Completer matcher API)."""
    uninstall(shell)
    shell.Completer.custom_matchers.append(matcher(live or Live()))


def uninstall(shell: Any) -> None:
    """Remove the matcher `install` added."""
    shell.Completer.custom_matchers[:] = [
        m for m in shell.Completer.custom_matchers if getattr(m, "__name__", "") != "tp_matcher"]
