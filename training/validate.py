"""Validation: a model's outputs on a split, decoded and composed as a user gets them and
scored by the evaluation core's batch scorer; the temperature rules that choose a decode.
Used by the trainer at each epoch's end and its finish, and by ``training.calibrate``."""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn as nn

from colorizer.bins import output_to_ab
from colorizer.hints import simulate_hints
from colorizer.metrics import colorfulness
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


def pick_temperature(
    table: dict[float, dict[str, float]], rule: str, gray: dict[str, float] | None = None
) -> float:
    """psnr: best PSNR (dB); ed: smallest seed Euclidean distance; balanced: among the
    temperatures within 0.5 dB of the best PSNR, the one whose colourfulness is closest to the
    ground truth's (PSNR alone favours the washed-out mean, T = 1); floor: among the
    temperatures that beat the gray floor (`gray`) on both PSNR and the seed's Euclidean
    distance, the one whose colourfulness is closest to the ground truth's (best PSNR when
    none does)."""
    if rule == "floor":
        if gray is None:
            raise ValueError("the floor rule needs the gray floor's metrics")
        ok = beating_gray(table, gray)
        if not ok:
            log.warning("no temperature beats the gray floor on val: taking the best PSNR")
            return max(table, key=lambda t: table[t]["psnr_db"])
        return min(ok, key=lambda t: abs(table[t]["colorfulness"] - table[t]["gt_colorfulness"]))
    if rule == "psnr":
        return max(table, key=lambda t: table[t]["psnr_db"])
    if rule == "ed":
        return min(table, key=lambda t: table[t]["euclidean"])
    best = max(v["psnr_db"] for v in table.values())
    near = [t for t in table if table[t]["psnr_db"] >= best - 0.5]
    return min(near, key=lambda t: abs(table[t]["colorfulness"] - table[t]["gt_colorfulness"]))
