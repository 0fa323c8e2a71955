"""Which photos one expert's gate ranks first, and what the expert does for them.

    python -m reports.gate_ranking --ckpt runs/weather_expert/gated.pt --data data/all160 \
        --top 0.15 --out results/training/weather_expert/gate_ranking.md

A gate (``colorizer.models.effunet.Expert``) opens for the photos whose scene vector ranks
highest under its linear map; the offset and gain ``fit-gate`` chooses only decide how many.
So the ranking bounds what any setting can do: this takes the ``--top`` share of the val
photos by the gate's own score (before its clamp) and reports, per source, how many of them
rank there, and the PSNR and colour of the source with the expert fully on for them (the
rest left to the base) against the base alone; the gray tilt, if any, off. In a model with
several experts, "base" is the model without this one (the other gates as fitted), and "expert"
that expert at share 1 beside the other gates, whose shares then scale down to a sum of 1 (on
the shipped default, expert 1 at 1 where expert 0 is at 1 gets half).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from colorizer.atomic import write_text
from colorizer.models import load_checkpoint
from colorizer.provenance import invocation, machine_info
from training.calibrate import source_groups
from training.data import load_images, on_grid, to_lab
from training.gate import decode_gated, decoder_outputs


@torch.no_grad()
def photo_table(model: torch.nn.Module, data: str, limit: int, expert: int = -1) -> pd.DataFrame:
    """Per val photo: its source, the gate's score, the base's and the expert's a*b* MSE and
    chroma, and the truth's chroma (on the output grid)."""
    images = load_images(data, "val", limit, spread=True)
    source = np.empty(len(images), object)
    for name, idx in source_groups(data, "val", limit).items():
        source[idx.numpy()] = Path(name).name
    out = []
    gate = model.experts[expert]
    for rgb8, g, stack in decoder_outputs(model, images):
        truth = on_grid(to_lab(rgb8.float() / 255)[1], stack.shape[-2:])
        row = {"score": gate.score(g), "truth_chroma": truth.norm(dim=1).mean((1, 2))}
        for name, gamma in (("base", 0.0), ("expert", 1.0)):
            ab = decode_gated(model, expert, stack, torch.full((len(g),), gamma), g)
            row[f"{name}_mse"] = ((ab - truth) ** 2).mean((1, 2, 3))
            row[f"{name}_chroma"] = ab.norm(dim=1).mean((1, 2))
        out.append(pd.DataFrame({k: v.numpy() for k, v in row.items()}))
    table = pd.concat(out, ignore_index=True)
    table.insert(0, "source", source)
    return table


def ranking(table: pd.DataFrame, top: float) -> pd.DataFrame:
    """Per source: share of its photos in the top ``top`` by score; PSNR (of the mean MSE)
    and chroma against the truth's, base alone and with the expert on the top photos."""
    chosen = table["score"] >= table["score"].quantile(1 - top)
    mse = np.where(chosen, table["expert_mse"], table["base_mse"])
    chroma = np.where(chosen, table["expert_chroma"], table["base_chroma"])
    t = table.assign(chosen=chosen, mixed_mse=mse, mixed_chroma=chroma).groupby("source")
    psnr = lambda m: 10 * np.log10(100.0**2 / m)  # noqa: E731  (a*b* MSE, as the gate's fit)
    return pd.DataFrame(
        {
            "photos": t.size(),
            "in_top": t["chosen"].mean(),
            "base_db": psnr(t["base_mse"].mean()),
            "gated_db": psnr(t["mixed_mse"].mean()),
            "base_colour": t["base_chroma"].mean() / t["truth_chroma"].mean(),
            "gated_colour": t["mixed_chroma"].mean() / t["truth_chroma"].mean(),
        }
    ).round(3)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True, help="a checkpoint with a fitted gate (fit-gate)")
    ap.add_argument("--data", required=True, help="a folder written by training prepare")
    ap.add_argument("--limit", type=int, default=700, help="val photos, spread (0: all)")
    ap.add_argument("--top", type=float, default=0.15, help="share of the val photos gated")
    ap.add_argument("--expert", type=int, default=-1, help="whose gate (default: the last)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    model, _ = load_checkpoint(args.ckpt)
    n = len(getattr(model, "experts", ()))
    if not -n <= args.expert < n:  # none at all: no index is
        print(
            f"{args.ckpt}: has {n} expert decoder(s), not an expert {args.expert} (python -m "
            "training add-expert)",
            file=sys.stderr,
        )
        return 2
    if model.gray_tilt is not None:
        model.gray_tilt.zero_()  # the gate's own effect, without the tilt (every head)
    table = ranking(photo_table(model.eval(), args.data, args.limit, args.expert), args.top)
    text = "\n".join(
        [
            f"# The gate's ranking: the top {args.top:.0%} of val photos take the expert",
            "",
            f"Command: `{invocation()}`  ",
            f"Machine: {machine_info()}",
            "",
            "PSNR of the a\\*b\\* error on the output grid (dB), colour = mean chroma against "
            "the truth's; base alone against the expert fully on for the top photos.",
            "",
            "| source | photos | in top | base dB | gated dB | base colour | gated colour |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *(
                f"| {src} | {int(r.photos)} | {r.in_top:.0%} | {r.base_db:.2f} | {r.gated_db:.2f} | "
                f"{r.base_colour:.0%} | {r.gated_colour:.0%} |"
                for src, r in table.iterrows()
            ),
            "",
        ]
    )
    write_text(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
