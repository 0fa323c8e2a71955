"""How much a checkpoint's val score moves when only its encoder's BN statistics move.

    python -m reports.bn_drift --ckpt runs/default_stage7_weather_decoder/final.pt \
        --data data/all160 --batches 350 --out results/training/ft_bnfrozen/bn_drift_350.md

A decoder trained on a frozen encoder (``freeze_encoder``) saw the encoder's BN layers in eval
mode, normalising with the statistics they came with. A fine-tune that unfreezes the encoder
puts those layers in train mode: they normalise with each batch's statistics and their running
statistics drift towards the new photos'. This measures that drift's cost alone: val at one
temperature, then ``--batches`` batches of training crops forwarded in train mode under
no_grad (no weight moves, only the running statistics of the unfrozen blocks), then val again.
"""

from __future__ import annotations

import argparse
import sys

import torch

from colorizer.atomic import write_text
from colorizer.inference import load_model
from colorizer.provenance import invocation, machine_info
from training.data import load_images, make_batch, to_lab
from training.validate import validate


def val_scores(model: torch.nn.Module, val: torch.Tensor, t: float) -> dict[str, float]:
    r = validate(model, val, torch.device("cpu"), [t])[t]
    return {k: r[k] for k in ("psnr_db", "euclidean", "colorfulness")}


@torch.no_grad()
def drift_statistics(
    model: torch.nn.Module, train: torch.Tensor, batches: int, batch: int, crop: int, seed: int
) -> int:
    """Forward training crops with the encoder above ``freeze_blocks`` in train mode (the
    decoder in eval mode): only the encoder's BN running statistics change. Returns how many
    encoder BN layers were in train mode."""
    gen = torch.Generator().manual_seed(seed)
    model.eval()  # the decoder's statistics stay: this measures the encoder's alone
    model.encoder.train()
    for m in model.encoder.frozen_modules(model.freeze_blocks):
        m.eval()
    n_bn = sum(
        1 for m in model.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d) and m.training
    )
    for _ in range(batches):
        idx = torch.randint(0, len(train), (batch,), generator=gen)
        L, _ = to_lab(make_batch(train, idx, crop, True, gen, torch.device("cpu")))
        model(L)
    model.eval()
    return n_bn


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True, help="an effunet checkpoint with a frozen encoder")
    p.add_argument("--data", required=True, help="a prepared folder (python -m training prepare)")
    p.add_argument("--out", required=True, help="the markdown report to write")
    p.add_argument("--val-limit", type=int, default=400, help="val photos (spread over sources)")
    # the encoder's BN momentum is 0.01: 350 batches move its statistics 97 % of the way, as
    # far as a fine-tune's first epoch of 348 steps does
    p.add_argument("--batches", type=int, default=350)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--crop", type=int, default=160)
    p.add_argument("--freeze-blocks", type=int, default=3, help="as the fine-tune has it")
    p.add_argument("--temperature", type=float, default=0.5, help="the trainer's val setting")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    model = load_model(a.ckpt)[0]
    if not hasattr(model, "encoder") or not hasattr(model, "freeze_blocks"):
        raise SystemExit(f"{a.ckpt}: not an effunet checkpoint")
    model.freeze_blocks = a.freeze_blocks
    val = load_images(a.data, "val", a.val_limit, spread=True)
    before = val_scores(model, val, a.temperature)
    n_bn = drift_statistics(model, load_images(a.data, "train"), a.batches, a.batch, a.crop, a.seed)
    after = val_scores(model, val, a.temperature)
    rows = [
        f"| {name} | {s['psnr_db']:.2f} | {s['euclidean']:.1f} | {s['colorfulness']:.1f} |"
        for name, s in (
            ("as trained (encoder BN in eval mode)", before),
            (
                f"after {a.batches} batches of {a.batch} train crops, encoder in train mode, "
                "no weight moved",
                after,
            ),
        )
    ]
    text = "\n".join(
        [
            f"# Encoder BN statistics drift alone: {a.ckpt}",
            "",
            f"Command: `{invocation()}`  ",
            f"Machine: {machine_info()}  ",
            f"{len(val)} val photos of {a.data} (spread over its sources), T {a.temperature}; "
            f"{n_bn} encoder BN layers in train mode (stem and first {a.freeze_blocks} blocks frozen).",
            "",
            "| encoder statistics | PSNR dB | ED | colourfulness |",
            "|---|---:|---:|---:|",
            *rows,
            "",
            f"Change: {after['psnr_db'] - before['psnr_db']:+.2f} dB, "
            f"ED {after['euclidean'] - before['euclidean']:+.1f}.",
            "",
        ]
    )
    write_text(a.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
