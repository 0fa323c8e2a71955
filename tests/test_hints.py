"""User colour hints (issue 23): the hint map, the simulated users, the recommendation, the
model's hint branches, the graft that ships them, and the CLI's --hints (in a subprocess)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorizer.bins import Decoding, get_bins
from colorizer.checkpoint import CheckpointError, load_state, save_checkpoint
from colorizer.hints import (
    Hint,
    HintBoard,
    HintError,
    hint_map,
    load_hints_file,
    parse_hints,
    random_hints,
    recommend_colors,
    rgb_to_ab,
    simulate_hints,
)
from colorizer.inference import Colorizer
from colorizer.models import create_model
from training.export import graft_hints

from conftest import colorizer_cli as cli  # python -m colorizer -q ARGS, a subprocess


def tiny_hint_model(seed: int = 0, **kw) -> torch.nn.Module:
    """effunet_tiny with hint branches whose output convs are not zero (so hints matter)."""
    torch.manual_seed(seed)
    m = create_model("effunet_tiny", hints=True, **kw)
    for branch in m.hint_branches.values():
        torch.nn.init.normal_(branch.out.weight, std=0.5)
    return m.eval()


# ---------------------------------------------------------------------------- parsing
def test_hints_parse_from_rgb_or_ab_and_refuse_what_is_not_a_hint():
    hints = parse_hints(
        {
            "hints": [
                {"x": 3, "y": 4, "rgb": [200, 30, 30]},
                {"x": 0, "y": 1, "ab": [-20, 40], "radius": 0},
            ]
        }
    )
    assert hints[0].ab == pytest.approx(rgb_to_ab([200, 30, 30]))
    assert hints[0].ab[0] > 50  # a strong red: large a*
    assert hints[0].rgb == (200, 30, 30) and hints[0].to_dict()["rgb"] == [200, 30, 30]
    assert hints[1] == Hint(0.0, 1.0, (-20.0, 40.0), 0.0)
    bad = [
        ({"hints": [{"x": 1, "y": 1}]}, "exactly one of 'rgb'"),
        ({"hints": [{"x": 1, "y": 1, "rgb": [1, 2, 3], "ab": [1, 2]}]}, "exactly one of"),
        ({"hints": [{"x": 1, "y": 1, "rgb": [300, 0, 0]}]}, "0-255"),
        ({"hints": [{"x": 1, "y": 1, "rgb": [1, 2]}]}, "list of 3"),
        ({"hints": [{"x": "1", "y": 1, "ab": [0, 0]}]}, "'x' must be a finite number"),
        ({"hints": [{"x": 1, "y": float("nan"), "ab": [0, 0]}]}, "'y' must be a finite"),
        ({"hints": [{"x": 1, "y": 1, "ab": [0, 500]}]}, r"\[-128, 128\]"),
        ({"hints": [{"x": 1, "y": 1, "ab": [0, 0], "colour": 1}]}, "unknown keys"),
        ({"hints": [{"x": 1, "y": 1, "ab": [0, 0], "radius": -1}]}, "radius"),
        ({"hints": [{"x": 10**400, "y": 1, "ab": [0, 0]}]}, "'x' must be a finite number"),
        ({"hints": "red"}, "list of hints"),
        ([3], "must be an object"),
    ]
    for obj, message in bad:
        with pytest.raises(HintError, match=message):
            parse_hints(obj)
    many = [{"x": 1, "y": 1, "ab": [0, 0]}] * 1001
    with pytest.raises(HintError, match="1001 hints; at most 1000"):
        parse_hints(many)


def test_hints_file_for_every_photo_or_per_file_name(tmp_path):
    f = tmp_path / "h.json"
    f.write_text(json.dumps({"hints": [{"x": 1, "y": 2, "rgb": [0, 0, 255]}]}))
    both = load_hints_file(f, ["a.jpg", "b.png"])
    assert len(both["a.jpg"]) == len(both["b.png"]) == 1
    f.write_text(json.dumps({"a.jpg": [{"x": 1, "y": 2, "ab": [10, 10]}]}))
    per = load_hints_file(f, ["a.jpg", "b.png"])
    assert len(per["a.jpg"]) == 1 and per["b.png"] == []
    with pytest.raises(HintError, match="not among the inputs"):
        load_hints_file(f, ["b.png"])
    for bad in ("{not json", "[" * 50_000 + "]" * 50_000, '{"hints": [{"x": ' + "9" * 5000 + "}]}"):
        f.write_text(bad)
        with pytest.raises(HintError, match="not valid JSON"):
            load_hints_file(f, ["a.jpg"])
    with pytest.raises(HintError, match="cannot read"):
        load_hints_file(tmp_path / "missing.json", ["a.jpg"])


# ---------------------------------------------------------------------------- the map
def test_hint_map_puts_each_point_where_it_falls_at_the_working_size():
    # a 400x200 photo at a 100x50 working size: x/4, y/4
    m = hint_map([Hint(200, 100, (40.0, -20.0), radius=0)], (400, 200), (50, 100))
    assert m.shape == (1, 3, 50, 100)
    ys, xs = torch.nonzero(m[0, 2], as_tuple=True)
    assert ys.tolist() == [25] and xs.tolist() == [50]  # at least the pixel it falls in
    assert m[0, :2, 25, 50].tolist() == pytest.approx([40 / 110, -20 / 110])
    # (201.5, 101.5) is the centre of working pixel (50, 25); radius 8 original px = 2 working
    # px: a 5x5 square
    wide = hint_map([Hint(201.5, 101.5, (40.0, -20.0), radius=8)], (400, 200), (50, 100))
    assert int(wide[0, 2].sum()) == 25 and wide[0, 2, 23:28, 48:53].all()
    with pytest.raises(HintError, match="outside the 400x200 photo"):
        hint_map([Hint(400, 0, (0.0, 0.0))], (400, 200), (50, 100))
    with pytest.raises(HintError, match="outside"):
        hint_map([Hint(-1, 0, (0.0, 0.0))], (400, 200), (50, 100))


def test_simulated_hints_copy_the_truth_and_replay_from_their_generator():
    ab = torch.zeros(4, 2, 32, 32)
    ab[:, 0, :, :16], ab[:, 1, :, 16:] = 30.0, -50.0
    a = simulate_hints(ab, torch.Generator().manual_seed(1), mean_points=8, max_patch=1)
    b = simulate_hints(ab, torch.Generator().manual_seed(1), mean_points=8, max_patch=1)
    assert torch.equal(a, b)
    mask = a[:, 2] > 0
    assert mask.any(dim=(1, 2)).all()  # every photo got at least one point
    assert torch.allclose(a[:, :2].permute(0, 2, 3, 1)[mask], (ab / 110).permute(0, 2, 3, 1)[mask])
    none = simulate_hints(ab, torch.Generator().manual_seed(1), mean_points=8, none_share=1.0)
    assert not none.any()


def test_random_hints_are_the_truths_patch_mean_and_nested_over_n():
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:, :30] = (200, 30, 30)
    rgb[:, 30:] = (30, 30, 200)
    ten = random_hints(rgb, 10, seed=5)
    assert random_hints(rgb, 3, seed=5) == ten[:3]  # more hints add points, never move them
    assert random_hints(rgb, 0, seed=5) == []
    red, blue = rgb_to_ab([200, 30, 30]), rgb_to_ab([30, 30, 200])
    for h in ten:
        assert 0 <= h.x < 60 and 0 <= h.y < 40 and h.radius == 2
        if h.x <= 27:
            assert h.ab == pytest.approx(red, abs=0.01)
        elif h.x >= 32:
            assert h.ab == pytest.approx(blue, abs=0.01)


def test_recommended_colours_are_distinct_and_pool_a_split_peak():
    bins = get_bins("zhang313")
    c = bins.centers
    p = torch.zeros(bins.num_classes)
    near = lambda a, b: int(torch.cdist(torch.tensor([[a, b]], dtype=c.dtype), c).argmin())  # noqa: E731
    for a, b in ((60, 40), (60, 50), (70, 40)):  # a red split over three neighbouring bins
        p[near(a, b)] = 0.2
    p[near(-40, 40)] = 0.3  # a single green bin, more likely than any one red bin
    p[near(0, -60)] = 0.1
    picks = recommend_colors(p / p.sum(), bins, k=3)
    (ab0, p0), (ab1, _), (ab2, _) = picks
    assert ab0[0] > 50 and ab0[1] > 35  # the red wins: its mass is pooled
    assert ab1[0] < -30 and ab2[1] < -50
    assert p0 > picks[1][1] > picks[2][1]
    assert all(
        np.hypot(x[0] - y[0], x[1] - y[1]) >= 20
        for i, (x, _) in enumerate(picks)
        for y, _ in picks[:i]
    )


# ---------------------------------------------------------------------------- the model
def test_no_hints_leave_the_model_exactly_as_it_was_and_a_hint_acts_near_itself():
    torch.manual_seed(0)
    base = create_model("effunet_tiny").eval()
    hinted = tiny_hint_model()
    load_state(hinted, base.state_dict(), "base", new=("hint_branches.",))
    L = torch.rand(2, 1, 64, 96) * 100
    with torch.no_grad():
        ref = base(L)
        assert torch.equal(hinted(L), ref)
        assert torch.equal(hinted(L, torch.zeros(2, 3, 64, 96)), ref)
        h = torch.zeros(2, 3, 64, 96)
        h[0, :, 4:7, 4:7] = torch.tensor([0.8, 0.2, 1.0]).view(3, 1, 1)  # photo 0 only
        out = hinted(L, h)
    assert torch.equal(out[1], ref[1])  # per photo: a hint on one changes no other
    assert not torch.equal(out[0], ref[0])
    with pytest.raises(ValueError, match="built without hint inputs"):
        base(L, h)
    with pytest.raises(ValueError, match="hints must be"):
        hinted(L, h[:, :2])
    with pytest.raises(ValueError, match="distinct strides"):
        create_model("effunet_tiny", hints=True, hint_levels=(2,))


def test_freeze_base_trains_the_branches_alone_and_keeps_bn_statistics():
    m = tiny_hint_model(freeze_base=True, hint_levels=(8, 4))
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("hint_branches.") for n in trainable)
    before = {k: v.clone() for k, v in m.state_dict().items() if "running" in k}
    m.train()
    L = torch.rand(2, 1, 64, 64) * 100
    h = torch.zeros(2, 3, 64, 64)
    h[:, 2, 10:12, 10:12] = 1.0
    m(L, h).sum().backward()
    after = m.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert all(p.grad is None for n, p in m.named_parameters() if n not in trainable)
    assert all(m.hint_branches[s].out.weight.grad is not None for s in ("8", "4"))
    with pytest.raises(ValueError, match="needs hints=True"):
        create_model("effunet_tiny", freeze_base=True)


def test_only_the_named_new_modules_may_be_missing_from_a_file():
    torch.manual_seed(0)
    base = create_model("effunet_tiny").state_dict()
    with pytest.raises(CheckpointError, match="missing keys: hint_branches"):
        load_state(create_model("effunet_tiny", hints=True), base, "base")
    partial = {k: v for k, v in base.items() if not k.startswith("head.")}
    with pytest.raises(CheckpointError, match="missing keys: head"):
        load_state(
            create_model("effunet_tiny", hints=True), partial, "base", new=("hint_branches.",)
        )


def test_a_model_without_hints_fine_tunes_from_a_file_with_hint_branches(tmp_path):
    # the shipped default carries hint branches; stage configs (init_from = weights/default.pt)
    # build a model without them and must start from its base, the branches left behind
    from training.config import TrainingError
    from training.train import left_behind, load_weights

    hinted = tiny_hint_model()
    save_checkpoint(tmp_path / "hinted.pt", hinted, decoding=Decoding(0.5))
    plain = create_model("effunet_tiny")
    load_weights(plain, tmp_path / "hinted.pt", "init_from", drop=left_behind(plain))
    base = {k: v for k, v in hinted.state_dict().items() if not k.startswith("hint_branches.")}
    assert plain.state_dict().keys() == base.keys()
    assert all(torch.equal(plain.state_dict()[k], v) for k, v in base.items())
    with pytest.raises(TrainingError, match="unexpected keys: hint_branches"):  # not on resume
        load_weights(create_model("effunet_tiny"), tmp_path / "hinted.pt", "--resume")
    # a hinted model keeps what the file has, but for a fitted gray tilt and an expert decoder
    # (fitted and assembled after training) it was built without
    assert left_behind(tiny_hint_model()) == ("gray_tilt.", "experts.")
    tilted = create_model("effunet_tiny", gray_tilt=True, experts=("shared",))
    with torch.no_grad():
        tilted.gray_tilt.strength.bias.fill_(0.3)
        tilted.experts[0].gate.bias.fill_(0.3)
    save_checkpoint(tmp_path / "tilted.pt", tilted, decoding=Decoding(0.5))
    load_weights(plain, tmp_path / "tilted.pt", "init_from", drop=left_behind(plain))
    assert torch.equal(plain.head.weight, tilted.head.weight)  # all but those came over


@pytest.mark.parametrize("sees_image", [False, True])
def test_graft_ships_branches_whose_automatic_output_is_the_base_bit_for_bit(tmp_path, sees_image):
    torch.manual_seed(0)
    base = create_model("effunet_tiny").eval()
    save_checkpoint(tmp_path / "base.pt", base, decoding=Decoding(0.42), half=True)
    base_loaded = Colorizer(tmp_path / "base.pt", device="cpu")
    hinted = tiny_hint_model(hint_levels=(16, 4), hint_sees_image=sees_image)
    load_state(hinted, base_loaded.model.state_dict(), "base", new=("hint_branches.",))
    save_checkpoint(tmp_path / "hints.pt", hinted)
    graft_hints(str(tmp_path / "base.pt"), str(tmp_path / "hints.pt"), str(tmp_path / "out.pt"))
    grafted = Colorizer(tmp_path / "out.pt", device="cpu")
    assert grafted.accepts_hints and grafted.default_temperature == 0.42
    assert grafted.model.arch_args["hint_sees_image"] is sees_image
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (70, 90, 3), np.uint8))
    auto = np.asarray(base_loaded.colorize(img))
    assert np.array_equal(np.asarray(grafted.colorize(img)), auto)
    hint = [{"x": 20, "y": 20, "rgb": [230, 20, 20], "radius": 6}]
    assert not np.array_equal(np.asarray(grafted.colorize(img, hints=hint)), auto)
    with pytest.raises(HintError, match="takes no colour hints"):
        base_loaded.colorize(img, hints=hint)
    other = create_model("effunet_tiny")  # another base: its branches would steer the wrong net
    save_checkpoint(tmp_path / "other.pt", other)
    with pytest.raises(ValueError, match="was not trained on"):
        graft_hints(str(tmp_path / "other.pt"), str(tmp_path / "hints.pt"), str(tmp_path / "x.pt"))


def test_suggested_colours_come_from_the_distribution_at_the_point(tmp_path):
    c = Colorizer(tiny_hint_model(), device="cpu")
    img = Image.new("RGB", (80, 60), (128, 128, 128))
    picks = c.suggest_colors(img, 10, 10, k=4)
    assert 1 <= len(picks) <= 4
    assert all(len(p["rgb"]) == 3 and 0 <= min(p["rgb"]) and max(p["rgb"]) <= 255 for p in picks)
    assert [p["p"] for p in picks] == sorted((p["p"] for p in picks), reverse=True)
    with pytest.raises(HintError, match="outside the 80x60 photo"):
        c.suggest_colors(img, 80, 10)


# ---------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def hint_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("hints_cli")
    save_checkpoint(d / "hinted.pt", tiny_hint_model(), decoding=Decoding(0.4))
    torch.manual_seed(0)
    save_checkpoint(d / "plain.pt", create_model("effunet_tiny"), decoding=Decoding(0.4))
    (d / "photos").mkdir()
    rng = np.random.default_rng(0)
    for name, size in (("a.png", (96, 64)), ("b.png", (64, 64))):
        arr = rng.integers(60, 200, (size[1], size[0], 3), np.uint8)
        Image.fromarray(arr).save(d / "photos" / name)
    return d


def test_cli_colorizes_with_a_hints_file_per_photo(hint_dir):
    (hint_dir / "h.json").write_text(
        json.dumps({"a.png": [{"x": 90, "y": 5, "rgb": [220, 20, 20]}]})
    )
    r = cli(
        "colorize",
        "photos",
        "--model",
        "hinted.pt",
        "--hints",
        "h.json",
        "--out",
        "with",
        cwd=hint_dir,
    )
    assert r.returncode == 0, r.stderr
    r = cli("colorize", "photos", "--model", "hinted.pt", "--out", "without", cwd=hint_dir)
    assert r.returncode == 0, r.stderr
    with_a = np.asarray(Image.open(hint_dir / "with" / "a.png"))
    assert not np.array_equal(with_a, np.asarray(Image.open(hint_dir / "without" / "a.png")))
    same_b = np.asarray(Image.open(hint_dir / "with" / "b.png"))
    assert np.array_equal(same_b, np.asarray(Image.open(hint_dir / "without" / "b.png")))


@pytest.mark.parametrize(
    "content, message",
    [
        (
            '{"hints": [{"x": 96, "y": 0, "rgb": [1, 2, 3]}]}',
            r"a.png\[0\]: point \(96, 0\) is outside the 96x64 photo",
        ),
        ('{"hints": [{"x": 1, "y": 0, "rgb": [1, 2, 999]}]}', "0-255"),
        ('{"hints": [{"x": 1, "y": 0, "rgb": [1, 2, 3]}', "not valid JSON"),
        ('{"c.png": []}', "not among the inputs"),
    ],
)
def test_cli_bad_hints_are_one_error_line_before_any_model_loads(hint_dir, content, message):
    (hint_dir / "bad.json").write_text(content)
    # the model does not even exist: the hints are checked first
    r = cli(
        "colorize",
        "photos",
        "--model",
        "nope.pt",
        "--hints",
        "bad.json",
        "--out",
        "bad",
        cwd=hint_dir,
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr
    assert re.search(message, lines[0]), lines[0]
    assert not (hint_dir / "bad").exists()


def test_cli_hints_on_a_model_without_them_is_one_error(hint_dir):
    (hint_dir / "ok.json").write_text('{"hints": [{"x": 1, "y": 1, "ab": [20, 20]}]}')
    r = cli(
        "colorize",
        "photos",
        "--model",
        "plain.pt",
        "--hints",
        "ok.json",
        "--out",
        "p",
        cwd=hint_dir,
    )
    assert r.returncode == 2 and "takes no colour hints" in r.stderr
    r = cli(
        "evaluate",
        "--model",
        "plain.pt",
        "--images",
        "photos",
        "--hints",
        "random:2",
        "--out",
        "e",
        cwd=hint_dir,
    )
    assert r.returncode == 2 and "take(s) no hints" in r.stderr
    r = cli(
        "evaluate",
        "--model",
        "hinted.pt",
        "--images",
        "photos",
        "--hints",
        "two",
        "--out",
        "e",
        cwd=hint_dir,
    )
    assert r.returncode == 2 and "random:N" in r.stderr


def test_evaluate_with_random_hints_records_them_and_moves_the_score(hint_dir):
    runs = {}
    for n in (0, 5):
        out = f"eval{n}"
        r = cli(
            "evaluate",
            "--model",
            "hinted.pt",
            "--images",
            "photos",
            "--hints",
            f"random:{n}",
            "--out",
            out,
            cwd=hint_dir,
        )
        assert r.returncode == 0, r.stderr
        runs[n] = json.loads((hint_dir / out / "summary.json").read_text())["models"]["hinted"]
    assert runs[0]["hints"] is None and runs[5]["hints"] == "random:5"
    assert runs[0]["psnr_db"]["mean"] != runs[5]["psnr_db"]["mean"]


def test_models_says_which_models_take_hints(hint_dir):
    shutil.copy(hint_dir / "hinted.pt", hint_dir / "default.pt")
    shutil.copy(hint_dir / "plain.pt", hint_dir / "landscape.pt")
    try:
        r = cli("models", cwd=hint_dir)
    finally:
        (hint_dir / "default.pt").unlink()
        (hint_dir / "landscape.pt").unlink()
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:6] == ["name", "family", "weights", "decodes", "at", "T"]
    assert "hints" in lines[0]
    default = next(line for line in lines if line.startswith("default "))
    landscape = next(line for line in lines if line.startswith("landscape "))
    assert re.search(r" 0.4 +yes ", default), default
    assert re.search(r" 0.4 +- ", landscape), landscape


# ---------------------------------------------------------------------------- editing
def test_hint_board_adds_recolours_moves_removes_and_undoes():
    b = HintBoard.empty()
    with pytest.raises(HintError, match="click the photo first"):
        b.colour((200, 30, 30))
    for bad in ((float("nan"), 1.0), (1.0, float("inf")), ("a", 1)):
        with pytest.raises(HintError, match="two finite coordinates"):
            b.click(*bad)
    b.click(10, 20)
    b.colour((200, 30, 30))
    b.colour((30, 30, 200))  # a second choice at the same point recolours it
    assert len(b.hints) == 1 and b.hints[0].rgb == (30, 30, 200)
    b.click(50, 60)
    b.colour((0, 200, 0))
    b.click(70, 80)
    b.move(0)
    assert [(h.x, h.y) for h in b.hints] == [(70, 80), (50, 60)] and b.hints[0].rgb == (30, 30, 200)
    b.remove(1)
    assert len(b.hints) == 1
    with pytest.raises(HintError, match="no hint #3"):
        b.remove(2)
    b.undo()
    assert len(b.hints) == 2
    b.clear()
    assert b.hints == []
    b.undo()
    assert len(b.hints) == 2
    for _ in range(300):  # a long session: the undo history stays bounded
        b.click(1, 1)
        b.colour((1, 2, 3))
    assert len(b.history) <= 100


# ---------------------------------------------------------------------------- the demo's handlers
@pytest.fixture(scope="module")
def hint_app(tmp_path_factory):
    import demo

    d = tmp_path_factory.mktemp("hint_app")
    save_checkpoint(d / "default.pt", tiny_hint_model(), decoding=Decoding(0.4))
    torch.manual_seed(0)
    save_checkpoint(d / "landscape.pt", create_model("effunet_tiny"), decoding=Decoding(0.4))
    app = demo.ColorizeApp(demo.DemoConfig(models_dir=d, scratch_dir=d / "scratch"))
    yield app, d
    app.close()


def test_demo_maps_preview_clicks_to_the_original_and_back(hint_app, tmp_path):
    import demo

    app, _ = hint_app
    assert app.hint_models() == ["default"]
    # an odd size whose preview rounds: 1027x513 -> 1024x512 (512 / 1024 != 513 / 1027)
    photo = tmp_path / "odd.png"
    Image.fromarray(np.full((513, 1027, 3), 120, np.uint8)).save(photo)
    view = app._view(str(photo))
    assert view.size == (1027, 513) and view.image.size == (1024, 512)
    b = HintBoard.empty()
    app.hint_click(str(photo), "default", b, 1023, 511)  # the preview's bottom-right pixel
    assert b.point == (pytest.approx(1026, abs=0.6), pytest.approx(512, abs=0.6))
    assert b.point[0] <= 1026 and b.point[1] <= 512  # still on the original
    b.colour((200, 30, 30))
    app.hint_render(str(photo), "default", b)
    full = app.hint_full(str(photo), "default", b)  # the original's pixels: fits at full size
    assert Image.open(full).size == (1027, 513)
    for bad in ((float("nan"), 1), (10**400, 1), ("a", "b")):
        with pytest.raises(demo.DemoError, match="two finite pixel coordinates"):
            app.hint_click(str(photo), "default", b, *bad)
    with pytest.raises(demo.DemoError, match="takes no colour hints.*models that do: default"):
        app.hint_render(str(photo), "landscape", b)


def test_demo_loads_a_hints_file_by_this_photos_name_and_refuses_bad_ones(hint_app, tmp_path):
    import demo

    app, _ = hint_app
    photo = tmp_path / "wall.png"
    Image.fromarray(np.full((60, 80, 3), 120, np.uint8)).save(photo)
    f = tmp_path / "h.json"
    f.write_text(json.dumps({"wall.png": [{"x": 5, "y": 6, "rgb": [1, 2, 3]}]}))
    b = HintBoard.empty()
    app.hints_upload(str(f), str(photo), b)
    assert [(h.x, h.y, h.rgb) for h in b.hints] == [(5, 6, (1, 2, 3))]
    cases = [
        ({"other.png": []}, "not among the inputs"),
        ({"hints": [{"x": 80, "y": 0, "ab": [0, 0]}]}, "outside the 80x60 photo"),
        ("[" * 50_000 + "]" * 50_000, "not valid JSON"),
    ]
    for content, message in cases:
        f.write_text(content if isinstance(content, str) else json.dumps(content))
        with pytest.raises(demo.DemoError, match=message):
            app.hints_upload(str(f), str(photo), b)
    assert len(b.hints) == 1  # a refused file changes nothing
