"""Fit one expert's gate: how much of that expert decoder each photo takes.

    python -m training add-expert --base runs/stage6/tilted.pt \
        --expert runs/weather_expert/final.pt --out runs/weather_expert/pair.pt
    python -m training fit-gate --ckpt runs/weather_expert/pair.pt --data data/all160 \
        --out runs/weather_expert/gated.pt
    python -m training fit-tilt --ckpt runs/weather_expert/gated.pt --data data/all160 \
        --out runs/weather_expert/tilted.pt

``colorizer.models.effunet.Expert`` mixes each expert decoder into the base one by a per-photo
share gamma = clamp(w . g + b, 0, 1) of the base's scene vector g (``add-expert`` appends one
to a file's experts). This fits one expert's w and b, the other gates kept, as the
gray tilt's head is fitted (training.tilt, whose steps it shares): by gradient through the
model's own decode to the least log a*b* error at sampled pixels of the training photos, every
source weighed alike; then an offset and a gain chosen on the validation photos, per source,
under the same guards (no source loses more than ``max_loss`` dB or its colour). The file's
gray tilt is switched off for the fit, since it was fitted to the mixture without this gate: fit it
again on the gated model afterwards (``fit-tilt``, the last command above).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import torch

from colorizer.checkpoint import read_checkpoint
from colorizer.models import load_checkpoint
from colorizer.models.effunet import Expert
from training.export import record_key
from training.tilt import (
    Head,
    HeadFitOptions,
    Knob,
    decode_tilted,
    fit_knob,
    working_batches,
    write_linear,
)

log = logging.getLogger(__name__)


def gateable(ckpt: str, i: int) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The checkpoint's model, expert ``i``'s gate shut (the others as they were fitted) and
    its gray tilt (if any) off."""
    model, meta = load_checkpoint(ckpt)
    n = len(getattr(model, "experts", ()))
    if not n:
        raise ValueError(
            f"{ckpt}: no expert decoder to gate (python -m training add-expert makes one)"
        )
    if not -n <= i < n:
        raise ValueError(f"{ckpt} has {n} expert(s); there is no expert {i}")
    write_linear(model.experts[i].gate, None, 0.0, 1.0)
    if model.gray_tilt is not None:
        log.info("%s: its gray tilt is off for the fit; fit it again afterwards", ckpt)
        model.gray_tilt.zero_()  # every head
    return model.eval(), meta


@torch.no_grad()
def decoder_outputs(model: torch.nn.Module, images: torch.Tensor, batch: int = 32) -> Iterator:
    """(rgb8 (B, 3, H, W), scene vectors (B, C), every decoder's logits fp16 (B, (1 + n)Q, h,
    w): the base's bins, then each expert's) per batch, the model at its working size."""
    for rgb8, (f, g) in working_batches(model, images, batch):
        base, experts = model.decoders(f, g)
        yield rgb8, g.float(), torch.cat([base, *experts], 1).half()


def decode_gated(
    model: torch.nn.Module, i: int, stack: torch.Tensor, gamma: torch.Tensor, g: torch.Tensor
) -> torch.Tensor:
    """(B, (1 + n)Q, h, w) ``decoder_outputs`` logits, expert ``i``'s (B,) shares, (B, C) scene
    vectors -> a*b* as the model with that gate (and the others' as they are) decodes, its
    tilt included if it has one."""
    n = len(model.experts)
    logits = stack.float().chunk(1 + n, 1)  # the base's, then each expert's
    gammas = [gamma.float() if j == i % n else e.weight(g) for j, e in enumerate(model.experts)]
    mixed = Expert.mix(logits[0], list(logits[1:]), torch.stack(gammas, 1))
    tilted = model.gray_tilt is not None
    beta = model.gray_tilt.beta(g) if tilted else mixed.new_zeros(len(mixed))
    return decode_tilted(model, mixed, beta)  # (B, 2, h, w)


def gate_knob(i: int) -> Knob:
    """What fitting expert ``i``'s gate needs (training.tilt.Knob)."""

    def decode(model: torch.nn.Module, stack: torch.Tensor, gamma: torch.Tensor, g: torch.Tensor):
        return decode_gated(model, i, stack, gamma, g)

    def errors(model: torch.nn.Module, sample: tuple, rows: Any, gamma: torch.Tensor):
        ab = decode(model, sample[1][rows], gamma, sample[0][rows])
        return ((ab - sample[2][rows]) ** 2).mean((1, 2, 3))  # each photo's pixel error

    def write(model: torch.nn.Module, head: Head | None, offset: float, gain: float) -> None:
        """gamma = clamp(gain * (head(g) - offset), 0, 1) into the gate (None: shut)."""
        write_linear(model.experts[i].gate, head, offset, gain)

    return Knob(
        prepare=lambda ckpt: gateable(ckpt, i),
        outputs=decoder_outputs,
        errors=errors,
        decode=decode,
        link=lambda x: x.clamp(0, 1),
        write=write,
    )


def fit_gate(
    ckpt: str,
    data: str,
    out: str,
    opts: HeadFitOptions | None = None,
    command: str = "",
    expert: int = -1,
) -> dict[str, Any]:
    """Fit the gate of ``ckpt``'s expert ``expert`` (the last added by default) on ``data``,
    the other gates as they are; write the gated checkpoint and its per-source table
    (``<out stem>_gate.csv``, ``_gate1.csv`` for the second expert, ...)."""
    args = read_checkpoint(ckpt)["arch_args"]  # the file as load_checkpoint will read it
    i = expert % (len(args.get("experts", ())) or 1)  # none: gateable says why
    key = record_key("gate", i)
    fit = fit_knob(gate_knob(expert), ckpt, data, out, key, opts or HeadFitOptions())
    gamma = fit.values()
    record = fit.record(data, command)
    record.update(
        expert=i,
        gamma_mean_val=round(float(gamma.mean()), 6),
        open_share=round(float((gamma > 0).mean()), 4),  # photos with any share of it
        psnr_db=dict(shut=fit.psnr_db("off"), gated=fit.psnr_db(fit.chosen)),
        tilt="off: fit it again on this file (python -m training fit-tilt)",
    )
    fit.save(out, key, record, drop="gray_tilt")  # the tilt (every head) it recorded is off now
    log.info(
        "gate of expert %d: (quantile, gain) %s, %.0f %% of val photos open, PSNR %.2f -> "
        "%.2f dB -> %s",
        i,
        fit.chosen,
        100 * record["open_share"],
        record["psnr_db"]["shut"],
        record["psnr_db"]["gated"],
        out,
    )
    return record
