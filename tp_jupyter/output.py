"""Machine-readable output: `--format default|json|yaml` (as Telepresence 2.29 names it).

    add_format(parser)         give a subcommand `--format` (a new one, e.g. `wiretap`,
                               calls this and gives its result a `to_dict()`)
    formatted(result, fmt)     the result as a `Formatted` (text + data), or unchanged for
                               `default`
    error_document(e)          `{"error": {"code": ..., "message": ...}}`
    requested_format(argv)     `--format` as given in argv, before parsing (so a parse
                               error is reported in JSON too)
    schema(name)               the JSON Schema of a command's document (`status`,
                               `config-view`, `error`, ...), shipped in `schemas/`

Every result object has one `to_dict()` (JSON types only) used by both json and yaml; the
fields of each command are documented in `docs/cli-output.md` and checked against the JSON
Schemas in `tp_jupyter/schemas/` by the tests.

Errors: an unknown `--format` is argparse's one-line usage error ("invalid choice").
"""

from __future__ import annotations

import argparse
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from tp_jupyter.render import Rendered

SCHEMAS = ("connect", "status", "list", "intercept", "cell-intercept", "leave", "quit",
           "uninstall", "traffic", "version", "config-view", "apply", "delete", "gather-logs",
           "replace", "error", "hold", "held", "held-request", "held-outcome")
"""The documents with a schema in `schemas/` (`error`: any failure)."""

FORMATS = ("default", "json", "yaml")
"""`default` is the text the CLI prints and the notebook shows."""


def add_format(parser: argparse.ArgumentParser, extra: Sequence[str] = ()) -> None:
    """`--format {default,json,yaml}` on a subcommand whose result has `to_dict()`;
    `extra` formats are the subcommand's own (its result is already that document)."""
    more = "".join(f", {name}" for name in extra)
    parser.add_argument("--format", choices=(*FORMATS, *extra), default="default",
                        help=f"output format: default (text), json or yaml (stable fields, "
                             f"see docs/cli-output.md){more}")


def dump(data: Any, fmt: str) -> str:
    """`data` as JSON (indented, keys in the documented order) or YAML."""
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False)
    import yaml  # only here: its import (~15 ms) is not on every command's path

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip("\n")


@dataclass(repr=False)
class Formatted(Rendered):
    """A result in a machine-readable format: `str()` is the document, `data` the dict."""

    data: Any
    format: str

    def __str__(self) -> str:
        return dump(self.data, self.format)

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(str(self))}</pre>"


def to_dict(result: Any) -> Any:
    """The result's `to_dict()` (None stays None: a command that printed its help)."""
    if result is None:
        return None
    convert = getattr(result, "to_dict", None)
    if convert is None:
        raise TypeError(f"{type(result).__name__} has no to_dict(): it cannot be shown with "
                        "--format")
    return convert()


def formatted(result: Any, fmt: str | None) -> Any:
    """The result itself for `default`, else a `Formatted` of its `to_dict()`."""
    if fmt not in ("json", "yaml") or result is None:   # default, or the command's own
        return result
    return Formatted(to_dict(result), fmt)


def error_document(error: BaseException, code: str | None = None) -> dict[str, Any]:
    """`{"error": {"code": ..., "message": ...}}` of an error the front reports."""
    return {"error": {"code": code or getattr(error, "code", "error"),
                      "message": str(error)}}


def requested_format(argv: Sequence[str]) -> str:
    """The `--format` value in argv (last one wins, as argparse does), or `default`."""
    fmt = "default"
    for i, a in enumerate(argv):
        if a == "--":
            break
        if a == "--format" and i + 1 < len(argv):
            fmt = argv[i + 1]
        elif a.startswith("--format="):
            fmt = a.partition("=")[2]
    return fmt


def schema(name: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of `tp NAME --format json` (`error` for failures)."""
    text = resources.files("tp_jupyter").joinpath("schemas", f"{name}.json").read_text(
        encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded
