"""The training data side: a prepared split in memory, batches cut from it on the training
device, the class prior, and which photos an epoch draws (the sources' weights).

The whole training split sits in memory as one uint8 tensor (on the GPU when there is one);
each step gathers a batch by index, crops and flips it, converts it to Lab and encodes the
targets on the training device in one go: no per-photo Python work, no DataLoader workers.
"""

from __future__ import annotations

import fnmatch
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from colorizer.bins import ColorBins, class_prior
from colorizer.lab import linear_to_srgb, rgb_to_lab, srgb_to_linear
from training.config import TrainingError
from training.prepare import load_split


def spread_rows(n: int, limit: int) -> np.ndarray:
    """About ``limit`` evenly spaced row numbers of a split of ``n`` (all of them when limit is
    0 or not below n): a split is packed folder by folder, so these sample every source."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0 (0: all), got {limit}")
    if not limit or limit >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


def load_images(data: str, split: str, limit: int = 0, spread: bool = False) -> torch.Tensor:
    """uint8 (N, H, W, 3) tensor of one split, read fully into memory: at most ``limit`` photos
    (0: all), the first ones, or with ``spread`` evenly spaced rows, so that a subset of a split
    packed folder by folder samples every source, not only the first."""
    arr = load_split(data, split)
    if limit and spread and limit < len(arr):
        arr = arr[spread_rows(len(arr), limit)]
    elif limit:
        arr = arr[:limit]
    if len(arr) == 0:
        raise TrainingError(f"{data}: the {split} split is empty")
    return torch.from_numpy(np.array(arr))  # a writable copy in memory


def make_batch(
    images: torch.Tensor,
    idx: torch.Tensor,
    crop: int,
    flip: bool,
    gen: torch.Generator,
    device: torch.device,
    scale_min: float = 1.0,
) -> torch.Tensor:
    """Gather, randomly crop and flip a batch: uint8 (N, H, W, 3) -> float RGB (B, 3, c, c).

    With scale_min < 1 the crop side is drawn once per batch from U(scale_min, 1) x the stored
    short side and the crops are resized to ``crop`` (or the stored size): the net sees scenes
    at several scales, as photos of any size reach it at inference.
    The random numbers come from `gen` on the CPU, so a run is reproducible on any device.
    """
    B = len(idx)
    _, H, W, _ = images.shape
    x = images[idx.to(images.device)].to(device, non_blocking=True)  # (B, H, W, 3) uint8
    out_side = crop or min(H, W)
    side = crop
    if scale_min < 1.0:
        u = scale_min + (1.0 - scale_min) * float(torch.rand(1, generator=gen))
        side = max(1, round(u * min(H, W)))
    if side and (side < H or side < W):
        ch, cw = min(side, H), min(side, W)
        oy = torch.randint(0, H - ch + 1, (B,), generator=gen)
        ox = torch.randint(0, W - cw + 1, (B,), generator=gen)
        rows = (oy[:, None] + torch.arange(ch)).to(device)  # (B, ch)
        cols = (ox[:, None] + torch.arange(cw)).to(device)  # (B, cw)
        b = torch.arange(B, device=device)[:, None, None]
        x = x[b, rows[:, :, None], cols[:, None, :]]  # (B, ch, cw, 3): one crop per photo
    if flip:
        f = (torch.rand(B, generator=gen) < 0.5).to(device)
        x = torch.where(f[:, None, None, None], x.flip(2), x)
    x = x.permute(0, 3, 1, 2).float().div_(255.0)  # (B, 3, h, w)
    if scale_min < 1.0 and x.shape[-1] != out_side:
        x = F.interpolate(x, size=(out_side, out_side), mode="bilinear", antialias=True)
        x = x.clamp_(0.0, 1.0)  # (B, 3, crop, crop)
    return x


HAZE_DENSITY = (0.5, 2.5)  # optical depth of the far scene: e^-k of its light survives
HAZE_AIRLIGHT = (0.6, 0.95)  # the fog's own grey (sRGB), per photo
HAZE_HORIZON = (0.3, 0.7)  # where the far scene ends, as a share of the height from the top


def add_haze(rgb: torch.Tensor, share: float, gen: torch.Generator) -> torch.Tensor:
    """Synthetic fog on about ``share`` of a batch's photos (B, 3, H, W) float RGB in [0, 1].

    Why: the model paints fog, overcast and rain the blue and warm of clear days, under the
    gray floor on its own training photos too and, on DAWN's, further under on held-back ones (issue 24,
    results/training/haze_expert/seen_photos.md): the weather sets are 130-250 photos each,
    and every clear day can be a foggy one. The atmospheric scattering model I = J t + A (1 - t) in linear
    light, A a neutral grey and t = exp(-k d) with a depth proxy d of the row alone: 1 (far)
    above a horizon, falling to 0.1 at the bottom (the near road or field). A neutral A pulls
    a*b* towards 0 and L towards A's lightness where the fog is thick, as in a real fog, so
    the truth says how grey a hazy scene is. The draws come from ``gen`` (on the CPU), all of
    them whatever ``share`` picks, so a run is reproducible on any device.
    """
    B, _, H, _ = rgb.shape

    def uniform(lo_hi: tuple[float, float]) -> torch.Tensor:
        lo, hi = lo_hi
        return (lo + (hi - lo) * torch.rand(B, generator=gen, dtype=torch.float64)).float()

    pick = torch.rand(B, generator=gen) < share
    k, grey, horizon = uniform(HAZE_DENSITY), uniform(HAZE_AIRLIGHT), uniform(HAZE_HORIZON)
    if not bool(pick.any()):
        return rgb
    y = (torch.arange(H, dtype=torch.float32) + 0.5) / H  # (H,) 0 at the top
    below = ((y[None] - horizon[:, None]) / (1.0 - horizon[:, None])).clamp_min(0.0)  # (B, H)
    depth = 1.0 - 0.9 * below  # (B, H): 1 far, 0.1 at the bottom row
    t = torch.exp(-k[:, None] * depth)  # (B, H) transmission
    t = torch.where(pick[:, None], t, torch.ones_like(t)).to(rgb.device)
    air = srgb_to_linear(grey).to(rgb.device)  # (B,) linear grey
    t4 = t[:, None, :, None]  # (B, 1, H, 1)
    lin = srgb_to_linear(rgb) * t4 + air[:, None, None, None] * (1.0 - t4)
    return torch.where(pick.to(rgb.device)[:, None, None, None], linear_to_srgb(lin), rgb)


def to_lab(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3, H, W) RGB -> L (B, 1, H, W) in [0, 100], ab (B, 2, H, W) in Lab units (fp32)."""
    lab = rgb_to_lab(rgb.float())
    return lab[:, :1], lab[:, 1:]


def on_grid(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, *size), area-averaged: the photo's L or a*b* as the model's output
    grid sees it (eccv16 and effunet predict at 1/4 of the input side). The one place the
    loss, the calibration, the tilt and the critic take their truth from."""
    x = x.float()
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="area")


def _small_ab(images: torch.Tensor, size: int = 64, batch: int = 256):
    """a*b* (B, 2, size, size) of the photos in batches, from a downscaled copy: the prior is a
    histogram, resolution barely changes it, and 64x64 is 4-16x less work."""
    for i in range(0, len(images), batch):
        rgb = images[i : i + batch].permute(0, 3, 1, 2).float() / 255.0
        rgb = F.interpolate(rgb, size=(size, size), mode="area")
        yield to_lab(rgb)[1]


def compute_prior(bins: ColorBins, images: torch.Tensor) -> torch.Tensor:
    """Class prior of the training photos."""
    return class_prior(bins, _small_ab(images))


def train_sources(manifest: dict[str, Any], n: int, split: str = "train") -> list[str]:
    """The --images folder each of the first n photos of ``split`` came from (manifest order)."""
    sources = {
        item["index"]: item["source"]
        for item in manifest["items"]
        if item["split"] == split and item["index"] < n
    }
    if len(sources) != n:
        raise TrainingError(f"the manifest names {len(sources)} of the {n} {split} photos")
    return [sources[i] for i in range(n)]


def source_factors(sources: list[str], weights: dict[str, float]) -> torch.Tensor:
    """(n,) each photo's source weight: that of the first ``weights`` pattern its source
    matches (fnmatch), 1 where none does. A pattern that matches no source is an error: a typo
    would otherwise train on the unweighted mix without a word."""
    unused = [p for p in weights if not any(fnmatch.fnmatch(s, p) for s in set(sources))]
    if unused:
        raise TrainingError(
            f"source_weights {unused} match no training source (sources: {sorted(set(sources))})"
        )

    def factor(source: str) -> float:
        return next((float(w) for p, w in weights.items() if fnmatch.fnmatch(source, p)), 1.0)

    cache = {src: factor(src) for src in set(sources)}
    return torch.tensor([cache[src] for src in sources], dtype=torch.float64)


def balanced_order(
    probs: torch.Tensor, epoch: int, seed: int, rank: int, world: int, per_rank: int
) -> torch.Tensor:
    """This rank's photo indices for one epoch, drawn with replacement with `probs`.

    A pure function of (seed, epoch): every rank draws the same list and takes its own share,
    and a resumed run redraws exactly the list the killed one was walking through.
    """
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    draw = torch.multinomial(probs, per_rank * world, replacement=True, generator=gen)
    return draw[rank::world]
