"""The images' wheel carries everything the traffic-manager and traffic-agent import.

(And the demo apps the demo image runs, from the same wheel.)

The Dockerfiles in `cluster_images/` build the project's wheel (`pip wheel --no-deps .`)
and install it with its declared dependencies. This test builds the same wheel and walks
the imports of `tp_cluster.manager` and `tp_cluster.agent` transitively (every `import`
statement of our modules, also inside functions; the standard library excluded): each of
our modules must be a file of the wheel, and each third-party module must come from a
dependency the wheel declares (not from the `[test]` or `[notebook]` extras).
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
OURS = ("tp_cluster", "tp_protocol", "tp_daemon", "tp_sandbox", "tp_jupyter")
ENTRY_POINTS = ("tp_cluster.manager.__main__", "tp_cluster.agent.__main__",
                # the demo image (cluster_images/demo) runs these from the same wheel
                "tp_sandbox.demo.dataprocessingservice", "tp_sandbox.demo.verylargedatastore",
                "tp_sandbox.demo.verylargejavaservice")
DOCKERFILES = {ROOT / "cluster_images" / n / "Dockerfile": entry for n, entry in (
    ("traffic-manager", '"-m", "tp_cluster.manager"]'),
    ("traffic-agent", '"-m", "tp_cluster.agent"]'),
    ("demo", 'runpy.run_module(\\"tp_sandbox.demo.\\" + os.environ[\\"TP_DEMO_APP\\"]'))}


COPIED = ("pyproject.toml", "README.md", "protocol", "cluster_images", "daemon", "sandbox",
          "tp_jupyter")
"""The Dockerfiles' COPY lines: the build context the wheel is made from."""


def _module_file(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin, f"{name} is not importable"
    return Path(spec.origin)


def _imports(name: str, path: Path) -> set[str]:
    """Absolute names imported by the module `name` (relative imports resolved)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            # `from pkg import module` imports a submodule when there is one
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent is a module, not a package
        return False


def walk_imports() -> tuple[set[str], set[str]]:
    """(our modules, third-party top-level names) reachable from the entry points."""
    ours: set[str] = set()
    third: set[str] = set()
    todo = list(ENTRY_POINTS)
    while todo:
        name = todo.pop()
        if name in ours:
            continue
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top == "__future__":
            continue
        if top not in OURS:
            third.add(top)
            continue
        if not _is_module(name):
            continue  # `from pkg import attribute`: not a module
        ours.add(name)
        # importing a.b.c runs a/__init__ and a/b/__init__ too
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        todo.extend(_imports(name, _module_file(name)))
    return ours, third


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    # what the Dockerfiles copy into their build stage (setuptools writes build/ there)
    source = tmp_path_factory.mktemp("source")
    for name in COPIED:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(ROOT / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-q", "--wheel-dir", str(out), str(source)],
        capture_output=True, text=True, timeout=240, check=False)
    assert built.returncode == 0, built.stderr
    (path,) = out.glob("tp_jupyter-*.whl")
    return zipfile.ZipFile(path)


def _declared(wheel: zipfile.ZipFile) -> set[str]:
    """Distribution names the wheel requires unconditionally (no extra)."""
    metadata = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    names = set()
    for line in wheel.read(metadata).decode().splitlines():
        if line.startswith("Requires-Dist:") and "extra ==" not in line:
            requirement = line.split(":", 1)[1].strip()
            names.add(_normal(re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0]))
    return names


def _normal(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def test_the_walk_finds_the_manager_and_agent_and_their_libraries() -> None:
    ours, third = walk_imports()
    assert {"tp_cluster.manager.server", "tp_cluster.agent.link", "tp_protocol.manager_pb2",
            "tp_cluster.injector"} <= ours
    assert {"grpc", "google", "kubernetes"} <= third
    assert not any(m.startswith(("tp_jupyter", "tp_daemon")) for m in ours)


def test_every_module_the_manager_and_agent_import_is_in_the_wheel(
        wheel: zipfile.ZipFile) -> None:
    files = set(wheel.namelist())
    ours, _ = walk_imports()
    missing = []
    for name in sorted(ours):
        rel = _module_file(name).resolve()
        package_dir = _module_file(name.split(".")[0]).resolve().parent
        in_wheel = f"{name.split('.')[0]}/{rel.relative_to(package_dir).as_posix()}"
        if in_wheel not in files:
            missing.append(in_wheel)
    assert not missing, f"not in the wheel: {missing}"


def test_every_library_they_import_is_a_declared_dependency(wheel: zipfile.ZipFile) -> None:
    declared = _declared(wheel)
    providers = importlib.metadata.packages_distributions()
    _, third = walk_imports()
    undeclared = {}
    for top in sorted(third):
        dists = {_normal(d) for d in providers.get(top, [])}
        if not dists & declared:
            undeclared[top] = sorted(dists)
    assert not undeclared, f"imported but not declared (module: distributions): {undeclared}"


def test_the_dockerfiles_install_that_wheel_and_run_as_non_root() -> None:
    for dockerfile, entry in DOCKERFILES.items():
        text = dockerfile.read_text()
        assert "pip wheel --no-cache-dir --no-deps --wheel-dir /wheels ." in text
        copied = re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M)
        assert sorted(n for line in copied for n in line.split()) == sorted(COPIED)
        assert "pip install --no-cache-dir /wheels/*.whl" in text
        assert re.search(r"^USER 10001:10001$", text, re.M)
        assert re.search(r"^ENTRYPOINT \[\"/usr/bin/python3\", .*" + re.escape(entry), text, re.M)
