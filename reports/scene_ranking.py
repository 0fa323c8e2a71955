"""How well each per-photo head ranks a kind of photo (the grey-weather sets) on val.

    python -m reports.scene_ranking --ckpt weights/default.pt --data data/all160 \
        --along '*weather/dawn-*' '*weather/mwd-cloudy' '*weather/mwd-rain' \
        --out results/training/tilt_along/scene_ranking.md

The gray tilt and the expert's gate are linear maps of the scene vector; which photos they
act on first is their ranking. This scores, by the area under the ROC curve for the val photos
of the ``--along`` sources against the rest: the checkpoint's tilt strength (before its relu)
and gate score, the truth's own mean chroma (lower = greyer), and the direction that a
logistic regression on the train photos finds (``training.tilt.separating_direction``, as
``fit-tilt --along`` uses it), with the share of each kind in the top 15 %.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from scipy.stats import rankdata

from colorizer.atomic import write_text
from colorizer.models import load_checkpoint
from colorizer.provenance import invocation, machine_info
from training.calibrate import source_groups
from training.data import load_images, to_lab
from training.tilt import balance, matching, separating_direction, working_batches


def auc(positive: np.ndarray, score: np.ndarray) -> float:
    """P(a positive photo scores above a negative one), ties counted half."""
    r = rankdata(score)
    n1, n0 = positive.sum(), (~positive).sum()
    return float((r[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


@torch.no_grad()
def scene(model: torch.nn.Module, data: str, split: str, limit: int, along: tuple[str, ...]):
    """(scene vectors (N, C), truth mean chroma (N,), the along mask (N,), per-photo weights
    that give every source the same total (N,)) of a split."""
    images = load_images(data, split, limit, spread=True)
    groups = source_groups(data, split, limit)
    gs, chroma = [], []
    for rgb8, (_, g) in working_batches(model, images):
        gs.append(g.float())
        chroma.append(to_lab(rgb8.float() / 255)[1].norm(dim=1).mean((1, 2)))
    n = len(images)
    return torch.cat(gs), torch.cat(chroma), matching(groups, along, n), balance(groups, n)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--along", nargs="+", required=True, metavar="PATTERN")
    p.add_argument("--limit", type=int, default=3000, help="train photos for the regression")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    model, _ = load_checkpoint(a.ckpt)
    along = tuple(a.along)
    g_train, _, pos_train, weights = scene(model, a.data, "train", a.limit, along)
    g_val, chroma, pos, _ = scene(model, a.data, "val", 0, along)
    mu, sd = g_train.mean(0), g_train.std(0, unbiased=False) + 1e-6
    u = separating_direction((g_train - mu) / sd, pos_train, weights)
    scores = {"logistic direction (train photos)": ((g_val - mu) / sd) @ u}
    if model.gray_tilt is not None:  # each head before its relu: a rank for every photo
        heads = model.gray_tilt.scores(g_val).T  # (heads, N)
        for j, head in enumerate(heads):
            scores["the gray tilt's strength" + (f" (head {j + 1})" if len(heads) > 1 else "")] = (
                head
            )
    for i, expert in enumerate(getattr(model, "experts", ())):
        scores[f"expert {i}'s gate score"] = expert.score(g_val)
    scores["the truth's greyness (-chroma)"] = -chroma
    pos = pos.numpy()
    lines = [
        "# Which val photos each head ranks first: the grey-weather sets against the rest",
        "",
        f"Command: `{invocation()}`  ",
        f"Machine: {machine_info()}  ",
        f"Val photos: {len(pos)}, of them {int(pos.sum())} from {', '.join(along)}.",
        "",
        "| ranking | AUC | top 15 %: share of those sets | top 15 %: share of the rest |",
        "|---|---:|---:|---:|",
    ]
    for name, s in scores.items():
        s = s.double().numpy()
        top = s >= np.quantile(s, 0.85)
        lines.append(
            f"| {name} | {auc(pos, s):.3f} | {top[pos].mean():.0%} | {top[~pos].mean():.0%} |"
        )
    text = "\n".join([*lines, ""])
    write_text(a.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
