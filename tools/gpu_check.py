"""GPU readiness in one command: every CUDA path of the project, run and recorded.

    python -m tools.gpu_check                      # -> results/gpu/<date>_<gpu>/
    python -m tools.gpu_check --out results/gpu/h200 --only tests ddp
    python -m tools.gpu_check --dry-run            # the commands, without running them

On a machine with CUDA it runs, each step in its own process with its own time limit (the
limits add up to under five minutes):

1. tests     the CUDA-marked tests (pytest -m cuda), as JUnit XML;
2. train     a short training run on tiny synthetic photos, bf16 autocast and channels-last
             (python -m training prepare + train, device cuda), its metrics and loss curve;
3. bench     the inference benchmark on CUDA (benchmarks.bench_inference --devices cuda);
4. ddp       a two-process DDP step (torchrun, tools.ddp_step): NCCL when there is a
             GPU per rank; on one GPU NCCL refuses two ranks on the same device, which is
             recorded, and the two ranks then share the GPU over gloo.

Every figure goes under --out, with summary.md and summary.json saying which steps passed,
how long each took, the command and the machine. Without CUDA it stops at once with a
one-line error and exit code 2 (nothing is written). Exit code 1 when a step failed.
See docs/gpu.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEPS = ("tests", "train", "bench", "ddp")
# Seconds each step may take; together under the five minutes the check must fit in.
LIMITS = {"tests": 60, "train": 90, "bench": 100, "ddp": 45}


@dataclass
class StepResult:
    name: str
    ok: bool
    seconds: float
    commands: list[str]
    detail: str = ""
    figures: dict = field(default_factory=dict)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tools.gpu_check", description=__doc__.splitlines()[0]
    )
    p.add_argument("--out", help="folder for every figure (default: results/gpu/<date>_<gpu>)")
    p.add_argument("--only", nargs="+", choices=STEPS, help="run these steps only")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument(
        "--ddp-backend",
        choices=("auto", "nccl", "gloo"),
        default="auto",
        help="auto: NCCL with a GPU per rank, else NCCL tried and gloo on the shared GPU",
    )
    p.add_argument("--train-steps", type=int, default=30, help="steps of the training run")
    p.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default="cuda",
        help="cpu: a rehearsal of the same steps on the CPU (gloo, no bf16), for machines "
        "without a GPU; it proves the plumbing, not the CUDA paths",
    )
    a = p.parse_args(argv)
    if a.train_steps < 1:
        p.error(f"--train-steps must be >= 1, got {a.train_steps}")
    a.only = list(a.only or STEPS)
    return a


def _tail(text: str, n: int = 800) -> str:
    return text[-n:].strip()


def _run(cmd: list[str], limit: float, log: Path, env: dict | None = None) -> tuple[int, str]:
    """Run cmd, its output into log; (exit code, output). 124 when it ran past limit."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    try:
        p = subprocess.run(
            cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=limit
        )
        code, text = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        out = e.stdout or b""
        text = (out.decode() if isinstance(out, bytes) else out) + f"\n[killed after {limit} s]"
        code = 124
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"$ {' '.join(cmd)}\n{text}")
    return code, text


def plan(a: argparse.Namespace, out: Path) -> dict[str, list[list[str]]]:
    """The commands of each step (the training step's data and config are made first)."""
    py = sys.executable
    work = out / "train"
    dev = a.device
    return {
        "tests": [
            [py, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", "--junitxml",
             str(out / "cuda_tests.xml"), "tests"],
        ],
        "train": [
            [py, "-m", "training", "prepare", "--images", str(work / "photos"), "--out",
             str(work / "data"), "--size", "64", "--val", "0.2", "--test", "0.1"],
            [py, "-m", "training", "train", "--config", str(work / "tiny_bf16.toml")],
        ],
        "bench": [
            [py, "-m", "benchmarks.bench_inference", "--devices", dev, "--skip", "folder",
             "onnx", "--reps", "3", "--out", str(out / f"bench_inference_{dev}.csv"), "--note",
             "gpu_check"],
        ],
        "ddp": [
            [py, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
             "-m", "tools.ddp_step", "--backend", backend, "--device", dev,
             "--out", str(out / f"ddp_{backend}.json")]
            for backend in _ddp_backends(a.ddp_backend, dev)
        ],
    }  # fmt: skip


def _ddp_backends(choice: str, device: str) -> list[str]:
    if device == "cpu":
        return ["gloo"]  # NCCL is CUDA only
    if choice != "auto":
        return [choice]
    import torch

    return ["nccl"] if torch.cuda.device_count() >= 2 else ["nccl", "gloo"]


def _synthetic_photos(folder: Path, n: int = 64, size: int = 72) -> None:
    """Two-tone scenes with noise (sky over grass and the like): learnable, no download."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        a = np.empty((size, size, 3), np.float64)
        h = rng.integers(size // 4, 3 * size // 4)
        a[:h] = rng.uniform(40, 250, 3)
        a[h:] = rng.uniform(20, 200, 3)
        a += rng.normal(0, 10, a.shape)
        Image.fromarray(a.clip(0, 255).astype(np.uint8)).save(folder / f"p{i:03d}.png")


def _train_config(work: Path, steps: int, device: str) -> Path:
    path = work / "tiny_bf16.toml"
    path.write_text(
        "\n".join(
            [
                'name = "gpu_check_bf16"',
                f'data = "{work / "data"}"',
                f'out_dir = "{work / "run"}"',
                'model = "colornet_tiny"',
                f'device = "{device}"',
                "amp = true  # bf16 autocast",
                "channels_last = true",
                "epochs = 100",
                f"max_steps = {steps}",
                "batch_size = 16",
                "crop = 48",
                "lr = 3e-3",
                "log_every = 1",
                "temperature_grid = [0.3, 1.0]",
                "",
            ]
        )
    )
    return path


def _junit_counts(xml: Path) -> dict:
    if not xml.is_file():
        return {}
    head = xml.read_text()[:2000]
    m = re.search(r"<testsuite [^>]*>", head)
    if not m:
        return {}
    attrs = dict(re.findall(r'(\w+)="([^"]*)"', m.group(0)))
    return {k: int(attrs.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}


def _teardown_abort(backend: str, code: int, text: str, report: dict) -> bool:
    """True when a gloo DDP run failed only by a rank's SIGABRT in gloo's teardown, after rank
    0 wrote a report in which every step agreed: gloo's threads can still abort at process
    exit ("terminate called without an active exception"), rarely (1 CI run in about 20),
    even behind the barrier before destroy_process_group. The steps themselves were checked:
    rank 0 writes its report only after the last step's all-gather on both ranks. Not NCCL's
    (its watchdog aborts too, and means something there) and not a run killed at its limit."""
    aborted = "SIGABRT" in text or "exitcode  : -6" in text
    agreed = report.get("weights_equal_across_ranks_after_each_step") or [False]
    failed = code not in (0, 124)
    return backend == "gloo" and failed and aborted and report.get("ok") is True and all(agreed)


def run_step(name: str, cmds: list[list[str]], a: argparse.Namespace, out: Path) -> StepResult:
    start = time.perf_counter()
    deadline = start + LIMITS[name]
    shown = [" ".join(c) for c in cmds]
    figures: dict = {}
    if name == "train":
        work = out / "train"
        _synthetic_photos(work / "photos")
        _train_config(work, a.train_steps, a.device)
    detail, ok = "", True
    for i, cmd in enumerate(cmds):
        left = max(1.0, deadline - time.perf_counter())
        if name == "ddp":
            backend = cmd[cmd.index("--backend") + 1]
            report = Path(cmd[cmd.index("--out") + 1])
            report.unlink(missing_ok=True)  # one left by an earlier run must not speak for this
        code, text = _run(cmd, left, out / "logs" / f"{name}_{i}.log")
        if name == "ddp":
            figures[backend] = {"exit_code": code, "tail": _tail(text, 400)}
            if report.is_file():
                figures[backend].update(json.loads(report.read_text()))
            if code == 0 or _teardown_abort(backend, code, text, figures[backend]):
                ok, detail = True, f"{backend}: weights equal on both ranks after every step"
                if code != 0:
                    detail += f" (a rank aborted in gloo's teardown after the report: exit {code})"
                break
            ok, detail = False, f"{backend} failed (exit {code}): {_tail(text, 300)}"
            continue  # NCCL may refuse two ranks on one GPU: the next backend is tried
        if code != 0:
            ok, detail = False, f"exit {code}: {_tail(text)}"
            break
    if name == "tests":
        figures = _junit_counts(out / "cuda_tests.xml")
        detail = detail or ", ".join(f"{k} {v}" for k, v in figures.items())
    if name == "train" and ok:
        run = out / "train" / "run"
        for f in ("metrics.csv", "steps.csv", "loss.png"):
            if (run / f).is_file():
                shutil.copy(run / f, out / f"train_{f}")
        figures["files"] = sorted(p.name for p in out.glob("train_*"))
        how = "bf16 autocast, channels-last" if a.device == "cuda" else "fp32 (cpu rehearsal)"
        detail = f"{a.train_steps} steps on {a.device}, {how}; metrics in train_metrics.csv"
    if name == "bench" and ok:
        detail = "figures in bench_inference_cuda.csv"
    return StepResult(name, ok, time.perf_counter() - start, shown, detail, figures)


def default_out(device: str) -> Path:
    import torch

    from colorizer.provenance import utc_now

    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu-rehearsal"
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()
    return REPO / "results" / "gpu" / f"{utc_now()[:10]}_{gpu}"


def write_summary(out: Path, results: list[StepResult], total: float) -> None:
    from colorizer.atomic import write_text
    from colorizer.provenance import invocation, machine_info, utc_now

    info = machine_info()
    data = {
        "ok": all(r.ok for r in results),
        "seconds": total,
        "steps": [asdict(r) for r in results],
        "machine": info,
        "command": invocation(),
        "date": utc_now(),
    }
    write_text(out / "summary.json", json.dumps(data, indent=2) + "\n")
    lines = [
        "# GPU check",
        "",
        f"Command: `{data['command']}`  ",
        f"Machine: {', '.join(f'{k} {v}' for k, v in info.items())}  ",
        f"Date: {data['date']}; total {total:.0f} s",
        "",
        "| step | result | seconds | detail |",
        "|---|---|---|---|",
    ]
    for r in results:
        detail = r.detail.replace("|", "/").replace("\n", " ")
        lines.append(f"| {r.name} | {'ok' if r.ok else 'FAILED'} | {r.seconds:.0f} | {detail} |")
    write_text(out / "summary.md", "\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    import torch

    if a.device == "cuda" and not torch.cuda.is_available() and not a.dry_run:
        print(
            "error: no CUDA GPU visible to torch "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}); "
            "this check needs a GPU machine (--dry-run shows what it would run, --device cpu "
            "rehearses it on the CPU)",
            file=sys.stderr,
        )
        return 2
    out = Path(a.out) if a.out else (default_out(a.device) if not a.dry_run else None)
    steps = plan(a, out or REPO / "results" / "gpu" / "OUT")
    if a.dry_run:
        for name in a.only:
            print(f"# {name} (limit {LIMITS[name]} s)")
            for cmd in steps[name]:
                print(" ".join(cmd))
        return 0
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results = []
    for name in a.only:
        r = run_step(name, steps[name], a, out)
        print(f"{name:6s} {'ok' if r.ok else 'FAILED'} in {r.seconds:.0f} s  {r.detail[:200]}")
        results.append(r)
    total = time.perf_counter() - start
    write_summary(out, results, total)
    print(f"wrote {out}/summary.md ({total:.0f} s)")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
