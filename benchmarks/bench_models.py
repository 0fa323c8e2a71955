"""Cost of the registry's models: exact forward FLOPs (FlopCounterMode) and train-step time
on this machine, run round-robin so that load from other processes hits every model alike.
Baseline for the ratios: eccv16.

    python -m benchmarks.bench_models --out results/models_cost.md
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from colorizer.atomic import write_text
from colorizer.models import create_model
from colorizer.provenance import invocation, machine_string

CASES = [
    ("eccv16", {}, (128, 128)),
    ("colornet", {}, (128, 128)),
    ("colornet", {"widths": (24, 48, 96, 192)}, (128, 128)),
    ("cunet", {}, (128, 128)),
    ("cunet", {"base": 32}, (128, 128)),
    ("streetside", {}, (88, 112)),
]


def flops(model: torch.nn.Module, size: int) -> float:
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(torch.rand(1, 1, size, size) * 100)
    return fc.get_total_flops() / 1e9


def train_step(r: dict) -> None:
    out = r["model"](r["L"])
    if r["target"] is None:  # made once, outside the timed steps
        r["target"] = (
            torch.softmax(torch.randn_like(out), 1)
            if r["model"].kind == "classification"
            else torch.rand_like(out)
        )
    if r["model"].kind == "classification":  # soft cross-entropy over the bins, as in training
        loss = -(r["target"] * F.log_softmax(out, 1)).sum(1).mean()
    else:
        loss = F.mse_loss(out, r["target"])
    r["opt"].zero_grad()
    loss.backward()
    r["opt"].step()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="write the tables here (.md)")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)

    runs = []
    for name, kw, hw in CASES:
        model = create_model(name, **kw).eval()
        g256, g128 = flops(model, 256), flops(model, 128)
        model.train()
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], 1e-3)
        L = torch.rand(args.batch, 1, *hw) * 100
        runs.append(
            dict(
                name=name,
                kw=kw,
                hw=hw,
                model=model,
                opt=opt,
                L=L,
                g=(g256, g128),
                t=[],
                target=None,
            )
        )
    for r in runs:
        train_step(r)  # warm-up
    for _ in range(args.rounds):
        for r in runs:
            t0 = time.perf_counter()
            train_step(r)
            r["t"].append(time.perf_counter() - t0)

    base_g, base_t = runs[0]["g"][1], statistics.median(runs[0]["t"])
    lines = [
        f"command: {invocation(speed_env=True)}",
        f"machine: {machine_string()}",
        "",
        f"| model | args | params | fp16 MB | GFLOPs 256 | GFLOPs 128 | FLOPs vs eccv16 | "
        f"train step B={args.batch} (s) | img/s | time vs eccv16 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        p = sum(x.numel() for x in r["model"].parameters())
        t = statistics.median(r["t"])
        lines.append(
            f"| {r['name']} | {r['kw'] or '-'} | {p / 1e6:.2f}M | {p * 2 / 1e6:.1f} | "
            f"{r['g'][0]:.2f} | {r['g'][1]:.2f} | {r['g'][1] / base_g:.3f} | {t:.2f} "
            f"({r['hw'][1]}x{r['hw'][0]}) | {args.batch / t:.1f} | {t / base_t:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_text(args.out, text)


if __name__ == "__main__":
    main()
