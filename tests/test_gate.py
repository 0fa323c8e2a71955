"""The expert decoders (colorizer.models.effunet.Expert, training.gate): a shut gate is the base
model bit for bit and never runs its expert, open ones mix their experts' distributions in,
``add-expert`` appends a decoder and refuses one grown on another encoder, a version-2 file's
one expert loads as the first of the list, and ``fit-gate`` learns from photos made here which
scenes want an expert, the other gates kept."""

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
    base, paired = tiny(), tiny(experts=("shared",))
    paired.load_state_dict(base.state_dict(), strict=False)  # the expert keeps its own init
    calls = counted(paired.experts[0].head)
    L = torch.rand(2, 1, 64, 64) * 100
    with torch.no_grad():
        assert torch.equal(base(L), paired(L))
        assert calls[0] == 0
        paired.experts[0].gate.bias.fill_(-0.5)  # clamped to 0: still shut
        assert torch.equal(base(L), paired(L)) and calls[0] == 0


def test_an_open_gate_mixes_the_experts_distribution_in():
    paired = tiny(experts=("shared",))
    alone = tiny()  # the expert's decoder as a model of its own
    own = {k: v for k, v in paired.state_dict().items() if k.startswith("encoder.")}
    expert = {k: v for k, v in paired.experts[0].state_dict().items() if not k.startswith("gate.")}
    alone.load_state_dict({**own, **expert})
    L = torch.rand(2, 1, 64, 64) * 100
    with torch.no_grad():
        base = paired(L)
        paired.experts[0].gate.bias.fill_(2.0)  # clamped to 1: the expert alone
        assert torch.allclose(paired(L).log_softmax(1), alone(L).log_softmax(1), atol=1e-4)
        paired.experts[0].gate.bias.fill_(0.25)
        mixed = paired(L).log_softmax(1)
        want = (0.75 * base.log_softmax(1) + 0.25 * alone(L).log_softmax(1)).log_softmax(1)
        assert torch.allclose(mixed, want, atol=1e-4)


def test_a_photo_whose_gate_is_shut_is_the_base_in_any_batch():
    """A batch where one photo opens the gate runs the expert for all: the shut photo must
    still come out as the base's, as it would alone (and the open one as alone too)."""
    torch.manual_seed(0)
    paired = create_model("effunet_tiny", experts=("shared",)).eval()
    paired.load_pretrained_encoder()  # distinct photos get distinct scene vectors
    L = torch.stack([torch.linspace(0, 100, 64).expand(64, 64), torch.rand(64, 64) * 100])[:, None]
    with torch.no_grad():
        g = paired.encode(L)[1]
        d = g[0] - g[1]
        w = 0.5 * d / d.dot(d)  # w . g0 - w . g1 = 0.5
        paired.experts[0].gate.weight[0] = w
        paired.experts[0].gate.bias.fill_(float(0.49 - w.dot(g[0])))
        gamma = paired.experts[0].weight(g)
        assert gamma[0] == pytest.approx(0.49, abs=1e-3) and gamma[1] == 0
        both = paired(L)
        assert torch.allclose(both[1], paired(L[1:])[0], atol=1e-4)  # the shut one: the base
        assert torch.allclose(both[0], paired(L[:1])[0], atol=1e-4)
        calls = counted(paired.experts[0].head)
        paired(L[1:])
        assert calls[0] == 0  # alone, the shut photo never runs the expert


def test_an_expert_with_its_own_encoder_is_that_model_where_open_and_never_runs_where_shut():
    """An "own" expert: a decoder grown on another encoder brings it along; fully open, the pair
    is that other model exactly; shut, the base, without a pass through the second encoder."""
    paired, other = tiny(experts=("own",)), tiny()
    torch.manual_seed(1)
    for p in other.encoder.parameters():  # another encoder than the base's
        p.data.add_(0.1 * torch.randn_like(p))
    expert = {k: v for k, v in paired.experts[0].state_dict().items() if not k.startswith("gate.")}
    other.load_state_dict(expert)  # its encoder and decoder are the expert's
    base = tiny()
    base.load_state_dict({k: v for k, v in paired.state_dict().items() if "experts." not in k})
    calls = counted(paired.experts[0].encoder)
    L = torch.rand(2, 1, 64, 64) * 100
    with torch.no_grad():
        assert torch.equal(paired(L), base(L)) and calls[0] == 0
        paired.experts[0].gate.bias.fill_(2.0)  # clamped to 1: the expert alone
        got, want = paired(L).log_softmax(1), other(L).log_softmax(1)
        assert torch.allclose(got, want, atol=1e-4) and calls[0] == 1
    with pytest.raises(ValueError, match="experts must each be one of"):
        tiny(experts=("mine",))
    assert tiny(experts="own").arch_args["experts"] == ("own",)  # one name (--set), not letters


def test_the_expert_is_not_trained_and_a_config_cannot_ask_for_one():
    from training.config import ConfigError, load_config

    model = tiny(experts=("shared", "own")).train()
    assert not any(p.requires_grad for p in model.experts.parameters())
    assert not any(m.training for m in model.experts.modules())  # BN: the trained decoders'
    with pytest.raises(ConfigError, match="add-expert"):
        load_config(None, ['model="effunet_tiny"', 'model_args.experts=["shared"]'])


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
    assert pair.arch_args["experts"] == ("shared",) and "expert" in meta["train"]
    assert torch.equal(pair.experts[0].head.bias, e.head.bias)
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
    assert pair.arch_args["experts"] == ("own",)
    with torch.no_grad():
        assert torch.equal(pair(L), b(L))  # shut: the base
        pair.experts[0].gate.bias.fill_(2.0)
        assert torch.allclose(pair(L).log_softmax(1), other.eval()(L).log_softmax(1), atol=1e-4)
    narrow = save_checkpoint(tmp_path / "narrow.pt", create_model("effunet_tiny"))
    args[4] = str(narrow)
    caplog.clear()
    assert cli(args) == 2 and "its decoder is not" in caplog.text
    args[4] = str(save_checkpoint(tmp_path / "cnn.pt", create_model("colornet_tiny")))
    caplog.clear()
    assert cli(args) == 2 and "holds a 'colornet_tiny'" in caplog.text


def perturbed(base: Path, path: Path, seed: int) -> Path:
    """``base``'s model, its head's bias moved at random: another trained decoder on its
    encoder."""
    model, _ = load_checkpoint(base)
    torch.manual_seed(seed)
    with torch.no_grad():
        model.head.bias.add_(torch.randn_like(model.head.bias))
    return save_checkpoint(path, model)


def test_add_expert_appends_and_replace_drops_the_experts_first(tmp_path):
    """The shipped default has an expert: a new one is appended, its gate shut, the first
    expert, its gate and its records kept (the file colorizes as before); --replace drops
    them all and keeps the base decoder bit for bit."""
    base, expert = painter(tmp_path / "base.pt"), grey_painter(tmp_path / "grey.pt")
    pair = tmp_path / "pair.pt"
    assert (
        cli(["add-expert", "--base", str(base), "--expert", str(expert), "--out", str(pair)]) == 0
    )
    model, meta = load_checkpoint(pair)
    with torch.no_grad():
        model.experts[0].gate.bias.fill_(0.5)  # open, as a fitted gate would be
    save_checkpoint(pair, model, train=meta["train"], metrics={**meta["metrics"], "gate": {"q": 0}})
    second = perturbed(base, tmp_path / "second.pt", 5)
    other, _ = load_checkpoint(second)
    args = ["add-expert", "--base", str(pair), "--expert", str(second), "--out"]
    two = tmp_path / "two.pt"
    assert cli([*args, str(two)]) == 0
    both, both_meta = load_checkpoint(two)
    assert both.arch_args["experts"] == ("shared", "shared")
    assert torch.equal(both.experts[1].head.bias, other.head.bias)  # the new expert, shut
    assert float(both.experts[1].gate.bias) == 0.0 and float(both.experts[0].gate.bias) == 0.5
    assert both_meta["metrics"]["gate"] == {"q": 0} and {"expert", "expert1"} <= set(
        both_meta["metrics"]
    )
    L = torch.rand(1, 1, 48, 48) * 100
    with torch.no_grad():
        assert torch.equal(both(L), model(L))  # the first expert's gate as it was
    out = tmp_path / "again.pt"
    replace = ["add-expert", "--base", str(two), "--expert", str(second), "--out", str(out)]
    assert cli([*replace, "--replace"]) == 0
    again, again_meta = load_checkpoint(out)
    assert again.arch_args["experts"] == ("shared",)
    assert torch.equal(again.experts[0].head.bias, other.head.bias)  # the new expert
    assert float(again.experts[0].gate.bias) == 0.0
    assert not {"gate", "expert1"} & set(again_meta["metrics"])
    with torch.no_grad():
        assert torch.equal(again(L), load_checkpoint(base)[0](L))  # shut: the base decoder


def test_two_experts_mix_by_their_gates_and_a_shut_one_is_never_run():
    """log p = base + sum_i gamma_i (log p_i - log p_base), the shares scaled down to sum to 1
    where they pass it; an expert whose gate is shut for the whole batch is not run."""
    model = tiny(experts=("shared", "own"))
    torch.manual_seed(3)
    with torch.no_grad():
        for p in model.experts.parameters():
            p.add_(0.05 * torch.randn_like(p))
    calls = [counted(e.head) for e in model.experts]
    L = torch.rand(2, 1, 64, 64) * 100

    def at(g0: float, g1: float) -> torch.Tensor:
        model.experts[0].gate.bias.fill_(g0)
        model.experts[1].gate.bias.fill_(g1)
        return model(L).log_softmax(1)

    with torch.no_grad():
        for e in model.experts:
            e.gate.weight.zero_()
        base, one, two = at(0, 0), at(1, 0), at(0, 1)  # each alone
        assert [c[0] for c in calls] == [1, 1]  # shut, neither ran; alone, only its own
        want = (0.5 * base + 0.2 * one + 0.3 * two).log_softmax(1)
        assert torch.allclose(at(0.2, 0.3), want, atol=1e-4)
        want = (0.4 * one + 0.6 * two).log_softmax(1)  # 0.6 + 0.9 > 1: scaled to 0.4, 0.6
        assert torch.allclose(at(0.6, 0.9), want, atol=1e-4)


def test_a_version_2_file_with_one_expert_loads_as_the_first_of_the_list(tmp_path):
    """Files written before the list held ``expert`` / ``expert_encoder`` and keys under
    ``expert.``: they load as the list's first expert and colorize exactly as they did."""
    for kind in ("shared", "own"):
        model = tiny(experts=(kind,))
        with torch.no_grad():
            model.experts[0].gate.bias.fill_(0.4)
        path = save_checkpoint(tmp_path / f"{kind}.pt", model)
        raw = torch.load(path, weights_only=True)
        args = {k: v for k, v in raw["arch_args"].items() if k != "experts"}
        raw.update(
            version=2,
            arch_args={**args, "expert": True, "expert_encoder": kind == "own"},
            state_dict={
                k.replace("experts.0.", "expert."): v for k, v in raw["state_dict"].items()
            },
        )
        torch.save(raw, path)
        loaded, meta = load_checkpoint(path)
        assert loaded.arch_args["experts"] == (kind,) and meta["version"] == 3
        L = torch.rand(2, 1, 64, 64) * 100
        with torch.no_grad():
            assert torch.equal(loaded(L), model(L))


def test_fit_gate_fits_the_last_expert_and_keeps_the_others(weather, tmp_path):  # noqa: F811
    """Two experts: a perturbed copy of the base (its gate shut) and a grey one; fit-gate
    fits the last added, sends the fog to it and keeps the clear sky, and leaves the first
    expert's gate as it was."""
    base, expert = painter(tmp_path / "base.pt"), grey_painter(tmp_path / "grey.pt")
    first, pair, gated = tmp_path / "first.pt", tmp_path / "pair.pt", tmp_path / "gated.pt"
    noise = perturbed(base, tmp_path / "noise.pt", 7)
    for b, e, out in ((base, noise, first), (first, expert, pair)):
        assert cli(["add-expert", "--base", str(b), "--expert", str(e), "--out", str(out)]) == 0
    args = ["fit-gate", "--ckpt", str(pair), "--data", str(weather), "--out", str(gated)]
    assert cli([*args, "--limit", "0"]) == 0
    model, meta = load_checkpoint(gated)
    record = meta["metrics"]["gate1"]
    assert "gate" not in meta["metrics"] and record["expert"] == 1
    assert record["quantile"] is not None and 0 < record["open_share"] < 1
    assert record["psnr_db"]["gated"] > record["psnr_db"]["shut"] + 3  # measured +5.8
    assert (tmp_path / "gated_gate1.csv").exists()
    assert not model.experts[0].gate.weight.any() and float(model.experts[0].gate.bias) == 0
    # the gate written is the setting chosen: its shares on val are the fit's
    from training.data import load_images
    from training.gate import decoder_outputs

    g = torch.cat([b[1] for b in decoder_outputs(model, load_images(str(weather), "val"))])
    with torch.no_grad():
        gamma = model.experts[1].weight(g)
    assert float(gamma.mean()) == pytest.approx(record["gamma_mean_val"], abs=1e-4)
    assert float((gamma > 0).float().mean()) == pytest.approx(record["open_share"], abs=1e-4)

    before, after = Colorizer(base, device="cpu"), Colorizer(gated, device="cpu")
    fog_kept = chroma(after, weather, "fog") / chroma(before, weather, "fog")
    clear_kept = chroma(after, weather, "clear") / chroma(before, weather, "clear")
    # measured 0.58 and 0.99: the guard (no source loses 0.1 dB) keeps the gate half open on
    # fog, where fully open would cost the clear sky 0.3 dB
    assert fog_kept < 0.7 and clear_kept > 0.95
    # no expert 5 to fit
    assert cli([*args, "--expert", "5"]) == 2


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

    model = tiny(experts=("shared",), gray_tilt=2)
    with torch.no_grad():
        model.experts[0].gate.bias.fill_(0.3)
        model.gray_tilt.strength.bias.fill_(0.2)  # both heads: beta 0.4
        L = torch.rand(2, 1, 64, 64) * 100
        f, g = model.encode(L)
        base, experts = model.decoders(f, g)
        stack = torch.cat([base, *experts], 1)
        got = decode_gated(model, 0, stack, model.experts[0].weight(g), g)
        want = output_to_ab(model, model(L), model.decoding.temperature)
    assert torch.allclose(got, want, atol=1e-3)


def test_a_gate_is_fitted_with_every_tilt_head_off(tmp_path):
    """fit-gate switches the tilt off for its fit: every head of it, not only the last."""
    from training.gate import gateable

    model = tiny(experts=("shared",), gray_tilt=2)
    with torch.no_grad():
        model.gray_tilt.strength.bias.copy_(torch.tensor([0.5, 0.3]))
    path = save_checkpoint(tmp_path / "two_heads.pt", model)
    got, _ = gateable(str(path), 0)
    assert (
        float(got.gray_tilt.beta(torch.randn(4, got.gray_tilt.strength.in_features)).abs().max())
        == 0.0
    )


def test_extract_expert_and_put_it_back_at_its_place(tmp_path, caplog):
    """extract-expert gives an expert as a model of its own (that decoder, on the base's
    encoder); add-expert --at puts a decoder trained on from it in that expert's place, its
    gate, its kind and the other experts kept: put back unchanged, the file is the same bit
    for bit."""
    base, grey = painter(tmp_path / "base.pt"), grey_painter(tmp_path / "grey.pt")
    pair = tmp_path / "pair.pt"
    assert cli(["add-expert", "--base", str(base), "--expert", str(grey), "--out", str(pair)]) == 0
    second = perturbed(base, tmp_path / "second.pt", 5)
    two = tmp_path / "two.pt"
    assert cli(["add-expert", "--base", str(pair), "--expert", str(second), "--out", str(two)]) == 0
    model, meta = load_checkpoint(two)
    with torch.no_grad():  # both gates open, as fitted ones would be
        model.experts[0].gate.bias.fill_(0.4)
        model.experts[1].gate.bias.fill_(0.3)
    save_checkpoint(two, model, train=meta["train"], metrics={**meta["metrics"], "gate": {"q": 1}})
    alone = tmp_path / "alone.pt"
    assert cli(["extract-expert", "--ckpt", str(two), "--expert", "0", "--out", str(alone)]) == 0
    e, e_meta = load_checkpoint(alone)
    g, _ = load_checkpoint(grey)
    L = torch.rand(1, 1, 48, 48) * 100
    with torch.no_grad():
        assert e.arch_args["experts"] == () and torch.allclose(e(L), g(L), atol=1e-5)
    back = tmp_path / "back.pt"
    put = ["add-expert", "--base", str(two), "--expert", str(alone), "--out", str(back), "--at"]
    assert cli([*put, "0"]) == 0
    same, same_meta = load_checkpoint(back)
    mine, theirs = load_checkpoint(two)[0].state_dict(), same.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert same_meta["metrics"]["gate"] == {"q": 1}
    # a decoder trained on goes in that place only: expert 1 and both gates as they were
    moved = perturbed(alone, tmp_path / "moved.pt", 7)
    assert cli([*put[:4], str(moved), *put[5:], "0"]) == 0
    new, _ = load_checkpoint(back)
    assert torch.equal(new.experts[0].head.bias, load_checkpoint(moved)[0].head.bias)
    assert not torch.equal(new.experts[0].head.bias, model.experts[0].head.bias)
    assert torch.equal(new.experts[1].head.bias, model.experts[1].head.bias)
    assert float(new.experts[0].gate.bias) == pytest.approx(0.4)
    new_meta = load_checkpoint(back)[1]  # the replaced expert's record kept as its lineage
    assert new_meta["train"]["expert"]["previous"] == meta["train"]["expert"]
    assert new_meta["train"]["expert1"] == meta["train"]["expert1"]
    caplog.clear()
    assert cli([*put, "2"]) == 2 and "no expert 2" in caplog.text
    caplog.clear()
    assert cli([*put, "0", "--replace"]) == 2 and "--at puts one back" in caplog.text
    caplog.clear()
    assert cli([*put, "-2", "--own-encoder"]) == 2 and "drop --own-encoder" in caplog.text
    caplog.clear()
    assert cli(["extract-expert", "--ckpt", str(base), "--expert", "0", "--out", str(alone)]) == 2
    assert "no expert 0" in caplog.text


def test_seen_photos_scores_each_decoder_on_train_and_test_photos(weather, tmp_path):  # noqa: F811
    """reports.seen_photos: the sky-blue base loses to the grey expert on the fog, on the
    photos it trained on as on the held-back ones; with the gate fully open the mixture is
    the expert."""
    from reports.seen_photos import main

    base, grey = painter(tmp_path / "base.pt"), grey_painter(tmp_path / "grey.pt")
    pair = tmp_path / "pair.pt"
    assert cli(["add-expert", "--base", str(base), "--expert", str(grey), "--out", str(pair)]) == 0
    model, meta = load_checkpoint(pair)
    with torch.no_grad():
        model.experts[0].gate.bias.fill_(5.0)  # open on every photo
    save_checkpoint(pair, model, train=meta["train"], metrics=meta["metrics"])
    md = tmp_path / "seen.md"
    args = ["--ckpt", str(pair), "--data", str(weather), "--sources", "*/fog", "--limit", "6"]
    assert main([*args, "--out", str(md)]) == 0
    rows = [line.split(" | ") for line in md.read_text().splitlines() if "| img/fog |" in line]
    header = next(line for line in md.read_text().splitlines() if line.startswith("| source"))
    cols = [c.strip("| ") for c in header.split(" | ")]
    assert {r[1] for r in rows} == {"train", "test"}
    for r in rows:
        cell = dict(zip(cols, r, strict=True))
        assert float(cell["expert 1"]) > float(cell["base"]) + 1.0  # grey fog wants grey
        assert float(cell["mixture"]) == pytest.approx(float(cell["expert 1"]), abs=0.02)
    assert main([*args[:-3], "*/mist"]) == 2
    assert main([*args[:-1], "0"]) == 0  # 0: every photo of each split
