"""Image-quality metrics for colorization, in torch.

Inputs are RGB float tensors in [0, 1] of shape (3, H, W) or batched (B, 3, H, W); a single
image gives a 0-d tensor, a batch gives (B,). Prediction first, ground truth second.

- :func:`seed_euclidean`, :func:`seed_psnr`: the first seed's "Euclidean distance" and "PSNR",
  reproduced exactly (REFERENCE.md section 1), so our numbers line up with its table.
- :func:`psnr_db`: the PSNR everyone else reports, 20 log10(255 / RMSE) over uint8 RGB.
- :func:`ssim`: structural similarity, Gaussian window 11 / sigma 1.5 (Wang et al. 2004).
- :func:`ab_error`, :func:`auc_ab`, :func:`auc_ab_rebalanced`: Zhang et al.'s per-pixel a*b*
  error and the area under its CDF over thresholds 0..150.
- :func:`colorfulness`: Hasler & Suesstrunk 2003.

:data:`METRICS` is the registry of what every evaluation table reports (name, heading, unit,
direction) and :func:`score` computes any of them at once, in those units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from colorizer.bins import ColorBins, get_bins
from colorizer.lab import rgb_to_lab

AUC_MAX_THRESHOLD = 150  # Zhang et al.: thresholds 0, 1, ..., 150 Lab units


def _batched(x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    """(3, H, W) or (B, 3, H, W) float -> (B, 3, H, W) float32, checking shapes agree."""
    out = []
    for t in (x, y) if y is not None else (x,):
        if t.dim() == 3:
            t = t.unsqueeze(0)
        if t.dim() != 4 or t.shape[1] != 3:
            raise ValueError(
                f"expected an RGB tensor (3, H, W) or (B, 3, H, W); got {tuple(t.shape)}"
            )
        if not t.is_floating_point():
            raise TypeError("expected a float RGB tensor in [0, 1]")
        out.append(t.float())
    if y is not None and out[0].shape != out[1].shape:
        raise ValueError(f"shapes differ: {tuple(out[0].shape)} vs {tuple(out[1].shape)}")
    return tuple(out)


def _unbatch(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v[0] if like.dim() == 3 else v


def seed_euclidean(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The first seed's "Euclidean distance": ``sum(sqrt(sum over dim 1 of (x - y)^2))``.

    On a (3, H, W) image dim 1 is the height, so this is the sum, over every channel and
    column, of the L2 norm of that column's difference (not a per-pixel distance). On 256x256
    photos it gives values near 1000.
    """
    xb, yb = _batched(x, y)
    # (B, 3, H, W) -> (B, 3, W): norm over the height, as the seed's dim=1 on unbatched images.
    col = (xb - yb).pow(2).sum(dim=2).sqrt()
    return _unbatch(col.sum(dim=(1, 2)), x)


def seed_psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The first seed's "PSNR": ``10 log10(255^2 / ED^2)`` with ED its Euclidean distance.

    Not a PSNR in dB (ED grows with image size, hence its negative values); kept to compare
    with its table. +inf for identical images.
    """
    return _psnr_of_euclidean(seed_euclidean(x, y))


def _psnr_of_euclidean(ed: torch.Tensor) -> torch.Tensor:
    return (10.0 * torch.log10(255.0**2 / ed.double().pow(2))).float()


def psnr_db(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR in dB over uint8 RGB: both images are quantised to 0..255 first, as saved files are."""
    xb, yb = _batched(x, y)
    q = lambda t: (t.clamp(0.0, 1.0) * 255.0).round().double()  # noqa: E731
    mse = (q(xb) - q(yb)).pow(2).mean(dim=(1, 2, 3))
    return _unbatch((20.0 * torch.log10(255.0 / mse.sqrt())).float(), x)


def _gaussian_window(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    ax = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2.0
    g = torch.exp(-(ax**2) / (2.0 * sigma * sigma))
    g = g / g.sum()
    return g


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    window: int = 11,
    sigma: float = 1.5,
    luminance: bool = False,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004) with a Gaussian window, averaged over the RGB channels.

    ``luminance=True`` scores the Rec. 601 luma only. Like skimage's
    ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``,
    the map is averaged over the positions where the whole window fits (the valid region).
    """
    xb, yb = _batched(x, y)
    if luminance:
        luma = torch.tensor([0.299, 0.587, 0.114], device=xb.device).view(1, 3, 1, 1)
        xb, yb = (xb * luma).sum(1, keepdim=True), (yb * luma).sum(1, keepdim=True)
    if min(xb.shape[-2:]) < window:
        raise ValueError(
            f"ssim needs images of at least {window}x{window}; got {tuple(xb.shape[-2:])}"
        )
    # float64 only when asked: the variance terms are differences of nearly equal numbers, but
    # on [0, 1] images float32 stays within 1e-5 of skimage's float64 (tested) at a third the cost.
    xb, yb = xb.to(dtype), yb.to(dtype)
    c = xb.shape[1]
    g = _gaussian_window(window, sigma, xb.device).to(dtype)
    # Separable filter, applied per channel (groups=c): (B, C, H, W) -> (B, C, H-10, W-10).
    gh = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    gv = g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, gh, groups=c), gv, groups=c)

    mu_x, mu_y = blur(xb), blur(yb)
    sxx = blur(xb * xb) - mu_x * mu_x
    syy = blur(yb * yb) - mu_y * mu_y
    sxy = blur(xb * yb) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return _unbatch(s.mean(dim=(1, 2, 3)).float(), x)


def ab_error_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-pixel Euclidean a*b* distance in Lab units: (3, H, W) -> (H, W), batched (B, H, W)."""
    xb, yb = _batched(x, y)
    d = (rgb_to_lab(xb)[:, 1:] - rgb_to_lab(yb)[:, 1:]).pow(2).sum(1).sqrt()  # (B, H, W)
    return _unbatch(d, x)


def ab_error(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel a*b* error in Lab units."""
    d = ab_error_map(x, y)
    return d.mean(dim=(-2, -1))


def _auc_from_errors(
    err: torch.Tensor, weights: torch.Tensor | None, max_threshold: int
) -> torch.Tensor:
    """(B, N) errors, optional (B, N) weights -> (B,) mean over t = 0..T of P_w(err <= t)."""
    # err <= t  <=>  ceil(err) <= t for integer t, so one weighted histogram over ceil(err)
    # and a cumulative sum give every threshold at once (no (T+1) x N comparison matrix).
    bucket = err.ceil().clamp(0, max_threshold + 1).long()  # T+1 = "above every threshold"
    w = torch.ones_like(err, dtype=torch.float64) if weights is None else weights.double()
    hist = torch.zeros(err.shape[0], max_threshold + 2, dtype=torch.float64, device=err.device)
    hist.scatter_add_(1, bucket, w)
    cdf = hist.cumsum(1)[:, : max_threshold + 1] / w.sum(1, keepdim=True)  # (B, T+1)
    return cdf.mean(1).float()


def auc_ab(
    x: torch.Tensor, y: torch.Tensor, max_threshold: int = AUC_MAX_THRESHOLD
) -> torch.Tensor:
    """Zhang et al.'s AuC: area under the CDF of per-pixel a*b* error over thresholds 0..150,
    i.e. the mean over t = 0..150 of the fraction of pixels with error <= t. In [0, 1]."""
    err = ab_error_map(x, y)
    eb = err.unsqueeze(0) if err.dim() == 2 else err
    return _unbatch(_auc_from_errors(eb.flatten(1), None, max_threshold), x)


def pixel_class_weights(
    y: torch.Tensor, class_weights: torch.Tensor, bins: ColorBins | None = None
) -> torch.Tensor:
    """Weight of each ground-truth pixel: ``class_weights`` of its a*b* class, (B, H, W)."""
    (yb,) = _batched(y)
    return _weights_of_classes(rgb_to_lab(yb)[:, 1:], class_weights, bins)


def _weights_of_classes(
    ab: torch.Tensor, class_weights: torch.Tensor, bins: ColorBins | None
) -> torch.Tensor:
    """(B, 2, H, W) ground-truth a*b* -> (B, H, W) weight of each pixel's class."""
    bins = bins or get_bins("zhang313")
    if class_weights.shape != (bins.num_classes,):
        raise ValueError(
            f"class_weights must have shape ({bins.num_classes},) for {bins.name}; "
            f"got {tuple(class_weights.shape)}"
        )
    cls = bins.encode_hard(ab)  # (B, H, W)
    return class_weights.to(cls.device)[cls]


def auc_ab_rebalanced(
    x: torch.Tensor,
    y: torch.Tensor,
    class_weights: torch.Tensor,
    bins: ColorBins | None = None,
    max_threshold: int = AUC_MAX_THRESHOLD,
) -> torch.Tensor:
    """Class-rebalanced AuC: every pixel counts with the weight of its ground-truth a*b* class.

    ``class_weights`` (Q,) come from :func:`colorizer.bins.rebalance_weights` of a prior over
    ``bins`` (default zhang313); with lam=0 (inverse frequency) rare colours count as much as
    common ones, as in Zhang et al.'s "rebalanced" column.
    """
    err = ab_error_map(x, y)
    eb = err.unsqueeze(0) if err.dim() == 2 else err
    w = pixel_class_weights(y, class_weights, bins)
    return _unbatch(_auc_from_errors(eb.flatten(1), w.flatten(1), max_threshold), x)


@dataclass(frozen=True)
class Metric:
    """One column of every evaluation table: its name, heading, unit and direction."""

    name: str
    label: str  # the table heading, without the unit
    unit: str  # "" when the metric has none
    higher_is_better: bool

    @property
    def heading(self) -> str:
        return f"{self.label} {self.unit}" if self.unit else self.label


# THE metric registry: every evaluation (python -m colorizer evaluate, python -m training
# evaluate, validation during training, calibrate) names, orders and scales its columns by it.
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("euclidean", "Euclidean distance", "", False),  # the first seed's
        Metric("psnr_seed", "PSNR (seed)", "", True),  # 10 log10(255^2 / euclidean^2), not dB
        Metric("psnr_db", "PSNR", "dB", True),
        Metric("ssim", "SSIM", "", True),
        Metric("ab_error", "ab error", "", False),  # mean per-pixel a*b* distance, Lab units
        Metric("auc", "AuC", "%", True),  # in percent, as Zhang et al. report it
        Metric("auc_rebal", "AuC rebal.", "%", True),
        Metric("colorfulness", "Colorfulness", "", True),
    )
}
# The names older tables gave the same quantities (training's metrics.csv and temperature.csv,
# `python -m training evaluate` before this registry): their readers map them with this. (That
# evaluator's auc_ab was a fraction, not %, and its photos were row numbers of the split.)
RENAMED = {"seed_euclidean": "euclidean", "seed_psnr": "psnr_seed"}
_LAB = {"ab_error", "auc", "auc_rebal"}  # the metrics that need both images in Lab


def score(
    x: torch.Tensor,
    y: torch.Tensor,
    class_weights: torch.Tensor | None = None,
    keys: Sequence[str] | None = None,
    bins: ColorBins | None = None,
) -> dict[str, torch.Tensor]:
    """THE scoring function: the ``keys`` metrics of prediction ``x`` against ``y``, in the
    registry's units (AuC in %), each (B,) for a batch or 0-d for one image.

    ``keys`` None: every metric of the registry, ``auc_rebal`` only with ``class_weights``
    (see :func:`auc_ab_rebalanced`). Each image goes to Lab once, and only for the metrics that
    need it. Same values as the single functions.
    """
    if keys is None:
        keys = [k for k in METRICS if k != "auc_rebal" or class_weights is not None]
    unknown = [k for k in keys if k not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; known: {', '.join(METRICS)}")
    if "auc_rebal" in keys and class_weights is None:
        raise ValueError("auc_rebal needs class_weights (the rebalancing weight of each class)")
    xb, yb = _batched(x, y)
    out: dict[str, torch.Tensor] = {}
    if {"euclidean", "psnr_seed"} & set(keys):
        ed = seed_euclidean(xb, yb)
        out["euclidean"] = ed
        out["psnr_seed"] = _psnr_of_euclidean(ed)
    if "psnr_db" in keys:
        out["psnr_db"] = psnr_db(xb, yb)
    if "ssim" in keys:
        out["ssim"] = ssim(xb, yb)
    if _LAB & set(keys):
        lab_y = rgb_to_lab(yb)
        err = (rgb_to_lab(xb)[:, 1:] - lab_y[:, 1:]).pow(2).sum(1).sqrt()  # (B, H, W)
        out["ab_error"] = err.mean(dim=(-2, -1))
        out["auc"] = 100.0 * _auc_from_errors(err.flatten(1), None, AUC_MAX_THRESHOLD)
        if "auc_rebal" in keys:
            w = _weights_of_classes(lab_y[:, 1:], class_weights, bins)
            auc = _auc_from_errors(err.flatten(1), w.flatten(1), AUC_MAX_THRESHOLD)
            out["auc_rebal"] = 100.0 * auc
    if "colorfulness" in keys:
        out["colorfulness"] = colorfulness(xb)
    return {k: _unbatch(out[k], x) for k in keys}


def colorfulness(x: torch.Tensor, absolute: bool = False) -> torch.Tensor:
    """Hasler & Suesstrunk (2003) colorfulness on 0..255 RGB.

    rg = R - G, yb = (R + G) / 2 - B; M = sqrt(std_rg^2 + std_yb^2) + 0.3 sqrt(mean_rg^2 +
    mean_yb^2) (population std). ``absolute=True`` takes |rg|, |yb| first, as DDColor and CT2
    do, for comparison with their tables.
    """
    (xb,) = _batched(x)
    rgb = xb.double() * 255.0
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    rg, yb = r - g, 0.5 * (r + g) - b
    if absolute:
        rg, yb = rg.abs(), yb.abs()
    rg, yb = rg.flatten(1), yb.flatten(1)
    std = (rg.var(1, unbiased=False) + yb.var(1, unbiased=False)).sqrt()
    mean = (rg.mean(1).pow(2) + yb.mean(1).pow(2)).sqrt()
    return _unbatch((std + 0.3 * mean).float(), x)


__all__ = [
    "AUC_MAX_THRESHOLD",
    "METRICS",
    "RENAMED",
    "Metric",
    "ab_error",
    "ab_error_map",
    "auc_ab",
    "auc_ab_rebalanced",
    "colorfulness",
    "pixel_class_weights",
    "psnr_db",
    "score",
    "seed_euclidean",
    "seed_psnr",
    "ssim",
]
