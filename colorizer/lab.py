"""sRGB <-> CIELAB (D65, 2 degree observer) in torch, batched, on any device.

Matches ``skimage.color.rgb2lab`` / ``lab2rgb`` to a few hundredths of a Lab unit in float32.
Tensors keep their channels at dim -3: RGB (..., 3, H, W) in [0, 1]; Lab (..., 3, H, W) with
L in [0, 100] and a*, b* in Lab units (roughly -128..127).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterable

import torch

log = logging.getLogger(__name__)

# sRGB primaries -> XYZ (the matrix skimage uses), and the D65 white point.
_XYZ_FROM_RGB = torch.tensor(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ],
    dtype=torch.float64,
)
_RGB_FROM_XYZ = torch.linalg.inv(_XYZ_FROM_RGB)
_WHITE_D65 = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)

# CIE constants, written as skimage writes them so that both agree at the knee of each curve.
_EPS = 0.008856
_KAPPA = 7.787
_F_KNEE = 0.2068966


def _mix(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Apply a 3x3 colour matrix over the channel dim (-3) without moving channels last."""
    m = m.to(device=x.device, dtype=x.dtype)
    # (..., 3, H, W) -> (..., 3, H, W): out[c] = sum_k m[c, k] * x[k]
    return torch.einsum("ck,...khw->...chw", m, x)


def _check(x: torch.Tensor, name: str) -> None:
    if x.dim() < 3 or x.shape[-3] != 3:
        raise ValueError(f"{name} must have shape (..., 3, H, W); got {tuple(x.shape)}")


@functools.cache
def _linear_lut(device: str) -> torch.Tensor:
    v = torch.arange(256, dtype=torch.float64) / 255.0
    lin = torch.where(v > 0.04045, ((v + 0.055) / 1.055).pow(2.4), v / 12.92)
    return lin.float().to(device)


def _srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    if rgb.dtype == torch.uint8:
        # 8-bit photos (the common case): a 256-entry table instead of a pow per value.
        return _linear_lut(str(rgb.device))[rgb.long()]
    if not rgb.is_floating_point():
        raise TypeError(f"sRGB must be a float tensor in [0, 1] or uint8; got {rgb.dtype}")
    rgb = rgb.clamp(0.0, 1.0)
    high = rgb.add(0.055).div_(1.055).pow_(2.4)  # in place: a 12 MP photo is 144 MB a copy
    return torch.where(rgb > 0.04045, high, rgb.div(12.92))


def _rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    xyz = _mix(_XYZ_FROM_RGB, _srgb_to_linear(rgb))
    xyz.div_(_WHITE_D65.to(xyz.device, xyz.dtype).view(3, 1, 1))
    f = torch.where(
        xyz > _EPS, xyz.clamp_min(_EPS).pow_(1.0 / 3.0), xyz.mul(_KAPPA).add_(16.0 / 116.0)
    )
    fx, fy, fz = f.unbind(-3)
    L = fy.mul(116.0).sub_(16.0)
    a = (fx - fy).mul_(500.0)
    b = (fy - fz).mul_(200.0)
    return torch.stack([L, a, b], dim=-3)


def _lab_to_linear(L: torch.Tensor, a: torch.Tensor, b: torch.Tensor, dim: int) -> torch.Tensor:
    """Linear (unclipped) sRGB of L, a, b stacked along ``dim``."""
    fy = (L + 16.0) / 116.0
    fx = fy + a / 500.0
    fz = (fy - b / 200.0).clamp_min(0.0)  # skimage's rule: negative Z is set to zero
    f = torch.stack([fx, fy, fz], dim=dim)
    xyz = torch.where(f > _F_KNEE, f.pow(3), (f - 16.0 / 116.0) / _KAPPA)
    shape = [1] * xyz.dim()
    shape[dim] = 3
    xyz = xyz * _WHITE_D65.to(xyz.device, xyz.dtype).view(shape)
    if dim == -1:
        m = _RGB_FROM_XYZ.to(xyz.device, xyz.dtype)
        return xyz @ m.T
    return _mix(_RGB_FROM_XYZ, xyz)


def _lab_to_rgb(lab: torch.Tensor, gamut: str) -> torch.Tensor:
    L, a, b = lab.unbind(-3)
    L = L.clamp(0.0, 100.0)
    linear = _lab_to_linear(L, a, b, dim=-3)
    if gamut == "chroma":
        tol = 1e-4
        out = ((linear < -tol) | (linear > 1 + tol)).any(dim=-3)  # (..., H, W)
        if bool(out.any()):
            Lo, ao, bo = L[out], a[out], b[out]  # (N,) each: only the offending pixels
            lo = torch.zeros_like(Lo)  # chroma scale known to fit (grey always does)
            hi = torch.ones_like(Lo)  # chroma scale known not to fit
            for _ in range(14):  # 2^-14 of the chroma: far below one Lab unit
                mid = (lo + hi) / 2
                lin = _lab_to_linear(Lo, ao * mid, bo * mid, dim=-1)  # (N, 3)
                fits = ((lin >= -tol) & (lin <= 1 + tol)).all(-1)
                lo = torch.where(fits, mid, lo)
                hi = torch.where(fits, hi, mid)
            linear.movedim(-3, -1)[out] = _lab_to_linear(Lo, ao * lo, bo * lo, dim=-1)
    linear = linear.clamp_(0.0, 1.0)
    high = linear.pow(1.0 / 2.4).mul_(1.055).sub_(0.055)
    return torch.where(linear > 0.0031308, high, linear.mul_(12.92)).clamp_(0.0, 1.0)


def _rgb_to_l(rgb: torch.Tensor) -> torch.Tensor:
    y = _mix(_XYZ_FROM_RGB[1:2], _srgb_to_linear(rgb))  # (..., 1, H, W): Y alone, white Y = 1
    return (
        torch.where(y > _EPS, y.clamp_min(_EPS).pow_(1.0 / 3.0), y.mul(_KAPPA).add_(16.0 / 116.0))
        .mul_(116.0)
        .sub_(16.0)
    )


# Whole-image elementwise passes over a 12 MP photo stream every temporary through main memory;
# row blocks of about this many pixels keep them in cache (12 MP round trip, 1 thread: 1.03 s
# whole, 0.47 s in blocks; larger blocks cost less thread synchronisation with 2 threads).
_BLOCK_PIXELS = 1 << 18


@contextlib.contextmanager
def _one_cpu_thread(device: torch.device):
    # Thousands of small elementwise ops: with every core in torch's thread pool, each op's
    # barrier waits a whole scheduler slice whenever another process holds a core. Measured on
    # 2 cores, 12 MP round trip: 2 threads 0.30 s idle but 14-20 s beside one busy process;
    # 1 thread 0.47 s either way (skimage: 0.91 s).
    if device.type != "cpu" or torch.get_num_threads() == 1:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _blockwise(fn, x: torch.Tensor, out_channels: int) -> torch.Tensor:
    H, W = x.shape[-2:]
    rows = max(1, _BLOCK_PIXELS // max(1, W))
    if H <= rows:
        return fn(x)
    dtype = torch.float32 if not x.is_floating_point() else x.dtype
    out = torch.empty((*x.shape[:-3], out_channels, H, W), dtype=dtype, device=x.device)
    with _one_cpu_thread(x.device):
        for r in range(0, H, rows):
            out[..., r : r + rows, :] = fn(x[..., r : r + rows, :])
    return out


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB (..., 3, H, W), float in [0, 1] or uint8 -> CIELAB (..., 3, H, W), float."""
    _check(rgb, "rgb")
    return _blockwise(_rgb_to_lab, rgb, 3)


def rgb_to_l(rgb: torch.Tensor) -> torch.Tensor:
    """Lightness L in [0, 100] of sRGB (..., 3, H, W), float or uint8 -> (..., 1, H, W)."""
    _check(rgb, "rgb")
    return _blockwise(_rgb_to_l, rgb, 1)


def srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] (float) or uint8 -> linear light in [0, 1], any shape (IEC 61966-2-1)."""
    return _srgb_to_linear(rgb)


def linear_to_srgb(linear: torch.Tensor) -> torch.Tensor:
    """Linear light -> sRGB in [0, 1] (clamped), any shape: ``srgb_to_linear``'s inverse."""
    return _lin_to_srgb(linear)


def lab_to_rgb(lab: torch.Tensor, gamut: str = "chroma") -> torch.Tensor:
    """CIELAB (..., 3, H, W) -> sRGB in [0, 1].

    L is clamped to [0, 100]. Colours outside the sRGB gamut are brought inside by
    ``gamut="chroma"`` (default): their chroma is scaled down (bisection, a few steps) until they
    fit, which keeps each pixel's lightness and hue, so a colorized photo keeps the L it was
    given and black stays black whatever a*b* a model predicted. ``gamut="clip"`` clips each RGB
    channel as skimage does. Pixels already in gamut get the same value either way.
    """
    _check(lab, "lab")
    if gamut not in ("chroma", "clip"):
        raise ValueError(f"gamut must be 'chroma' or 'clip'; got {gamut!r}")
    return _blockwise(lambda x: _lab_to_rgb(x, gamut), lab, 3)


def ab_to_unit(ab: torch.Tensor) -> torch.Tensor:
    """a*b* in Lab units -> the seeds' [0, 1] scaling, (ab + 128) / 255."""
    return (ab + 128.0) / 255.0


def ab_from_unit(unit: torch.Tensor) -> torch.Tensor:
    """The seeds' [0, 1] scaling -> a*b* in Lab units."""
    return unit * 255.0 - 128.0


# ---------------------------------------------------------------------- 8-bit recolouring
# Colorizing a photo replaces its a*b* and keeps its L. At full resolution that is, per pixel,
# "8-bit RGB in, a*b* given, 8-bit RGB out with the same L", and most of the general
# rgb_to_l + lab_to_rgb chain is not needed for it:
# - fy = (L + 16) / 116 is f(Y) of the input, and the output's Y is the input's Y, so neither
#   L nor the cube of fy is ever computed: Y comes from two small tables over the 8-bit
#   channels, fy from a table over Y;
# - the output is 8-bit, so the sRGB gamma and the rounding are one table over linear light;
# - out-of-gamut pixels (a few percent of a photo) are collected over the whole photo and
#   chroma-mapped at the end by the same bisection as lab_to_rgb, in one batch.
# Every table is built from the constants above (one definition of the conversion). Measured
# against lab_to_rgb in float64 it is within one 8-bit level (tests/test_lab.py); a strip
# costs 21 torch calls where rgb_to_l + lab_to_rgb make about 50 (timed side by side in
# benchmarks/bench_inference.py).
_Y_SCALE = 65535.0  # Y in table units: Y' = 65535 Y indexes the fy table
_Q_SCALE = 65536  # linear light in table units for the output table: 1.5e-5 per bucket
_Q_GUARD = 8  # buckets beyond [0, 1] (> 1e-4 = lab_to_rgb's gamut tolerance) flag a pixel
_GAMUT_TOL = 1e-4  # lab_to_rgb's tolerance on linear RGB before a pixel counts as outside
_GAMUT_STEPS = 14  # lab_to_rgb's bisection steps
# The output word's spare byte: each channel adds its share when it was inside the gamut, so
# the byte is 0x7F exactly when all three were (and the word stays a positive int32).
_X_SHARES = (0x40, 0x20, 0x1F)
_ALL_IN = 0x7F << 24


def _lin_to_srgb(linear: torch.Tensor) -> torch.Tensor:
    linear = linear.clamp(0.0, 1.0)
    high = linear.pow(1.0 / 2.4).mul_(1.055).sub_(0.055)
    return torch.where(linear > 0.0031308, high, linear * 12.92).clamp_(0.0, 1.0)


class Recolor8:
    """8-bit RGB pixels + a*b* -> 8-bit RGB words with the pixels' own L (see above).

    Pixels come as little-endian RGBX int32 words (R in the low byte: what PIL's
    ``tobytes("raw", "RGBX")`` gives); results are RGBX words too, so a strip goes from PIL
    and back without a per-channel copy. ``strip`` converts one strip and returns the
    out-of-gamut pixels it left for ``finish``, which chroma-maps them all at once.
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        f64 = torch.float64
        lin = _linear_lut("cpu").double()  # (256,): the 8-bit sRGB decode
        wy = _XYZ_FROM_RGB[1]
        # Y' of the R and G bytes (index R + 256 G) and of the B byte
        t_rg = (wy[0] * lin[None, :] + wy[1] * lin[:, None]).reshape(-1) * _Y_SCALE
        t_b = wy[2] * lin * _Y_SCALE
        y = (torch.arange(int(_Y_SCALE) + 2, dtype=f64) + 0.5) / _Y_SCALE  # bucket centres
        fy = torch.where(y > _EPS, y.clamp_min(_EPS).pow(1.0 / 3.0), y * _KAPPA + 16.0 / 116.0)
        # output table: channel c's bucket v (linear light in [v, v + 1) / _Q_SCALE) lives at
        # index base_c + v, v in [-G, Q + G]; the guard buckets outside the tolerance add no
        # share to the spare byte.
        g, q = _Q_GUARD, _Q_SCALE
        v = torch.arange(-g, q + g + 1, dtype=f64)
        x = (v + 0.5) / q
        q8 = (_lin_to_srgb(x) * 255.0).round_().long()
        inside = (x >= -_GAMUT_TOL) & (x <= 1.0 + _GAMUT_TOL)
        segments = []
        for c, share in enumerate(_X_SHARES):
            segments.append((q8 << (8 * c)) + inside.long() * (share << 24))
        self.seg = q + 1 + 2 * g  # entries per channel
        base = torch.tensor([c * self.seg + g for c in range(3)], dtype=f64).view(3, 1)
        # linear RGB = M @ (X / Xn, Y, Z / Zn) with X, Z from the knee cube below, in table units
        m = _RGB_FROM_XYZ * _WHITE_D65[None, :]
        bias = -(_F_KNEE / _KAPPA) * (m[:, 0] + m[:, 2])
        m[:, 1] /= _Y_SCALE
        dev = self.device
        self.t_rg = t_rg.float().to(dev)
        self.t_b = t_b.float().to(dev)
        self.fy = fy.float().to(dev)
        self.q8 = torch.cat(segments).to(torch.int32).to(dev)
        self.m = (m * q).float().to(dev)
        self.bias = (bias.view(3, 1) * q).float().to(dev)  # without the channel bases
        self.bias_based = (self.bias.double() + base).float().to(dev)
        self.lo = (base - g).float().to(dev)
        self.hi = (base + q + g).float().to(dev)
        self.base = base.float().to(dev)
        # a* / 500 and -b* / 200: fx = fy + a/500, fz = fy - b/200
        self.ab_scale = torch.tensor([[1.0 / 500.0], [-1.0 / 200.0]], device=dev)
        self._buffers: dict[str, torch.Tensor] = {}

    def _buf(self, name: str, numel: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        # Strips reuse their temporaries: fresh pages for every strip cost more than the maths.
        b = self._buffers.get(name)
        if b is None or b.numel() < numel or b.dtype != dtype:
            b = torch.empty(numel, dtype=dtype, device=self.device)
            self._buffers[name] = b
        return b[:numel]

    def _knee_cube(self, f: torch.Tensor, out: torch.Tensor) -> None:
        """out = f^3 above the knee, linear below it, less the constant folded in the bias.
        Clobbers f."""
        torch.clamp(f, min=_F_KNEE, out=out)
        out.pow_(3)
        f.clamp_(max=_F_KNEE)
        out.add_(f, alpha=1.0 / _KAPPA)

    def fy_y(self, words: torch.Tensor, fy: torch.Tensor, y: torch.Tensor) -> None:
        """fy = f(Y) and Y' = 65535 Y of RGBX words (n,), into fy and y (n,) float32."""
        n = words.numel()
        idx = self._buf("idx", n, torch.int32)
        tmp = self._buf("tmp", n)
        torch.bitwise_and(words, 0xFFFF, out=idx)
        torch.index_select(self.t_rg, 0, idx, out=y)
        torch.bitwise_right_shift(words, 16, out=idx)
        idx.bitwise_and_(0xFF)
        torch.index_select(self.t_b, 0, idx, out=tmp)
        y.add_(tmp)
        idx.copy_(y)  # truncation = floor: Y' >= 0
        torch.index_select(self.fy, 0, idx, out=fy)

    def strip(
        self, words: torch.Tensor, ab: torch.Tensor, out: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """Recolour n pixels: words (n,) int32 RGBX, ab (2, n) float a*b* -> out (n,) int32.

        Returns (indices, fy, ab, Y') of the pixels outside the gamut, whose words are
        provisional (clipped), for :meth:`finish`; None when there are none.
        """
        n = words.numel()
        c = self._buf("c", 3 * n).view(3, n)  # (X/Xn, Y', Z/Zn)
        f = self._buf("f", 3 * n).view(3, n)  # (fx, fy, fz)
        self.fy_y(words, f[1], c[1])
        fxz = f[::2]
        torch.addcmul(f[1], ab, self.ab_scale, out=fxz)
        f[2].clamp_(min=0.0)  # lab_to_rgb's rule: negative Z is set to zero
        self._knee_cube(fxz, c[::2])
        lin = self._buf("lin", 3 * n).view(3, n)
        torch.addmm(self.bias_based, self.m, c, out=lin)
        self._quantize(lin, out)
        bad = (out < _ALL_IN).nonzero().squeeze(1)
        if bad.numel() == 0:
            return None
        return bad, f[1][bad], ab[:, bad], c[1][bad]

    def _quantize(self, lin_based: torch.Tensor, out: torch.Tensor) -> None:
        n = lin_based.shape[1]
        torch.clamp(lin_based, self.lo, self.hi, out=lin_based)
        idx = self._buf("qidx", 3 * n, torch.int32)
        idx.copy_(lin_based.view(-1))
        words = self._buf("words", 3 * n, torch.int32)
        torch.index_select(self.q8, 0, idx, out=words)
        torch.sum(words.view(3, n), 0, dtype=torch.int32, out=out)

    def finish(
        self,
        pending: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]],
        offsets: list[int],
        out: torch.Tensor,
        chunk: int = 1 << 15,
    ) -> int:
        """Chroma-map the pixels ``strip`` left (lab_to_rgb's bisection: same steps, same
        tolerance) and write their words into ``out`` at ``offset + index``. Returns their
        count."""
        if not pending:
            return 0
        idx = torch.cat([p[0] + o for p, o in zip(pending, offsets, strict=True)])
        fy = torch.cat([p[1] for p in pending])
        ab = torch.cat([p[2] for p in pending], 1)
        y = torch.cat([p[3] for p in pending])
        words = torch.empty_like(idx, dtype=torch.int32)
        for c0 in range(0, idx.numel(), chunk):
            sl = slice(c0, c0 + chunk)
            words[sl] = self._chroma_map(fy[sl], ab[:, sl], y[sl])
        out[idx] = words
        return idx.numel()

    def _chroma_map(self, fy: torch.Tensor, ab: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        k = fy.numel()
        uv = ab * self.ab_scale  # (2, k): a/500, -b/200
        c = torch.empty(3, k, device=self.device)
        c[1] = y
        f = torch.empty(2, k, device=self.device)
        lin = torch.empty(3, k, device=self.device)
        lo = torch.zeros(k, device=self.device)  # chroma scale known to fit (grey always does)
        mid = torch.empty(k, device=self.device)

        def linear_at(s: torch.Tensor) -> None:
            torch.addcmul(fy, uv, s, out=f)
            f[1].clamp_(min=0.0)
            self._knee_cube(f, c[::2])
            torch.addmm(self.bias, self.m, c, out=lin)

        half, tol = _Q_SCALE / 2, _GAMUT_TOL * _Q_SCALE
        step = 1.0
        for _ in range(_GAMUT_STEPS):
            # lab_to_rgb's bisection with hi = lo + step: each step halves for every pixel
            step /= 2
            torch.add(lo, step, out=mid)
            linear_at(mid)
            fits = lin.sub_(half).abs_().amax(0) <= half + tol
            lo.add_(fits, alpha=step)
        linear_at(lo)
        lin.add_(self.base)
        words = torch.empty(k, dtype=torch.int32, device=self.device)
        self._quantize(lin, words)
        return words


@functools.cache
def _recolor8(device: str) -> Recolor8:
    return Recolor8(device)


@torch.inference_mode()  # its cached buffers are inference tensors: only touched in this mode
def rgb8_with_ab(rgb: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """8-bit RGB (3, H, W) + a*b* (2, H, W) -> the 8-bit RGB (3, H, W) whose L is rgb's and
    whose a*b* are ab, chroma-mapped into the gamut as ``lab_to_rgb`` does.

    Equals ``round(255 * lab_to_rgb(cat(rgb_to_l(rgb), ab)))`` within one level (tables and
    float32 instead of float64), at a fraction of its cost.
    """
    if rgb.dtype != torch.uint8 or rgb.dim() != 3 or rgb.shape[0] != 3:
        raise ValueError(f"rgb must be uint8 (3, H, W); got {rgb.dtype} {tuple(rgb.shape)}")
    if ab.shape != (2, *rgb.shape[1:]):
        raise ValueError(
            f"ab must be (2, H, W) = (2, {rgb.shape[1]}, {rgb.shape[2]}); got {tuple(ab.shape)}"
        )
    h, w = rgb.shape[1:]
    px = rgb.reshape(3, -1)
    flat_ab = ab.reshape(2, -1)

    def strips():  # blocks, so that the cached temporaries stay small whatever the photo
        for a in range(0, h * w, _BLOCK_PIXELS):
            p = px[:, a : a + _BLOCK_PIXELS].int()
            yield a, p[0] | (p[1] << 8) | (p[2] << 16), flat_ab[:, a : a + _BLOCK_PIXELS].float()

    out = recolor_strips(strips(), h * w, rgb.device)
    return torch.stack([(out >> (8 * c)) & 0xFF for c in range(3)]).to(torch.uint8).view(3, h, w)


@torch.inference_mode()
def recolor_strips(
    strips: Iterable[tuple[int, torch.Tensor, torch.Tensor]],
    n_pixels: int,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Recolour a photo strip by strip: ``strips`` yields (offset, RGBX words (n,), a*b* (2, n))
    covering pixels 0..n_pixels-1; returns the (n_pixels,) RGBX words of the result.

    The strips are small enough for their temporaries to stay in cache; out-of-gamut pixels
    are chroma-mapped once, after the last strip.
    """
    device = torch.device(device)
    r = _recolor8(str(device))
    out = torch.empty(n_pixels, dtype=torch.int32, device=device)
    pending, offsets = [], []
    with _one_cpu_thread(device):
        for offset, words, ab in strips:
            left = r.strip(words, ab, out[offset : offset + words.numel()])
            if left is not None:
                pending.append(left)
                offsets.append(offset)
        n_mapped = r.finish(pending, offsets, out)
    log.debug("recoloured %d pixels, %d chroma-mapped into the gamut", n_pixels, n_mapped)
    return out
