"""Lint and format are part of the suite, so CI refuses code that ruff would change."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ruff(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("ruff")
    cmd = [exe] if exe else [sys.executable, "-m", "ruff"]
    return subprocess.run([*cmd, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", [("check", "."), ("format", "--check", ".")])
def test_ruff(args):
    r = _ruff(*args)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_test_docs_security_names_exists():
    """docs/security.md promises only what a test checks: each test it names must exist
    (`tests/file.py::name`, and `::name` for the file named last before it on the page)."""
    import re

    text = (ROOT / "docs" / "security.md").read_text()
    named, current = 0, None
    for line in text.splitlines():
        for file, name in re.findall(r"`(?:(tests/[\w/]+\.py))?(?:::(\w+))?`", line):
            if file:
                current = file
            if not name:
                continue
            assert current, f"docs/security.md: ::{name} without a file before it: {line}"
            source = (ROOT / current).read_text()
            assert re.search(rf"^def {name}\(", source, re.M), f"{current}::{name} is gone"
            named += 1
    assert named >= 20, named


def library_imports() -> dict[str, set[str]]:
    """Which colorizer modules each colorizer module imports, at the top or inside a function
    (a lazy import is still a dependency). A package's modules count as the package
    (colorizer.models.cunet is colorizer.models: its __init__ imports the families by design)."""
    import ast

    def node(name: str) -> str:
        parts = name.split(".")
        return ".".join(parts[:2])

    graph: dict[str, set[str]] = {}
    for f in (ROOT / "colorizer").rglob("*.py"):
        mod = ".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        deps = graph.setdefault(node(mod), set())
        for n in ast.walk(ast.parse(f.read_text())):
            if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("colorizer"):
                names = [n.module] if n.module != "colorizer" else []
                names += [f"colorizer.{a.name}" for a in n.names if n.module == "colorizer"]
            elif isinstance(n, ast.Import):
                names = [a.name for a in n.names if a.name.startswith("colorizer")]
            else:
                continue
            deps |= {node(m) for m in names} - {node(mod), "colorizer"}
    return graph


def test_the_library_has_no_import_circle():
    """No colorizer module imports one that imports it back, however far round: the one circle
    there was (inference <-> onnx) is gone since output_to_ab lives with the decode in bins
    and export_onnx takes the module its caller loaded."""
    graph = library_imports()
    assert graph["colorizer.onnx"] and graph["colorizer.inference"]  # the scan sees imports
    done: set[str] = set()

    def visit(m: str, path: list[str]) -> None:
        if m in path:
            raise AssertionError("import circle: " + " -> ".join([*path[path.index(m) :], m]))
        if m in done:
            return
        for d in sorted(graph.get(m, ())):
            visit(d, [*path, m])
        done.add(m)

    for m in sorted(graph):
        visit(m, [])
