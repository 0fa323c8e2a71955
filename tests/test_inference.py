"""Colorizer / output_to_ab / colorize_many on tiny real models and images made here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from colorizer import inference
from colorizer.bins import Decoding, get_bins
from colorizer.checkpoint import save_checkpoint
from colorizer.imageio import ImageError, to_tensor
from colorizer.inference import (
    Colorizer,
    GrayModel,
    colorize_many,
    output_to_ab,
    resize_rows,
    uncertainty_image,
)
from colorizer.lab import ab_from_unit, lab_to_rgb, rgb_to_l, rgb_to_lab
from colorizer.models import ModelError, create_model

from conftest import TINY


def pattern(h: int = 61, w: int = 83) -> np.ndarray:
    """A deterministic colourful test photo with edges and gradients, (h, w, 3) uint8."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([(xx * 3) % 256, (yy * 4) % 256, ((xx + yy) * 2) % 256], -1).astype(np.uint8)


def lightness(img) -> torch.Tensor:
    return rgb_to_lab(torch.from_numpy(np.array(img)).permute(2, 0, 1))[0]


class FixedLogits(nn.Module):
    """A classification model following the contract, whose logits ignore L: a known answer."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.kind = "classification"
        self.bins = get_bins("zhang313")
        self.input_size = (16, 16)
        self.decoding = Decoding(0.38)
        self.arch_name, self.arch_args = "fixed", {}
        self.register_buffer("logits", logits)  # (1, Q, 4, 4)
        self.seen: list[torch.Tensor] = []

    def forward(self, L: torch.Tensor) -> torch.Tensor:
        self.seen.append(L)
        return self.logits.expand(L.shape[0], -1, -1, -1)


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {name: create_model(name) for name in TINY}


# ---------------------------------------------------------------------- full pipeline
@pytest.mark.parametrize("name", TINY)
def test_output_has_input_size_and_input_lightness(models, name):
    img = pattern(61, 83)
    c = Colorizer(models[name], device="cpu")
    out = c.colorize(img)
    assert isinstance(out, Image.Image) and out.mode == "RGB"
    assert out.size == (83, 61)  # the ORIGINAL size, not the model's 32x32
    dl = (lightness(out) - lightness(img)).abs()
    # Only 8-bit rounding separates the output's L from the input's: a*b* were replaced,
    # L was kept at full resolution and the gamut mapping keeps lightness.
    assert dl.mean() < 0.15 and dl.max() < 0.5
    assert rgb_to_lab(to_tensor(out))[1:].abs().mean() > 1.0  # and it is not grey


def test_temperature_changes_classification_but_not_regression(models):
    img = pattern()
    c = Colorizer(models["cunet_tiny"], device="cpu")
    cold, warm = (
        np.asarray(c.colorize(img, temperature=0.05), float),
        np.asarray(c.colorize(img, temperature=1.0), float),
    )
    assert np.abs(cold - warm).mean() > 1.0
    np.testing.assert_array_equal(
        np.asarray(c.colorize(img, temperature=0.05)), cold
    )  # deterministic
    r = Colorizer(models["streetside_tiny"], device="cpu")
    np.testing.assert_array_equal(
        np.asarray(r.colorize(img, temperature=0.05)), np.asarray(r.colorize(img, temperature=1.0))
    )
    with pytest.raises(ValueError, match="positive"):
        c.colorize(img, temperature=0.0)
    with pytest.raises(ValueError, match="positive"):
        Colorizer(models["cunet_tiny"], device="cpu", temperature=-1.0)


def test_decode_follows_bins_and_default_temperature():
    g = torch.Generator().manual_seed(1)
    logits = 3.0 * torch.randn(1, 313, 4, 4, generator=g)
    model = FixedLogits(logits)
    L = torch.full((1, 1, 16, 16), 50.0)
    for t in (0.1, 0.38, 1.0):
        expected = model.bins.decode(logits, t)
        assert torch.allclose(output_to_ab(model, model(L), t), expected)
    assert torch.allclose(output_to_ab(model, model(L)), model.bins.decode(logits, 0.38))  # its own
    c = Colorizer(model, device="cpu", temperature=1.0)  # colorizer-level default beats model's
    assert torch.allclose(c.predict(L).ab, model.bins.decode(logits, 1.0))
    a, b = np.asarray(c.colorize(pattern(), temperature=0.1)), np.asarray(c.colorize(pattern()))
    assert np.abs(a.astype(int) - b).mean() > 1.0


def test_regression_output_uses_unit_scaling(models):
    m = models["streetside_tiny"].eval()
    L = torch.rand(2, 1, 32, 32) * 100
    with torch.no_grad():
        assert torch.allclose(output_to_ab(m, m(L)), ab_from_unit(m(L)))
    with pytest.raises(ValueError, match="kind"):
        output_to_ab(nn.Identity(), L)


def test_network_sees_bicubic_rgb_then_l():
    model = FixedLogits(torch.zeros(1, 313, 4, 4))
    img = Image.fromarray(pattern(40, 50))
    Colorizer(model, device="cpu").colorize(img)
    seen = model.seen[-1]
    assert seen.shape == (1, 1, 16, 16)
    small = img.resize((16, 16), Image.Resampling.BICUBIC)
    assert torch.allclose(seen, rgb_to_lab(to_tensor(small)[None])[:, :1], atol=1e-4)


def test_strips_equal_one_piece(models, monkeypatch):
    img = pattern(97, 64)
    c = Colorizer(models["eccv16_tiny"], device="cpu")
    whole = np.asarray(c.colorize(img))
    monkeypatch.setattr(inference, "STRIP_PIXELS", 64 * 7)  # 7-row strips, a ragged last one
    np.testing.assert_array_equal(np.asarray(c.colorize(img)), whole)
    x = torch.rand(2, 9, 13)
    full = F.interpolate(x[None], size=(50, 13), mode="bilinear", align_corners=False)[0]
    assert torch.allclose(resize_rows(x, 0, 50, 50), full, atol=1e-6)
    assert torch.allclose(resize_rows(x, 17, 31, 50), full[:, 17:31], atol=1e-6)
    small = F.interpolate(x[None], size=(4, 13), mode="bilinear", align_corners=False)[
        0
    ]  # downsize too
    assert torch.allclose(resize_rows(x, 0, 4, 4), small, atol=1e-6)


def test_large_photo_keeps_full_resolution(models):
    # 2.4 MP, not square: strips and the width-first interpolate on a real size.
    h, w = 1200, 2000
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 90)], -1).astype(np.uint8)
    out = Colorizer(models["cunet_tiny"], device="cpu").colorize(img)
    assert out.size == (w, h)
    dl = (lightness(out) - lightness(img)).abs()
    assert dl.max() < 0.5


def test_uncertainty(models):
    img = pattern(45, 70)
    c = Colorizer(models["colornet_tiny"], device="cpu")
    out, u = c.colorize(img, return_uncertainty=True)
    assert out.size == (70, 45) and u.shape == (45, 70) and u.dtype == np.float32
    assert 0.0 <= u.min() and u.max() <= 1.0
    # Certain logits -> entropy near 0; flat logits -> 1.
    sure = torch.full((1, 313, 4, 4), -20.0)
    sure[:, 100] = 20.0
    _, u_sure = Colorizer(FixedLogits(sure), device="cpu").colorize(img, return_uncertainty=True)
    _, u_flat = Colorizer(FixedLogits(torch.zeros(1, 313, 4, 4)), device="cpu").colorize(
        img, return_uncertainty=True
    )
    assert u_sure.max() < 1e-3 and u_flat.min() > 0.999
    r_out, r_u = Colorizer(models["streetside_tiny"], device="cpu").colorize(
        img, return_uncertainty=True
    )
    assert r_u is None and r_out.size == (70, 45)
    vis = uncertainty_image(u)
    assert vis.mode == "RGB" and vis.size == (70, 45)
    lo, hi = np.asarray(uncertainty_image(u_sure)), np.asarray(uncertainty_image(u_flat))
    assert lo.sum() < hi.sum()  # magma: dark = confident
    with pytest.raises(ValueError):
        uncertainty_image(np.zeros((2, 2, 2)))


def test_gray_model_is_neutral():
    img = pattern()
    out = Colorizer("gray", device="cpu").colorize(img)
    ab = rgb_to_lab(to_tensor(out))[1:]
    assert ab.abs().max() < 1.0  # only rounding left
    assert isinstance(Colorizer("gray").model, GrayModel)


def test_model_sources(models, tmp_path):
    path = save_checkpoint(tmp_path / "tiny.pt", models["cunet_tiny"])
    img = pattern()
    from_file = Colorizer(path, device="cpu")
    from_module = Colorizer(models["cunet_tiny"], device="cpu")
    assert from_file.name == "tiny" and from_file.kind == "classification"
    np.testing.assert_array_equal(
        np.asarray(from_file.colorize(img)), np.asarray(from_module.colorize(img))
    )
    with pytest.raises(ModelError, match="unknown model"):
        Colorizer("no_such_model")
    with pytest.raises(ModelError, match="no pretrained weights"):
        Colorizer("cunet_tiny")  # a registry name means its trained weights, which it has none of
    with pytest.raises(ModelError, match="missing"):
        Colorizer("landscape", weights_dir=tmp_path / "empty")
    with pytest.raises(ValueError, match="lacks"):
        Colorizer(nn.Conv2d(1, 2, 3))
    with pytest.raises(ImageError):
        from_module.colorize(b"not an image")


# ---------------------------------------------------------------------- folders
def test_colorize_many(models, tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(pattern(30, 40)).save(src / "a.png")
    Image.fromarray(pattern(20, 25)).save(src / "a.jpg")  # same stem as a.png
    Image.fromarray(pattern(33, 21)).save(src / "sub" / "b.jpg")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    c = Colorizer(models["cunet_tiny"], device="cpu")
    out = tmp_path / "out"
    report = colorize_many(
        c, [src, tmp_path / "missing.png"], out, uncertainty=True, progress=False
    )
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == [
        "a-2.png",
        "a-2_uncertainty.png",
        "a.png",
        "a_uncertainty.png",
        "sub/b.png",
        "sub/b_uncertainty.png",
    ]
    assert len(report.done) == 3
    assert Image.open(out / "sub" / "b.png").size == (21, 33)
    reasons = dict((p.name, why) for p, why in report.skipped)
    assert (
        "corrupt or truncated" in reasons["broken.jpg"] and "no such file" in reasons["missing.png"]
    )
    assert {p.name for p, _ in report.failed} == {"broken.jpg", "missing.png"}

    # A second run leaves existing outputs alone (resumable) unless asked to overwrite.
    before = (out / "a.png").stat().st_mtime_ns
    again = colorize_many(c, src, out, progress=False)
    assert not again.done and all(
        "exists" in why for p, why in again.skipped if p.name != "broken.jpg"
    )
    assert (out / "a.png").stat().st_mtime_ns == before
    forced = colorize_many(c, src, out, overwrite=True, progress=False)
    assert len(forced.done) == 3

    # Writing into the input folder itself: a.png would overwrite its own input -> skipped.
    original = (src / "a.png").read_bytes()
    inplace = colorize_many(c, src, src, overwrite=True, recursive=False, progress=False)
    assert (src / "a.png").read_bytes() == original
    assert any("overwrite an input" in why for _, why in inplace.skipped)
    # The output folder inside the input folder is never scanned as input.
    nested = colorize_many(c, src, src / "colorized", progress=False)
    assert all("colorized" not in str(p) for p, _ in nested.done)
    assert not list(src.rglob("*.tmp"))  # atomic writes leave no temp files


@pytest.mark.cuda
def test_cuda_matches_cpu(models):
    img = pattern(64, 96)
    cpu = np.asarray(Colorizer(models["eccv16_tiny"], device="cpu").colorize(img), dtype=float)
    gpu_c = Colorizer(create_model("eccv16_tiny").cpu(), device="cuda")
    gpu_c.model.load_state_dict(models["eccv16_tiny"].state_dict())
    gpu, u = gpu_c.colorize(img, return_uncertainty=True)
    assert gpu_c.device.type == "cuda" and u.shape == (64, 96)
    assert np.abs(np.asarray(gpu, dtype=float) - cpu).mean() < 2.0  # autocast fp16 vs fp32


# ---------------------------------------------------------------------- full-resolution speed path
def test_compose_within_one_level_of_the_exact_conversion():
    # Saturated colours on a photo with deep shadows and highlights: many pixels leave the
    # gamut, so the deferred chroma mapping is checked as well as the in-gamut tables.
    g = torch.Generator().manual_seed(4)
    logits = torch.full((1, 313, 4, 4), -10.0)
    bins = get_bins("zhang313")
    far = bins.centers.norm(dim=1).argsort(descending=True)[:40]  # the most colourful bins
    for i in range(4):
        for j in range(4):
            logits[0, far[torch.randint(0, 40, (1,), generator=g)], i, j] = 10.0
    c = Colorizer(FixedLogits(logits), device="cpu", temperature=0.05)
    img = pattern(211, 307)
    img[:40] //= 8  # shadows
    img[-40:] = 255 - (255 - img[-40:]) // 8  # highlights
    out = np.asarray(c.colorize(img)).astype(int)
    ab = c.predict(c.working_l(Image.fromarray(img))).ab
    ab_full = F.interpolate(ab.double(), size=img.shape[:2], mode="bilinear", align_corners=False)
    L = rgb_to_l(torch.from_numpy(img).permute(2, 0, 1).double() / 255.0)
    exact = lab_to_rgb(torch.cat([L, ab_full[0]])) * 255.0
    exact = exact.round().permute(1, 2, 0).numpy().astype(int)
    clip = lab_to_rgb(torch.cat([L, ab_full[0]]), gamut="clip") * 255.0
    mapped = (clip.round().permute(1, 2, 0).numpy().astype(int) != exact).any(-1)
    assert mapped.mean() > 0.1  # a real share of the photo needed the chroma mapping
    assert np.abs(out - exact).max() <= 1


def test_working_l_stays_close_to_a_plain_bicubic_resize():
    # working_l reduces big photos by an integer factor before the bicubic (reducing_gap):
    # the network's input must stay within a fraction of an L unit of the plain resize.
    h, w = 1500, 2000
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack(
        [(xx // 7 * 37) % 256, (yy // 5 * 53) % 256, ((xx + yy) // 11 * 29) % 256], -1
    ).astype(np.uint8)
    pil = Image.fromarray(img)
    model = FixedLogits(torch.zeros(1, 313, 4, 4))
    model.input_size = (128, 128)
    seen = Colorizer(model, device="cpu").working_l(pil)
    plain = pil.resize((128, 128), Image.Resampling.BICUBIC)
    ref = rgb_to_lab(to_tensor(plain)[None])[:, :1]
    diff = (seen - ref).abs()
    assert diff.mean() < 0.3 and diff.max() < 3.0


def test_compose_batch_is_compose_byte_for_byte():
    # validation and calibration score compose_batch's tensors; users get compose's PIL
    # images: the two must be the same bytes, including out-of-gamut a*b* and odd sizes
    g = torch.Generator().manual_seed(0)
    rgb8 = torch.randint(0, 256, (3, 3, 57, 83), generator=g, dtype=torch.uint8)
    ab = (torch.rand(3, 2, 15, 21, generator=g) - 0.5) * 260  # past the sRGB rim too
    got = inference.compose_batch(rgb8, ab)
    assert got.dtype == torch.uint8 and got.shape == rgb8.shape
    for photo, a, out in zip(rgb8, ab, got, strict=True):
        ref = inference.compose(Image.fromarray(photo.permute(1, 2, 0).numpy()), a)
        assert np.array_equal(np.asarray(ref), out.permute(1, 2, 0).numpy())
    with pytest.raises(ValueError, match="uint8"):
        inference.compose_batch(rgb8.float(), ab)
    with pytest.raises(ValueError, match="for 3 photos"):
        inference.compose_batch(rgb8, ab[:2])
