"""User colour hints: the one home for points a user (or a simulation of one) gives the model.

A hint is a point of the ORIGINAL photo (x rightwards, y downwards, 0-based pixels) with a
colour (RGB 0-255 or a*b*) and an optional radius in original pixels. The model reads hints as
a (1, 3, h, w) map at its working size beside L: a*b* / 110 and a 0/1 mask (Zhang et al. 2017,
"Real-Time User-Guided Image Colorization with Learned Deep Priors"). Here live:

- ``Hint`` and ``parse_hints`` / ``load_hints_file``: JSON in, one clear ``HintError`` out;
- ``hint_map``: hints -> the model's input map at its working size;
- ``simulate_hints``: training's random points, each the mean a*b* of the truth over its patch;
- ``random_hints``: evaluation's N points, each the truth's mean over a 5x5 patch of the
  original photo, as a user's click would give;
- ``recommend_colors``: the k most likely distinct colours of a predicted distribution.

The JSON format is documented in docs/hints.md.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from colorizer.bins import ColorBins
from colorizer.lab import lab_to_rgb, rgb_to_lab

HINT_SCALE = 110.0  # a*b* / 110 in the map, as Zhang et al. 2017
DEFAULT_RADIUS = 2.0  # original pixels: a 5x5 patch, the evaluation's click
AB_LIMIT = 128.0  # a*b* outside [-128, 128] is no colour at all
MAX_HINTS = 1000  # per photo: more is a malformed file, not a user


class HintError(ValueError):
    """A hint that cannot be used: malformed JSON, a bad colour, a point outside the photo."""


@dataclass(frozen=True)
class Hint:
    """One user point: (x, y) in the original photo's pixels, its colour as a*b* (the model's
    input) and, when the user gave one, as the RGB they chose (shown, and written back)."""

    x: float
    y: float
    ab: tuple[float, float]
    radius: float = DEFAULT_RADIUS
    rgb: tuple[int, int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        colour = {"rgb": list(self.rgb)} if self.rgb else {"ab": [round(v, 3) for v in self.ab]}
        return {"x": self.x, "y": self.y, **colour, "radius": self.radius}

    def shown_rgb(self) -> tuple[int, int, int]:
        """The colour to draw the hint in: the user's own, else its a*b* at mid lightness."""
        return self.rgb or ab_to_rgb(50.0, self.ab)


def no_hints_error(name: str, backend: str = "torch") -> HintError:
    """THE refusal of hints by a model that does not take them."""
    if backend != "torch":
        return HintError(f"the {backend} backend takes no colour hints: use the torch backend")
    return HintError(f"model {name} takes no colour hints")


def rgb_to_ab(rgb: Iterable[float]) -> tuple[float, float]:
    """An sRGB colour (0-255 each) -> its a*b* in Lab units."""
    t = torch.tensor([float(v) / 255.0 for v in rgb]).view(1, 3, 1, 1)
    lab = rgb_to_lab(t).view(3)
    return float(lab[1]), float(lab[2])


def ab_to_rgb(L: float, ab: Iterable[float]) -> tuple[int, int, int]:
    """Lab (L in [0, 100], a*b*) -> the sRGB colour (0-255 each) shown for it."""
    a, b = (float(v) for v in ab)
    rgb = lab_to_rgb(torch.tensor([float(L), a, b]).view(1, 3, 1, 1)).view(3)
    return tuple(int(round(float(v) * 255.0)) for v in rgb.clamp(0, 1))  # type: ignore[return-value]


def shown(v: Any, limit: int = 40) -> str:
    """A value as an error message repeats it: its repr, cut to ``limit`` characters (a
    hostile file's 200 KB string must not become a 200 KB message)."""
    text = repr(v)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_finite_number(v: Any) -> bool:
    """An int or float (not a bool) that is finite as a float: an int of 400 digits is not
    (float() overflows), nor NaN, nor a string."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def _number(d: Mapping[str, Any], key: str, where: str) -> float:
    v = d.get(key)
    if not is_finite_number(v):
        raise HintError(f"{where}: {key!r} must be a finite number; got {shown(v)}")
    return float(v)


def _colour(
    d: Mapping[str, Any], where: str
) -> tuple[tuple[float, float], tuple[int, int, int] | None]:
    if ("rgb" in d) == ("ab" in d):
        raise HintError(f"{where}: give exactly one of 'rgb': [r, g, b] or 'ab': [a, b]")
    key = "rgb" if "rgb" in d else "ab"
    v = d[key]
    n = 3 if key == "rgb" else 2
    if not isinstance(v, (list, tuple)) or len(v) != n:
        raise HintError(f"{where}: {key!r} must be a list of {n} numbers; got {shown(v)}")
    vals = [_number({key: x}, key, where) for x in v]
    if key == "rgb":
        if any(x < 0 or x > 255 for x in vals):
            raise HintError(f"{where}: 'rgb' values must be in 0-255; got {shown(v)}")
        rgb = tuple(int(round(x)) for x in vals)
        return rgb_to_ab(rgb), rgb  # type: ignore[return-value]
    if any(abs(x) > AB_LIMIT for x in vals):
        raise HintError(f"{where}: 'ab' values must be in [-128, 128]; got {shown(v)}")
    return (vals[0], vals[1]), None


def hint_from_dict(d: Any, where: str = "hint") -> Hint:
    """``{"x": 120, "y": 48, "rgb": [200, 30, 30]}`` (or "ab", optional "radius") -> Hint."""
    if not isinstance(d, Mapping):
        raise HintError(
            f"{where}: a hint must be an object with x, y and rgb or ab; got {shown(d)}"
        )
    unknown = set(d) - {"x", "y", "rgb", "ab", "radius"}
    if unknown:
        keys = ", ".join(shown(k, 20) for k in sorted(map(str, unknown))[:5])
        raise HintError(f"{where}: unknown keys {keys} (x, y, rgb or ab, radius)")
    x, y = _number(d, "x", where), _number(d, "y", where)
    radius = _number(d, "radius", where) if "radius" in d else DEFAULT_RADIUS
    if radius < 0 or radius > 10_000:
        raise HintError(f"{where}: 'radius' must be in [0, 10000] pixels; got {radius}")
    ab, rgb = _colour(d, where)
    return Hint(x=x, y=y, ab=ab, radius=radius, rgb=rgb)


def parse_hints(obj: Any, where: str = "hints") -> list[Hint]:
    """A list of hint objects, or ``{"hints": [...]}`` -> [Hint]."""
    if isinstance(obj, Mapping) and set(obj) == {"hints"}:
        obj = obj["hints"]
    if not isinstance(obj, list):
        raise HintError(
            f'{where}: expected {{"hints": [...]}} or a list of hints; got {type(obj).__name__}'
        )
    if len(obj) > MAX_HINTS:
        raise HintError(f"{where}: {len(obj)} hints; at most {MAX_HINTS} per photo")
    return [hint_from_dict(d, f"{where}[{i}]") for i, d in enumerate(obj)]


def check_inside(hints: list[Hint], width: int, height: int, where: str = "hints") -> None:
    """Every point must lie on the photo (0 <= x < width, 0 <= y < height)."""
    for i, h in enumerate(hints):
        if not (0 <= h.x < width and 0 <= h.y < height):
            raise HintError(
                f"{where}[{i}]: point ({h.x:g}, {h.y:g}) is outside the {width}x{height} photo"
            )


def parse_hints_text(text: str, where: str) -> Any:
    """A hints file's text -> its JSON value; HintError for anything that is not JSON (a
    number of 5000 digits and nesting 50 000 deep included, which json refuses in its own way)."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError, RecursionError) as e:
        reason = "nested too deeply" if isinstance(e, RecursionError) else str(e)[:200]
        raise HintError(f"{where}: not valid JSON ({reason})") from None


def hints_for(obj: Any, names: list[str], where: str) -> dict[str, list[Hint]]:
    """A hints file's JSON value -> the hints of each photo named in ``names``: one list for
    every photo (``{"hints": [...]}`` or a bare list), or an object mapping file names to
    their lists. A photo it does not name gets none; a name that matches no photo is an error."""
    if isinstance(obj, list) or (isinstance(obj, Mapping) and set(obj) == {"hints"}):
        hints = parse_hints(obj, where)
        return {n: hints for n in names}
    if not isinstance(obj, Mapping):
        raise HintError(f'{where}: expected {{"hints": [...]}} or {{"photo.jpg": [...], ...}}')
    unknown = sorted(str(k) for k in set(obj) - set(names))
    if unknown:
        names_ = ", ".join(shown(k, 40) for k in unknown[:5])
        raise HintError(f"{where}: hints for photos that are not among the inputs: {names_}")
    return {n: parse_hints(obj[n], f"{where}: {n}") if n in obj else [] for n in names}


def load_hints_file(path: str | os.PathLike, names: list[str]) -> dict[str, list[Hint]]:
    """Hints for each photo named in ``names`` (file names) from a JSON file (``hints_for``)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise HintError(f"{path}: cannot read the hints file ({e.strerror or e})") from e
    except UnicodeDecodeError as e:
        raise HintError(f"{path}: not valid JSON (not UTF-8 text: {e.reason})") from e
    return hints_for(parse_hints_text(text, str(path)), names, str(path))


def grid_point(
    x: float, y: float, photo_size: tuple[int, int], grid_size: tuple[int, int]
) -> tuple[float, float]:
    """A point of a photo of ``photo_size`` (width, height) on a grid of ``grid_size`` (h, w)
    covering the same picture, in the grid's continuous pixel coordinates: pixel centres map
    onto pixel centres (as a bilinear resize aligns them). ``round`` of it is the grid pixel."""
    (W, H), (h, w) = photo_size, grid_size
    return (x + 0.5) * w / W - 0.5, (y + 0.5) * h / H - 0.5


def grid_index(
    x: float, y: float, photo_size: tuple[int, int], grid_size: tuple[int, int]
) -> tuple[int, int]:
    """(row, column) of the grid pixel the point falls in (see ``grid_point``)."""
    cx, cy = grid_point(x, y, photo_size, grid_size)
    h, w = grid_size
    return min(h - 1, max(0, round(cy))), min(w - 1, max(0, round(cx)))


def hint_map(
    hints: list[Hint], photo_size: tuple[int, int], work_size: tuple[int, int]
) -> torch.Tensor:
    """Hints on a photo of ``photo_size`` (width, height: the size their coordinates refer
    to) -> the (1, 3, h, w) map at ``work_size`` (h, w): [a/110, b/110, mask]. THE mapping
    from a photo's pixels to the working grid: pixel centres map onto pixel centres. Each hint
    covers the working pixels within its radius (scaled to the working size), at least the one
    it falls in; a later hint overwrites an earlier one where they overlap."""
    W, H = photo_size
    h, w = work_size
    m = torch.zeros(1, 3, h, w)
    check_inside(hints, W, H)
    for hint in hints:
        cx, cy = grid_point(hint.x, hint.y, photo_size, work_size)
        rx, ry = max(hint.radius * w / W, 0.5), max(hint.radius * h / H, 0.5)
        x0, x1 = max(0, math.ceil(cx - rx)), min(w - 1, math.floor(cx + rx))
        y0, y1 = max(0, math.ceil(cy - ry)), min(h - 1, math.floor(cy + ry))
        if x1 < x0 or y1 < y0:  # a radius under half a pixel: the pixel it falls in
            i, j = grid_index(hint.x, hint.y, photo_size, work_size)
            if x1 < x0:
                x0 = x1 = j
            if y1 < y0:
                y0 = y1 = i
        m[0, 0, y0 : y1 + 1, x0 : x1 + 1] = hint.ab[0] / HINT_SCALE
        m[0, 1, y0 : y1 + 1, x0 : x1 + 1] = hint.ab[1] / HINT_SCALE
        m[0, 2, y0 : y1 + 1, x0 : x1 + 1] = 1.0
    return m


def simulate_hints(
    ab: torch.Tensor,
    gen: torch.Generator,
    mean_points: float,
    none_share: float = 0.0,
    max_patch: int = 3,
) -> torch.Tensor:
    """Training's simulated user: (B, 2, H, W) true a*b* -> (B, 3, H, W) hint maps.

    Per photo: no hint with probability ``none_share``, else a geometric number of points
    (1, 2, ...) with mean ``mean_points`` (>= 1; at most 64), each at a uniform place with a square patch of a
    side drawn from 1..max_patch, coloured with the truth's mean a*b* over that patch. The
    random numbers come from ``gen`` (CPU), so a resumed run draws the same hints."""
    B, _, H, W = ab.shape
    out = torch.zeros(B, 3, H, W, device=ab.device)
    p = 1.0 / max(mean_points, 1.0)
    for b in range(B):
        if float(torch.rand(1, generator=gen)) < none_share:
            continue
        u = max(float(torch.rand(1, generator=gen)), 1e-12)
        n = min(64, 1 + int(math.log(u) / math.log1p(-p))) if p < 1 else 1
        sides = torch.randint(1, max_patch + 1, (n,), generator=gen).tolist()
        ys = torch.rand(n, generator=gen).tolist()
        xs = torch.rand(n, generator=gen).tolist()
        for s, fy, fx in zip(sides, ys, xs, strict=True):
            y0, x0 = int(fy * (H - s + 1)), int(fx * (W - s + 1))
            patch = ab[b, :, y0 : y0 + s, x0 : x0 + s]
            out[b, :2, y0 : y0 + s, x0 : x0 + s] = patch.mean((1, 2), keepdim=True) / HINT_SCALE
            out[b, 2, y0 : y0 + s, x0 : x0 + s] = 1.0
    return out


def random_hints(rgb: np.ndarray, n: int, seed: int = 0, patch: int = 5) -> list[Hint]:
    """Evaluation's simulated user: ``n`` points at uniform places of the ORIGINAL photo
    (H, W, 3) uint8, each coloured with the truth's mean a*b* over a ``patch`` x ``patch``
    square there (clipped at the border), as a click would give. Fixed ``seed``: the same
    photo gets the same points, and its first n points of n + k are the same."""
    if n < 0:
        raise HintError(f"the number of random hints must be >= 0; got {n}")
    H, W = rgb.shape[:2]
    rng = np.random.default_rng(seed)
    # one (x, y) pair after another, so the first n points of n + k are these n points
    pts = rng.random((n, 2))
    xs = np.minimum((pts[:, 0] * W).astype(int), W - 1)
    ys = np.minimum((pts[:, 1] * H).astype(int), H - 1)
    r = patch // 2
    hints = []
    for x, y in zip(xs.tolist(), ys.tolist(), strict=True):
        block = rgb[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1]
        t = torch.from_numpy(np.ascontiguousarray(block)).permute(2, 0, 1)[None].float() / 255.0
        a, b = rgb_to_lab(t)[0, 1:].mean((1, 2)).tolist()
        hints.append(Hint(x=float(x), y=float(y), ab=(a, b), radius=float(r)))
    return hints


def recommend_colors(
    probs: torch.Tensor,
    bins: ColorBins,
    k: int = 6,
    min_distance: float = 20.0,
    sigma: float = 8.0,
    min_probability: float = 0.01,
) -> list[tuple[tuple[float, float], float]]:
    """The ``k`` most likely DISTINCT colours of one pixel's distribution (Q,) over ``bins``:
    the probability is first pooled over nearby bins (Gaussian of ``sigma`` a*b* units, so a
    colour split over three neighbouring bins counts as one), then the best bins are taken
    greedily, each at least ``min_distance`` from those already taken. Returns
    [((a, b), pooled probability)], most likely first; each a*b* is the probability-weighted
    mean of the bins near its peak, and no two are closer than ``min_distance``; colours
    with less than ``min_probability`` pooled mass are not offered (a confident pixel gets
    fewer than k)."""
    if probs.dim() != 1 or probs.numel() != bins.num_classes:
        raise ValueError(f"probs must be ({bins.num_classes},); got {tuple(probs.shape)}")
    c = bins.centers.float()
    p = probs.float() * bins.colour_mask.float()
    d2 = torch.cdist(c, c).pow(2)
    kernel = torch.exp(-d2 / (2 * sigma * sigma))  # (Q, Q)
    pooled = kernel @ p
    picks: list[tuple[tuple[float, float], float]] = []
    for q in pooled.argsort(descending=True).tolist():
        if len(picks) >= k or float(pooled[q]) < min_probability:
            break
        w = kernel[q] * p  # the bins near the peak, by their own probability
        mean = (w[:, None] * c).sum(0) / w.sum().clamp_min(1e-12)
        ab = (float(mean[0]), float(mean[1]))
        if any(math.dist(ab, other) < min_distance for other, _ in picks):
            continue
        picks.append((ab, float(pooled[q])))
    return picks


def hints_to_json(hints: list[Hint]) -> str:
    """The hints file (docs/hints.md) for one photo: ``{"hints": [...]}``."""
    return json.dumps({"hints": [h.to_dict() for h in hints]}, indent=1) + "\n"


def hex_to_rgb(text: str) -> tuple[int, int, int]:
    """'#c81e1e' (or 'c81e1e', '#c1e') -> (200, 30, 30); HintError otherwise."""
    t = str(text).strip().lstrip("#")
    if len(t) == 3:
        t = "".join(c * 2 for c in t)
    if len(t) != 6 or any(c not in "0123456789abcdefABCDEF" for c in t):
        raise HintError(f"not a colour: {shown(text)} (expected #rrggbb)")
    return int(t[0:2], 16), int(t[2:4], 16), int(t[4:6], 16)


def rgb_to_hex(rgb: Iterable[int]) -> str:
    return "#" + "".join(f"{int(v):02x}" for v in rgb)


@dataclass
class HintBoard:
    """The hints a user is editing on one photo, with undo: every edit keeps the list it
    replaced. ``pending`` is the hint placed at the last clicked point, which a second colour
    choice recolours instead of adding another."""

    hints: list[Hint]
    history: list[list[Hint]]
    point: tuple[float, float] | None = None
    pending: int | None = None

    @classmethod
    def empty(cls) -> HintBoard:
        return cls([], [])

    def _edit(self, new: list[Hint]) -> None:
        self.history.append(list(self.hints))
        del self.history[:-100]  # a bounded undo: a long session must not grow without end
        self.hints = new

    def click(self, x: float, y: float) -> None:
        if not (is_finite_number(x) and is_finite_number(y)):
            raise HintError("a point needs two finite coordinates")
        self.point, self.pending = (float(x), float(y)), None

    def colour(self, rgb: tuple[int, int, int]) -> None:
        """Give the clicked point this colour: a new hint, or the pending one recoloured."""
        if self.point is None:
            raise HintError("click the photo first, where the colour should go")
        hint = Hint(self.point[0], self.point[1], rgb_to_ab(rgb), rgb=tuple(rgb))
        if self.pending is not None and self.pending < len(self.hints):
            self._edit([hint if i == self.pending else h for i, h in enumerate(self.hints)])
        else:
            if len(self.hints) >= MAX_HINTS:
                raise HintError(f"at most {MAX_HINTS} hints per photo")
            self._edit([*self.hints, hint])
            self.pending = len(self.hints) - 1

    def _index(self, i: int) -> int:
        if not 0 <= i < len(self.hints):
            raise HintError(f"there is no hint #{i + 1}")
        return i

    def move(self, i: int) -> None:
        """Move hint ``i`` to the last clicked point."""
        i = self._index(i)
        if self.point is None:
            raise HintError("click the photo where the hint should move to")
        h = self.hints[i]
        moved = Hint(*self.point, h.ab, h.radius, h.rgb)
        self._edit([*self.hints[:i], moved, *self.hints[i + 1 :]])
        self.pending = None

    def remove(self, i: int) -> None:
        i = self._index(i)
        self._edit([h for j, h in enumerate(self.hints) if j != i])
        self.pending = None

    def clear(self) -> None:
        if self.hints:
            self._edit([])
        self.pending = None

    def undo(self) -> None:
        if self.history:
            self.hints = self.history.pop()
        self.pending = None

    def load(self, hints: list[Hint]) -> None:
        self._edit(list(hints))
        self.pending = None


def mark_hints(
    img: Any,
    hints: list[Hint],
    photo_size: tuple[int, int] | None = None,
    point: tuple[float, float] | None = None,
) -> Any:
    """A copy of the PIL image with each hint drawn as a numbered dot of its colour (ringed
    black and white, visible on any photo) and the clicked point as a cross; the hints (and
    the point) are in the pixels of a photo of ``photo_size`` (default: this image's size)."""
    from PIL import ImageDraw

    out = img.convert("RGB").copy()
    W, H = photo_size or out.size
    sx, sy = out.width / W, out.height / H
    d = ImageDraw.Draw(out)
    r = max(4, round(min(out.size) / 80))
    for n, h in enumerate(hints, 1):
        x, y = (h.x + 0.5) * sx - 0.5, (h.y + 0.5) * sy - 0.5
        fill = h.shown_rgb()
        d.ellipse((x - r - 2, y - r - 2, x + r + 2, y + r + 2), fill=(255, 255, 255))
        d.ellipse((x - r - 1, y - r - 1, x + r + 1, y + r + 1), fill=(0, 0, 0))
        d.ellipse((x - r, y - r, x + r, y + r), fill=fill)
        d.text(
            (x + r + 3, y - r - 3),
            str(n),
            fill=(255, 255, 255),
            stroke_width=2,
            stroke_fill=(0, 0, 0),
        )
    if point is not None:
        x, y = (point[0] + 0.5) * sx - 0.5, (point[1] + 0.5) * sy - 0.5
        for width, colour in ((4, (0, 0, 0)), (2, (255, 255, 255))):
            d.line((x - 2 * r, y, x + 2 * r, y), fill=colour, width=width)
            d.line((x, y - 2 * r, x, y + 2 * r), fill=colour, width=width)
    return out
