"""The gray tilt (colorizer.models.effunet.GrayTilt, training.tilt): an unfitted head changes
nothing, a fitted one pulls grey scenes towards gray and leaves hinted photos alone, and
``python -m training fit-tilt`` learns from photos made here which scenes are grey."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorizer.bins import output_to_ab
from colorizer.checkpoint import save_checkpoint
from colorizer.inference import Colorizer
from colorizer.models import create_model, load_checkpoint
from training.__main__ import main as cli
from training.prepare import PrepareConfig, prepare


def tiny(**kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("effunet_tiny", **kw).eval()


def test_an_unfitted_tilt_changes_nothing_and_a_fitted_one_greys():
    plain, tilted = tiny(), tiny(gray_tilt=True)
    tilted.load_state_dict(plain.state_dict(), strict=False)  # the tilt head stays zero
    L = torch.rand(2, 1, 64, 64) * 100
    with torch.no_grad():
        assert torch.equal(plain(L), tilted(L))
        tilted.gray_tilt.strength.bias.fill_(0.5)  # beta 0.5 for every photo
        ab_plain = output_to_ab(plain, plain(L))
        ab_tilted = output_to_ab(tilted, tilted(L))
    chroma = lambda ab: ab.norm(dim=1).mean()  # noqa: E731
    assert chroma(ab_tilted) < 0.5 * chroma(ab_plain)
    assert tilted.gray_tilt.beta(torch.zeros(3, 8)).tolist() == [0.5, 0.5, 0.5]
    tilted.gray_tilt.strength.bias.fill_(-1.0)  # relu: never a push away from gray
    assert tilted.gray_tilt.beta(torch.zeros(1, 8)).tolist() == [0.0]


def test_hints_overrule_the_tilt_photo_by_photo():
    model = tiny(gray_tilt=True, hints=True)
    ref = tiny(hints=True)
    ref.load_state_dict(model.state_dict(), strict=False)
    with torch.no_grad():
        model.gray_tilt.strength.bias.fill_(1.0)
        L, hints = torch.rand(2, 1, 64, 64) * 100, torch.zeros(2, 3, 64, 64)
        hints[0, :, 30:33, 30:33] = torch.tensor([0.5, -0.3, 1.0])[:, None, None]
        got, plain = model(L, hints), ref(L, hints)
        assert torch.equal(got[0], plain[0])  # the hinted photo: the user's colours rule
        assert not torch.equal(got[1], plain[1])  # its unhinted neighbour is still tilted
        assert torch.allclose(got[1], model(L[1:])[0], atol=1e-3)  # as if it came alone
        assert not torch.equal(model(L), ref(L))


def test_a_training_config_cannot_switch_the_tilt_on():
    from training.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="fit-tilt"):
        load_config(None, ['model="effunet_tiny"', "model_args.gray_tilt=true"])


def test_the_tilt_is_not_trained_with_the_network():
    model = tiny(gray_tilt=True)
    assert not any(p.requires_grad for p in model.gray_tilt.parameters())
    assert any(p.requires_grad for p in model.head.parameters())


def photos(folder: Path, n: int, seed: int, foggy: bool) -> None:
    """Clear skies (blue, brighter towards the top) or fog (the same gradient, washed to a
    pale, low-contrast near-gray with a trace of tint: the prepare step drops pure B&W)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        ramp = np.linspace(1.1, 0.8, 40)[:, None, None] * rng.uniform(0.85, 1.0)
        base = [196, 198, 202] if foggy else [90, 150, 240]
        a = np.broadcast_to(np.asarray(base, np.float32) * ramp, (40, 40, 3)).copy()
        a += rng.normal(0, 4 if foggy else 10, a.shape)
        Image.fromarray(a.clip(0, 255).astype(np.uint8)).save(folder / f"{i:03d}.png")


@pytest.fixture(scope="module")
def weather(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("weather")
    photos(root / "img" / "clear", 60, 0, foggy=False)
    photos(root / "img" / "fog", 60, 1, foggy=True)
    images = [str(root / "img" / "clear"), str(root / "img" / "fog")]
    prepare(PrepareConfig(images=images, out=str(root / "data"), size=(32, 32), val_fraction=0.3))
    return root / "data"


def chroma(c: Colorizer, weather: Path, folder: str) -> float:
    """Mean HSV saturation of ``c``'s colorizations of 8 of the fixture's ``folder`` photos."""
    imgs = sorted((weather.parent / "img" / folder).glob("*.png"))[:8]
    return float(np.mean([np.asarray(c.colorize(p).convert("HSV"))[..., 1].mean() for p in imgs]))


def painter(path: Path) -> Path:
    """A model that paints every photo sky-blue: right on a clear day, wrong in fog. The
    ImageNet encoder (so the scene vector can tell fog from a clear day), a decoder whose head
    prefers the blue bins; its working size is not the prepared photos' (the fit resizes)."""
    torch.manual_seed(0)
    model = create_model("effunet_tiny", decoder=(32, 8, 8, 8), input_size=(48, 48)).eval()
    model.load_pretrained_encoder()
    with torch.no_grad():
        centers = model.bins.centers  # (Q, 2)
        model.head.bias.copy_(-((centers - torch.tensor([0.0, -30.0])) ** 2).sum(1) / 200)
    save_checkpoint(path, model)
    return path


def test_fit_tilt_greys_the_fog_and_keeps_the_clear_sky(weather, tmp_path):
    ckpt, out = painter(tmp_path / "painter.pt"), tmp_path / "tilted.pt"
    args = ["fit-tilt", "--ckpt", str(ckpt), "--data", str(weather), "--out", str(out)]
    assert cli([*args, "--limit", "0"]) == 0
    model, meta = load_checkpoint(out)
    record = meta["metrics"]["gray_tilt"]
    assert model.arch_args["gray_tilt"] and record["quantile"] is not None
    assert record["psnr_db"]["tilted"] > record["psnr_db"]["untilted"]
    assert record["working_size"] == [48, 48]
    # the head written is the setting chosen: its mean beta on val is the fit's
    from training.data import load_images
    from training.tilt import scene_outputs

    g = torch.cat([b[1] for b in scene_outputs(model, load_images(str(weather), "val"))])
    with torch.no_grad():
        assert float(model.gray_tilt.beta(g).mean()) == pytest.approx(
            record["beta_mean_val"], abs=1e-4
        )
    rows = list(csv.DictReader((tmp_path / "tilted_tilt.csv").open()))
    assert {r["source"].rsplit("/", 1)[-1] for r in rows} == {"clear", "fog"}
    assert sum(r["chosen"] == "1" for r in rows) == 2  # one offset, both sources

    before, after = Colorizer(ckpt, device="cpu"), Colorizer(out, device="cpu")
    fog_kept = chroma(after, weather, "fog") / chroma(before, weather, "fog")
    clear_kept = chroma(after, weather, "clear") / chroma(before, weather, "clear")
    assert fog_kept < 0.45 and clear_kept > 0.9  # measured: 0.29 and 0.97 (ridge: 0.61, 1.0)


def test_fit_tilt_refuses_a_model_without_a_distribution(weather, tmp_path, caplog):
    reg = create_model("streetside_tiny")
    path = save_checkpoint(tmp_path / "reg.pt", reg)
    out = tmp_path / "x.pt"
    args = ["fit-tilt", "--ckpt", str(path), "--data", str(weather), "--out", str(out)]
    assert cli(args) == 2
    assert "effunet-family class model" in caplog.text and not out.exists()


def test_a_tilt_of_two_heads_pulls_by_the_sum_of_their_relus():
    model = tiny(gray_tilt=2)
    assert model.gray_tilt.strength.weight.shape[0] == 2 and tiny(gray_tilt=True).gray_tilt.strength.out_features == 1  # fmt: skip
    with torch.no_grad():
        model.gray_tilt.strength.bias.copy_(torch.tensor([0.5, -0.2]))
        model.gray_tilt.strength.weight[1, 0] = 1.0  # the second head reads g[0]
    g = torch.zeros(3, 8)
    g[:, 0] = torch.tensor([0.0, 0.2, 1.0])
    assert model.gray_tilt.beta(g).tolist() == pytest.approx([0.5, 0.5, 1.3])


def test_the_fits_see_the_logits_before_any_tilt_the_file_has():
    """scene_outputs caches the untilted logits: --add-head adds the kept heads' strength
    itself, so logits that carried it already would count it twice."""
    from training.tilt import scene_outputs

    tilted, plain = tiny(gray_tilt=True), tiny()
    plain.load_state_dict(tilted.state_dict(), strict=False)
    with torch.no_grad():
        tilted.gray_tilt.strength.bias.fill_(2.0)
    images = (torch.rand(3, 40, 40, 3) * 255).to(torch.uint8)
    got = next(scene_outputs(tilted, images))[2]
    want = next(scene_outputs(plain, images))[2]
    assert torch.equal(got, want)


def test_fit_tilt_add_head_keeps_the_first_and_pulls_further(weather, tmp_path, caplog):
    ckpt, first = painter(tmp_path / "painter.pt"), tmp_path / "first.pt"
    base = ["fit-tilt", "--data", str(weather), "--limit", "0"]
    assert cli([*base, "--ckpt", str(ckpt), "--out", str(first)]) == 0
    model, meta = load_checkpoint(first)
    with torch.no_grad():  # a first head that pulls a fifth as hard as it should
        model.gray_tilt.strength.weight.mul_(0.2)
        model.gray_tilt.strength.bias.mul_(0.2)
    weak = save_checkpoint(tmp_path / "weak.pt", model, metrics=meta["metrics"])
    out = tmp_path / "two.pt"
    assert cli([*base, "--ckpt", str(weak), "--out", str(out), "--add-head"]) == 0
    two, meta2 = load_checkpoint(out)
    assert two.arch_args["gray_tilt"] == 2
    assert torch.equal(two.gray_tilt.strength.weight[0], model.gray_tilt.strength.weight[0])
    assert torch.equal(two.gray_tilt.strength.bias[0], model.gray_tilt.strength.bias[0])
    assert meta2["metrics"]["gray_tilt"] == meta["metrics"]["gray_tilt"]  # the first's record
    record = meta2["metrics"]["gray_tilt_head2"]
    assert record["quantile"] is not None  # the weak pull leaves fog to grey
    assert record["psnr_db"]["tilted"] > record["psnr_db"]["untilted"]
    assert (tmp_path / "two_tilt_added.csv").is_file()
    before, after = Colorizer(weak, device="cpu"), Colorizer(out, device="cpu")
    fog_kept = chroma(after, weather, "fog") / chroma(before, weather, "fog")
    clear_kept = chroma(after, weather, "clear") / chroma(before, weather, "clear")
    assert fog_kept < 0.95 and clear_kept > 0.95, (fog_kept, clear_kept)  # measured: 0.89
    caplog.clear()  # a file without a fitted tilt has nothing to add a head to
    assert cli([*base, "--ckpt", str(ckpt), "--out", str(tmp_path / "x.pt"), "--add-head"]) == 2
    assert "needs a fitted gray tilt" in caplog.text and not (tmp_path / "x.pt").exists()


def test_the_choice_greys_fog_but_not_the_vivid_sources():
    from training.tilt import choose_offset
    from training.validate import Scores

    def sc(fog, land, tiny):  # (PSNR, colourfulness) per source
        srcs = {"fog": fog, "land": land, "tiny": tiny}
        per = {k: dict(psnr_db=p, colorfulness=c) for k, (p, c) in srcs.items()}
        pooled = dict(colorfulness=sum(c for _, c in srcs.values()) / 3)
        return Scores(pooled, per)

    photos = Scores(dict(colorfulness=30.0), {k: dict(colorfulness=30.0) for k in ("fog", "land", "tiny")})  # fmt: skip
    table = {
        "off": sc((20.0, 60.0), (25.0, 27.0), (22.0, 30.0)),
        "mild": sc((22.0, 45.0), (25.0, 26.0), (21.0, 30.0)),
        "strong": sc((24.0, 30.0), (25.05, 21.0), (22.0, 30.0)),  # land 70 % < 80 - 5
    }
    held = ["fog", "land"]  # "tiny" has too few photos to veto "mild"'s 1 dB loss
    assert choose_offset(table, photos, 0.8, 0.1, held) == "mild"
    assert choose_offset(table, photos, 0.8, 0.1, held, colour_slack=0.15) == "strong"
    assert choose_offset(table, photos, 0.8, 0.1, [*held, "tiny"]) == "off"


def test_where_gray_beats_the_model_only_the_psnr_guard_holds():
    from training.tilt import choose_offset
    from training.validate import Scores

    def sc(fog, land):  # (PSNR, colourfulness) per source
        per = {"fog": dict(psnr_db=fog[0], colorfulness=fog[1]), "land": dict(psnr_db=land[0], colorfulness=land[1])}  # fmt: skip
        return Scores(dict(colorfulness=(fog[1] + land[1]) / 2), per)

    photos = Scores(dict(colorfulness=30.0), {k: dict(colorfulness=30.0) for k in ("fog", "land")})
    table = {
        "off": sc((20.0, 36.0), (25.0, 30.0)),
        "grey fog": sc((23.0, 12.0), (25.0, 30.0)),  # fog at 40 % of its photos' colour
        "grey all": sc((23.0, 12.0), (25.2, 18.0)),  # and the landscapes at 60 %
    }
    held = ["fog", "land"]
    assert choose_offset(table, photos, 0.7, 0.1, held) == "off"
    gray = Scores({}, {"fog": dict(psnr_db=22.0), "land": dict(psnr_db=23.0)})
    assert choose_offset(table, photos, 0.7, 0.1, held, gray=gray) == "grey fog"
    # gray beats the landscapes too: their colour is free, but the pooled colour still binds
    beaten = Scores({}, {"fog": dict(psnr_db=22.0), "land": dict(psnr_db=26.0)})
    assert choose_offset(table, photos, 0.7, 0.1, held, gray=beaten) == "grey fog"
    assert choose_offset(table, photos, 0.5, 0.1, held, gray=beaten) == "grey all"


def test_colour_sources_keep_only_their_own_colour():
    """The streets may lose colour for PSNR when only the landscapes' colour is kept; the
    landscapes' guard still binds, each source on its own, and the pooled colour no longer."""
    from training.tilt import choose_offset
    from training.validate import Scores

    def sc(street, land):  # (PSNR, colourfulness) per source
        per = {"data/street": dict(psnr_db=street[0], colorfulness=street[1]), "data/land": dict(psnr_db=land[0], colorfulness=land[1])}  # fmt: skip
        return Scores(dict(colorfulness=(street[1] + land[1]) / 2), per)

    photos = Scores(dict(colorfulness=30.0), {k: dict(colorfulness=30.0) for k in ("data/street", "data/land")})  # fmt: skip
    table = {
        "off": sc((26.0, 24.0), (24.0, 27.0)),
        "grey streets": sc((26.5, 12.0), (24.0, 27.0)),  # streets at 40 %, pooled 65 %
        "grey all": sc((26.6, 12.0), (24.3, 18.0)),  # and the landscapes at 60 %
    }
    held = ["data/street", "data/land"]
    gray = Scores({}, {"data/street": dict(psnr_db=25.0), "data/land": dict(psnr_db=22.0)})
    assert choose_offset(table, photos, 0.8, 0.1, held, gray=gray) == "off"
    pick = choose_offset(table, photos, 0.8, 0.1, held, gray=gray, colour_sources=("*/land",))
    assert pick == "grey streets"
    both = ("*/land", "*/street")  # every source guarded: no pooled guard, but each its own
    assert choose_offset(table, photos, 0.8, 0.1, held, gray=gray, colour_sources=both) == "off"
    assert choose_offset(table, photos, 0.4, 0.1, held, gray=gray, colour_sources=both) == (
        "grey all"  # 40 % and 60 %, each over 40 % - 5
    )


def test_the_written_head_is_the_fitted_one_in_the_scene_vectors_units():
    """fit_head works in whitened principal components; write_head must put exactly
    gain * relu(head(g) - offset) into the network's linear map of the raw vector."""
    from training.tilt import balance, fit_head, write_head

    torch.manual_seed(0)
    model = tiny(gray_tilt=True)
    c = model.gray_tilt.strength.in_features
    g = torch.randn(400, c) * torch.linspace(0.1, 3.0, c) + 2.0  # (N, C), uneven scales
    q = model.bins.centers.shape[0]
    grey = torch.zeros(400, 2, 4, 1)
    train = (g, torch.randn(400, q, 4, 1).half(), grey)
    weights = balance({"a": torch.arange(0, 390), "b": torch.arange(390, 400)}, 400)
    assert weights[395] / weights[0] == pytest.approx(39.0)  # each source's total alike
    head = fit_head(model, train, weights, train, steps=20)
    assert head.mse[1] < head.mse[0]  # truth is gray: any pull helps
    write_head(model, head, offset=0.3, gain=2.0)
    with torch.no_grad():
        beta = model.gray_tilt.beta(g)
    expected = 2.0 * np.maximum(head(g.numpy()) - 0.3, 0)
    assert beta.numpy() == pytest.approx(expected, abs=1e-4)
    write_head(model, None, 0.0, 1.0)
    assert float(model.gray_tilt.beta(g).abs().max()) == 0.0


def test_separating_direction_finds_the_axis_that_tells_the_kinds_apart():
    from training.tilt import separating_direction

    gen = torch.Generator().manual_seed(0)
    z = torch.randn(600, 32, generator=gen)
    positive = torch.zeros(600, dtype=torch.bool)
    positive[:40] = True  # a rare kind (as fog is), apart along axis 3 only
    z[:40, 3] += 3.0
    u = separating_direction(z, positive)
    assert u.shape == (32,) and float(u.norm()) == pytest.approx(1.0, abs=1e-5)
    assert float(u[3]) > 0.9  # the axis, pointing to the positive kind


def test_fit_tilt_along_the_fog_direction_greys_the_fog(weather, tmp_path, caplog):
    ckpt, out = painter(tmp_path / "painter.pt"), tmp_path / "tilted.pt"
    args = ["fit-tilt", "--ckpt", str(ckpt), "--data", str(weather), "--limit", "0"]
    assert cli([*args, "--out", str(out), "--along", "*/fog"]) == 0
    record = load_checkpoint(out)[1]["metrics"]["gray_tilt"]
    assert record["along"] == ["*/fog"] and record["quantile"] is not None
    assert record["psnr_db"]["tilted"] > record["psnr_db"]["untilted"]
    before, after = Colorizer(ckpt, device="cpu"), Colorizer(out, device="cpu")
    fog_kept = chroma(after, weather, "fog") / chroma(before, weather, "fog")
    clear_kept = chroma(after, weather, "clear") / chroma(before, weather, "clear")
    assert fog_kept < 0.45 and clear_kept > 0.9
    # a pattern that picks no train source (or every one) has nothing to tell apart
    for pattern in ("*/snow", "*"):
        caplog.clear()
        assert cli([*args, "--out", str(tmp_path / "x.pt"), "--along", pattern]) == 2
        assert "it must pick some, not all" in caplog.text and not (tmp_path / "x.pt").exists()
    caplog.clear()  # a colour guard that holds no val source is a typo
    assert cli([*args, "--out", str(tmp_path / "x.pt"), "--colour-sources", "*/fgo"]) == 2
    assert "matches no val source" in caplog.text and not (tmp_path / "x.pt").exists()


def test_scene_ranking_scores_the_heads_by_how_they_rank_the_fog(weather, tmp_path):
    from reports.scene_ranking import auc, main

    assert auc(np.array([True, False, False]), np.array([3.0, 1.0, 2.0])) == 1.0
    assert auc(np.array([True, False]), np.array([1.0, 1.0])) == 0.5  # a tie counts half
    ckpt, out = painter(tmp_path / "painter.pt"), tmp_path / "tilted.pt"
    assert cli(["fit-tilt", "--ckpt", str(ckpt), "--data", str(weather), "--out", str(out)]) == 0
    md = tmp_path / "ranking.md"
    assert (
        main(["--ckpt", str(out), "--data", str(weather), "--along", "*/fog", "--out", str(md)])
        == 0
    )
    rows = {
        line.split(" | ")[0].strip("| "): float(line.split(" | ")[1])
        for line in md.read_text().splitlines()
        if line.startswith("| ") and "AUC" not in line
    }
    assert set(rows) == {
        "logistic direction (train photos)",
        "the gray tilt's strength",
        "the truth's greyness (-chroma)",
    }
    assert rows["logistic direction (train photos)"] > 0.9  # fog is easy to tell here
    assert rows["the truth's greyness (-chroma)"] > 0.9


def test_separating_direction_weighs_a_small_source_of_the_rest_as_much_as_a_large_one():
    """The sunrises (few photos) share an axis with the weather; by count they barely move
    the regression, weighed as a source they keep the direction off that axis."""
    from training.tilt import balance, separating_direction

    gen = torch.Generator().manual_seed(1)
    z = torch.randn(1000, 8, generator=gen)
    positive = torch.zeros(1000, dtype=torch.bool)
    positive[:100] = True
    z[:100, 0] += 2.0  # the weather: apart along axes 0 and 1
    z[:100, 1] += 2.0
    z[100:120, 0] += 2.0  # 20 sunrises of the rest, apart along axis 0 like the weather
    groups = {"weather": torch.arange(100), "sunrise": torch.arange(100, 120)}
    groups["land"] = torch.arange(120, 1000)
    weights = balance(groups, 1000)
    for rows in groups.values():  # every source the same total
        assert float(weights[rows].sum()) == pytest.approx(1000 / 3, rel=1e-5)
    plain, balanced = separating_direction(z, positive), separating_direction(z, positive, weights)
    assert float(balanced[0]) < float(plain[0]) - 0.1  # off the axis the sunrises share
    assert float(balanced[1]) > float(plain[1])
