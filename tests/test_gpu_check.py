"""tools/gpu_check.py on a machine without a GPU: it refuses clearly, its arguments are
checked, and its DDP step really runs two processes (gloo on the CPU, torchrun)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tools import gpu_check

REPO = Path(__file__).resolve().parents[1]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tools.gpu_check", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_cuda_it_stops_with_one_line_and_writes_nothing(tmp_path):
    p = run("--out", str(tmp_path / "gpu"))
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no CUDA GPU")
    assert not (tmp_path / "gpu").exists()


def test_arguments_are_checked(capsys):
    with pytest.raises(SystemExit) as e:
        gpu_check.parse_args(["--train-steps", "0"])
    assert e.value.code == 2
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--only", "everything"])
    assert "--train-steps must be >= 1" in capsys.readouterr().err
    assert gpu_check.parse_args([]).only == list(gpu_check.STEPS)
    assert sum(gpu_check.LIMITS.values()) < 300  # the check fits in five minutes


def test_dry_run_shows_every_step_and_the_ddp_fallback(capsys):
    assert gpu_check.main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    for step in gpu_check.STEPS:
        assert f"# {step} (limit" in out
    assert "pytest -m cuda" in out and "--devices cuda" in out
    ddp = [line for line in out.splitlines() if "tools.ddp_step" in line]
    if torch.cuda.device_count() < 2:  # NCCL first; gloo on the shared GPU if NCCL refuses
        assert ["--backend nccl" in ddp[0], "--backend gloo" in ddp[1]] == [True, True]
    assert gpu_check.main(["--dry-run", "--only", "ddp", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "--backend gloo --device cpu" in out and "nccl" not in out


def test_cpu_rehearsal_of_the_two_process_ddp_step(tmp_path):
    out = tmp_path / "gpu"
    p = run("--device", "cpu", "--only", "ddp", "--out", str(out), timeout=240)
    assert p.returncode == 0, p.stdout + p.stderr
    report = json.loads((out / "ddp_gloo.json").read_text())
    assert report["ok"] and report["world_size"] == 2 and report["backend"] == "gloo"
    assert all(report["weights_equal_across_ranks_after_each_step"])
    summary = json.loads((out / "summary.json").read_text())
    assert [s["name"] for s in summary["steps"]] == ["ddp"] and summary["ok"]
    assert "| ddp | ok |" in (out / "summary.md").read_text()


AGREED = {"ok": True, "weights_equal_across_ranks_after_each_step": [True, True]}


@pytest.mark.parametrize(
    "text", ["Signal 6 (SIGABRT) received by PID 123", "exitcode  : -6 (pid: 123)"]
)
def test_a_teardown_abort_passes_only_after_a_report_whose_steps_all_agreed(text):
    assert gpu_check._teardown_abort("gloo", 1, text, AGREED)
    assert not gpu_check._teardown_abort("gloo", 1, text, {})  # no report: it proved nothing
    split = {"ok": False, "weights_equal_across_ranks_after_each_step": [True, False]}
    assert not gpu_check._teardown_abort("gloo", 1, text, split)
    assert not gpu_check._teardown_abort("nccl", 1, text, AGREED)  # NCCL's watchdog means it
    assert not gpu_check._teardown_abort("gloo", 124, text, AGREED)  # killed at its limit
    assert not gpu_check._teardown_abort("gloo", 1, "RuntimeError: connection refused", AGREED)


def _ddp_step(tmp_path, monkeypatch, write_report: bool):
    """gpu_check's ddp step with torchrun replaced: a stale all-agreed report is left from an
    earlier run, and the run aborts, writing a fresh one or not."""
    out = tmp_path / "gpu"
    out.mkdir()
    a = gpu_check.parse_args(["--device", "cpu", "--only", "ddp", "--out", str(out)])
    (cmd,) = gpu_check.plan(a, out)["ddp"]
    report = Path(cmd[cmd.index("--out") + 1])
    report.write_text(json.dumps(AGREED))

    def fake_run(cmd, limit, log, env=None):
        assert not report.exists()  # the stale report was removed before the run
        if write_report:
            report.write_text(json.dumps(AGREED))
        return 1, "terminate called without an active exception\nSignal 6 (SIGABRT)"

    monkeypatch.setattr(gpu_check, "_run", fake_run)
    return gpu_check.run_step("ddp", [cmd], a, out)


def test_a_stale_report_does_not_vouch_for_a_failed_ddp_run(tmp_path, monkeypatch):
    assert not _ddp_step(tmp_path, monkeypatch, write_report=False).ok


def test_an_abort_after_an_agreed_report_passes_and_says_so(tmp_path, monkeypatch):
    step = _ddp_step(tmp_path, monkeypatch, write_report=True)
    assert step.ok and "aborted in gloo's teardown" in step.detail
