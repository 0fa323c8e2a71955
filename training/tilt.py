"""Fit a class model's gray tilt: how grey each photo's scene is, from its scene vector.

    python -m training fit-tilt --ckpt runs/default_stage6_160/calibrated.pt \
        --data data/all160 --out runs/default_stage6_160/tilted.pt

The model's decoder paints fog, rain and overcast scenes (whose truth is grey) in the vivid
colours of clear days: its rebalanced loss weighs the common near-gray colours least (issue
24). ``colorizer.models.effunet.GrayTilt`` pulls a photo's colour distribution towards gray by
a per-photo strength beta = relu(w . g + b) of its scene vector g (with several heads, the
sum of their relus). This fits w and b, the rest of the model untouched, in four steps:

1. ``sample_pixels``: training photos (spread over every source) run through the model once;
   of each, its scene vector and its distribution and truth at PIXELS random pixels;
2. ``fit_head``: w and b fitted by gradient through the model's own decode to the least
   log a*b* error at those pixels, every source weighed alike (on the stage-6 default's val
   photos: fog +3.8 dB, snow +4.0, rain +2.0, street +0.9, sunrises -0.7 before step 3; a
   ridge on per-photo targets on a grid of betas had R^2 0.03 and could not tell fog);
3. ``choose_offset``: the fit, shifted down by an offset (a quantile of its train answers; 0
   is the fit as it is) so that more ordinary photos get beta = 0, and scaled by a gain (the
   error it minimises is the mean's, which likes grey more than people do); each (offset,
   gain) is scored on the validation photos through the library's decode, composition and
   batch scorer, per source, and the one with the best mean PSNR over
   the sources is kept among those that cost no source more than ``max_loss`` dB and take no
   source under ``min_colour`` of its photos' colourfulness (or under what it had, if less)
   by more than ``colour_slack`` (no tilt when none does);
4. the head is written into a copy of the checkpoint (``gray_tilt = true``), with a record
   of the fit and the per-source table beside it (``<out stem>_tilt.csv``).

``--add-head`` keeps a file's fitted heads and fits one more the same way, the kept heads'
strength under it in every error and score ("off" is the file as it was): the file gets
``gray_tilt = <heads>``, the record ``metrics["gray_tilt_head<heads>"]`` (its beta_mean_val
and tilted_share are the new head's alone), the table ``<out stem>_tilt_added.csv``.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable, Iterable, Iterator
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
from training.data import load_images, on_grid, to_lab
from training.validate import METRIC_KEYS, Scores, colour_ratio

log = logging.getLogger(__name__)

QUANTILES = (0.0, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 0.95)  # offsets tried (0: the fit as it is)
GAINS = (0.5, 1.0, 1.5, 2.0)  # slopes tried around the fit's own
PIXELS = 64  # pixels sampled per photo for the fit: its error is a mean over the photo
DIMS = 64  # principal components of the scene vector the head is fitted in
PHOTOS_PER_DIM = 40  # fewer components for fewer photos (3000 photos: all 64)


@dataclass
class Head:
    """beta_hat = w . (g - mu) / sd + b, beta = relu(beta_hat): the head in the scene vector's
    standardised units, with its fit's sampled-pixel a*b* MSE on the validation photos."""

    w: np.ndarray
    b: float
    mu: np.ndarray
    sd: np.ndarray
    mse: tuple[float, float] = (0.0, 0.0)  # untilted, tilted

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


def stacked(ckpt: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The checkpoint's model with its fitted gray tilt's heads kept and one more (zero) after
    them: its output is the checkpoint's own until the new head is fitted (fit-tilt
    --add-head)."""
    model, meta = load_checkpoint(ckpt)
    tilt = getattr(model, "gray_tilt", None)
    if tilt is None or not bool(tilt.strength.weight.any()):
        raise ValueError(
            f"{ckpt}: --add-head needs a fitted gray tilt (python -m training fit-tilt)"
        )
    heads = tilt.strength.out_features
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(TILT_PREFIX)}
    grown = build_model(model.arch_name, **{**model.arch_args, "gray_tilt": heads + 1})
    load_state(grown, state, ckpt, new=(TILT_PREFIX,))
    with torch.no_grad():
        grown.gray_tilt.strength.weight[:heads] = tilt.strength.weight
        grown.gray_tilt.strength.bias[:heads] = tilt.strength.bias
    grown.bins, grown.decoding = model.bins, model.decoding
    return grown.eval(), meta


def kept_beta(model: torch.nn.Module, g: torch.Tensor) -> torch.Tensor:
    """(B,) the strength of every head but the last (the one being fitted), as they are."""
    return F.relu(model.gray_tilt.scores(g)[:, :-1]).sum(1)


def decode_tilted(model: torch.nn.Module, logits: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """(B, Q, h, w) untilted logits, (B,) strengths -> a*b* as the model with that tilt decodes."""
    tilted = GrayTilt.tilt(logits.float(), beta.float(), model.bins.centers)
    return model.bins.decode(tilted, model.decoding)  # (B, 2, h, w)


def working_batches(model: torch.nn.Module, images: torch.Tensor, batch: int = 32) -> Iterator:
    """(rgb8 (B, 3, H, W), the encoder's output for its L at the model's working size) per
    batch: the model run as a user's photo is (the scene vector depends on the size)."""
    size = tuple(model.input_size)
    for i in range(0, len(images), batch):
        rgb8 = images[i : i + batch].permute(0, 3, 1, 2)
        rgb = rgb8.float() / 255
        if tuple(rgb.shape[-2:]) != size:
            rgb = F.interpolate(rgb, size=size, mode="bicubic", antialias=True).clamp(0, 1)
        yield rgb8, model.encode(to_lab(rgb)[0])


@torch.no_grad()
def scene_outputs(model: torch.nn.Module, images: torch.Tensor, batch: int = 32) -> Iterator:
    """(rgb8 (B, 3, H, W), scene vectors (B, C), untilted logits fp16) per batch: the mixed
    decoders' logits before any tilt (``decode`` would apply the heads a file already has,
    which --add-head adds itself)."""
    for rgb8, (f, g) in working_batches(model, images, batch):
        yield rgb8, g.float(), model.mixed(f, g, None).half()


@torch.no_grad()
def sample_pixels(cache: Iterable, k: int = PIXELS, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """(scene vectors (N, C), untilted logits fp16 (N, Q, k, 1), truth a*b* (N, 2, k, 1)) at k
    pixels drawn per photo on the output grid (the truth area-averaged to it): what the fit
    needs of a photo, in a few kB instead of its whole distribution map."""
    gen = torch.Generator().manual_seed(seed)
    gs, picked, truths = [], [], []
    for rgb8, g, logits in cache:
        truth = on_grid(to_lab(rgb8.float() / 255)[1], logits.shape[-2:])
        B, Q, h, w = logits.shape
        idx = torch.randint(0, h * w, (B, 1, k), generator=gen)
        picked.append(logits.flatten(2).gather(2, idx.expand(B, Q, k))[..., None])  # (B,Q,k,1)
        truths.append(truth.flatten(2).gather(2, idx.expand(B, 2, k))[..., None])  # (B,2,k,1)
        gs.append(g)
    return torch.cat(gs), torch.cat(picked), torch.cat(truths)


def pixel_errors(
    model: torch.nn.Module, logits: torch.Tensor, truth: torch.Tensor, beta: torch.Tensor
) -> torch.Tensor:
    """Each photo's mean squared a*b* error (N,) at its sampled pixels, decoded with tilt beta."""
    return ((decode_tilted(model, logits, beta) - truth) ** 2).mean((1, 2, 3))


def balance(groups: dict[str, torch.Tensor], n: int) -> torch.Tensor:
    """(n,) per-photo weights, mean 1, that give every source the same total: the choice
    scores the mean over the sources, so the fit weighs them so too (else the 3 % of fog
    photos would barely count). A source counts as at least MIN_SOURCE_PHOTOS photos, so that
    a handful cannot own the gradient."""
    weights = torch.zeros(n)
    for rows in groups.values():
        weights[rows] = 1.0 / max(len(rows), MIN_SOURCE_PHOTOS)
    return weights * n / weights.sum()


def tilt_errors(
    model: torch.nn.Module, sample: tuple[torch.Tensor, ...], rows: Any, beta: torch.Tensor
) -> torch.Tensor:
    """``sample_pixels``' photos ``rows`` with tilt ``beta`` (their pixel errors)."""
    return pixel_errors(model, sample[1][rows], sample[2][rows], beta)


def separating_direction(
    z: torch.Tensor,
    positive: torch.Tensor,
    weights: torch.Tensor | None = None,
    c: float = 0.01,
) -> torch.Tensor:
    """(C,) unit vector along which a logistic regression on the standardised scene vectors z
    (N, C), L2-regularised (inverse strength ``c`` per photo), tells the ``positive`` photos
    (N,) from the rest; the two classes weigh alike, and within each the photos by
    ``weights`` (N,) (``balance``'s: every source alike, so that a small source of the rest,
    the sunrises, is kept apart as firmly as the landscapes). On the shipped default's scene vectors,
    the grey-weather sets against the rest: val AUC 0.95, where the heads fitted through the
    decode in 64 components rank them at 0.79 (the tilt) and 0.86 (the gate)."""
    x, y = z.double(), positive.double()
    w0 = torch.ones(len(y), dtype=torch.float64) if weights is None else weights.double()
    pos, neg = w0[positive].sum(), w0[~positive].sum()
    weight = w0 * torch.where(positive, 0.5 / pos, 0.5 / neg) * len(y)
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        opt.zero_grad()
        bce = F.binary_cross_entropy_with_logits(x @ w + b, y, weight=weight)
        value = bce + (w @ w) / (2 * c * len(y))
        value.backward()
        return value

    opt.step(loss)
    w = w.detach()
    return (w / w.norm()).float()


def fit_head(
    model: torch.nn.Module,
    train: tuple[torch.Tensor, ...],
    weights: torch.Tensor,
    val: tuple[torch.Tensor, ...],
    dims: int = DIMS,
    steps: int = 300,
    batch: int = 1024,
    lr: float = 2e-2,
    decay: float = 1e-3,
    errors: Callable[..., torch.Tensor] = tilt_errors,
    link: Callable[[torch.Tensor], torch.Tensor] = F.relu,
    along: torch.Tensor | None = None,
) -> Head:
    """The head that minimises the photos' weighted mean log a*b* error (so dB, as the choice
    scores them, not the squared error that the vivid photos' large errors would own),
    decoded as the model decodes, by gradient (Adam, one-cycle rate) on the sampled pixels
    of the training photos. Directly, because the best strength varies with the scene by
    orders of magnitude and a regression on per-photo grid targets could not say so (R^2
    0.03). In the scene vector's leading principal components, whitened (``dims``, fewer for
    fewer photos: one per PHOTOS_PER_DIM): the whole vector overfits (val error went up); the
    head is then mapped back to a linear map of the vector itself.

    ``errors(model, sample, rows, value)`` scores photos ``rows`` of a ``sample_pixels`` sample
    at per-photo values link(head(g)): the tilt's strength by default, the gate's share for
    ``training.gate``.

    ``along`` (N,) bool, the train photos of some kind (the grey-weather sets): the head is
    fitted along the one direction that tells them from the rest (``separating_direction``),
    only its scale and bias through the decode, instead of in the principal components: the
    fit through the decode ranks by where the value helps on average, and spread its tilt
    over clear days as much as over fog."""
    g = train[0]
    mu, sd = g.mean(0), g.std(0, unbiased=False) + 1e-6
    z = (g - mu) / sd  # (N, C)
    if along is not None:
        u = separating_direction(z, along, weights)
        project = (u / (z @ u).std())[:, None]  # (C, 1): that direction, unit variance
    else:
        _, s, vh = torch.linalg.svd(z, full_matrices=False)  # exact: the fit is reproducible
        rank = int((s > 1e-6 * s[0]).sum())  # whitening a null direction would divide by ~0
        dims = max(1, min(dims, rank, len(z) // PHOTOS_PER_DIM))
        project = vh[:dims].T / s[:dims] * len(z) ** 0.5  # (C, dims): whitened components
    zp = z @ project  # (N, dims)
    dims = zp.shape[1]
    w = torch.zeros(dims, requires_grad=True)
    b = torch.tensor(0.05, requires_grad=True)  # above zero: the relu passes a gradient
    opt = torch.optim.Adam([w, b], lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        i = torch.randint(0, len(g), (min(batch, len(g)),), generator=gen)
        err = torch.log1p(errors(model, train, i, link(zp[i] @ w + b)))
        loss = (weights[i] * err).mean() + decay * (w**2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    w_std = (project @ w.detach()).numpy()  # back in the standardised vector's units
    head = Head(w_std, float(b.detach()), mu.numpy(), sd.numpy())
    with torch.no_grad():
        value = link(torch.from_numpy(head(val[0].numpy())).float())
        every = slice(None)
        off, on = (errors(model, val, every, x).mean() for x in (value * 0, value))
    head.mse = (float(off), float(on))
    return head


@torch.no_grad()
def write_head(model: torch.nn.Module, head: Head | None, offset: float, gain: float) -> None:
    """Put beta = gain * relu(head(g) - offset) into the model's GrayTilt's last head as a
    linear map of the raw scene vector g; ``head`` None zeroes it (no tilt from it)."""
    linear = model.gray_tilt.strength
    write_linear(linear, head, offset, gain, row=linear.out_features - 1)


@torch.no_grad()
def write_linear(
    linear: torch.nn.Linear, head: Head | None, offset: float, gain: float, row: int = 0
) -> None:
    """Put gain * (head(g) - offset) into output ``row`` of ``linear`` (C -> n), a map of the
    raw scene vector g; ``head`` None zeroes it."""
    weight, bias = linear.weight[row], linear.bias[row : row + 1]
    if head is None:
        weight.zero_()
        bias.zero_()
        return
    weight.copy_(torch.from_numpy(gain * head.w / head.sd).float())
    bias.fill_(gain * (head.b - float((head.w / head.sd) @ head.mu) - offset))


def offset_scores(
    model: torch.nn.Module,
    cache: list,
    beta_hat: np.ndarray,
    offsets: dict[Any, tuple[float, float]],
    groups: dict[str, torch.Tensor],
    knob: Knob | None = None,
) -> dict[Any, Scores]:
    """Every (offset, gain)'s scores on the cached validation photos (per photo value =
    link(gain * (beta_hat - offset)), the tilt's strength unless ``knob`` says otherwise),
    through the library's decode, composition and batch scorer."""
    knob = knob or TILT
    starts = np.cumsum([0] + [len(b[1]) for b in cache])

    def setting(offset_gain: tuple[float, float]) -> Any:
        offset, gain = offset_gain

        def to_rgb(b: tuple) -> torch.Tensor:
            i = b[3]
            hat = torch.from_numpy(beta_hat[starts[i] : starts[i + 1]] - offset)
            value = knob.link(gain * hat) if gain else torch.zeros_like(hat)  # off: inf
            return compose_batch(b[0], knob.decode(model, b[2], value, b[1])).float() / 255

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
    gray: Scores | None = None,
    colour_sources: tuple[str, ...] = (),
) -> Any:
    """The setting with the best mean over the sources of PSNR, among those that, against no
    tilt ("off"), on every source in ``held`` (those with at least MIN_SOURCE_PHOTOS photos: a
    smaller one is too noisy to veto, as in calibrate) cost no more than ``max_loss`` dB and
    keep its colour: at least ``min_colour`` of the photos' where it had that much, no less
    than it had where it had less, both within ``colour_slack``; "off" when none does.

    ``colour_sources`` (glob patterns), when given, are the only held sources whose colour is
    kept, each on its own, and the pooled colour no longer binds: the sources with a colour
    target (landscapes, sunsets) keep theirs while the streets may lose the colour that costs
    them PSNR (issue 24: on the streets the target is PSNR, and the pooled colour let a setting
    that greys them only as far as the photos' average allowed).

    The colour is kept only where the untilted model beats ``gray`` (the gray floor's scores,
    when given): where its colours are worse than none, as on fog, rain and snow (painted at
    106-129 % of the photos' colour, 2-4 dB under gray), losing colour is the repair, and the
    PSNR guard and the pooled colour judge it; a vivid scene read as grey may not lose its colour."""
    off = table["off"]
    beaten = (
        set()
        if gray is None
        else {s for s in held if off.sources[s]["psnr_db"] <= gray.sources[s]["psnr_db"]}
    )

    def ratio(s: Scores, src: str) -> float:
        return s.sources[src]["colorfulness"] / max(photos.sources[src]["colorfulness"], 1e-9)

    guarded = [s for s in held if not colour_sources or matches(s, colour_sources)]

    def allowed(key: Any) -> bool:
        s = table[key]
        for src in held:
            if s.sources[src]["psnr_db"] - off.sources[src]["psnr_db"] < -max_loss:
                return False
            if src in beaten or src not in guarded:
                continue
            if ratio(s, src) < min(ratio(off, src), min_colour) - colour_slack:
                return False
        return bool(colour_sources) or colour_ratio(s, photos, "pooled") >= min_colour

    def mean_psnr(key: Any) -> float:
        return float(np.mean([v["psnr_db"] for v in table[key].sources.values()]))

    return max([k for k in table if allowed(k)] or ["off"], key=mean_psnr)


@dataclass(frozen=True)
class Knob:
    """One per-photo head fitted after training, on the scene vector g: what fitting it
    needs. The gray tilt's strength (``TILT``, here) and the expert's gate (training.gate)."""

    prepare: Callable[[str], tuple[torch.nn.Module, dict[str, Any]]]  # file -> model, head zero
    outputs: Callable[[torch.nn.Module, torch.Tensor], Iterator]  # -> (rgb8, g, logits) batches
    errors: Callable[..., torch.Tensor]  # (model, sample, rows, value) -> (n,) pixel errors
    decode: Callable[..., torch.Tensor]  # (model, logits, value (B,), g (B, C)) -> a*b*
    link: Callable[[torch.Tensor], torch.Tensor]  # the head's output -> the value it sets
    write: Callable[[torch.nn.Module, Head | None, float, float], None]


TILT = Knob(
    prepare=tiltable,
    outputs=scene_outputs,
    errors=tilt_errors,
    decode=lambda model, logits, beta, g: decode_tilted(model, logits, beta),
    link=F.relu,
    write=write_head,
)


def added_errors(model: torch.nn.Module, sample: tuple, rows: Any, beta: torch.Tensor):
    """tilt_errors with the kept heads' strength under the new head's."""
    return tilt_errors(model, sample, rows, kept_beta(model, sample[0][rows]) + beta)


ADDED_TILT = Knob(  # one more head on a fitted tilt, the ones before it kept (--add-head)
    prepare=stacked,
    outputs=scene_outputs,
    errors=added_errors,
    decode=lambda model, logits, beta, g: decode_tilted(model, logits, kept_beta(model, g) + beta),
    link=F.relu,
    write=write_head,
)


@dataclass(frozen=True)
class HeadFitOptions:
    """How ``fit_knob`` fits a head and chooses its setting: fit-tilt's and fit-gate's options."""

    limit: int = 3000  # train photos for the head (0: all)
    val_limit: int = 0  # val photos for the choice of offset and gain (0: all)
    min_colour: float = 0.8  # choose_offset's guards
    max_loss: float = 0.1
    colour_slack: float = 0.05
    along: tuple[str, ...] = ()  # glob patterns of train sources: fit along their direction
    colour_sources: tuple[str, ...] = ()  # glob patterns of val sources whose colour is kept

    def guards(self) -> dict[str, float]:
        """The choice's guards, as a head's record keeps them."""
        return dict(
            min_colour=self.min_colour,
            max_loss=self.max_loss,
            colour_slack=self.colour_slack,
            colour_sources=list(self.colour_sources) or None,
        )


@dataclass
class Fit:
    """What ``fit_knob`` found: the model with the chosen head written, and how."""

    model: torch.nn.Module
    meta: dict[str, Any]
    head: Head
    chosen: Any  # "off" or (quantile, gain)
    offset: float
    gain: float
    table: dict[Any, Scores]
    val_hat: np.ndarray
    train_photos: int
    knob: Knob
    opts: HeadFitOptions  # as the head was fitted and its setting chosen

    def values(self) -> np.ndarray:
        """The value the written head sets for each val photo (0 where the choice is off)."""
        if self.chosen == "off":
            return np.zeros_like(self.val_hat)
        return self.knob.link(self.gain * torch.from_numpy(self.val_hat - self.offset)).numpy()

    def psnr_db(self, key: Any) -> float:
        """A setting's pooled val PSNR."""
        return round(self.table[key].pooled["psnr_db"], 4)

    def record(self, data: str, command: str) -> dict[str, Any]:
        """The fields every head's record in the checkpoint's metrics has."""
        off = self.chosen == "off"
        return dict(
            data=str(data),
            command=command,
            train_photos=self.train_photos,
            val_photos=len(self.val_hat),
            pixels=PIXELS,
            val_mse=[round(x, 3) for x in self.head.mse],  # sampled a*b* MSE: off, fit as it is
            quantile=None if off else self.chosen[0],
            gain=None if off else self.gain,
            offset=None if off else round(self.offset, 5),
            working_size=list(self.model.input_size),  # the size the model ran at, as a user's
            along=list(self.opts.along) or None,
            **self.opts.guards(),
        )

    def save(self, out: str, key: str, record: dict[str, Any], drop: str = "") -> None:
        """The model with its head written, ``record`` under ``metrics[key]`` (the records
        whose keys start with ``drop`` removed), stored as the file it came from was."""
        metrics = {
            k: v
            for k, v in self.meta.get("metrics", {}).items()
            if not (drop and k.startswith(drop))
        }
        metrics[key] = record
        train, half = self.meta.get("train", {}), bool(self.meta.get("half"))
        save_checkpoint(out, self.model, train=train, metrics=metrics, half=half)


def fit_knob(knob: Knob, ckpt: str, data: str, out: str, suffix: str, opts: HeadFitOptions) -> Fit:
    """Fit ``knob``'s head of ``ckpt`` on ``data`` (its train photos for the head, its val
    photos for the choice of offset and gain), write it into the model and the per-source
    table beside ``out`` (``<out stem>_<suffix>.csv``). ``opts.along``: glob patterns of train
    sources (e.g. ``*weather/dawn-*``) whose direction the head is fitted along (fit_head)."""
    limit, val_limit, along = opts.limit, opts.val_limit, opts.along
    model, meta = knob.prepare(ckpt)
    train_images = load_images(data, "train", limit, spread=True)
    train_groups = source_groups(data, "train", limit)
    positive = matching(train_groups, along, len(train_images)) if along else None  # fail early
    groups = source_groups(data, "val", val_limit)
    held = [k for k, rows in groups.items() if len(rows) >= MIN_SOURCE_PHOTOS]
    if opts.colour_sources and not any(matches(s, opts.colour_sources) for s in held):
        raise ValueError(  # a typo fails here, not as a guard that holds nothing
            f"--colour-sources {' '.join(opts.colour_sources)}: matches no val source with "
            f"{MIN_SOURCE_PHOTOS}+ photos (sources: {', '.join(sorted(held))})"
        )
    log.info("%s: sampling %d train photos", suffix, len(train_images))
    train = sample_pixels(knob.outputs(model, train_images))
    weights = balance(train_groups, len(train[0]))
    del train_images
    val_images = load_images(data, "val", val_limit, spread=True)
    cache = list(knob.outputs(model, val_images))  # scored once per setting
    val = sample_pixels(cache, seed=1)  # its scene vectors are the cache's, in order
    head = fit_head(model, train, weights, val, errors=knob.errors, link=knob.link, along=positive)
    log.info("fitted head: val a*b* MSE %.1f -> %.1f", *head.mse)
    train_hat, val_hat = head(train[0].numpy()), head(val[0].numpy())
    offsets: dict[Any, tuple[float, float]] = {"off": (float("inf"), 0.0)}
    for q in QUANTILES:  # a shift down only: the fit's own zero is offset 0
        offset = max(float(np.quantile(train_hat, q)), 0.0) if q else 0.0
        offsets.update({(q, k): (offset, k) for k in GAINS})
    table = offset_scores(model, cache, val_hat, offsets, groups, knob)
    truth = torch.cat([colorfulness(rgb.float() / 255).double() for rgb, _, _ in cache])
    photos = grouped({"colorfulness": truth}, groups)
    gray = gray_scores([(rgb8, to_lab(rgb8.float() / 255)[0]) for rgb8, _, _ in cache], groups)
    chosen = choose_offset(
        table,
        photos,
        opts.min_colour,
        opts.max_loss,
        held,
        opts.colour_slack,
        gray,
        opts.colour_sources,
    )
    write_sources(
        Path(Path(out).with_suffix("").as_posix() + f"_{suffix}.csv"),
        ["quantile", "gain"],
        lambda key: ["off", 0.0] if key == "off" else list(key),
        table,
        gray,
        photos,
        chosen,
    )
    offset, gain = offsets[chosen]
    knob.write(model, None if chosen == "off" else head, offset, gain)
    return Fit(model, meta, head, chosen, offset, gain, table, val_hat, len(train[0]), knob, opts)


def matches(source: str, patterns: tuple[str, ...]) -> bool:
    """Whether a source folder's name matches one of the glob ``patterns``."""
    return any(fnmatch.fnmatch(source, p) for p in patterns)


def matching(groups: dict[str, torch.Tensor], patterns: tuple[str, ...], n: int) -> torch.Tensor:
    """(n,) bool: the photos whose source matches one of the glob ``patterns``; refused when
    none or all do (there would be nothing to tell apart)."""
    names = [name for name in groups if matches(name, patterns)]
    positive = torch.zeros(n, dtype=torch.bool)
    for name in names:
        positive[groups[name]] = True
    if not 0 < int(positive.sum()) < n:
        raise ValueError(
            f"--along {' '.join(patterns)}: matches {int(positive.sum())} of {n} train photos "
            f"(sources: {', '.join(sorted(groups))}); it must pick some, not all"
        )
    log.info("head along %s: %d of %d train photos (%s)", patterns, int(positive.sum()), n, names)
    return positive


def fit_tilt(
    ckpt: str,
    data: str,
    out: str,
    opts: HeadFitOptions | None = None,
    command: str = "",
    add_head: bool = False,
) -> dict[str, Any]:
    """Fit the gray tilt of ``ckpt`` on ``data`` (its train photos for the head, its
    val photos for the choices); write the tilted checkpoint and its per-source table.
    ``add_head``: keep the file's fitted tilt and fit one more head on top of it ("untilted"
    in the record is then the file as it was)."""
    knob, suffix = (ADDED_TILT, "tilt_added") if add_head else (TILT, "tilt")
    fit = fit_knob(knob, ckpt, data, out, suffix, opts or HeadFitOptions())
    beta = fit.values()
    record = fit.record(data, command)
    record.update(
        beta_mean_val=round(float(beta.mean()), 6),
        tilted_share=round(float((beta > 0).mean()), 4),
        psnr_db=dict(untilted=fit.psnr_db("off"), tilted=fit.psnr_db(fit.chosen)),
    )
    heads = fit.model.gray_tilt.strength.out_features
    if heads == 1:  # a refit from zero: the records of any heads the file had go with them
        fit.save(out, "gray_tilt", record, drop="gray_tilt_head")
    else:
        fit.save(out, f"gray_tilt_head{heads}", record)
    log.info(
        "gray tilt: (quantile, gain) %s, %.0f %% of val photos tilted, PSNR %.2f -> %.2f dB -> %s",
        fit.chosen,
        100 * record["tilted_share"],
        record["psnr_db"]["untilted"],
        record["psnr_db"]["tilted"],
        out,
    )
    return record
