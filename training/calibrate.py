"""Calibrate how strongly a class model colours: w(entropy) fitted on validation photos.

    python -m training calibrate --ckpt runs/default_stage1/final.pt --data data/outdoor160 \
        --out runs/default_stage1/calibrated.pt

For every temperature of the grid, one pass over the split fits the least-squares weight of
each entropy bin (``colorizer.bins.ConfidenceFit``): how far a pixel should move from the
distribution's mean towards the annealed mean. The decode then colours sure pixels fully and
hesitant ones softly. Each temperature is scored with that calibration by the same validation
code training uses, the default temperature is chosen by the floor rule (beat the gray floor on
PSNR and the seed's distance, then be as colourful as the photos), and the checkpoint is
written with the calibration inside, plus a table of every temperature with and without it.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from colorizer.bins import ConfidenceFit
from colorizer.checkpoint import load_checkpoint, save_checkpoint
from colorizer.inference import GrayModel
from training.train import (
    METRIC_KEYS,
    load_images,
    pick_temperature,
    predict_outputs,
    to_lab,
    validate,
)

log = logging.getLogger(__name__)


@torch.no_grad()
def fit_calibrations(
    model: torch.nn.Module, images: torch.Tensor, temperatures: list[float], batch: int = 32
) -> dict[float, dict]:
    """One pass over ``images``: a confidence calibration per temperature."""
    fits = {t: ConfidenceFit(model.bins, t) for t in temperatures}
    for rgb, _L, out in predict_outputs(model, images, torch.device("cpu"), batch):
        ab = F.interpolate(to_lab(rgb)[1], size=out.shape[-2:], mode="area")
        for fit in fits.values():
            fit.add(out, ab)
    return {t: fit.result() for t, fit in fits.items()}


def calibrate(
    ckpt: str,
    data: str,
    out: str,
    split: str = "val",
    grid: list[float] | None = None,
    limit: int = 0,
    command: str = "",
) -> dict[str, Any]:
    """Fit, score and choose; write the calibrated checkpoint and ``<out stem>.csv``."""
    model, meta = load_checkpoint(ckpt)
    if model.kind != "classification":
        raise ValueError(f"{ckpt} is a regression model: there is no distribution to calibrate")
    grid = sorted(set(grid or [0.2, 0.3, 0.38, 0.5, 0.7]))
    images = load_images(data, split, limit)
    device = torch.device("cpu")
    log.info("fitting the confidence calibration on %d %s photos", len(images), split)
    model.calibration = None
    plain = validate(model, images, device, [*grid, 1.0])  # T = 1: the mean, never calibrated
    cals = fit_calibrations(model, images, grid)
    table = {}
    for t in grid:
        model.calibration = cals[t]
        table[t] = validate(model, images, device, [t])[t]
    gray = validate(GrayModel(), images, device, [1.0])[1.0]
    best = pick_temperature(table, "floor", gray)
    model.calibration = cals[best]
    model.default_temperature = float(best)

    rows_path = Path(out).with_suffix(".csv")
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    with open(rows_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["temperature", "calibrated", *METRIC_KEYS, "gt_colorfulness", "chosen"])
        for t in grid:
            for cal, res in ((0, plain[t]), (1, table[t])):
                w.writerow(
                    [t, cal, *(f"{res[k]:.4f}" for k in METRIC_KEYS)]
                    + [f"{res['gt_colorfulness']:.4f}", int(cal == 1 and t == best)]
                )
        one = plain[1.0]
        w.writerow(
            [1.0, 0, *(f"{one[k]:.4f}" for k in METRIC_KEYS), f"{one['gt_colorfulness']:.4f}", 0]
        )
        w.writerow(["gray", 0, *(f"{gray[k]:.4f}" for k in METRIC_KEYS)])
    metrics = dict(meta.get("metrics", {}))
    metrics["calibration"] = dict(
        split=split,
        photos=len(images),
        data=str(data),
        command=command,
        temperature=float(best),
        calibrated={f"T={t:g}": {k: round(table[t][k], 4) for k in METRIC_KEYS} for t in grid},
        plain={f"T={t:g}": {k: round(v[k], 4) for k in METRIC_KEYS} for t, v in plain.items()},
        gray_floor={k: round(gray[k], 4) for k in METRIC_KEYS},
    )
    path = save_checkpoint(
        out,
        model,
        default_temperature=float(best),
        train=meta.get("train", {}),
        metrics=metrics,
        half=bool(meta.get("half", False)),
    )
    r = table[best]
    log.info(
        "calibrated at T=%.2f: PSNR %.2f dB (gray %.2f), seed ED %.1f (gray %.1f), "
        "colourfulness %.1f (photos %.1f) -> %s",
        best,
        r["psnr_db"],
        gray["psnr_db"],
        r["seed_euclidean"],
        gray["seed_euclidean"],
        r["colorfulness"],
        r["gt_colorfulness"],
        path,
    )
    return metrics["calibration"]
