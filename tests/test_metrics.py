"""Every metric against an independent computation (numpy loops, skimage) and known values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.color import rgb2lab
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from colorizer.bins import class_prior, get_bins, rebalance_weights
from colorizer.metrics import (
    METRICS,
    ab_error,
    ab_error_map,
    auc_ab,
    auc_ab_rebalanced,
    colorfulness,
    psnr_db,
    score,
    seed_euclidean,
    seed_psnr,
    ssim,
)


@pytest.fixture
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    y = torch.rand(3, 36, 44, generator=g)
    x = (y + 0.15 * torch.randn(3, 36, 44, generator=g)).clamp(0, 1)
    return x, y


def np_lab_ab(t: torch.Tensor) -> np.ndarray:
    return rgb2lab(t.permute(1, 2, 0).double().numpy())[..., 1:]  # (H, W, 2)


# ---------------------------------------------------------------------- the seed's metrics
def test_seed_euclidean_matches_column_loop(pair):
    x, y = pair
    xn, yn = x.double().numpy(), y.double().numpy()
    total = 0.0
    for c in range(3):
        for col in range(xn.shape[2]):
            total += math.sqrt(
                sum((xn[c, r, col] - yn[c, r, col]) ** 2 for r in range(xn.shape[1]))
            )
    assert seed_euclidean(x, y).item() == pytest.approx(total, rel=1e-5)
    assert seed_psnr(x, y).item() == pytest.approx(10 * math.log10(255**2 / total**2), abs=1e-4)


def test_seed_euclidean_known_value_and_batch():
    # Black vs white 256x256: every column differs by sqrt(256) = 16 -> 3 * 256 * 16.
    x, y = torch.zeros(3, 256, 256), torch.ones(3, 256, 256)
    assert seed_euclidean(x, y).item() == pytest.approx(12288.0)
    assert seed_psnr(x, y).item() == pytest.approx(10 * math.log10(255**2 / 12288.0**2), abs=1e-4)
    # The seed's dim 1 is the height: transposing the image changes the value.
    a = torch.zeros(3, 4, 16)
    b = a.clone()
    b[:, 0, :] = 1.0
    assert seed_euclidean(a, b).item() == pytest.approx(3 * 16 * 1.0)
    # Transposed, the differing row is one column of 16 ones: one norm of 4 per channel.
    assert seed_euclidean(a.transpose(1, 2), b.transpose(1, 2)).item() == pytest.approx(3 * 4.0)
    xb, yb = torch.stack([a, x[:, :4, :16]]), torch.stack([b, y[:, :4, :16]])
    batched = seed_euclidean(xb, yb)
    assert batched.shape == (2,)
    assert batched[0] == seed_euclidean(a, b) and batched[1] == seed_euclidean(xb[1], yb[1])
    assert seed_psnr(a, a).item() == math.inf


# ---------------------------------------------------------------------- PSNR, SSIM
def test_psnr_db_matches_skimage_on_uint8(pair):
    x, y = pair
    to8 = lambda t: (t * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()  # noqa: E731
    ref = peak_signal_noise_ratio(to8(y), to8(x), data_range=255)
    assert psnr_db(x, y).item() == pytest.approx(ref, abs=1e-4)
    # Off by one grey level everywhere: MSE = 1 -> 20 log10(255) = 48.13 dB.
    a = torch.full((3, 8, 8), 100 / 255)
    assert psnr_db(a, a + 1 / 255).item() == pytest.approx(20 * math.log10(255), abs=1e-4)
    assert psnr_db(a, a).item() == math.inf


@pytest.mark.parametrize("luminance", [False, True])
def test_ssim_matches_skimage(pair, luminance):
    x, y = pair
    xn, yn = x.double().numpy(), y.double().numpy()
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
    if luminance:
        w = np.array([0.299, 0.587, 0.114]).reshape(3, 1, 1)
        ref = structural_similarity((xn * w).sum(0), (yn * w).sum(0), **kw)
    else:
        ref = structural_similarity(xn, yn, channel_axis=0, **kw)
    assert ssim(x, y, luminance=luminance).item() == pytest.approx(ref, abs=1e-5)


def test_ssim_known_values_and_errors(pair):
    x, y = pair
    assert ssim(y, y).item() == pytest.approx(1.0, abs=1e-6)
    assert ssim(x, y).item() < 0.9
    both = ssim(torch.stack([x, y]), torch.stack([y, y]))
    assert both.shape == (2,) and both[1].item() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.rand(3, 8, 30), torch.rand(3, 8, 30))
    with pytest.raises(ValueError, match="shapes differ"):
        ssim(torch.rand(3, 20, 20), torch.rand(3, 20, 21))
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        ssim(torch.rand(1, 20, 20), torch.rand(1, 20, 20))


# ---------------------------------------------------------------------- a*b* error and AuC
def test_ab_error_matches_skimage(pair):
    x, y = pair
    ref = np.sqrt(((np_lab_ab(x) - np_lab_ab(y)) ** 2).sum(-1))
    np.testing.assert_allclose(ab_error_map(x, y).numpy(), ref, atol=0.05)
    assert ab_error(x, y).item() == pytest.approx(ref.mean(), abs=0.01)
    # Pure red against its own grey: |ab| of sRGB red is 104.55 (a 80.11, b 67.22).
    red = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1).expand(3, 4, 4).contiguous()
    assert ab_error(red, torch.zeros(3, 4, 4)).item() != pytest.approx(0.0)
    red_lab = rgb2lab(np.array([[[1.0, 0.0, 0.0]]]))[0, 0]
    from skimage.color import lab2rgb

    grey = torch.from_numpy(lab2rgb(np.array([[[red_lab[0], 0.0, 0.0]]]))[0, 0]).float()
    grey = grey.view(3, 1, 1).expand(3, 4, 4)
    assert ab_error(red, grey).item() == pytest.approx(104.55, abs=0.05)


def test_auc_matches_threshold_loop(pair):
    x, y = pair
    err = ab_error_map(x, y).numpy()
    ref = np.mean([np.mean(err <= t) for t in range(151)])
    assert auc_ab(x, y).item() == pytest.approx(ref, abs=1e-6)
    assert auc_ab(y, y).item() == pytest.approx(1.0)


def test_auc_known_values():
    # Half the pixels exact, half off by |ab| = 104.55 (red vs grey): the exact half counts at
    # every one of the 151 thresholds, the other half at t = 105..150 (46 thresholds).
    red_lab = rgb2lab(np.array([[[1.0, 0.0, 0.0]]]))[0, 0]
    from skimage.color import lab2rgb

    grey = torch.from_numpy(lab2rgb(np.array([[[red_lab[0], 0.0, 0.0]]]))[0, 0]).float()
    truth = torch.zeros(3, 2, 8)
    truth[:, 0, :] = grey.view(3, 1)
    truth[:, 1, :] = torch.tensor([1.0, 0.0, 0.0]).view(3, 1)
    pred = torch.zeros(3, 2, 8)
    pred[:, :, :] = grey.view(3, 1, 1)
    expected = 0.5 * 1.0 + 0.5 * 46 / 151
    assert auc_ab(pred, truth).item() == pytest.approx(expected, abs=1e-4)
    # Everything wrong by more than 150 units: green vs magenta.
    g = torch.tensor([0.0, 1.0, 0.0]).view(3, 1, 1).expand(3, 4, 4)
    m = torch.tensor([1.0, 0.0, 1.0]).view(3, 1, 1).expand(3, 4, 4)
    assert ab_error(g, m).min() > 150
    assert auc_ab(g, m).item() == pytest.approx(0.0)


def test_rebalanced_auc():
    # 7 of 8 rows are grey and predicted exactly; 1 row is red, predicted grey.
    from skimage.color import lab2rgb

    red_lab = rgb2lab(np.array([[[1.0, 0.0, 0.0]]]))[0, 0]
    grey = torch.from_numpy(lab2rgb(np.array([[[red_lab[0], 0.0, 0.0]]]))[0, 0]).float()
    truth = grey.view(3, 1, 1).repeat(1, 8, 8)
    truth[:, 7, :] = torch.tensor([1.0, 0.0, 0.0]).view(3, 1)
    pred = grey.view(3, 1, 1).repeat(1, 8, 8)
    bins = get_bins("zhang313")
    from colorizer.lab import rgb_to_lab

    prior = class_prior(bins, rgb_to_lab(truth[None])[:, 1:])
    plain = auc_ab(pred, truth).item()
    assert plain == pytest.approx(7 / 8 + (1 / 8) * 46 / 151, abs=1e-4)
    # Uniform class weights change nothing.
    uniform = auc_ab_rebalanced(pred, truth, torch.ones(bins.num_classes))
    assert uniform.item() == pytest.approx(plain, abs=1e-6)
    # Inverse-frequency weights (lam = 0, no smoothing): both classes count alike.
    w = rebalance_weights(prior, lam=0.0)
    rebal = auc_ab_rebalanced(pred, truth, w).item()
    assert rebal == pytest.approx(0.5 + 0.5 * 46 / 151, abs=1e-4)
    # Independent weighted loop.
    cls = bins.encode_hard(rgb_to_lab(truth[None])[:, 1:])[0].numpy()
    pw = w.numpy()[cls]
    err = ab_error_map(pred, truth).numpy()
    ref = np.mean([(pw * (err <= t)).sum() / pw.sum() for t in range(151)])
    assert rebal == pytest.approx(ref, abs=1e-6)
    with pytest.raises(ValueError, match="class_weights"):
        auc_ab_rebalanced(pred, truth, torch.ones(5))


# ---------------------------------------------------------------------- colorfulness
def test_colorfulness(pair):
    x, _ = pair
    rgb = x.double().numpy() * 255
    rg = rgb[0] - rgb[1]
    yb = 0.5 * (rgb[0] + rgb[1]) - rgb[2]
    ref = np.sqrt(np.std(rg) ** 2 + np.std(yb) ** 2) + 0.3 * np.sqrt(
        rg.mean() ** 2 + yb.mean() ** 2
    )
    assert colorfulness(x).item() == pytest.approx(ref, rel=1e-5)
    ref_abs = np.sqrt(np.std(abs(rg)) ** 2 + np.std(abs(yb)) ** 2) + 0.3 * np.sqrt(
        abs(rg).mean() ** 2 + abs(yb).mean() ** 2
    )
    assert colorfulness(x, absolute=True).item() == pytest.approx(ref_abs, rel=1e-5)
    # Known values: grey has none; flat pure red has 0.3 * |(255, 127.5)| = 85.53.
    assert colorfulness(torch.full((3, 5, 5), 0.4)).item() == pytest.approx(0.0, abs=1e-4)
    red = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1).expand(3, 5, 5)
    assert colorfulness(red).item() == pytest.approx(0.3 * math.hypot(255, 127.5), abs=1e-3)
    both = colorfulness(torch.stack([x[:, :5, :5], red]))
    assert both.shape == (2,) and both[1].item() == pytest.approx(colorfulness(red).item())


def test_score_equals_the_single_functions_in_the_registry_units(pair):
    x, y = pair
    w = torch.rand(313, generator=torch.Generator().manual_seed(3)) + 0.1
    got = score(x, y, w)
    expected = {
        "euclidean": seed_euclidean(x, y),
        "psnr_seed": seed_psnr(x, y),
        "psnr_db": psnr_db(x, y),
        "ssim": ssim(x, y),
        "ab_error": ab_error(x, y),
        "auc": 100 * auc_ab(x, y),  # the registry's unit: %
        "auc_rebal": 100 * auc_ab_rebalanced(x, y, w),
        "colorfulness": colorfulness(x),
    }
    assert list(got) == list(METRICS) and set(got) == set(expected)
    assert METRICS["auc"].unit == "%" and not METRICS["euclidean"].higher_is_better
    for k, v in expected.items():
        assert got[k].item() == pytest.approx(v.item(), rel=1e-5, abs=1e-6), k
    batched = score(torch.stack([x, y]), torch.stack([y, y]))
    assert "auc_rebal" not in batched and batched["ssim"].shape == (2,)
    assert batched["euclidean"][0].item() == pytest.approx(got["euclidean"].item(), rel=1e-6)
    keys = ("euclidean", "psnr_db", "colorfulness")  # what validation during training scores
    assert list(score(x, y, keys=keys)) == list(keys)
    with pytest.raises(ValueError, match="auc_rebal needs class_weights"):
        score(x, y, keys=["auc_rebal"])
    with pytest.raises(ValueError, match="unknown metrics"):
        score(x, y, keys=["seed_euclidean"])


def test_the_batch_scorer_gives_each_photo_what_the_photo_by_photo_path_gives_it():
    # validation and calibration score batches (colorizer.evaluate.score_batches), evaluate
    # scores photo by photo: the same photo must get the same numbers either way
    from colorizer.evaluate import score_batches
    from colorizer.metrics import METRICS, score

    g = torch.Generator().manual_seed(5)
    truth = torch.randint(0, 256, (5, 3, 24, 32), generator=g, dtype=torch.uint8)
    pred = (truth.float() / 255 + 0.1 * torch.randn(5, 3, 24, 32, generator=g)).clamp(0, 1)
    keys = [k for k in METRICS if k != "auc_rebal"]
    batches = [(truth[i : i + 2], pred[i : i + 2]) for i in range(0, 5, 2)]  # 2 + 2 + 1
    got = score_batches(batches, {"model": lambda b: b[1], "gray": lambda b: b[0] * 0 + 0.5}, keys)
    for i in range(5):
        one = score(pred[i], truth[i].float() / 255, keys=keys)
        for k in keys:
            assert float(got["model"][k][i]) == pytest.approx(float(one[k]), rel=1e-5, abs=1e-6), k
    assert got["gray"]["psnr_db"].shape == (5,) and got["gray"]["colorfulness"].max() == 0
