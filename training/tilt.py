"""Fit a class model's gray tilt: how grey each photo's scene is, from its scene vector.

    python -m training fit-tilt --ckpt runs/default_stage6_160/calibrated.pt \
        --data data/all160 --out runs/default_stage6_160/tilted.pt

The model's decoder paints fog, rain and overcast scenes (whose truth is grey) in the vivid
colours of clear days: its rebalanced loss weighs the common near-gray colours least (issue
24). ``colorizer.models.effunet.GrayTilt`` pulls a photo's colour distribution towards gray by
a per-photo strength beta = relu(w . g + b) of its scene vector g. This fits w and b, the
rest of the model untouched, in four steps:

1. ``targets``: on training photos (spread over every source), each photo's best beta on a
   grid: the one whose decoded a*b* (the model's own decoding) is nearest the truth's;
2. ``fit_ridge``: a ridge regression of that beta on the standardised scene vector, its
   strength chosen by R^2 on the validation photos;
3. ``choose_offset``: the regression is shifted down by an offset (a quantile of its train
   predictions) so that the ordinary photo gets beta = 0 and only the scenes it finds clearly
   grey are pulled, and scaled by a gain (a regression with a low R^2 answers near the mean:
   the greyest scenes need more than it says); each (offset, gain) is scored on the validation photos through the library's
   decode, composition and batch scorer, per source, and the one with the best mean PSNR over
   the sources is kept among those that cost no source more than ``max_loss`` dB and take no
   source under ``min_colour`` of its photos' colourfulness (or under what it had, if less)
   by more than ``colour_slack`` (no tilt when none does);
4. the head is written into a copy of the checkpoint (``gray_tilt = true``), with a record
   of the fit and the per-source table beside it (``<out stem>_tilt.csv``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from colorizer.checkpoint import load_state, save_checkpoint
from colorizer.evaluate import score_batches
from colorizer.inference import compose_batch
from colorizer.metrics import colorfulness
from colorizer.models import build_model, load_checkpoint
from colorizer.models.effunet import TILT_PREFIX, GrayTilt
from training.calibrate import (
    MIN_SOURCE_PHOTOS,
    gray_scores,
    grouped,
    source_groups,
    write_sources,
)
from training.data import load_images, spread_rows, to_lab
from training.prepare import load_split
from training.validate import METRIC_KEYS, Scores, colour_ratio

log = logging.getLogger(__name__)

BETAS = (0.0, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56)  # per-photo targets
ALPHAS = (1.0, 10.0, 100.0, 300.0, 1000.0, 3000.0)  # ridge strengths tried
QUANTILES = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)  # offsets tried
GAINS = (1.0, 2.0, 4.0)  # slopes tried: the regression's answers are shrunk towards the mean


@dataclass
class Ridge:
    """beta_hat = w . (g - mu) / sd + b: the regression in the scene vector's own units."""

    w: np.ndarray
    b: float
    mu: np.ndarray
    sd: np.ndarray
    alpha: float
    r2: float

    def __call__(self, g: np.ndarray) -> np.ndarray:
        return ((g - self.mu) / self.sd) @ self.w + self.b


def tiltable(ckpt: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The checkpoint's model rebuilt with an (unfitted, zero) gray tilt head: its output is
    the checkpoint's own until the head is fitted. A file that has a head already is refitted
    from zero."""
    model, meta = load_checkpoint(ckpt)
    if getattr(model, "kind", None) != "classification" or "gray_tilt" not in model.arch_args:
        raise ValueError(f"{ckpt}: the gray tilt needs an effunet-family class model")
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(TILT_PREFIX)}
    tilted = build_model(model.arch_name, **{**model.arch_args, "gray_tilt": True})
    load_state(tilted, state, ckpt, new=(TILT_PREFIX,))
    tilted.bins, tilted.decoding = model.bins, model.decoding
    return tilted.eval(), meta


def decode_tilted(model: torch.nn.Module, logits: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """(B, Q, h, w) untilted logits, (B,) strengths -> a*b* as the model with that tilt decodes."""
    tilted = GrayTilt.tilt(logits.float(), beta.float(), model.bins.centers)
    return model.bins.decode(tilted, model.decoding)  # (B, 2, h, w)


@torch.no_grad()
def scene_outputs(model: torch.nn.Module, images: torch.Tensor, batch: int = 32) -> Iterator:
    """(rgb8 (B, 3, H, W), scene vectors (B, C), untilted logits fp16) per batch, the model
    run at its working size as a user's photo is (the scene vector depends on it)."""
    size = tuple(model.input_size)
    for i in range(0, len(images), batch):
        rgb8 = images[i : i + batch].permute(0, 3, 1, 2)
        rgb = rgb8.float() / 255
        if tuple(rgb.shape[-2:]) != size:
            rgb = F.interpolate(rgb, size=size, mode="bicubic", antialias=True).clamp(0, 1)
        L, _ab = to_lab(rgb)
        encoded = model.encode(L)
        yield rgb8, encoded[1].float(), model.decode(encoded).half()


@torch.no_grad()
def targets(model: torch.nn.Module, cache: Iterable) -> tuple[np.ndarray, np.ndarray]:
    """(scene vectors (N, C), each photo's best beta of BETAS (N,)): the beta whose decoded
    a*b* has the least squared error against the truth, area-averaged to the output grid."""
    gs, best = [], []
    for rgb8, g, logits in cache:
        truth = F.interpolate(to_lab(rgb8.float() / 255)[1], size=logits.shape[-2:], mode="area")
        errors = torch.stack(
            [
                ((decode_tilted(model, logits, torch.full((len(g),), b)) - truth) ** 2).mean(
                    (1, 2, 3)
                )
                for b in BETAS
            ],
            1,
        )  # (B, len(BETAS))
        gs.append(g.numpy())
        best.append(np.asarray(BETAS)[errors.argmin(1).numpy()])
    return np.concatenate(gs), np.concatenate(best)


def fit_ridge(g: np.ndarray, y: np.ndarray, g_val: np.ndarray, y_val: np.ndarray) -> Ridge:
    """Ridge regression of y on the standardised g, its strength the best of ALPHAS by R^2
    on the validation photos."""
    mu, sd = g.mean(0), g.std(0) + 1e-6
    a = np.concatenate([(g - mu) / sd, np.ones((len(g), 1))], 1)
    best = None
    for alpha in ALPHAS:
        reg = alpha * np.eye(a.shape[1])
        reg[-1, -1] = 0.0  # the intercept is not shrunk
        coef = np.linalg.solve(a.T @ a + reg, a.T @ y)
        fit = Ridge(coef[:-1], float(coef[-1]), mu, sd, alpha, 0.0)
        fit.r2 = float(1 - ((fit(g_val) - y_val) ** 2).mean() / max(y_val.var(), 1e-12))
        if best is None or fit.r2 > best.r2:
            best = fit
    assert best is not None
    return best


def offset_scores(
    model: torch.nn.Module,
    cache: list,
    beta_hat: np.ndarray,
    offsets: dict[Any, tuple[float, float]],
    groups: dict[str, torch.Tensor],
) -> dict[Any, Scores]:
    """Every (offset, gain)'s scores on the cached validation photos (per photo beta = gain *
    relu(beta_hat - offset)), through the library's decode, composition and batch scorer."""
    starts = np.cumsum([0] + [len(b[1]) for b in cache])

    def setting(offset_gain: tuple[float, float]) -> Any:
        offset, gain = offset_gain

        def to_rgb(b: tuple) -> torch.Tensor:
            i = b[3]
            beta = gain * np.maximum(beta_hat[starts[i] : starts[i + 1]] - offset, 0)
            beta = torch.from_numpy(beta)
            return compose_batch(b[0], decode_tilted(model, b[2], beta)).float() / 255

        return to_rgb

    batches = ((rgb8, g, logits, i) for i, (rgb8, g, logits) in enumerate(cache))
    per = score_batches(batches, {k: setting(v) for k, v in offsets.items()}, METRIC_KEYS)
    return {k: grouped(v, groups) for k, v in per.items()}


def choose_offset(
    table: dict[Any, Scores],
    photos: Scores,
    min_colour: float,
    max_loss: float,
    held: list[str],
    colour_slack: float = 0.05,
) -> Any:
    """The setting with the best mean over the sources of PSNR, among those that, against no
    tilt ("off"), on every source in ``held`` (those with at least MIN_SOURCE_PHOTOS photos: a
    smaller one is too noisy to veto, as in calibrate) cost no more than ``max_loss`` dB and
    keep its colour: at least ``min_colour`` of the photos' where it had that much, no less
    than it had where it had less, both within ``colour_slack`` (a grey scene read as vivid
    may lose colour; a vivid one read as grey may not); "off" when none does."""
    off = table["off"]

    def ratio(s: Scores, src: str) -> float:
        return s.sources[src]["colorfulness"] / max(photos.sources[src]["colorfulness"], 1e-9)

    def allowed(key: Any) -> bool:
        s = table[key]
        for src in held:
            if s.sources[src]["psnr_db"] - off.sources[src]["psnr_db"] < -max_loss:
                return False
            if ratio(s, src) < min(ratio(off, src), min_colour) - colour_slack:
                return False
        return colour_ratio(s, photos, "pooled") >= min_colour

    def mean_psnr(key: Any) -> float:
        return float(np.mean([v["psnr_db"] for v in table[key].sources.values()]))

    return max([k for k in table if allowed(k)] or ["off"], key=mean_psnr)


def fit_tilt(
    ckpt: str,
    data: str,
    out: str,
    limit: int = 3000,
    val_limit: int = 0,
    min_colour: float = 0.8,
    max_loss: float = 0.1,
    colour_slack: float = 0.05,
    command: str = "",
) -> dict[str, Any]:
    """Fit the gray tilt of ``ckpt`` on ``data`` (its train photos for the regression, its
    val photos for the choices); write the tilted checkpoint and its per-source table."""
    model, meta = tiltable(ckpt)
    train_images = load_images(data, "train", limit, spread=True)
    log.info("gray tilt: targets on %d train photos", len(train_images))
    g, y = targets(model, scene_outputs(model, train_images))
    del train_images
    val_images = load_images(data, "val", val_limit, spread=True)
    rows = spread_rows(len(load_split(data, "val")), val_limit)
    cache = list(scene_outputs(model, val_images))  # scored once per offset
    g_val, y_val = targets(model, cache)
    ridge = fit_ridge(g, y, g_val, y_val)
    log.info("ridge alpha %g: validation R^2 %.3f", ridge.alpha, ridge.r2)
    train_hat, val_hat = ridge(g), ridge(g_val)
    offsets: dict[Any, tuple[float, float]] = {"off": (float("inf"), 0.0)}
    for q in QUANTILES:
        offsets.update({(q, k): (float(np.quantile(train_hat, q)), k) for k in GAINS})
    groups = source_groups(data, "val", rows)
    table = offset_scores(model, cache, val_hat, offsets, groups)
    truth = torch.cat([colorfulness(rgb.float() / 255).double() for rgb, _, _ in cache])
    photos = grouped({"colorfulness": truth}, groups)
    held = [k for k, rows in groups.items() if len(rows) >= MIN_SOURCE_PHOTOS]
    chosen = choose_offset(table, photos, min_colour, max_loss, held, colour_slack)
    gray = gray_scores([(rgb8, to_lab(rgb8.float() / 255)[0]) for rgb8, _, _ in cache], groups)
    write_sources(
        Path(Path(out).with_suffix("").as_posix() + "_tilt.csv"),
        ["quantile", "gain"],
        lambda key: ["off", 0.0] if key == "off" else list(key),
        table,
        gray,
        photos,
        chosen,
    )
    offset, gain = offsets[chosen]
    head = model.gray_tilt.strength
    with torch.no_grad():  # beta = gain * relu(w . (g - mu) / sd + b - offset), in g's units
        if chosen == "off":
            head.weight.zero_()
            head.bias.zero_()
        else:
            head.weight.copy_(torch.from_numpy(gain * ridge.w / ridge.sd).float()[None])
            head.bias.fill_(gain * (ridge.b - float((ridge.w / ridge.sd) @ ridge.mu) - offset))
    metrics = dict(meta.get("metrics", {}))
    record = dict(
        data=str(data),
        command=command,
        train_photos=len(g),
        val_photos=len(g_val),
        alpha=ridge.alpha,
        r2=round(ridge.r2, 4),
        quantile=None if chosen == "off" else chosen[0],
        gain=None if chosen == "off" else gain,
        working_size=list(model.input_size),  # the size the model ran at, as a user's photo
        beta_mean_val=round(float(np.mean(gain * np.maximum(val_hat - offset, 0))), 6),
        offset=None if chosen == "off" else round(offset, 5),
        tilted_share=round(float((val_hat > offset).mean()), 4),
        min_colour=min_colour,
        max_loss=max_loss,
        colour_slack=colour_slack,
        psnr_db=dict(
            untilted=round(table["off"].pooled["psnr_db"], 4),
            tilted=round(table[chosen].pooled["psnr_db"], 4),
        ),
    )
    metrics["gray_tilt"] = record
    save_checkpoint(
        out, model, train=meta.get("train", {}), metrics=metrics, half=bool(meta.get("half"))
    )
    log.info(
        "gray tilt: (quantile, gain) %s, %.0f %% of val photos tilted, PSNR %.2f -> %.2f dB -> %s",
        chosen,
        100 * record["tilted_share"],
        table["off"].pooled["psnr_db"],
        table[chosen].pooled["psnr_db"],
        out,
    )
    return record
