"""sRGB <-> CIELAB (D65, 2 degree observer) in torch, batched, on any device.

Matches ``skimage.color.rgb2lab`` / ``lab2rgb`` to a few hundredths of a Lab unit in float32.
Tensors keep their channels at dim -3: RGB (..., 3, H, W) in [0, 1]; Lab (..., 3, H, W) with
L in [0, 100] and a*, b* in Lab units (roughly -128..127).
"""

from __future__ import annotations

import contextlib
import functools

import torch

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
        raise TypeError(f"rgb_to_lab expects a float tensor in [0, 1] or uint8; got {rgb.dtype}")
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
