"""Fit a two-decoder model's gate: how much of the expert decoder each photo takes.

    python -m training add-expert --base weights/default.pt \
        --expert runs/weather_expert/final.pt --out runs/weather_expert/pair.pt
    python -m training fit-gate --ckpt runs/weather_expert/pair.pt --data data/all160 \
        --out runs/weather_expert/gated.pt
    python -m training fit-tilt --ckpt runs/weather_expert/gated.pt --data data/all160 \
        --out runs/weather_expert/tilted.pt

``colorizer.models.effunet.Expert`` mixes a second decoder into the base one by a per-photo
share gamma = clamp(w . g + b, 0, 1) of the base's scene vector g. This fits w and b as the
gray tilt's head is fitted (training.tilt, whose steps it shares): by gradient through the
model's own decode to the least log a*b* error at sampled pixels of the training photos, every
source weighed alike; then an offset and a gain chosen on the validation photos, per source,
under the same guards (no source loses more than ``max_loss`` dB or its colour). The file's
gray tilt is switched off for the fit, since it was fitted to the base decoder alone: fit it
again on the gated model afterwards (``fit-tilt``, the last command above).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import torch

from colorizer.checkpoint import save_checkpoint
from colorizer.models import load_checkpoint
from colorizer.models.effunet import Expert, GrayTilt
from training.tilt import PIXELS, Head, Knob, fit_knob, working_batches, write_head, write_linear

log = logging.getLogger(__name__)


def gateable(ckpt: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The checkpoint's two-decoder model, its gate shut and its gray tilt (if any) off."""
    model, meta = load_checkpoint(ckpt)
    if getattr(model, "expert", None) is None:
        raise ValueError(
            f"{ckpt}: no expert decoder to gate (python -m training add-expert makes one)"
        )
    write_linear(model.expert.gate, None, 0.0, 1.0)
    if model.gray_tilt is not None:
        log.info("%s: its gray tilt is off for the fit; fit it again afterwards", ckpt)
        write_head(model, None, 0.0, 1.0)
    return model.eval(), meta


@torch.no_grad()
def pair_outputs(model: torch.nn.Module, images: torch.Tensor, batch: int = 32) -> Iterator:
    """(rgb8 (B, 3, H, W), scene vectors (B, C), both decoders' logits fp16 (B, 2Q, h, w):
    the base's bins, then the expert's) per batch, the model at its working size."""
    for rgb8, (f, g) in working_batches(model, images, batch):
        base, expert = model.decoders(f, g)
        yield rgb8, g.float(), torch.cat([base, expert], 1).half()


def decode_gated(
    model: torch.nn.Module, pair: torch.Tensor, gamma: torch.Tensor, g: torch.Tensor
) -> torch.Tensor:
    """(B, 2Q, h, w) ``pair_outputs`` logits, (B,) shares, (B, C) scene vectors -> a*b* as
    the model with that gate decodes (its tilt included, if it has one)."""
    q = pair.shape[1] // 2
    logits = Expert.mix(pair[:, :q].float(), pair[:, q:].float(), gamma.float())
    if model.gray_tilt is not None:
        logits = GrayTilt.tilt(logits, model.gray_tilt.beta(g.float()), model.bins.centers)
    return model.bins.decode(logits, model.decoding)  # (B, 2, h, w)


def gate_errors(
    model: torch.nn.Module, sample: tuple[torch.Tensor, ...], rows: Any, gamma: torch.Tensor
) -> torch.Tensor:
    """Photos ``rows`` of a ``sample_pixels`` sample, gated by ``gamma``: their pixel errors."""
    ab = decode_gated(model, sample[1][rows], gamma, sample[0][rows])
    return ((ab - sample[2][rows]) ** 2).mean((1, 2, 3))


def write_gate(model: torch.nn.Module, head: Head | None, offset: float, gain: float) -> None:
    """gamma = clamp(gain * (head(g) - offset), 0, 1) into the model's gate (None: shut)."""
    write_linear(model.expert.gate, head, offset, gain)


GATE = Knob(
    prepare=gateable,
    outputs=pair_outputs,
    errors=gate_errors,
    decode=decode_gated,
    link=lambda x: x.clamp(0, 1),
    write=write_gate,
)


def fit_gate(
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
    """Fit the gate of ``ckpt`` on ``data``; write the gated checkpoint and its per-source
    table (``<out stem>_gate.csv``)."""
    fit = fit_knob(
        GATE, ckpt, data, out, "gate", limit, val_limit, min_colour, max_loss, colour_slack
    )
    gamma = fit.values()
    record = dict(
        data=str(data),
        command=command,
        train_photos=fit.train_photos,
        val_photos=len(fit.val_hat),
        pixels=PIXELS,
        val_mse=[round(x, 3) for x in fit.head.mse],  # sampled a*b* MSE: shut, fit as it is
        quantile=None if fit.chosen == "off" else fit.chosen[0],
        gain=None if fit.chosen == "off" else fit.gain,
        offset=None if fit.chosen == "off" else round(fit.offset, 5),
        gamma_mean_val=round(float(gamma.mean()), 6),
        open_share=round(float((gamma > 0).mean()), 4),  # photos with any share of it
        working_size=list(fit.model.input_size),
        min_colour=min_colour,
        max_loss=max_loss,
        colour_slack=colour_slack,
        psnr_db=dict(
            shut=round(fit.table["off"].pooled["psnr_db"], 4),
            gated=round(fit.table[fit.chosen].pooled["psnr_db"], 4),
        ),
        tilt="off: fit it again on this file (python -m training fit-tilt)",
    )
    metrics = dict(fit.meta.get("metrics", {}))
    metrics["gate"] = record
    metrics.pop("gray_tilt", None)  # the tilt it recorded is off now
    save_checkpoint(
        out,
        fit.model,
        train=fit.meta.get("train", {}),
        metrics=metrics,
        half=bool(fit.meta.get("half")),
    )
    log.info(
        "gate: (quantile, gain) %s, %.0f %% of val photos open, PSNR %.2f -> %.2f dB -> %s",
        fit.chosen,
        100 * record["open_share"],
        record["psnr_db"]["shut"],
        record["psnr_db"]["gated"],
        out,
    )
    return record
