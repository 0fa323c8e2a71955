"""Class prior of a training split, rebalancing weights, and a heat map on the a*b* plane.

    python -m training prior --data data/landscape --bins zhang313 --lam 0.5 --out results/training/prior

Writes prior_<bins>.csv (class, a, b, prior, weight) and prior_<bins>.png: the empirical
distribution (log scale) and the rebalancing weights painted on the a*b* plane, each pixel of
the plane coloured by the value of the class it encodes to (as the first seed's heat map shows
its 104 classes).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import torch

from colorizer.atomic import atomic_text
from colorizer.bins import get_bins, rebalance_weights
from training.prepare import load_split

log = logging.getLogger(__name__)


def _plane(
    bins, values: torch.Tensor, lo: float = -110.0, hi: float = 110.0, n: int = 221
) -> np.ndarray:
    """Paint the a*b* plane (rows: b from hi to lo, columns: a from lo to hi) with per-class
    values; pixels that fall in the null class (seed104's "no class") are NaN."""
    a = torch.linspace(lo, hi, n)
    b = torch.linspace(hi, lo, n)
    bb, aa = torch.meshgrid(b, a, indexing="ij")
    ab = torch.stack([aa, bb])[None]  # (1, 2, n, n)
    cls = bins.encode_hard(ab)[0]  # (n, n)
    img = values.double()[cls].numpy()
    if bins.null_index is not None:
        img[cls.numpy() == bins.null_index] = np.nan
    return img


def compute_prior(
    data: str,
    bins_name: str,
    lam: float = 0.5,
    sigma: float = 5.0,
    out: str = "results/training/prior",
) -> list[Path]:
    """Prior of the train split + weights (colorizer.bins), as CSV and heat-map PNG."""
    from training.data import compute_prior as prior_of_images

    bins = get_bins(bins_name)
    images = torch.from_numpy(np.array(load_split(data, "train")))
    prior = prior_of_images(bins, images)  # (Q,)
    weights = rebalance_weights(prior, lam=lam, sigma=sigma, bins=bins)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / f"prior_{bins_name}.csv"
    with atomic_text(csv_path) as f:
        w = csv.writer(f)
        w.writerow(["class", "a", "b", "prior", f"weight_lam{lam:g}"])
        for q in range(bins.num_classes):
            a, b = bins.centers[q].tolist()
            w.writerow(
                [q, f"{a:.2f}", f"{b:.2f}", f"{float(prior[q]):.8f}", f"{float(weights[q]):.5f}"]
            )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), dpi=110)
    ext = (-110, 110, -110, 110)
    p_img = _plane(bins, torch.log10(prior.clamp_min(1e-7)))
    im = axes[0].imshow(p_img, extent=ext, cmap="viridis")
    axes[0].set_title(f"log10 prior, train split ({len(images)} photos)")
    fig.colorbar(im, ax=axes[0], fraction=0.046)
    im = axes[1].imshow(_plane(bins, weights), extent=ext, cmap="magma")
    axes[1].set_title(f"rebalancing weight, lambda = {lam:g}")
    fig.colorbar(im, ax=axes[1], fraction=0.046)
    for ax in axes:
        ax.set_xlabel("a*")
        ax.set_ylabel("b*")
    fig.suptitle(f"{bins_name} ({bins.num_classes} classes) on {data}")
    fig.tight_layout()
    png_path = out_dir / f"prior_{bins_name}.png"
    fig.savefig(png_path)
    plt.close(fig)
    top = torch.topk(prior, 3)
    log.info(
        "prior over %d classes: %d non-empty, top classes %s hold %.1f %% of pixels",
        bins.num_classes,
        int((prior > 0).sum()),
        top.indices.tolist(),
        100 * float(top.values.sum()),
    )
    return [csv_path, png_path]
