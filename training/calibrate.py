"""Calibrate how strongly a class model colours: w(entropy) fitted on validation photos.

    python -m training calibrate --ckpt runs/default_stage1/final.pt --data data/outdoor160 \
        --out runs/default_stage1/calibrated.pt

One forward pass over the split (the logits are kept, in fp16), then:

1. for every temperature T of the grid, the least-squares weight of each entropy bin
   (``colorizer.bins.ConfidenceFit``): how far a pixel should move from the distribution's mean
   towards the annealed mean to make the smallest a*b* error at that confidence;
   Fitted twice: the blend alone, and jointly with a scale m(entropy) of the mean itself
   (``mean_scale``: the rebalanced loss tints the mean, most where the model is unsure, e.g. a
   gray road beige, and m < 1 pulls such pixels towards gray);
2. every (T, mean_scale, floor) setting is scored, where ``floor`` lifts every weight (both
   curves) by a constant, clamped to 1: the least-squares curves alone can be greyer than the
   photos wherever the model is unsure, and a colourisation that is greyer than the photos does
   not look real;
3. the default is the setting with the best PSNR among those that beat the gray floor on PSNR
   and the seed's distance and are at least ``min_colour`` as colourful as the photos (the most
   colourful setting beating gray when none is; the best PSNR when none beats gray).

Scores come from the functions validation uses during training (``outputs_to_rgb``, the library's
composition, and ``colorizer.metrics.score``). The checkpoint is written with the chosen curve inside, plus a table of every
pair (``<out stem>.csv``).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from colorizer.bins import ConfidenceFit, Decoding
from colorizer.checkpoint import save_checkpoint
from colorizer.metrics import colorfulness, score
from colorizer.models import load_checkpoint
from training.train import (
    METRIC_KEYS,
    beating_gray,
    load_images,
    outputs_to_rgb,
    predict_outputs,
    to_lab,
)

log = logging.getLogger(__name__)

FLOORS = (0.0, 0.2, 0.35, 0.5, 0.7, 1.0)


@torch.no_grad()
def cached_outputs(model: torch.nn.Module, images: torch.Tensor, batch: int = 32) -> list:
    """[(rgb uint8, L, logits fp16)] per batch: one forward pass, reused by every score."""
    return [
        (rgb8, L, out.half())
        for rgb8, L, out in predict_outputs(model, images, torch.device("cpu"), batch)
    ]


def fit_calibration(
    model: torch.nn.Module, cache: list, temperature: float, fit_mean: bool = False
) -> dict:
    fit = ConfidenceFit(model.bins, temperature, fit_mean=fit_mean)
    for rgb, _L, out in cache:
        ab = F.interpolate(to_lab(rgb.float() / 255)[1], size=out.shape[-2:], mode="area")
        fit.add(out.float(), ab)
    return fit.result()


def lifted(calibration: dict, floor: float) -> dict:
    """The curves with every weight raised by ``floor`` (clamped to 1)."""
    out = dict(calibration, floor=float(floor))
    for key in ("weight", "mean_weight"):
        if key in calibration:
            out[key] = [round(min(1.0, w + floor), 5) for w in calibration[key]]
    return out


@torch.no_grad()
def _means(cache: list, predict: Callable) -> dict[str, float]:
    """Mean validation metrics over the cached batches; predict(rgb8, L, out) -> float RGB."""
    sums, n = dict.fromkeys(METRIC_KEYS, 0.0), 0
    for rgb8, L, out in cache:
        m = score(predict(rgb8, L, out), rgb8.float() / 255, keys=METRIC_KEYS)
        for k in METRIC_KEYS:
            sums[k] += float(m[k].sum())
        n += len(rgb8)
    return {k: v / n for k, v in sums.items()}


def mean_scores(model: torch.nn.Module, cache: list, decoding: Decoding) -> dict[str, float]:
    """Mean validation metrics of one decode setting over the cached logits."""
    model.decoding = decoding
    return _means(cache, lambda rgb8, _L, out: outputs_to_rgb(model, rgb8, out.float(), None))


def gray_scores(cache: list) -> dict[str, float]:
    """The gray floor (a*b* = 0) on the same photos, through the same composition."""
    from colorizer.inference import GrayModel

    gray = GrayModel()
    return _means(cache, lambda rgb8, L, _out: outputs_to_rgb(gray, rgb8, gray(L), 1.0))


def choose(table: dict, gray: dict, photos_colour: float, min_colour: float):
    beats = beating_gray(table, gray)
    if not beats:
        log.warning("no setting beats the gray floor on val: taking the best PSNR")
        return max(table, key=lambda k: table[k]["psnr_db"])
    vivid = [k for k in beats if table[k]["colorfulness"] >= min_colour * photos_colour]
    if vivid:
        return max(vivid, key=lambda k: table[k]["psnr_db"])
    log.warning("no setting beating gray is %.0f %% as colourful as the photos", 100 * min_colour)
    return max(beats, key=lambda k: table[k]["colorfulness"])


def calibrate(
    ckpt: str,
    data: str,
    out: str,
    split: str = "val",
    grid: list[float] | None = None,
    limit: int = 0,
    min_colour: float = 0.85,
    command: str = "",
) -> dict[str, Any]:
    """Fit, score and choose; write the calibrated checkpoint and ``<out stem>.csv``."""
    model, meta = load_checkpoint(ckpt)
    if model.kind != "classification":
        raise ValueError(f"{ckpt} is a regression model: there is no distribution to calibrate")
    grid = sorted(set(grid or [0.38, 0.5, 0.7]))
    images = load_images(data, split, limit)
    log.info("calibrating on %d %s photos", len(images), split)
    cache = cached_outputs(model, images)
    photos_colour = sum(float(colorfulness(rgb.float() / 255).sum()) for rgb, _, _ in cache)
    photos_colour /= len(images)
    gray = gray_scores(cache)
    table: dict[tuple[float, bool, float], dict] = {}
    plain = {t: mean_scores(model, cache, Decoding(t)) for t in [*grid, 1.0]}
    fits = {}
    for t in grid:
        for scaled in (False, True):
            fits[(t, scaled)] = fit_calibration(model, cache, t, fit_mean=scaled)
            for floor in FLOORS:
                cal = lifted(fits[(t, scaled)], floor)
                table[(t, scaled, floor)] = mean_scores(model, cache, Decoding(t, cal))
    best_t, best_scaled, best_floor = choose(table, gray, photos_colour, min_colour)
    model.decoding = Decoding(best_t, lifted(fits[(best_t, best_scaled)], best_floor))
    _write_table(
        Path(out).with_suffix(".csv"),
        table,
        plain,
        gray,
        photos_colour,
        (best_t, best_scaled, best_floor),
    )

    metrics = dict(meta.get("metrics", {}))
    metrics["calibration"] = dict(
        split=split,
        photos=len(images),
        data=str(data),
        command=command,
        temperature=float(best_t),
        floor=float(best_floor),
        mean_scale=best_scaled,
        min_colour=min_colour,
        photos_colorfulness=round(photos_colour, 4),
        chosen={k: round(v, 4) for k, v in table[(best_t, best_scaled, best_floor)].items()},
        plain={f"T={t:g}": {k: round(v[k], 4) for k in METRIC_KEYS} for t, v in plain.items()},
        gray_floor={k: round(gray[k], 4) for k in METRIC_KEYS},
    )
    path = save_checkpoint(
        out,
        model,
        train=meta.get("train", {}),
        metrics=metrics,
        half=bool(meta.get("half", False)),
    )
    r = table[(best_t, best_scaled, best_floor)]
    log.info(
        "calibrated at T=%.2f, mean scale %s, floor %.2f: PSNR %.2f dB (gray %.2f), seed ED %.1f (gray %.1f), "
        "colourfulness %.1f (photos %.1f) -> %s",
        best_t,
        "fitted" if best_scaled else "off",
        best_floor,
        r["psnr_db"],
        gray["psnr_db"],
        r["euclidean"],
        gray["euclidean"],
        r["colorfulness"],
        photos_colour,
        path,
    )
    return metrics["calibration"]


def _write_table(path: Path, table, plain, gray, photos_colour: float, chosen) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        head = ["temperature", "mean_scale", "floor", *METRIC_KEYS, "photos_colorfulness"]
        w.writerow([*head, "chosen"])
        colour = f"{photos_colour:.4f}"
        for t, r in plain.items():
            w.writerow([t, "-", "none", *(f"{r[k]:.4f}" for k in METRIC_KEYS), colour, 0])
        for key, r in table.items():
            t, scaled, floor = key
            row = [t, int(scaled), floor, *(f"{r[k]:.4f}" for k in METRIC_KEYS), colour]
            w.writerow([*row, int(key == chosen)])
        w.writerow(["gray", "-", "-", *(f"{gray[k]:.4f}" for k in METRIC_KEYS), colour, 0])
