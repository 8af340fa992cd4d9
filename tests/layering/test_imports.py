"""The layering of DESIGN.md, checked on the source: who may import whom."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PACKAGES = {
    "tp_jupyter": ROOT / "tp_jupyter",
    "tp_daemon": ROOT / "daemon" / "tp_daemon",
    "tp_cluster": ROOT / "cluster_images" / "tp_cluster",
    "tp_sandbox": ROOT / "sandbox" / "tp_sandbox",
    "tp_protocol": ROOT / "protocol" / "tp_protocol",
}

FORBIDDEN = {
    "tp_protocol": {"tp_jupyter", "tp_daemon", "tp_cluster", "tp_sandbox"},
    "tp_cluster": {"tp_jupyter", "tp_daemon", "tp_sandbox"},
    "tp_sandbox": {"tp_jupyter", "tp_daemon"},
    "tp_daemon": {"tp_jupyter"},
    # the front reaches the cluster only through the daemon
    "tp_jupyter": {"kubernetes", "tp_cluster"},
}


def imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def violations(package: str) -> list[str]:
    found = []
    for path in sorted(PACKAGES[package].rglob("*.py")):
        bad = imported_top_levels(path) & FORBIDDEN[package]
        found.extend(f"{path.relative_to(ROOT)} imports {name}" for name in sorted(bad))
    return found


def test_the_protocol_package_imports_no_other_component() -> None:
    assert violations("tp_protocol") == []


def test_cluster_code_never_imports_the_front_or_the_daemon() -> None:
    assert violations("tp_cluster") == []


def test_the_sandbox_never_imports_the_front_or_the_daemon() -> None:
    assert violations("tp_sandbox") == []


def test_the_daemon_never_imports_the_front() -> None:
    assert violations("tp_daemon") == []


def test_the_front_never_talks_to_kubernetes_directly() -> None:
    assert violations("tp_jupyter") == []


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import kubernetes.client\nfrom tp_daemon import x\nfrom . import y\n")
    assert imported_top_levels(module) == {"kubernetes", "tp_daemon"}
