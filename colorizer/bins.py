"""Colour classes: quantised a*b* bins, the one place that builds them and decodes them.

Two presets:

- ``seed104``: the first seed's 15x15 grid on normalised a*b* (``u = (ab + 128) / 255``), a value
  in cell ``round(u_a * 14) * 15 + round(u_b * 14)``; 104 cells are kept and a 105th "no class"
  bucket takes every other cell. The seed's list holds 105 cell numbers for its 105 output
  channels; the 105th channel is the bucket, so its cell (190) falls in the bucket too. One centre definition serves encoder and decoder alike: cell
  ``(i, j)`` has its centre at ``u = (i / 14, j / 14)``, the value the encoder rounds to. (The
  seed's own decoder put it at ``i / 15 + 1/30``, up to half a cell away.)
- ``zhang313``: Zhang et al.'s bins on an a*b* grid of 10: the 313 grid points closest to the
  a*b* projection of the sRGB gamut. Every cell that an sRGB colour falls in is among them; the
  rest widen the rim by up to 13.25 units, so a net can still say "as saturated as possible".

Every model, metric and app decodes a distribution over bins with :meth:`ColorBins.decode`,
the annealed mean of Zhang et al.: ``softmax(logits / T)`` then the expectation of the centres;
T -> 0 gives the mode, T = 1 the mean. The first seed's temperature t (bigger is sharper) is
T = 1 / t here.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from colorizer.lab import ab_from_unit, ab_to_unit, rgb_to_lab

SEED104_CELLS = (
    25, 26, 27, 40, 41, 42, 51, 52, 53, 54, 55, 56, 57, 64, 65, 66, 67, 68, 69, 70, 71, 72, 79,
    80, 81, 82, 83, 84, 85, 86, 87, 93, 94, 95, 96, 97, 98, 99, 100, 101, 102, 108, 109, 110,
    111, 112, 113, 114, 115, 116, 117, 123, 124, 125, 126, 127, 128, 129, 130, 131, 132, 136,
    137, 138, 139, 140, 141, 142, 143, 144, 145, 146, 147, 150, 151, 152, 153, 154, 155, 156,
    157, 158, 159, 160, 165, 166, 167, 168, 169, 170, 171, 172, 173, 174, 175, 180, 182, 183,
    184, 185, 186, 187, 188, 189, 190,
)  # fmt: skip

# Resolution of the lookup tables that map a*b* to classes: one table cell per Lab unit over
# [-128, 128). Encoding a pixel is then a single gather, whatever the number of bins.
_LUT_MIN = -128.0
_LUT_SIZE = 256


# At or below this temperature the decode is the one-hot mode (no gradient, no blend).
MODE_T = 1e-4


class ColorBins:
    """A set of a*b* bin centres, optionally with a "no class" bucket.

    Args:
        centers: (Q, 2) a*b* centres in Lab units. For a set with a null bucket, its row is
            ignored by decoding and soft encoding.
        name: preset name, recorded in checkpoints.
        null_index: index of the "no class" bucket, or None.
        cell_to_class: for seed104-style grids, the (225,) class of each cell of the 15x15 grid
            on normalised a*b*; hard encoding is then the seed's exact rounding rule instead of
            nearest-centre.
    """

    def __init__(
        self,
        centers: torch.Tensor,
        name: str = "custom",
        null_index: int | None = None,
        cell_to_class: torch.Tensor | None = None,
    ) -> None:
        centers = torch.as_tensor(centers, dtype=torch.float32).detach().cpu()
        if centers.dim() != 2 or centers.shape[1] != 2 or len(centers) < 2:
            raise ValueError(
                f"centers must have shape (Q, 2) with Q >= 2; got {tuple(centers.shape)}"
            )
        if null_index is not None and not 0 <= null_index < len(centers):
            raise ValueError(f"null_index {null_index} is outside 0..{len(centers) - 1}")
        self.centers = centers
        self.name = name
        self.null_index = null_index
        self._cell_to_class = (
            None if cell_to_class is None else torch.as_tensor(cell_to_class).long()
        )
        self._device_cache: dict[tuple[str, torch.dtype], dict[str, torch.Tensor]] = {}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_centers(cls, centers: torch.Tensor, name: str = "custom") -> ColorBins:
        return cls(centers, name=name)

    def to_dict(self) -> dict:
        """Tensors and primitives only, so a checkpoint loads with weights_only=True."""
        d = {"name": self.name, "centers": self.centers.clone(), "null_index": self.null_index}
        if self._cell_to_class is not None:
            d["cell_to_class"] = self._cell_to_class.clone()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ColorBins:
        if d.get("name") in PRESETS:
            preset = get_bins(d["name"])
            if torch.equal(preset.centers, torch.as_tensor(d["centers"], dtype=torch.float32)):
                return preset
        return cls(d["centers"], name=d.get("name", "custom"), null_index=d.get("null_index"),
                   cell_to_class=d.get("cell_to_class"))  # fmt: skip

    def __repr__(self) -> str:
        null = f", null_index={self.null_index}" if self.null_index is not None else ""
        return f"ColorBins(name={self.name!r}, num_classes={self.num_classes}{null})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ColorBins)
            and self.null_index == other.null_index
            and torch.equal(self.centers, other.centers)
        )

    __hash__ = None  # mutable-ish tensors inside; compare by value only

    @property
    def num_classes(self) -> int:
        return len(self.centers)

    @property
    def colour_mask(self) -> torch.Tensor:
        """(Q,) bool: True for real colours, False for the null bucket."""
        mask = torch.ones(self.num_classes, dtype=torch.bool)
        if self.null_index is not None:
            mask[self.null_index] = False
        return mask

    # ------------------------------------------------------------------ lookup tables
    @functools.cached_property
    def _lut_knn(self) -> torch.Tensor:
        # (256, 256, K_MAX): the K_MAX nearest real centres of every integer a*b* point. A pixel
        # is at most 0.5 units from its table point, so for well-separated bins the set of its k
        # nearest centres is the table's; the weights below use exact distances.
        return self._nearest_table(min(20, int(self.colour_mask.sum())))

    def _nearest_table(self, k: int) -> torch.Tensor:
        grid = torch.arange(_LUT_SIZE, dtype=torch.float32) + _LUT_MIN
        pts = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), -1).view(-1, 2)
        d = torch.cdist(pts, self.centers)  # (65536, Q)
        d[:, ~self.colour_mask] = float("inf")
        idx = d.topk(k, dim=1, largest=False).indices  # (65536, k), nearest first
        return idx.view(_LUT_SIZE, _LUT_SIZE, k)

    def _on(
        self, device: torch.device, dtype: torch.dtype = torch.float32
    ) -> dict[str, torch.Tensor]:
        key = (str(device), dtype)
        if key not in self._device_cache:
            self._device_cache[key] = {
                "centers": self.centers.to(device, dtype),
                "mask": self.colour_mask.to(device),
            }
        return self._device_cache[key]

    @staticmethod
    def _lut_index(ab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ij = (ab - _LUT_MIN).round().long().clamp_(0, _LUT_SIZE - 1)
        return ij[:, 0], ij[:, 1]

    # ------------------------------------------------------------------ encoding
    def encode_hard(self, ab: torch.Tensor) -> torch.Tensor:
        """(B, 2, H, W) a*b* -> (B, H, W) int64 class of each pixel."""
        _check_ab(ab)
        if self._cell_to_class is not None:
            g = torch.round(ab_to_unit(ab.float()).clamp(0, 1) * 14).long()  # (B, 2, H, W)
            return self._cell_to_class.to(ab.device)[g[:, 0] * 15 + g[:, 1]]
        idx, _ = self._nearest(ab, 1)
        return idx[..., 0]

    def _nearest(self, ab: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The k nearest real centres of every pixel, exactly: candidates come from the table at
        the pixel's integer point (4 spare ones cover ties and the 0.5-unit rounding), exact
        squared distances pick among them. Returns (B, H, W, k) indices and squared distances."""
        table = self._lut_knn
        ia, ib = self._lut_index(ab)
        cand = table.to(ab.device)[ia, ib, : min(k + 4, table.shape[-1])]  # (B, H, W, k+4)
        centers = self._on(ab.device)["centers"]
        d2 = (centers[cand] - ab.float().permute(0, 2, 3, 1).unsqueeze(-2)).pow(2).sum(-1)
        d2, order = d2.topk(k, dim=-1, largest=False)  # (B, H, W, k)
        return cand.gather(-1, order), d2

    def soft_targets(
        self, ab: torch.Tensor, k: int = 5, sigma: float = 5.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 2, H, W) a*b* -> the soft targets in sparse form: the (B, k, H, W) indices of the
        k nearest centres, nearest first, and their (B, k, H, W) weights, a Gaussian of the
        distance (Zhang et al.: k = 5, sigma = 5) summing to 1 per pixel. The loss gathers its
        k log-probabilities with them instead of multiplying a dense (B, Q, H, W) target."""
        _check_ab(ab)
        if not 1 <= k <= self._lut_knn.shape[-1] - 4:
            raise ValueError(f"k must be in 1..{self._lut_knn.shape[-1] - 4}; got {k}")
        nn_idx, d2 = self._nearest(ab, k)  # (B, H, W, k)
        w = torch.softmax(-d2 / (2.0 * sigma * sigma), dim=-1)
        return nn_idx.permute(0, 3, 1, 2), w.permute(0, 3, 1, 2)  # (B, k, H, W) each

    def encode_soft(self, ab: torch.Tensor, k: int = 5, sigma: float = 5.0) -> torch.Tensor:
        """(B, 2, H, W) a*b* -> (B, Q, H, W) dense soft targets (see :meth:`soft_targets`)."""
        idx, w = self.soft_targets(ab, k, sigma)
        B, _, H, W = ab.shape
        out = ab.new_zeros((B, self.num_classes, H, W), dtype=torch.float32)
        return out.scatter_(1, idx, w)  # (B, Q, H, W)

    # ------------------------------------------------------------------ decoding
    def probabilities(self, logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """The annealed distribution softmax(logits / T) over real colours, (B, Q, H, W).

        T <= 0 (or tiny) gives the one-hot mode. The null bucket, if any, gets zero mass.
        """
        _check_logits(logits, self.num_classes)
        x = logits.float()
        if self.null_index is not None:  # (a full pass over the logits: only where needed)
            mask = self._on(x.device)["mask"].view(1, -1, 1, 1)
            x = x.masked_fill(~mask, float("-inf"))
        if temperature <= MODE_T:
            idx = x.argmax(dim=1, keepdim=True)
            return torch.zeros_like(x).scatter_(1, idx, 1.0)
        return torch.softmax(x / temperature, dim=1)

    def decode(self, logits: torch.Tensor, decoding: Decoding | float = 1.0) -> torch.Tensor:
        """THE decode: (B, Q, H, W) logits -> (B, 2, H, W) a*b*, the annealed mean at the
        ``decoding``'s temperature T (a bare number: that T, uncalibrated; T <= 1e-4 the mode).

        With a calibration (see :class:`ConfidenceFit`), colour only as strongly as the
        model is sure: each pixel moves from the distribution's mean (T = 1, the safe guess)
        towards the annealed mean by w(entropy), a weight fitted on validation photos, so a
        hesitant pixel stays near the mean and a sure one commits to the vivid colour. Where
        the calibration also has a ``mean_weight`` curve m(entropy), the mean itself is scaled
        by it first: m * mean + w * (vivid - mean), so where even the mean is usually wrong
        (the rebalanced loss tints a gray road beige) the pixel leans towards gray.
        """
        if isinstance(decoding, Decoding):
            temperature, calibration = decoding.temperature, decoding.calibration
        else:
            temperature, calibration = float(decoding), None
        if calibration is None:
            return self.expectation(self.probabilities(logits, temperature))  # (B, 2, H, W)
        return blend(*self.decode_parts(logits, temperature), calibration)

    def expectation(self, p: torch.Tensor) -> torch.Tensor:
        """(B, Q, H, W) probabilities -> (B, 2, H, W) expected a*b* of the bin centres."""
        B, Q, H, W = p.shape
        c = self._on(p.device, p.dtype)["centers"]  # (Q, 2)
        # One (2, Q) x (Q, HW) matmul per photo: 7x faster on CPU than the einsum it replaces.
        return torch.matmul(c.t(), p.reshape(B, Q, H * W)).view(B, 2, H, W)

    def decode_parts(
        self, logits: torch.Tensor, temperature: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What the calibrated decode blends, and what it blends by: the mean (T = 1), the
        annealed mean at T (both (B, 2, H, W)) and the normalised entropy (B, H, W). All
        that the logits decide: calibration scores many curves on the same parts."""
        p1 = self.probabilities(logits, 1.0)
        mean = self.expectation(p1)
        vivid = self.expectation(self.probabilities(logits, temperature))
        return mean, vivid, _normalised_entropy(p1, self)

    def entropy(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, Q, H, W) logits -> (B, H, W) entropy of softmax(logits) over real colours,
        divided by log(number of colours) so that 0 is certain and 1 is uniform."""
        return _normalised_entropy(self.probabilities(logits, 1.0), self)


def blend(
    mean: torch.Tensor, vivid: torch.Tensor, entropy: torch.Tensor, calibration: dict[str, Any]
) -> torch.Tensor:
    """The calibrated decode's last step (``ColorBins.decode``): m(e) * mean + w(e) * (vivid -
    mean), m = 1 without a ``mean_weight`` curve; (B, 2, H, W)."""
    w = confidence_weight(calibration, entropy)[:, None]
    if calibration.get("mean_weight") is not None:
        mean = confidence_weight(calibration, entropy, "mean_weight")[:, None] * mean
    return mean + w * (vivid - mean)


def _normalised_entropy(p: torch.Tensor, bins: ColorBins) -> torch.Tensor:
    """(B, Q, H, W) probabilities -> (B, H, W) entropy / log(number of real colours)."""
    n = int(bins._on(p.device)["mask"].sum())
    return -(p * torch.log(p.clamp_min(1e-12))).sum(1) / math.log(n)


# ---------------------------------------------------------------------- the decode setting
class DecodingError(ValueError):
    """A temperature or confidence calibration that no decode can use."""


@dataclass(frozen=True)
class Decoding:
    """How a classification model's distribution becomes a*b*: THE decode setting, one per
    model, stored once in its checkpoint (field ``decoding``) and in its ONNX metadata.

    ``temperature``: the annealed mean's T (> 0; Zhang et al.'s 0.38, the seed's t = 2 is 0.5,
    1 is the plain mean). ``calibration``: the confidence curves of :class:`ConfidenceFit`
    ({"entropy": [...], "weight": [...], optional "mean_weight": [...]}, as
    ``training.calibrate`` writes them), or None for the plain annealed mean. Both are checked
    here, once, whoever builds one (a checkpoint, a CLI flag, the demo's slider). The curves
    are a private copy (a caller's dict cannot change them); treat them as read-only. Frozen
    but not hashable (the curves are a dict)."""

    temperature: float = 1.0
    calibration: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        t = self.temperature
        if isinstance(t, torch.Tensor) and t.numel() == 1:
            t = t.item()
        if isinstance(t, bool | str | bytes) or not isinstance(t, numbers.Real):
            raise DecodingError(f"temperature must be a positive finite number, got {t!r}")
        if not math.isfinite(float(t)) or float(t) <= 0:
            raise DecodingError(f"temperature must be a positive finite number, got {t!r}")
        object.__setattr__(self, "temperature", float(t))
        if self.calibration is not None:
            problem = calibration_problem(self.calibration)
            if problem:
                raise DecodingError(f"malformed confidence calibration: {problem}")
            # a copy, so that no caller's dict can change a frozen setting behind its back;
            # the T the curves were fitted at (ConfidenceFit.result's "temperature") is not
            # kept: one setting has one temperature, this one's
            cal = {k: v for k, v in self.calibration.items() if k != "temperature"}
            object.__setattr__(self, "calibration", copy.deepcopy(cal))

    def at(self, temperature: float | None) -> Decoding:
        """This setting at another temperature (the calibration kept); None: unchanged."""
        return self if temperature is None else dataclasses.replace(self, temperature=temperature)

    def to_dict(self) -> dict[str, Any]:
        cal = copy.deepcopy(self.calibration)
        return {"temperature": self.temperature, "calibration": cal}

    @classmethod
    def from_dict(cls, d: Any) -> Decoding:
        if not isinstance(d, dict) or set(d) - {"temperature", "calibration"}:
            raise DecodingError(
                "a decoding is a dict of 'temperature' and 'calibration', got "
                + (f"keys {sorted(map(str, d))}" if isinstance(d, dict) else type(d).__name__)
            )
        return cls(d.get("temperature", 1.0), d.get("calibration"))

    def describe(self) -> str:
        """'0.7 calibrated', '0.38': what ``python -m colorizer models`` prints."""
        return f"{self.temperature:g}" + (" calibrated" if self.calibration else "")


def decoding_at(model: torch.nn.Module, temperature: float | None = None) -> Decoding:
    """The model's decode setting, at ``temperature`` where one is given (Decoding checks it:
    DecodingError, a ValueError, for a non-positive or non-finite one)."""
    return (getattr(model, "decoding", None) or Decoding()).at(temperature)


def output_to_ab(
    model: torch.nn.Module, out: torch.Tensor, temperature: float | None = None
) -> torch.Tensor:
    """A model's raw output -> a*b* in Lab units, (B, 2, h, w), float32.

    classification: ``model.bins.decode(logits, model.decoding)`` (the annealed mean, moved
    towards the safe mean where the model hesitates if its decoding carries a confidence
    calibration), at ``temperature`` where given; regression: the output is in the seeds' unit
    scaling, ``ab_from_unit``.
    """
    kind = getattr(model, "kind", None)
    if kind == "classification":
        return model.bins.decode(out.float(), decoding_at(model, temperature))
    if kind == "regression":
        if out.dim() != 4 or out.shape[1] != 2:
            raise ValueError(f"regression output must be (B, 2, h, w); got {tuple(out.shape)}")
        return ab_from_unit(out.float())
    raise ValueError(f"model.kind must be 'classification' or 'regression'; got {kind!r}")


def calibration_problem(cal: Any) -> str | None:
    """Why ``cal`` is not a usable confidence calibration, or None when it is."""
    if not isinstance(cal, dict):
        return f"a dict of curves, got a {type(cal).__name__}"
    x, w, m = cal.get("entropy"), cal.get("weight"), cal.get("mean_weight")

    def unit_numbers(v: Any) -> bool:
        return isinstance(v, list | tuple) and all(
            isinstance(e, int | float) and not isinstance(e, bool) and 0 <= e <= 1 for e in v
        )

    if not (unit_numbers(x) and unit_numbers(w) and 0 < len(x) == len(w)):
        return "needs equal, non-empty 'entropy' and 'weight' lists of numbers in [0, 1]"
    if list(x) != sorted(x):
        return "its 'entropy' points must be sorted"
    if m is not None and not (unit_numbers(m) and len(m) == len(x)):
        return "'mean_weight', where present, must be as long as 'entropy', numbers in [0, 1]"
    return None


# ---------------------------------------------------------------------- confidence calibration
CALIBRATION_BINS = 20  # equal-width entropy bins over [0, 1]


def confidence_weight(
    calibration: dict, entropy: torch.Tensor, key: str = "weight"
) -> torch.Tensor:
    """w(entropy) in [0, 1]: piecewise-linear through the calibration's (entropy, ``key``)
    points, flat beyond the ends. ``calibration``: {"entropy": [...], "weight": [...]}."""
    x = torch.as_tensor(calibration["entropy"], dtype=entropy.dtype, device=entropy.device)
    y = torch.as_tensor(calibration[key], dtype=entropy.dtype, device=entropy.device)
    if x.ndim != 1 or x.shape != y.shape or len(x) == 0:
        raise ValueError(f"calibration needs equal, non-empty 'entropy' and {key!r} lists")
    e = entropy.clamp(float(x[0]), float(x[-1]))
    i = torch.searchsorted(x, e.contiguous()).clamp(1, max(1, len(x) - 1))
    if len(x) == 1:
        return y[0].expand_as(e)
    x0, x1, y0, y1 = x[i - 1], x[i], y[i - 1], y[i]
    t = ((e - x0) / (x1 - x0).clamp_min(1e-12)).clamp(0, 1)
    return y0 + t * (y1 - y0)


class ConfidenceFit:
    """Accumulates, over validation batches, what the least-squares blend weight of each
    entropy bin needs: w_k = sum <vivid - mean, truth - mean> / sum |vivid - mean|^2 over the
    pixels whose entropy falls in bin k. That w minimises the a*b* squared error of
    ``mean + w (vivid - mean)`` in each bin: where the vivid guess is usually right (sure
    pixels) w -> 1, where it is a coin toss w -> 0.

    With ``fit_mean`` it also fits m_k, the scale of the mean, jointly with w_k: the pair in
    [0, 1]^2 minimising the squared error of ``m mean + w (vivid - mean)`` in each bin. A
    rebalanced loss biases the mean towards colour; m < 1 where that bias costs more than the
    mean's colour earns."""

    def __init__(
        self,
        bins: ColorBins,
        temperature: float,
        n_bins: int = CALIBRATION_BINS,
        fit_mean: bool = False,
    ):
        self.bins, self.temperature, self.n = bins, float(temperature), int(n_bins)
        self.fit_mean = bool(fit_mean)
        # per bin: pixel count, entropy sum, and the second moments of mean, d = vivid - mean
        # and truth t that the least squares need
        names = ("count", "sum_e", "mm", "md", "dd", "mt", "dt")
        self.acc = {k: torch.zeros(self.n, dtype=torch.float64) for k in names}

    def add(self, logits: torch.Tensor, ab: torch.Tensor) -> None:
        """logits (B, Q, h, w) and the photos' a*b* at the same size (B, 2, h, w)."""
        mean, vivid, e = self.bins.decode_parts(logits.float(), self.temperature)
        d, t = vivid - mean, ab.float()
        e = e.flatten().cpu().double()
        k = (e * self.n).long().clamp(0, self.n - 1)

        def total(v: torch.Tensor | None) -> torch.Tensor:
            w = None if v is None else v.flatten().cpu().double()
            return torch.bincount(k, w, minlength=self.n).double()

        a = self.acc
        a["count"] += total(None)
        a["sum_e"] += total(e)
        pairs = dict(mm=(mean, mean), md=(mean, d), dd=(d, d), mt=(mean, t), dt=(d, t))
        for name, (x, y) in pairs.items():
            a[name] += total((x * y).sum(1))

    def _solve(self, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(m, w) per kept bin, each in [0, 1]; m = 1 without ``fit_mean``."""
        a = {k: v[keep] for k, v in self.acc.items()}
        dd = a["dd"].clamp_min(1e-12)
        m = torch.ones_like(dd)

        def w_given(m: torch.Tensor) -> torch.Tensor:  # <d, t - m mean> / |d|^2
            return ((a["dt"] - m * a["md"]) / dd).clamp(0.0, 1.0)

        w = w_given(m)
        if self.fit_mean:
            # coordinate descent on a convex quadratic over a box: converges to its minimum
            mm = a["mm"].clamp_min(1e-12)
            for _ in range(50):
                m = ((a["mt"] - w * a["md"]) / mm).clamp(0.0, 1.0)
                w = w_given(m)
        return m, w

    def result(self, min_pixels: int = 100) -> dict:
        """{"temperature", "entropy": bin centres, "weight": w_k in [0, 1], "pixels"}, and
        "mean_weight" with ``fit_mean``; bins with fewer than ``min_pixels`` pixels are left out
        (the curve is flat past its ends)."""
        a = self.acc
        keep = (a["count"] >= min_pixels) & ((a["dd"] > 0) | (self.fit_mean & (a["mm"] > 0)))
        if not bool(keep.any()):
            raise ValueError("too few validation pixels to calibrate the confidence")
        m, w = self._solve(keep)
        out = {
            "temperature": self.temperature,
            "entropy": [round(float(v), 5) for v in a["sum_e"][keep] / a["count"][keep]],
            "weight": [round(float(v), 5) for v in w],
            "pixels": [int(v) for v in a["count"][keep]],
        }
        if self.fit_mean:
            out["mean_weight"] = [round(float(v), 5) for v in m]
        return out


def _check_ab(ab: torch.Tensor) -> None:
    if ab.dim() != 4 or ab.shape[1] != 2:
        raise ValueError(f"ab must have shape (B, 2, H, W); got {tuple(ab.shape)}")


def _check_logits(logits: torch.Tensor, q: int) -> None:
    if logits.dim() != 4 or logits.shape[1] != q:
        raise ValueError(f"logits must have shape (B, {q}, H, W); got {tuple(logits.shape)}")


# ---------------------------------------------------------------------- presets
def _seed104() -> ColorBins:
    ij = torch.tensor(SEED104_CELLS[:104])  # the 105th listed slot is the null bucket
    unit = torch.stack([ij // 15, ij % 15], -1).float() / 14.0  # centre = what round(u*14) hits
    centers = torch.cat([unit * 255.0 - 128.0, torch.zeros(1, 2)])  # (105, 2), null last
    # Hard encoding exactly as the seed's code: round(u * 14) on each axis, unkept cells -> null.
    cell_to_class = torch.full((225,), 104, dtype=torch.long)
    cell_to_class[ij] = torch.arange(104)
    return ColorBins(centers, name="seed104", null_index=104, cell_to_class=cell_to_class)


def srgb_gamut_ab(steps: int = 129) -> torch.Tensor:
    """(N, 2) a*b* of points on the surface of the sRGB cube: its a*b* projection covers the
    whole gamut's projection, at a fraction of the cost of sampling the solid cube."""
    v = torch.linspace(0, 1, steps)
    u, w = torch.meshgrid(v, v, indexing="ij")
    u, w = u.reshape(-1), w.reshape(-1)
    faces = []
    for axis in range(3):
        for value in (0.0, 1.0):
            cols = [u, w]
            cols.insert(axis, torch.full_like(u, value))
            faces.append(torch.stack(cols, 0))
    rgb = torch.cat(faces, 1).view(3, 1, -1)  # (3, 1, N)
    return rgb_to_lab(rgb)[1:].reshape(2, -1).T  # (N, 2)


def _zhang313() -> ColorBins:
    g = torch.arange(-110, 111, 10, dtype=torch.float32)
    grid = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).view(-1, 2)  # (529, 2)
    dist = torch.cdist(grid, srgb_gamut_ab()).min(1).values  # distance to the gamut
    keep = dist.argsort()[:313].sort().values  # grid order: a major, b minor
    return ColorBins(grid[keep], name="zhang313")


PRESETS = {"seed104": _seed104, "zhang313": _zhang313}


@functools.cache
def get_bins(name: str) -> ColorBins:
    """A preset by name (built once per process)."""
    if name not in PRESETS:
        raise KeyError(f"unknown bins {name!r}; presets: {', '.join(PRESETS)}")
    return PRESETS[name]()


# ---------------------------------------------------------------------- prior and weights
def class_prior(bins: ColorBins, ab_batches: Iterable[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """Empirical class distribution (Q,) of the pixels of an iterable of (B, 2, H, W) a*b*."""
    if isinstance(ab_batches, torch.Tensor):
        ab_batches = [ab_batches]
    counts = torch.zeros(bins.num_classes, dtype=torch.float64)
    for ab in ab_batches:
        cls = bins.encode_hard(ab).flatten()
        counts += torch.bincount(cls, minlength=bins.num_classes).double().cpu()
    total = counts.sum()
    if total == 0:
        raise ValueError("class_prior got no pixels")
    return (counts / total).float()


def smooth_prior(prior: torch.Tensor, bins: ColorBins, sigma: float) -> torch.Tensor:
    """Gaussian smoothing of a prior over the a*b* plane (Zhang et al.: sigma = 5)."""
    if sigma <= 0:
        return prior
    c = bins.centers
    kernel = torch.exp(-torch.cdist(c, c).pow(2) / (2 * sigma * sigma))  # (Q, Q)
    mask = bins.colour_mask
    kernel = kernel * mask.view(1, -1) * mask.view(-1, 1)  # the null bucket smooths with nothing
    if bins.null_index is not None:
        kernel[bins.null_index, bins.null_index] = 1.0
    kernel = kernel / kernel.sum(0, keepdim=True)  # each class spreads its mass, keeps the total
    return kernel @ prior.float()


def rebalance_weights(
    prior: torch.Tensor, lam: float = 0.5, sigma: float = 5.0, bins: ColorBins | None = None
) -> torch.Tensor:
    """Class weights w_q proportional to 1 / ((1 - lam) p_q + lam / Q), scaled so E_p[w] = 1.

    lam = 1 gives uniform weights (no rebalancing), lam = 0 the inverse prior. The prior is
    smoothed with a Gaussian of ``sigma`` over the bin centres first when ``bins`` is given.
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1]; got {lam}")
    p = prior.float()
    if bins is not None:
        p = smooth_prior(p, bins, sigma)
    q = len(p)
    w = 1.0 / ((1.0 - lam) * p + lam / q).clamp_min(1e-12)
    return w / (p * w).sum()
