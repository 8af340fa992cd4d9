"""Every setting carries a docstring, and the settings object takes overrides safely."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest
from tp_protocol import settings as settings_module
from tp_protocol.settings import Settings

SOURCE = Path(settings_module.__file__).read_text(encoding="utf-8")


def undocumented_fields() -> list[str]:
    missing = []
    for node in ast.parse(SOURCE).body:
        if not isinstance(node, ast.ClassDef) or node.name == "Settings":
            continue
        body = node.body
        for i, stmt in enumerate(body):
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                nxt = body[i + 1] if i + 1 < len(body) else None
                documented = (isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                              and isinstance(nxt.value.value, str) and nxt.value.value.strip())
                if not documented:
                    missing.append(f"{node.name}.{stmt.target.id}")
    return missing


def test_every_setting_has_a_docstring_that_says_what_it_governs() -> None:
    assert undocumented_fields() == []


def test_every_section_is_a_dataclass_with_defaults() -> None:
    settings = Settings()
    for section in dataclasses.fields(settings):
        value = getattr(settings, section.name)
        assert dataclasses.is_dataclass(value)
        assert len(dataclasses.fields(value)) > 0


def test_overrides_apply_and_unknown_names_are_refused(tmp_path: Path) -> None:
    settings = Settings()
    settings.override(json.loads('{"connect": {"session_ttl": 3.5}}'))
    assert settings.connect.session_ttl == 3.5
    with pytest.raises(ValueError, match=r"unknown setting connect\.bogus"):
        settings.override({"connect": {"bogus": 1}})
    with pytest.raises(ValueError, match="unknown settings section"):
        settings.override({"nope": {}})
