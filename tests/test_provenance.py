"""colorizer.provenance: a recorded command can be typed again as it stands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from colorizer.provenance import cpu_model, hardware_string, invocation, machine_string

REPO = Path(__file__).resolve().parents[1]
PRINT = "from colorizer.provenance import invocation\nprint(invocation())\n"


def run(cwd: Path, *args: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    environ.update(PYTHONPATH=str(REPO), **env)
    proc = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=environ, capture_output=True, text=True, check=True
    )
    return proc.stdout.strip()


def test_module_and_script_runs_are_recorded_as_typed(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "mod.py").write_text(PRINT)
    (tmp_path / "script.py").write_text(PRINT)
    # python -m pkg.mod, not the absolute path of pkg/mod.py
    assert run(tmp_path, "-m", "pkg.mod", "--x", "a b", OMP_NUM_THREADS="1") == (
        "python -m pkg.mod --x 'a b'"
    )
    assert run(tmp_path, "script.py", "--y") == "python script.py --y"


def test_speed_figures_record_the_thread_count(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    argv = ["benchmarks/bench_x.py", "--n", "3"]
    assert (
        invocation(argv, speed_env=True) == "OMP_NUM_THREADS=1 python benchmarks/bench_x.py --n 3"
    )
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert invocation(argv, speed_env=True) == "python benchmarks/bench_x.py --n 3"


def test_package_main_and_console_script():
    main = str(REPO / "training" / "__main__.py")
    assert invocation([main, "train", "--config", "c.toml"]) == (
        "python -m training train --config c.toml"
    )
    assert invocation(["/venv/bin/colorizer", "colorize", "a b.jpg"]) == (
        "colorizer colorize 'a b.jpg'"
    )


def test_machine_string_names_the_cpu_threads_and_load():
    text = machine_string()
    assert text.startswith(hardware_string("cpu")) and cpu_model() in text
    assert "torch threads" in text and "load average" in text and "CPUs visible" in text
