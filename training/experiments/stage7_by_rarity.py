"""Per-photo PSNR and Euclidean distance of an evaluation, split by how rare the photos' colours are.

    python -m training.experiments.stage7_by_rarity --data data/landscape --split val \
        --per-photo results/training/stage7/val/per_photo.csv > results/training/stage7/by_rarity.md

A photo's rarity is `training.train.photo_rarity`: the mean rebalancing weight (lambda 0.7, the
training prior) of its pixels, the quantity photo_balance samples by. Quartiles run from grey
scenes (overcast, snow, rock) to scenes of rare colours (sunsets, saturated seas, flowers).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch

from colorizer.bins import get_bins, rebalance_weights
from colorizer.metrics import RENAMED
from colorizer.provenance import invocation
from training.config import TrainConfig
from training.prepare import photo_names
from training.train import compute_prior, load_images, photo_rarity


def split_rows(data: str, split: str, photos: pd.Series) -> np.ndarray:
    """Row of each photo in the split: photos are named as photo_names names them, or, in
    tables written before the evaluation core (results/training/stage7/val), are row numbers."""
    if pd.api.types.is_integer_dtype(photos):
        return photos.to_numpy()
    row = {name: i for i, name in enumerate(photo_names(data, split))}
    return np.array([row[p] for p in photos])


def markdown(t: pd.DataFrame) -> str:
    rows = [["", *map(str, t.columns)], ["---"] * (len(t.columns) + 1)]
    rows += [[str(i), *(f"{v:.2f}" for v in r)] for i, r in zip(t.index, t.to_numpy(), strict=True)]
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="val")
    ap.add_argument(
        "--per-photo", required=True, help="per_photo.csv of python -m training evaluate"
    )
    ap.add_argument("--lam", type=float, default=0.7)
    args = ap.parse_args()
    torch.set_num_threads(1)
    bins = get_bins("zhang313")
    prior = compute_prior(bins, load_images(args.data, "train"))
    weights = rebalance_weights(prior, lam=args.lam, sigma=TrainConfig().prior_sigma, bins=bins)
    rarity = photo_rarity(bins, load_images(args.data, args.split), weights).numpy()
    d = pd.read_csv(args.per_photo).rename(columns=RENAMED)  # older tables: seed_euclidean
    d["rarity"] = rarity[split_rows(args.data, args.split, d.photo)]
    labels = ["1 (greyest)", "2", "3", "4 (rarest colours)"]
    d["quartile"] = pd.qcut(d.rarity, 4, labels=labels)
    print(f"# {args.split} photos of {args.data} by colour-rarity quartile\n")
    print(f"Command: `{invocation()}`\n")
    for metric, title in (
        ("psnr_db", "PSNR dB ↑"),
        ("euclidean", "Euclidean distance (seed) ↓"),
    ):
        t = d.pivot_table(index="quartile", columns="model", values=metric, observed=True)
        t.loc["all"] = d.pivot_table(index="model", values=metric)[metric]
        print(f"## {title}\n\n{markdown(t)}\n")
    n = d.groupby("quartile", observed=True).photo.nunique()
    print("Photos per quartile: " + ", ".join(f"{k}: {v}" for k, v in n.items()))


if __name__ == "__main__":
    main()
