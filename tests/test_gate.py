"""The expert decoder (colorizer.models.effunet.Expert, training.gate): a shut gate is the base
model bit for bit and never runs the expert, an open one mixes the expert's distribution in,
``add-expert`` refuses a decoder grown on another encoder, and ``fit-gate`` learns from
photos made here which scenes want the expert."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_tilt import chroma, painter, weather  # noqa: F401  (weather: clear and foggy skies)

from colorizer.bins import output_to_ab
from colorizer.checkpoint import save_checkpoint
from colorizer.inference import Colorizer
from colorizer.models import create_model, load_checkpoint
from training.__main__ import main as cli


def tiny(**kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("effunet_tiny", hints=True, **kw).eval()


def counted(module: torch.nn.Module) -> list[int]:
    calls = [0]
    module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_a_shut_gate_is_the_base_model_and_never_runs_the_expert():
    base, paired = tiny(), tiny(expert=True)
    paired.load_state_dict(base.state_dict(), strict=False)  # the expert keeps its own init
    calls = counted(paired.expert.head)
    L = torch.rand(2, 1, 64, 64) * 100
    with torch.no_grad():
        assert torch.equal(base(L), paired(L))
        assert calls[0] == 0
        paired.expert.gate.bias.fill_(-0.5)  # clamped to 0: still shut
        assert torch.equal(base(L), paired(L)) and calls[0] == 0


def test_an_open_gate_mixes_the_experts_distribution_in():
    paired = tiny(expert=True)
    alone = tiny()  # the expert's decoder as a model of its own
    own = {k: v for k, v in paired.state_dict().items() if k.startswith("encoder.")}
    expert = {k: v for k, v in paired.expert.state_dict().items() if not k.startswith("gate.")}
    alone.load_state_dict({**own, **expert})
    L = torch.rand(2, 1, 64, 64) * 100
    with torch.no_grad():
        base = paired(L)
        paired.expert.gate.bias.fill_(2.0)  # clamped to 1: the expert alone
        assert torch.allclose(paired(L).log_softmax(1), alone(L).log_softmax(1), atol=1e-4)
        paired.expert.gate.bias.fill_(0.25)
        mixed = paired(L).log_softmax(1)
        want = (0.75 * base.log_softmax(1) + 0.25 * alone(L).log_softmax(1)).log_softmax(1)
        assert torch.allclose(mixed, want, atol=1e-4)


def test_a_photo_whose_gate_is_shut_is_the_base_in_any_batch():
    """A batch where one photo opens the gate runs the expert for all: the shut photo must
    still come out as the base's, as it would alone (and the open one as alone too)."""
    torch.manual_seed(0)
    paired = create_model("effunet_tiny", expert=True).eval()
    paired.load_pretrained_encoder()  # distinct photos get distinct scene vectors
    L = torch.stack([torch.linspace(0, 100, 64).expand(64, 64), torch.rand(64, 64) * 100])[:, None]
    with torch.no_grad():
        g = paired.encode(L)[1]
        d = g[0] - g[1]
        w = 0.5 * d / d.dot(d)  # w . g0 - w . g1 = 0.5
        paired.expert.gate.weight[0] = w
        paired.expert.gate.bias.fill_(float(0.49 - w.dot(g[0])))
        gamma = paired.expert.weight(g)
        assert gamma[0] == pytest.approx(0.49, abs=1e-3) and gamma[1] == 0
        both = paired(L)
        assert torch.allclose(both[1], paired(L[1:])[0], atol=1e-4)  # the shut one: the base
        assert torch.allclose(both[0], paired(L[:1])[0], atol=1e-4)
        calls = counted(paired.expert.head)
        paired(L[1:])
        assert calls[0] == 0  # alone, the shut photo never runs the expert


def test_an_expert_with_its_own_encoder_is_that_model_where_open_and_never_runs_where_shut():
    """expert_encoder: a decoder grown on another encoder brings it along; fully open, the pair
    is that other model exactly; shut, the base, without a pass through the second encoder."""
    paired, other = tiny(expert=True, expert_encoder=True), tiny()
    torch.manual_seed(1)
    for p in other.encoder.parameters():  # another encoder than the base's
        p.data.add_(0.1 * torch.randn_like(p))
    expert = {k: v for k, v in paired.expert.state_dict().items() if not k.startswith("gate.")}
    other.load_state_dict(expert)  # its encoder and decoder are the expert's
    base = tiny()
    base.load_state_dict({k: v for k, v in paired.state_dict().items() if "expert." not in k})
    calls = counted(paired.expert.encoder)
    L = torch.rand(2, 1, 64, 64) * 100
    with torch.no_grad():
        assert torch.equal(paired(L), base(L)) and calls[0] == 0
        paired.expert.gate.bias.fill_(2.0)  # clamped to 1: the expert alone
        got, want = paired(L).log_softmax(1), other(L).log_softmax(1)
        assert torch.allclose(got, want, atol=1e-4) and calls[0] == 1
    with pytest.raises(ValueError, match="needs expert=True"):
        tiny(expert_encoder=True)


def test_the_expert_is_not_trained_and_a_config_cannot_ask_for_one():
    from training.config import ConfigError, load_config

    model = tiny(expert=True).train()
    assert not any(p.requires_grad for p in model.expert.parameters())
    assert not model.expert.training  # its BN statistics stay the trained decoder's
    with pytest.raises(ConfigError, match="add-expert"):
        load_config(None, ['model="effunet_tiny"', "model_args.expert=true"])


def grey_painter(path: Path) -> Path:
    """``painter``'s model (same seed: the same ImageNet encoder) with a head that prefers
    the gray bins: the expert for fog."""
    model, _ = load_checkpoint(painter(path))
    with torch.no_grad():
        centers = model.bins.centers  # (Q, 2)
        model.head.bias.copy_(-(centers**2).sum(1) / 200)
    save_checkpoint(path, model)
    return path


def test_add_expert_keeps_the_base_and_refuses_another_encoder(tmp_path, caplog):
    base, expert = painter(tmp_path / "base.pt"), grey_painter(tmp_path / "grey.pt")
    out = tmp_path / "pair.pt"
    assert cli(["add-expert", "--base", str(base), "--expert", str(expert), "--out", str(out)]) == 0
    pair, meta = load_checkpoint(out)
    b, _ = load_checkpoint(base)
    e, _ = load_checkpoint(expert)
    assert pair.arch_args["expert"] and "expert" in meta["train"]
    assert torch.equal(pair.expert.head.bias, e.head.bias)
    L = torch.rand(1, 1, 48, 48) * 100
    with torch.no_grad():
        assert torch.equal(pair(L), b(L))  # the gate shut: the base, bit for bit
    # a decoder grown on another encoder reads other features: refused, nothing written
    other = create_model("effunet_tiny", decoder=(32, 8, 8, 8), input_size=(48, 48))
    bad = save_checkpoint(tmp_path / "other.pt", other)
    args = [
        "add-expert",
        "--base",
        str(base),
        "--expert",
        str(bad),
        "--out",
        str(tmp_path / "x.pt"),
    ]
    assert cli(args) == 2
    assert "not trained on" in caplog.text and not (tmp_path / "x.pt").exists()
    # ... unless it brings that encoder along: the pair, fully open, is that model
    own = tmp_path / "own.pt"
    assert cli([*args[:-1], str(own), "--own-encoder"]) == 0
    pair, _ = load_checkpoint(own)
    assert pair.arch_args["expert_encoder"]
    with torch.no_grad():
        assert torch.equal(pair(L), b(L))  # shut: the base
        pair.expert.gate.bias.fill_(2.0)
        assert torch.allclose(pair(L).log_softmax(1), other.eval()(L).log_softmax(1), atol=1e-4)
    narrow = save_checkpoint(tmp_path / "narrow.pt", create_model("effunet_tiny"))
    args[4] = str(narrow)
    caplog.clear()
    assert cli(args) == 2 and "its decoder is not" in caplog.text
    args[4] = str(save_checkpoint(tmp_path / "cnn.pt", create_model("colornet_tiny")))
    caplog.clear()
    assert cli(args) == 2 and "holds a 'colornet_tiny'" in caplog.text


def test_add_expert_replaces_an_expert_only_when_told(tmp_path, caplog):
    """The shipped default has an expert: a new one for it is refused, unless --replace,
    which drops the old expert and its gate and keeps the base decoder bit for bit."""
    base, expert = painter(tmp_path / "base.pt"), grey_painter(tmp_path / "grey.pt")
    pair = tmp_path / "pair.pt"
    assert (
        cli(["add-expert", "--base", str(base), "--expert", str(expert), "--out", str(pair)]) == 0
    )
    model, meta = load_checkpoint(pair)
    with torch.no_grad():
        model.expert.gate.bias.fill_(1.0)  # open, as a fitted gate would be
    save_checkpoint(pair, model, train=meta["train"], metrics={**meta["metrics"], "gate": {"q": 0}})
    torch.manual_seed(5)
    other = create_model("effunet_tiny", **model.arch_args | {"expert": False})
    other.load_state_dict(load_checkpoint(base)[0].state_dict())
    with torch.no_grad():
        other.head.bias.add_(torch.randn_like(other.head.bias))
    second = save_checkpoint(tmp_path / "second.pt", other)
    args = ["add-expert", "--base", str(pair), "--expert", str(second), "--out"]
    assert cli([*args, str(tmp_path / "x.pt")]) == 2
    assert "has an expert already" in caplog.text and not (tmp_path / "x.pt").exists()
    out = tmp_path / "again.pt"
    assert cli([*args, str(out), "--replace"]) == 0
    again, again_meta = load_checkpoint(out)
    assert torch.equal(again.expert.head.bias, other.head.bias)  # the new expert
    assert float(again.expert.gate.bias) == 0.0 and "gate" not in again_meta["metrics"]
    L = torch.rand(1, 1, 48, 48) * 100
    with torch.no_grad():
        assert torch.equal(again(L), load_checkpoint(base)[0](L))  # shut: the base decoder


def test_fit_gate_sends_the_fog_to_the_grey_expert_and_keeps_the_clear_sky(weather, tmp_path):  # noqa: F811
    base, expert = painter(tmp_path / "base.pt"), grey_painter(tmp_path / "grey.pt")
    pair, gated = tmp_path / "pair.pt", tmp_path / "gated.pt"
    assert (
        cli(["add-expert", "--base", str(base), "--expert", str(expert), "--out", str(pair)]) == 0
    )
    args = ["fit-gate", "--ckpt", str(pair), "--data", str(weather), "--out", str(gated)]
    assert cli([*args, "--limit", "0"]) == 0
    model, meta = load_checkpoint(gated)
    record = meta["metrics"]["gate"]
    assert record["quantile"] is not None and 0 < record["open_share"] < 1
    assert record["psnr_db"]["gated"] > record["psnr_db"]["shut"] + 3  # measured +5.8
    assert (tmp_path / "gated_gate.csv").exists()
    # the gate written is the setting chosen: its shares on val are the fit's
    from training.data import load_images
    from training.gate import pair_outputs

    g = torch.cat([b[1] for b in pair_outputs(model, load_images(str(weather), "val"))])
    with torch.no_grad():
        gamma = model.expert.weight(g)
    assert float(gamma.mean()) == pytest.approx(record["gamma_mean_val"], abs=1e-4)
    assert float((gamma > 0).float().mean()) == pytest.approx(record["open_share"], abs=1e-4)

    before, after = Colorizer(base, device="cpu"), Colorizer(gated, device="cpu")
    fog_kept = chroma(after, weather, "fog") / chroma(before, weather, "fog")
    clear_kept = chroma(after, weather, "clear") / chroma(before, weather, "clear")
    # measured 0.58 and 0.99: the guard (no source loses 0.1 dB) keeps the gate half open on
    # fog, where fully open would cost the clear sky 0.3 dB
    assert fog_kept < 0.7 and clear_kept > 0.95


def test_fit_gate_refuses_a_model_without_an_expert(weather, tmp_path, caplog):  # noqa: F811
    base = painter(tmp_path / "base.pt")
    args = [
        "fit-gate",
        "--ckpt",
        str(base),
        "--data",
        str(weather),
        "--out",
        str(tmp_path / "g.pt"),
    ]
    assert cli(args) == 2
    assert "add-expert" in caplog.text and not (tmp_path / "g.pt").exists()


def test_decoding_a_gated_logit_pair_is_the_models_own_decode():
    """training.gate scores its settings from the two decoders' logits; that decode must be
    the network's forward with the same gate (and tilt)."""
    from training.gate import decode_gated

    model = tiny(expert=True, gray_tilt=True)
    with torch.no_grad():
        model.expert.gate.bias.fill_(0.3)
        model.gray_tilt.strength.bias.fill_(0.2)
        L = torch.rand(2, 1, 64, 64) * 100
        f, g = model.encode(L)
        pair = torch.cat(model.decoders(f, g), 1)
        got = decode_gated(model, pair, model.expert.weight(g), g)
        want = output_to_ab(model, model(L), model.decoding.temperature)
    assert torch.allclose(got, want, atol=1e-3)
