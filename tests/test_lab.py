import warnings

import numpy as np
import pytest
import torch
from skimage import color, data

from colorizer.lab import ab_from_unit, ab_to_unit, lab_to_rgb, rgb_to_l, rgb_to_lab


def _to_chw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1).float()


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_rgb_to_lab_matches_skimage_on_real_photos(name):
    rgb = getattr(data, name)() / 255.0
    ours = rgb_to_lab(_to_chw(rgb)).permute(1, 2, 0).numpy()
    assert np.abs(ours - color.rgb2lab(rgb)).max() < 0.05


def test_rgb_to_lab_matches_skimage_on_random_and_extreme_colours():
    rng = np.random.default_rng(0)
    rgb = rng.random((40, 50, 3))
    rgb[0, :8] = [
        [0, 0, 0],
        [1, 1, 1],
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
        [1, 1, 0],
        [0, 1, 1],
        [1, 0, 1],
    ]
    rgb[1, :5] = np.array([0.04045, 0.0031308, 1e-4, 0.5, 0.999])[:, None]  # near the knees
    ours = rgb_to_lab(_to_chw(rgb)).permute(1, 2, 0).numpy()
    assert np.abs(ours - color.rgb2lab(rgb)).max() < 0.05


def test_lab_to_rgb_matches_skimage_including_out_of_gamut():
    rng = np.random.default_rng(1)
    lab = np.stack(
        [rng.random((32, 32)) * 100, rng.normal(0, 60, (32, 32)), rng.normal(0, 60, (32, 32))], -1
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skimage warns about the negative Z it clips
        ref = color.lab2rgb(lab)
    ours = lab_to_rgb(_to_chw(lab), gamut="clip").permute(1, 2, 0).numpy()
    assert ours.min() >= 0 and ours.max() <= 1
    assert np.abs(ours - ref).max() < 1e-3
    # the default gamut mapping changes only the colours skimage had to clip
    mapped = lab_to_rgb(_to_chw(lab)).permute(1, 2, 0).numpy()
    in_gamut = np.abs(color.rgb2lab(ref) - lab).max(-1) < 0.05
    assert 0 < in_gamut.sum() < in_gamut.size
    assert np.abs(mapped - ref)[in_gamut].max() < 1e-3


def test_chroma_gamut_mapping_keeps_lightness_and_hue():
    rng = np.random.default_rng(2)
    lab = torch.stack(
        [
            torch.from_numpy(rng.random((24, 24)) * 100),
            *torch.from_numpy(rng.normal(0, 90, (2, 24, 24))),
        ]
    ).float()
    back = rgb_to_lab(lab_to_rgb(lab))
    assert (back[0] - lab[0]).abs().max() < 0.2  # lightness kept
    chroma_in = lab[1:].norm(dim=0)
    chroma_out = back[1:].norm(dim=0)
    assert (chroma_out <= chroma_in + 0.2).all()  # chroma only ever reduced
    coloured = chroma_out > 5
    cos = (lab[1:] * back[1:]).sum(0)[coloured] / (chroma_in * chroma_out)[coloured]
    assert cos.min() > 0.99  # hue kept


def test_round_trip_and_batching():
    rgb = torch.rand(2, 3, 3, 16, 16)  # two leading batch dims
    lab = rgb_to_lab(rgb)
    assert lab.shape == rgb.shape
    assert torch.allclose(lab_to_rgb(lab), rgb, atol=2e-4)
    assert torch.allclose(rgb_to_l(rgb), lab[..., :1, :, :])
    # per-image conversion equals batched conversion
    assert torch.allclose(rgb_to_lab(rgb[1, 2]), lab[1, 2], atol=1e-5)


def test_extreme_lab_is_clipped_sensibly():
    lab = torch.tensor([[-10.0, 0, 0], [150.0, 0, 0], [50.0, 500, -500], [0.0, 80, 80]]).T
    rgb = lab_to_rgb(lab.view(3, 4, 1))
    assert torch.isfinite(rgb).all() and rgb.min() >= 0 and rgb.max() <= 1
    assert torch.allclose(rgb[:, 0], torch.zeros(3))  # L below 0 stays black
    assert torch.allclose(rgb[:, 1], torch.ones(3), atol=1e-5)  # L above 100 stays white
    assert torch.allclose(
        rgb[:, 3], torch.zeros(3), atol=3e-3
    )  # L = 0 is black (< one 8-bit step) whatever a*b*


def test_unit_scaling_round_trip():
    ab = torch.tensor([-128.0, 0.0, 127.0])
    assert torch.allclose(ab_to_unit(ab), torch.tensor([0.0, 128 / 255, 1.0]))
    assert torch.allclose(ab_from_unit(ab_to_unit(ab)), ab)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="3, H, W"):
        rgb_to_lab(torch.rand(4, 16, 16))
    with pytest.raises(TypeError):
        rgb_to_lab(torch.randint(0, 255, (3, 4, 4)))


@pytest.mark.cuda
def test_cuda_matches_cpu():
    rgb = torch.rand(2, 3, 64, 64)
    cpu = rgb_to_lab(rgb)
    gpu = rgb_to_lab(rgb.cuda()).cpu()
    assert torch.allclose(cpu, gpu, atol=1e-3)
    assert torch.allclose(lab_to_rgb(cpu), lab_to_rgb(cpu.cuda()).cpu(), atol=1e-4)


def test_uint8_input_matches_float_input():
    u8 = torch.from_numpy(data.coffee()).permute(2, 0, 1).contiguous()
    assert torch.allclose(rgb_to_lab(u8), rgb_to_lab(u8.float() / 255), atol=1e-3)


def test_blockwise_conversion_equals_whole_image(monkeypatch):
    import colorizer.lab as lab_module

    rgb = torch.rand(2, 3, 37, 29)
    whole_lab, whole_rgb, whole_l = (
        rgb_to_lab(rgb),
        lab_to_rgb(rgb_to_lab(rgb) * 1.3),
        rgb_to_l(rgb),
    )
    monkeypatch.setattr(lab_module, "_BLOCK_PIXELS", 64)  # blocks of 2 rows, the last one short
    # equal up to float rounding (vectorised loops treat row tails differently)
    assert torch.allclose(rgb_to_lab(rgb), whole_lab, atol=1e-4)
    assert torch.allclose(lab_to_rgb(whole_lab * 1.3), whole_rgb, atol=1e-5)
    assert torch.allclose(rgb_to_l(rgb), whole_l, atol=1e-4)
    assert torch.allclose(whole_l, whole_lab[:, :1], atol=1e-4)


def test_big_conversions_restore_the_thread_count(monkeypatch):
    import colorizer.lab as lab_module

    monkeypatch.setattr(lab_module, "_BLOCK_PIXELS", 64)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        rgb_to_lab(torch.rand(3, 40, 20))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------- 8-bit recolouring
def _exact_rgb8(rgb8: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """The general chain in float64, rounded to 8 bits: what rgb8_with_ab must reproduce."""
    L = rgb_to_l(rgb8.double() / 255.0)
    return (lab_to_rgb(torch.cat([L, ab.double()])) * 255.0).round().to(torch.uint8)


def _photo_and_colours(h: int = 120, w: int = 160, sigma: float = 45.0):
    g = torch.Generator().manual_seed(3)
    rgb = torch.from_numpy(np.ascontiguousarray(data.astronaut()[:h, :w])).permute(2, 0, 1)
    rgb = rgb.contiguous()
    rgb[:, :6, :6] = torch.tensor([0, 255, 128], dtype=torch.uint8).view(3, 1, 1)  # pure levels
    rgb[:, 6:8, :] = 0  # black and white rows: L at both ends of its range
    rgb[:, 8:10, :] = 255
    ab = torch.randn(2, h, w, generator=g) * sigma
    return rgb, ab


def test_rgb8_with_ab_within_one_level_of_the_exact_chain():
    from colorizer.lab import rgb8_with_ab

    rgb, ab = _photo_and_colours()
    exact = _exact_rgb8(rgb, ab)
    clipped = lab_to_rgb(torch.cat([rgb_to_l(rgb.double() / 255), ab.double()]), "clip") * 255
    outside = (clipped.round().to(torch.uint8) != exact).any(0)
    assert outside.float().mean() > 0.2  # the chroma mapping is exercised, not only clipping
    fast = rgb8_with_ab(rgb, ab)
    diff = (fast.int() - exact.int()).abs()
    assert diff.max() <= 1
    assert (diff > 0).float().mean() < 0.01  # off by one only where rounding is a coin toss
    assert diff[:, outside].max() <= 1


def test_rgb8_with_own_ab_gives_the_photo_back():
    from colorizer.lab import rgb8_with_ab

    rgb, _ = _photo_and_colours()
    own_ab = rgb_to_lab(rgb.double() / 255.0)[1:]
    back = rgb8_with_ab(rgb, own_ab)
    assert (back.int() - rgb.int()).abs().max() <= 1


def test_recolor_strips_equal_one_piece_across_strips():
    from colorizer.lab import recolor_strips, rgb8_with_ab

    rgb, ab = _photo_and_colours(64, 50)
    px = rgb.reshape(3, -1).int()
    words = px[0] | (px[1] << 8) | (px[2] << 16)
    flat_ab = ab.reshape(2, -1)
    n = words.numel()
    cuts = [0, 7, 500, 1234, 2999, n]  # ragged strips, out-of-gamut pixels in several
    out = recolor_strips(
        ((a, words[a:b], flat_ab[:, a:b]) for a, b in zip(cuts, cuts[1:], strict=False)), n
    )
    got = torch.stack([(out >> (8 * c)) & 0xFF for c in range(3)]).to(torch.uint8).view(rgb.shape)
    assert torch.equal(got, rgb8_with_ab(rgb, ab))


def test_rgb8_with_ab_refuses_bad_shapes():
    from colorizer.lab import rgb8_with_ab

    with pytest.raises(ValueError, match="uint8"):
        rgb8_with_ab(torch.rand(3, 4, 4), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="ab must be"):
        rgb8_with_ab(torch.zeros(3, 4, 4, dtype=torch.uint8), torch.zeros(2, 4, 5))


@pytest.mark.cuda
def test_rgb8_with_ab_cuda_matches_cpu():
    from colorizer.lab import rgb8_with_ab

    rgb, ab = _photo_and_colours()
    cpu = rgb8_with_ab(rgb, ab)
    gpu = rgb8_with_ab(rgb.cuda(), ab.cuda()).cpu()
    assert (cpu.int() - gpu.int()).abs().max() <= 1
