"""The package installs: a wheel built from the repository colorizes a photo outside the checkout,
with the shipped weights it carries as package data."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
# What the build reads (pyproject.toml says so); built from a copy, since building in place
# would leave build/ and colorizer.egg-info/ in the checkout.
BUILD_INPUTS = ("pyproject.toml", "requirements.txt", "README.md", "colorizer", "weights")


def run(*cmd: str | Path, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))}\n{proc.stdout}\n{proc.stderr}"
    return proc


HIDE_EXTRAS = """
import importlib.abc, sys
HIDDEN = {"gradio", "gradio_client", "pandas", "scipy", "matplotlib", "fastapi", "uvicorn",
          "onnx", "onnxruntime", "pytest", "playwright", "skimage", "ruff"}
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ImportError(f"{name} is hidden: the wheel without extras must not need it")
sys.meta_path.insert(0, Hide())
"""


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_requirements_txt_is_the_union_of_the_package_and_its_extras():
    """requirements.txt (the README's install) and pyproject.toml's lists say one thing."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    listed = [*project["dependencies"]]
    for reqs in project["optional-dependencies"].values():
        listed += [r for r in reqs if not r.startswith("colorizer[")]
    lines = (REPO / "requirements.txt").read_text().splitlines()
    txt = {r.replace(" ", "") for r in lines if r.strip() and not r.lstrip().startswith("#")}
    assert txt == {r.replace(" ", "") for r in listed}


def outer_site_packages() -> list[str]:
    """This interpreter's package folders (venv, conda env or system), user site included."""
    import site

    paths = [*site.getsitepackages(), site.getusersitepackages()]
    paths += [p for p in sys.path if p.rstrip("/").endswith(("site-packages", "dist-packages"))]
    return list(dict.fromkeys(p for p in paths if Path(p).is_dir()))


@pytest.mark.slow
def test_wheel_colorizes_a_photo_outside_the_checkout(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in BUILD_INPUTS:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(REPO / name, src / name)
    wheels = tmp_path / "wheels"
    # No build isolation: the installed setuptools builds it, nothing is downloaded.
    run(sys.executable, "-m", "pip", "wheel", src, "-w", wheels, "--no-deps",
        "--no-build-isolation", "-q")  # fmt: skip
    (wheel,) = wheels.glob("colorizer-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    library = {
        p.relative_to(REPO).as_posix()
        for p in (REPO / "colorizer").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    shipped = {f"colorizer/weights/{p.name}" for p in (REPO / "weights").glob("*.pt")}
    assert library <= names, f"modules missing from the wheel: {sorted(library - names)}"
    assert shipped and shipped <= names, f"weights missing: {sorted(shipped - names)}"
    # Without extras the wheel asks for no app's or tool's packages.
    (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    requires = [
        line.split(":", 1)[1].strip()
        for line in zipfile.ZipFile(wheel).read(meta).decode().splitlines()
        if line.startswith("Requires-Dist:")
    ]
    plain = {_name(r) for r in requires if "extra ==" not in r}
    apps = {"gradio", "pytest", "playwright", "ruff", "pandas", "scipy", "fastapi", "onnx"}
    assert "torch" in plain and not plain & apps, plain

    # A fresh environment that sees this one's packages (torch is not installed again); pip
    # from here installs into it, with no index: every dependency must be satisfied already.
    # Not `venv --system-site-packages`: run from inside a venv (the README's path) that sees
    # the BASE interpreter's packages, not this venv's, so torch would be missing. A .pth file
    # naming this interpreter's own package folders works alike in a venv, conda and the system
    # Python.
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    venv_site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
                     .stdout.strip())  # fmt: skip
    (venv_site / "_outer_env.pth").write_text("\n".join(outer_site_packages()) + "\n")
    # The outer environment has every extra installed; hide the apps' and tools' packages so
    # that colorizing is shown to need none of them.
    (venv_site / "_hide_extras.py").write_text(HIDE_EXTRAS)
    (venv_site / "_hide_extras.pth").write_text("import _hide_extras\n")
    run(python, "-m", "pip", "install", "-q", "--no-index", wheel)
    hidden = subprocess.run([python, "-c", "import pandas"], capture_output=True, text=True)
    assert hidden.returncode != 0 and "is hidden" in hidden.stderr  # the hiding is in force

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(REPO / "examples" / "dune.jpg", elsewhere)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COLORIZER_WEIGHTS_DIR")}
    env["OMP_NUM_THREADS"] = "1"
    where = run(python, "-c", "import colorizer, colorizer.models as m; "
                "print(colorizer.__file__); print(m.default_weights_dir())",
                cwd=elsewhere, env=env).stdout.split()  # fmt: skip
    site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert all(Path(w).is_relative_to(site) for w in where), where  # not the checkout

    run(venv / "bin" / "colorizer", "colorize", "dune.jpg", "--model", "landscape", "--out", "out",
        cwd=elsewhere, env=env)  # fmt: skip
    out = Image.open(elsewhere / "out" / "dune.png")
    assert out.size == Image.open(elsewhere / "dune.jpg").size
    rgb = np.asarray(out, dtype=np.int16)
    assert np.abs(rgb - rgb.mean(-1, keepdims=True)).mean() > 2  # colour, not grey
