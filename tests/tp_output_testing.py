"""Helpers of the machine-readable output tests (a unique module name: several test folders
have a conftest)."""

from __future__ import annotations

import json
import subprocess
from typing import Any


def check(document: Any, name: str) -> Any:
    """Validate `document` against the shipped JSON Schema `name`; returns it."""
    import jsonschema
    from referencing import Registry, Resource

    from tp_jupyter.output import SCHEMAS, schema

    # the schemas refer to each other by file name (`cell-intercept` -> `intercept`)
    registry: Registry[Any] = Registry().with_resources(
        (schema(n)["$id"], Resource.from_contents(schema(n))) for n in SCHEMAS)
    validator = jsonschema.Draft202012Validator(
        schema(name), registry=registry,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    validator.validate(document)
    return document


def parsed(proc: subprocess.CompletedProcess[str]) -> Any:
    """stdout as JSON (the whole of it: nothing else may be printed there)."""
    return json.loads(proc.stdout)
