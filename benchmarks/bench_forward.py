"""Forward time of one 256x256 photo on the CPU: the default model against eccv16, side by side.

    python -m benchmarks.bench_forward --out results/default_model/forward_256.md

Round-robin over the models (each round times every model once), so load from other processes
hits them alike; the median of the rounds is reported with its ratio to eccv16. Models are built
from the registry at random init: the time does not depend on the weights. "effunet + expert"
is EffUNet with an expert decoder's gate open (its dearest case: a shut gate skips the expert);
"... + two experts" two on the base's encoder, both gates open (the shipped default's dearest
case), "... on its own encoder" one with its own encoder (``add-expert --own-encoder``), and
"... + a shared and an own expert" one of each, both open, "... + three experts" three on the
base's encoder, all open. "default (shipped file)" is weights/default.pt as a user runs it: its
time depends on the photo, whose scene opens its gates (the fixed noise input here opens both,
shares 1.0 and 0.33, its dearest case).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from colorizer.atomic import write_text
from colorizer.models import create_model
from colorizer.provenance import invocation, machine_info

CASES = ("eccv16", "effunet", "colornet", "cunet", "streetside")


def open_experts(*kinds: str) -> torch.nn.Module:
    """EffUNet with expert decoders of ``kinds`` ("shared", "own") whose gates are all open
    for every photo (sharing it equally)."""
    model = create_model("effunet", experts=kinds).eval()
    with torch.no_grad():
        for expert in model.experts:
            expert.gate.bias.fill_(1.0 / len(kinds))
    return model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = {name: create_model(name).eval() for name in CASES}
    models["effunet + expert"] = open_experts("shared")
    models["effunet + two experts"] = open_experts("shared", "shared")
    models["effunet + expert on its own encoder"] = open_experts("own")
    models["effunet + a shared and an own expert"] = open_experts("shared", "own")
    models["effunet + three experts"] = open_experts("shared", "shared", "shared")
    # the file users run (weights/default.pt, its gates as fitted: the random photo opens them
    # as it opens them), beside the random-init cases above
    models["default (shipped file)"] = create_model("default").eval()
    L = torch.rand(1, 1, args.size, args.size) * 100
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for m in models.values():
            m(L)  # warm-up
        for _ in range(args.rounds):
            for name, m in models.items():
                t0 = time.perf_counter()
                m(L)
                times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["eccv16"])
    lines = [
        f"# Forward time, 1 x {args.size} x {args.size}, CPU",
        "",
        f"Command: `{invocation()}`  ",
        f"Machine: {machine_info()}",
        "",
        "| model | params | fp16 MB | median ms | min ms | eccv16 / model |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, m in models.items():
        n = sum(p.numel() for p in m.parameters())
        med, lo = statistics.median(times[name]), min(times[name])
        lines.append(
            f"| {name} | {n / 1e6:.2f} M | {n * 2 / 1e6:.1f} | {1e3 * med:.0f} | "
            f"{1e3 * lo:.0f} | {base / med:.1f}x |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
