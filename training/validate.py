"""Validation: a model's outputs on a split, decoded and composed as a user gets them and
scored by the evaluation core's batch scorer; the temperature rules that choose a decode.
Used by the trainer at each epoch's end and its finish, and by ``training.calibrate``."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from colorizer.bins import output_to_ab
from colorizer.hints import simulate_hints
from colorizer.metrics import colorfulness
from training.config import TEMPERATURE_RULES  # a run's finish, over temperatures
from training.data import to_lab

log = logging.getLogger(__name__)

# What validation scores (names and units of colorizer.metrics.METRICS): the cheap ones, per
# epoch and per temperature.
METRIC_KEYS = ("euclidean", "psnr_seed", "psnr_db", "colorfulness")


@torch.no_grad()
def predict_outputs(
    model: nn.Module,
    images: torch.Tensor,
    device: torch.device,
    batch: int = 32,
    hint_points: float = 0.0,
    hint_patch: int = 3,
) -> Any:
    """Yield (rgb8, L, out) per batch: the uint8 (B, 3, H, W) ground truth, its L and the raw
    model output; with ``hint_points`` the model also gets simulated hints (the training's
    simulation, every photo hinted, a fixed seed per batch: the same hints at every epoch)."""
    for i in range(0, len(images), batch):
        rgb8 = images[i : i + batch].to(device).permute(0, 3, 1, 2)
        L, ab = to_lab(rgb8.float() / 255.0)
        hints = ()
        if hint_points:
            gen = torch.Generator().manual_seed(i)
            hints = (simulate_hints(ab, gen, hint_points, 0.0, hint_patch),)
        yield rgb8, L, model(L, *hints).float()


def outputs_to_rgb(
    model: nn.Module, rgb8: torch.Tensor, out: torch.Tensor, temperature: float | None
) -> torch.Tensor:
    """Model output -> float RGB (B, 3, H, W) at the photos' size, through the library's own
    decode and composition (output_to_ab, compose_batch: compose's bytes, on tensors): what a
    user gets."""
    from colorizer.inference import compose_batch

    ab = output_to_ab(model, out, temperature)  # (B, 2, h, w)
    return compose_batch(rgb8.cpu(), ab.cpu()).to(rgb8.device).float() / 255


@torch.no_grad()
def validate(
    model: nn.Module,
    images: torch.Tensor,
    device: torch.device,
    temperatures: list[float],
    loss_fn: nn.Module | None = None,  # training.train.ColorLoss: the run's own loss
    batch: int = 32,
    hint_points: float = 0.0,
    hint_patch: int = 3,
) -> dict[float, dict[str, float]]:
    """Mean metrics on the photos for each temperature (one forward pass per batch), with
    simulated hints when ``hint_points`` > 0."""
    from colorizer.evaluate import score_batches

    was_training = model.training
    model.eval()
    gt_colorful, loss_sum = 0.0, 0.0

    def batches() -> Any:  # the loss and the truth's colour on the way through
        nonlocal gt_colorful, loss_sum
        for rgb8, L, out in predict_outputs(model, images, device, batch, hint_points, hint_patch):
            rgb = rgb8.float() / 255.0
            if loss_fn is not None:
                loss_sum += float(loss_fn(out, to_lab(rgb)[1])) * len(rgb)
            gt_colorful += float(colorfulness(rgb).sum())
            yield rgb8, L, out

    settings = {t: (lambda b, t=t: outputs_to_rgb(model, b[0], b[2], t)) for t in temperatures}
    scores = score_batches(batches(), settings, METRIC_KEYS)
    model.train(was_training)
    n = len(images)
    res = {t: {k: float(v.mean()) for k, v in per.items()} for t, per in scores.items()}
    for t in res:
        res[t]["gt_colorfulness"] = gt_colorful / n
        res[t]["val_loss"] = loss_sum / n if loss_fn is not None else float("nan")
    return res


def beating_gray(table: dict, gray: dict[str, float]) -> list:
    """The settings (keys of ``table``) that beat the gray floor on PSNR and the seed's
    Euclidean distance both."""
    return [
        k
        for k, r in table.items()
        if r["psnr_db"] > gray["psnr_db"] and r["euclidean"] < gray["euclidean"]
    ]


@dataclass
class Scores:
    """One decode setting's metrics on a split: pooled means and each source's."""

    pooled: dict[str, float]
    sources: dict[str, dict[str, float]] = field(default_factory=dict)


COLOUR_RULES = ("pooled", "per_source")  # calibrate, over temperatures x curves


def colour_ratio(scores: Scores, photos: Scores, rule: str) -> float:
    """How colourful a setting is against the photos: pooled, or on its drabbest source."""
    if rule == "pooled":
        return scores.pooled["colorfulness"] / max(photos.pooled["colorfulness"], 1e-9)
    return min(
        scores.sources[s]["colorfulness"] / max(c["colorfulness"], 1e-9)
        for s, c in photos.sources.items()
    )


def tune_decoding(
    table: dict[Any, Scores],
    gray: Scores | None,
    rule: str,
    photos: Scores | None = None,
    min_colour: float = 0.85,
) -> Any:
    """THE choice of a decode setting (a key of ``table``) on validation scores: a run's
    finish picks a temperature, ``training.calibrate`` a temperature and curves. Every rule
    but psnr/ed/balanced first keeps the settings that beat the gray floor (``gray``) on PSNR
    and the seed's distance (the best PSNR when none does); then

    - floor: the colourfulness closest to the photos' (``gt_colorfulness`` in the pooled
      scores);
    - pooled / per_source: the best PSNR among those at least ``min_colour`` as colourful as
      the photos (``photos``), pooled or on every source; the most colourful by that measure
      when none is;
    - psnr: best PSNR (dB); ed: smallest seed Euclidean distance; balanced: among the
      settings within 0.5 dB of the best PSNR, the colourfulness closest to the photos'
      (PSNR alone favours the washed-out mean, T = 1).
    """
    pooled = {k: v.pooled for k, v in table.items()}

    def closest_colour(keys: list) -> Any:
        return min(
            keys, key=lambda k: abs(pooled[k]["colorfulness"] - pooled[k]["gt_colorfulness"])
        )

    if rule == "psnr":
        return max(pooled, key=lambda k: pooled[k]["psnr_db"])
    if rule == "ed":
        return min(pooled, key=lambda k: pooled[k]["euclidean"])
    if rule == "balanced":
        best = max(v["psnr_db"] for v in pooled.values())
        return closest_colour([k for k in pooled if pooled[k]["psnr_db"] >= best - 0.5])
    if rule not in ("floor", *COLOUR_RULES):
        raise ValueError(f"unknown rule {rule!r}: one of {TEMPERATURE_RULES + COLOUR_RULES}")
    if gray is None:
        raise ValueError(f"the {rule} rule needs the gray floor's scores")
    beats = beating_gray(pooled, gray.pooled)
    if not beats:
        log.warning("no setting beats the gray floor on val: taking the best PSNR")
        return max(pooled, key=lambda k: pooled[k]["psnr_db"])
    if rule == "floor":
        return closest_colour(beats)
    if photos is None:
        raise ValueError(f"the {rule} rule needs the photos' colourfulness")
    ratio = {k: colour_ratio(table[k], photos, rule) for k in beats}
    vivid = [k for k in beats if ratio[k] >= min_colour]
    if vivid:
        return max(vivid, key=lambda k: pooled[k]["psnr_db"])
    log.warning(
        "no setting beating gray is %.0f %% as colourful as the photos (%s)", 100 * min_colour, rule
    )
    return max(beats, key=lambda k: ratio[k])
