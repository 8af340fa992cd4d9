"""Helpers of the machine-readable output tests (a unique module name: several test folders
have a conftest)."""

from __future__ import annotations

import json
import subprocess
from typing import Any


def check(document: Any, name: str) -> Any:
    """Validate `document` against the shipped JSON Schema `name`; returns it."""
    import jsonschema

    from tp_jupyter.output import schema

    validator = jsonschema.Draft202012Validator(
        schema(name), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    validator.validate(document)
    return document


def parsed(proc: subprocess.CompletedProcess[str]) -> Any:
    """stdout as JSON (the whole of it: nothing else may be printed there)."""
    return json.loads(proc.stdout)
