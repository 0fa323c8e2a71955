import math

import numpy as np
import pytest
import torch
from skimage import color

from colorizer.bins import (
    SEED104_CELLS,
    ColorBins,
    class_prior,
    get_bins,
    rebalance_weights,
    smooth_prior,
    srgb_gamut_ab,
)


@pytest.fixture(scope="module")
def z313():
    return get_bins("zhang313")


@pytest.fixture(scope="module")
def s104():
    return get_bins("seed104")


def _random_ab(seed=0, shape=(2, 2, 16, 16), scale=45.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * scale).clamp(-127, 127)


def test_zhang313_has_313_bins_on_a_grid_of_10_covering_srgb(z313):
    c = z313.centers
    assert c.shape == (313, 2)
    assert torch.equal(c, torch.round(c / 10) * 10)  # on the grid
    assert len({tuple(x) for x in c.tolist()}) == 313
    # every grid cell that a real sRGB colour falls in is a bin
    rgb = np.random.default_rng(0).random((20000, 1, 3))
    ab = color.rgb2lab(rgb)[:, 0, 1:]
    hit = {tuple(x) for x in (np.round(ab / 10) * 10).tolist()}
    assert hit <= {tuple(x) for x in c.tolist()}
    # and the a*b* projection of the gamut is what we think it is
    g = srgb_gamut_ab(33)
    assert -90 < g[:, 0].min() < -80 and 95 < g[:, 0].max() < 100
    assert -110 < g[:, 1].min() < -100 and 90 < g[:, 1].max() < 96


def test_seed104_grid_and_centres_follow_one_definition(s104):
    assert s104.num_classes == 105 and s104.null_index == 104
    cells = torch.tensor(SEED104_CELLS[:104])
    unit = (s104.centers[:104] + 128) / 255
    # the centre of cell (i, j) is (i/14, j/14): exactly what round(u*14) maps back to it
    assert torch.allclose(unit * 14, torch.stack([cells // 15, cells % 15], -1).float(), atol=1e-4)
    assert torch.equal(
        s104.encode_hard(s104.centers[:104].T.reshape(1, 2, 1, 104)).flatten(), torch.arange(104)
    )


def test_seed104_hard_encoding_is_the_seed_rule(s104):
    ab = _random_ab(1, scale=40)
    u = (ab + 128) / 255
    cell = (torch.round(u[:, 0] * 14) * 15 + torch.round(u[:, 1] * 14)).long()
    lookup = {c: i for i, c in enumerate(SEED104_CELLS[:104])}
    expected = torch.tensor([lookup.get(int(c), 104) for c in cell.flatten()]).view_as(cell)
    assert torch.equal(s104.encode_hard(ab), expected)
    assert (expected == 104).any() and (expected < 104).any()  # both paths exercised


def test_hard_encoding_is_nearest_centre(z313):
    ab = _random_ab(2)
    ab[0, :, 0, :5] = torch.tensor([[5.0, 5.0], [-5, 15], [4.5, -4.5], [0, 0], [105, -105]]).T
    d = torch.cdist(ab.permute(0, 2, 3, 1).reshape(-1, 2), z313.centers)
    got = z313.encode_hard(ab).flatten()
    assert torch.allclose(d.gather(1, got[:, None]).squeeze(1), d.min(1).values)


def test_soft_encoding_k_nearest_gaussian(z313):
    ab = _random_ab(3, shape=(1, 2, 4, 4))
    soft = z313.encode_soft(ab, k=5, sigma=5.0)
    assert soft.shape == (1, 313, 4, 4)
    assert torch.allclose(soft.sum(1), torch.ones(1, 4, 4))
    assert ((soft > 0).sum(1) == 5).all()
    # independent computation for one pixel
    x = ab[0, :, 2, 3]
    d = (z313.centers - x).norm(dim=1)
    nn = d.argsort()[:5]
    w = torch.exp(-(d[nn] ** 2) / (2 * 25))
    assert torch.allclose(soft[0, nn, 2, 3], w / w.sum(), atol=1e-5)
    assert torch.allclose(
        z313.encode_soft(ab, k=1),
        torch.nn.functional.one_hot(z313.encode_hard(ab), 313).permute(0, 3, 1, 2).float(),
    )


def test_soft_encoding_of_seed104_never_targets_the_null_bucket(s104):
    soft = s104.encode_soft(_random_ab(4), k=5)
    assert soft[:, 104].abs().max() == 0


def test_decode_annealed_mean_limits(z313):
    logits = torch.randn(2, 313, 3, 5, generator=torch.Generator().manual_seed(0)) * 3
    # lift each pixel's top class by 1 so that T = 1e-3 is deep in the mode limit (a near tie
    # would still be a blend there, as it should be)
    logits.scatter_add_(1, logits.argmax(1, keepdim=True), torch.ones(2, 1, 3, 5))
    p = torch.softmax(logits, 1)
    mean = torch.einsum("bqhw,qc->bchw", p, z313.centers)
    assert torch.allclose(z313.decode(logits, 1.0), mean, atol=1e-4)
    mode = z313.centers[logits.argmax(1)].permute(0, 3, 1, 2)
    assert torch.allclose(z313.decode(logits, 0.0), mode)
    assert torch.allclose(z313.decode(logits, 1e-3), mode, atol=1e-2)
    # lower T is more vivid: the decoded chroma grows as T falls, on average
    chroma = [z313.decode(logits, t).norm(dim=1).mean() for t in (1.0, 0.38, 0.1)]
    assert chroma[0] < chroma[1] < chroma[2]
    # an explicit annealed-mean formula, written differently
    t = 0.38
    q = p ** (1 / t)
    q = q / q.sum(1, keepdim=True)
    assert torch.allclose(
        z313.decode(logits, t), torch.einsum("bqhw,qc->bchw", q, z313.centers), atol=1e-3
    )


def test_decode_ignores_the_null_bucket(s104):
    logits = torch.zeros(1, 105, 1, 1)
    logits[0, 104] = 50.0  # the model is sure of "no class"
    logits[0, 7] = 1.0
    ab = s104.decode(logits, 1.0)
    assert torch.isfinite(ab).all()
    assert torch.allclose(s104.decode(logits, 0.0)[0, :, 0, 0], s104.centers[7])


def test_entropy_is_normalised(z313):
    uniform = torch.zeros(1, 313, 2, 2)
    certain = torch.full((1, 313, 2, 2), -100.0)
    certain[:, 3] = 100.0
    assert torch.allclose(z313.entropy(uniform), torch.ones(1, 2, 2), atol=1e-5)
    assert z313.entropy(certain).max() < 1e-4


def test_prior_and_rebalancing(z313):
    ab = _random_ab(5, scale=20)
    prior = class_prior(z313, [ab[:1], ab[1:]])
    assert torch.isclose(prior.sum(), torch.tensor(1.0))
    counts = torch.bincount(z313.encode_hard(ab).flatten(), minlength=313).float()
    assert torch.allclose(prior, counts / counts.sum())
    for lam in (0.0, 0.5, 1.0):
        w = rebalance_weights(prior, lam=lam, sigma=0)
        assert torch.isclose((prior * w).sum(), torch.tensor(1.0), atol=1e-5)  # E_p[w] = 1
    assert torch.allclose(rebalance_weights(prior, lam=1.0), torch.ones(313))  # uniform
    w = rebalance_weights(prior, lam=0.5, sigma=0)
    expected = 1 / (0.5 * prior + 0.5 / 313)
    assert torch.allclose(w, expected / (prior * expected).sum())
    common, rare = prior.argmax(), prior.argmin()
    assert w[rare] > w[common]


def test_prior_smoothing_keeps_mass_and_spreads(z313):
    prior = torch.zeros(313)
    prior[100] = 1.0
    s = smooth_prior(prior, z313, sigma=5.0)
    assert torch.isclose(s.sum(), torch.tensor(1.0))
    assert s[100] < 1 and (s > 1e-6).sum() > 1
    near = (z313.centers - z313.centers[100]).norm(dim=1)
    assert s[near.argsort()[1]] > s[near.argmax()]


def test_round_trip_through_dict(s104):
    d = s104.to_dict()
    assert all(isinstance(v, (torch.Tensor, str, int, type(None))) for v in d.values())
    assert ColorBins.from_dict(d) == s104
    custom = ColorBins.from_centers(
        torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]), name="tiny"
    )
    back = ColorBins.from_dict(custom.to_dict())
    assert back == custom and back.name == "tiny"


def test_bad_input_is_refused(z313):
    with pytest.raises(KeyError, match="unknown bins"):
        get_bins("nope")
    with pytest.raises(ValueError, match="B, 2, H, W"):
        z313.encode_hard(torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="B, 313"):
        z313.decode(torch.zeros(1, 105, 2, 2))
    with pytest.raises(ValueError, match="lam"):
        rebalance_weights(torch.ones(313) / 313, lam=1.5)
    assert math.isfinite(
        float(
            rebalance_weights(torch.zeros(313).index_fill(0, torch.tensor([0]), 1.0), lam=0.0).max()
        )
    )


def test_sparse_soft_targets_are_the_dense_ones_and_the_mean_is_exact(z313, s104):
    """The loss gathers k log-probabilities with soft_targets instead of multiplying the dense
    target: the same numbers. The expectation (a matmul) is the plain weighted sum."""
    g = torch.Generator().manual_seed(3)
    ab = (torch.rand(2, 2, 5, 7, generator=g) - 0.5) * 200
    for bins in (z313, s104):
        idx, w = bins.soft_targets(ab, k=5, sigma=5.0)  # (B, k, H, W)
        dense = bins.encode_soft(ab, k=5, sigma=5.0)
        assert idx.shape == w.shape == (2, 5, 5, 7)
        assert torch.allclose(dense.gather(1, idx), w) and torch.allclose(
            dense.sum(1), torch.ones(1)
        )
        logp = torch.log_softmax(torch.randn(2, bins.num_classes, 5, 7, generator=g), 1)
        sparse_nll = -(w * logp.gather(1, idx)).sum(1)
        assert torch.allclose(sparse_nll, -(dense * logp).sum(1), atol=1e-5)
        assert torch.equal(idx[:, 0], dense.argmax(1))  # nearest first: the rebalancing bin
        p = logp.exp()
        expect = torch.einsum("bqhw,qc->bchw", p, bins.centers)  # what decode used before
        assert torch.allclose(bins.expectation(p), expect, atol=1e-4)
