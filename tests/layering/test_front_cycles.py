"""No module of the front imports another in a circle, also not inside a function.

The graph is read from the source: every `import`/`from ... import` anywhere in a module
(top level, functions, `TYPE_CHECKING` blocks) is an edge, and so is a module's dotted
name given literally to `importlib.import_module` or as a value of a dict literal (a
lazy-import table such as the package's attribute map). `from tp_jupyter import x`
points at the submodule `x` when there is one, else at the package itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def modules(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    package = package_dir.name
    found = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [package, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _resolve(name: str, known: set[str]) -> str | None:
    """The longest known module that `name` is or lies inside."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def _literals(nodes: list[ast.expr]) -> set[str]:
    return {n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that `module` imports, wherever in the file."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:   # relative: from the package (or the module's package)
                anchor = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in known else base)
        elif (isinstance(node, ast.Call) and node.args
              and (getattr(node.func, "attr", None) == "import_module"
                   or getattr(node.func, "id", None) == "import_module")):
            targets.update(_literals([node.args[0]]))
        elif isinstance(node, ast.Dict):
            targets.update(_literals(node.values))
    resolved = {_resolve(t, known) for t in targets}
    return {t for t in resolved if t is not None and t != module}


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    found = modules(package_dir)
    known = set(found)
    return {name: imports_of(name, path, known) for name, path in found.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path that returns to its start) per strongly connected knot."""
    found: list[list[str]] = []
    state: dict[str, str] = {}   # "open" while on the DFS path, "done" after
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_no_module_of_the_front_imports_another_in_a_circle() -> None:
    graph = import_graph(ROOT / "tp_jupyter")
    assert "tp_jupyter.session" in graph["tp_jupyter.magics"]   # the graph is read at all
    assert cycles(graph) == [], " ; ".join(" -> ".join(c) for c in cycles(graph))


def test_the_checker_sees_a_circle_made_inside_functions(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from pkg import b\n")
    (pkg / "b.py").write_text("def g():\n    from . import c\n")
    (pkg / "c.py").write_text("import importlib\n\ndef h():\n"
                              "    importlib.import_module('pkg.a')\n")
    (pkg / "e.py").write_text('"""pkg.a is mentioned, not imported."""\nARGV = ["-m", "pkg.b"]\n')
    (pkg / "f.py").write_text('LAZY = {"x": "pkg.b"}\n')
    (pkg / "d.py").write_text("from pkg.a import f\n")
    graph = import_graph(pkg)
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.c"}
    assert graph["pkg.c"] == {"pkg.a"} and graph["pkg.d"] == {"pkg.a"}
    assert graph["pkg.e"] == set() and graph["pkg.f"] == {"pkg.b"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]
