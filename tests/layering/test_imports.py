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
    "tp_daemon": {"tp_jupyter", "tp_cluster"},
    # the front reaches the cluster only through the daemon
    "tp_jupyter": {"kubernetes", "tp_cluster"},
}


ALLOWED = {
    # the install manifests are the daemon's to apply (`tp connect` installs the manager);
    # everything else of the cluster it asks the manager for, through manager.proto
    "tp_daemon": {"tp_cluster.manifests"},
}
"""Modules of a forbidden package that a package may still import, by full name."""


def imported_modules(path: Path) -> set[str]:
    """Full names of what the module imports (`from a import b` counts `a.b` and `a`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _shown(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def violations(package: str, folder: Path | None = None) -> list[str]:
    found = []
    allowed = ALLOWED.get(package, set())
    for path in sorted((folder or PACKAGES[package]).rglob("*.py")):
        modules = imported_modules(path)
        for name in sorted(imported_top_levels(path) & FORBIDDEN[package]):
            deeper = {m for m in modules if m.startswith(name + ".")}
            if not deeper or not deeper <= allowed:
                found.append(f"{_shown(path)} imports {name}")
    return found


def test_the_protocol_package_imports_no_other_component() -> None:
    assert violations("tp_protocol") == []


def test_cluster_code_never_imports_the_front_or_the_daemon() -> None:
    assert violations("tp_cluster") == []


def test_the_sandbox_never_imports_the_front_or_the_daemon() -> None:
    assert violations("tp_sandbox") == []


def test_the_daemon_imports_neither_the_front_nor_cluster_internals() -> None:
    """Only `tp_cluster.manifests`: workloads, readiness and volumes come from the manager."""
    assert violations("tp_daemon") == []


def test_the_front_never_talks_to_kubernetes_directly() -> None:
    assert violations("tp_jupyter") == []


def test_the_checker_allows_only_the_manifests_of_the_cluster_to_the_daemon(
        tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text("from tp_cluster import manifests\n"
                                    "import tp_cluster.manifests\n")
    (tmp_path / "bad.py").write_text("from tp_cluster.injector import MOUNT_ROOT\n")
    (tmp_path / "mixed.py").write_text("from tp_cluster import manifests, injector\n")
    assert violations("tp_daemon", tmp_path) == [f"{tmp_path / 'bad.py'} imports tp_cluster",
                                                 f"{tmp_path / 'mixed.py'} imports tp_cluster"]


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import kubernetes.client\nfrom tp_daemon import x\nfrom . import y\n")
    assert imported_top_levels(module) == {"kubernetes", "tp_daemon"}
