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
