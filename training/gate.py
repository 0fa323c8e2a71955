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

from colorizer.models import load_checkpoint
from colorizer.models.effunet import Expert
from training.tilt import (
    Head,
    HeadFitOptions,
    Knob,
    decode_tilted,
    fit_knob,
    working_batches,
    write_head,
    write_linear,
)

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
    tilted = model.gray_tilt is not None
    beta = model.gray_tilt.beta(g) if tilted else logits.new_zeros(len(logits))
    return decode_tilted(model, logits, beta)  # (B, 2, h, w)


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
    ckpt: str, data: str, out: str, opts: HeadFitOptions | None = None, command: str = ""
) -> dict[str, Any]:
    """Fit the gate of ``ckpt`` on ``data``; write the gated checkpoint and its per-source
    table (``<out stem>_gate.csv``)."""
    fit = fit_knob(GATE, ckpt, data, out, "gate", opts or HeadFitOptions())
    gamma = fit.values()
    record = fit.record(data, command)
    record.update(
        gamma_mean_val=round(float(gamma.mean()), 6),
        open_share=round(float((gamma > 0).mean()), 4),  # photos with any share of it
        psnr_db=dict(shut=fit.psnr_db("off"), gated=fit.psnr_db(fit.chosen)),
        tilt="off: fit it again on this file (python -m training fit-tilt)",
    )
    fit.save(out, "gate", record, drop="gray_tilt")  # the tilt it recorded is off now
    log.info(
        "gate: (quantile, gain) %s, %.0f %% of val photos open, PSNR %.2f -> %.2f dB -> %s",
        fit.chosen,
        100 * record["open_share"],
        record["psnr_db"]["shut"],
        record["psnr_db"]["gated"],
        out,
    )
    return record
