"""The training package end to end on tiny photos made here (no real data, tiny models)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from colorizer.lab import rgb_to_lab
from colorizer.metrics import METRICS
from training.__main__ import main as cli
from training.config import ConfigError, TrainingError, load_config
from training.data import add_haze, balanced_order, make_batch, train_sources
from training.prepare import PrepareConfig, load_split, photo_names, prepare, split_of
from training.train import build, lr_factor, train
from training.validate import Scores, tune_decoding

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"
MIN_SIDE = {"effunet": 32, "effunet_lite2": 32}  # their encoders downsample by 32


def scene(rng: np.random.Generator, size: int = 40) -> np.ndarray:
    """A little landscape: bright blue sky over dark green ground (horizon at a random row) plus
    noise, so colour is predictable from brightness and every photo's bytes differ."""
    a = np.zeros((size, size, 3), np.float32)
    h = int(rng.integers(size // 3, 2 * size // 3))
    a[:h] = [110, 165, 240]  # L ~ 67
    a[h:] = [45, 115, 40]  # L ~ 42
    a += rng.normal(0, 12, a.shape)
    return a.clip(0, 255).astype(np.uint8)


def make_photos(folder: Path, n: int, seed: int, prefix: str = "p") -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"{prefix}{i:03d}.png"
        Image.fromarray(scene(rng)).save(p)
        paths.append(p)
    return paths


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """48 good 40x40 photos prepared at 32x32."""
    root = tmp_path_factory.mktemp("tiny")
    make_photos(root / "img", 48, seed=0)
    prepare(PrepareConfig(images=[str(root / "img")], out=str(root / "data"), size=(32, 32)))
    return root / "data"


def tiny_config(data: Path, out: Path, **kw) -> list[str]:
    sets = {
        "data": f'"{data}"',
        "out_dir": f'"{out}"',
        "model": '"colornet_tiny"',
        "epochs": "2",
        "batch_size": "8",
        "lr": "3e-3",
        "crop": "24",
        "warmup_steps": "2",
        "temperature_grid": "[0.3, 1.0]",
        "log_every": "1",
    }
    sets.update({k: str(v) for k, v in kw.items()})
    return [f"{k}={v}" for k, v in sets.items()]


# ---------------------------------------------------------------------------- prepare
def test_prepare_checks_every_file_and_splits_by_content(tmp_path):
    img = tmp_path / "img"
    good = make_photos(img / "a", 30, seed=1)
    nested = img / "b" / "deeper"
    nested.mkdir(parents=True)
    shutil.copy(good[0], nested / "copy_of_p000.png")  # byte duplicate, other folder
    (img / "b" / "notes.jpg").write_text("not an image")  # unreadable
    buf = io.BytesIO()
    Image.fromarray(scene(np.random.default_rng(9), 64)).save(buf, "JPEG", quality=95)
    (img / "b" / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])  # truncated
    Image.fromarray(scene(np.random.default_rng(8), 10)).save(img / "b" / "small.png")  # tiny
    g = np.random.default_rng(7).integers(0, 255, (40, 40), dtype=np.uint8)
    Image.fromarray(np.stack([g, g, g], -1)).save(img / "b" / "bw_rgb.png")  # B&W stored as RGB
    Image.fromarray(g, "L").save(img / "b" / "bw_l.png")  # single channel
    (img / "b" / "readme.txt").write_text("ignored: not an image suffix")

    out = tmp_path / "data"
    s = prepare(PrepareConfig(images=[str(img)], out=str(out), size=(32, 32)))
    assert s.found == 36 and s.kept == 30
    assert s.skipped == {"duplicate": 1, "grayscale": 2, "tiny": 1, "truncated": 1, "unreadable": 1}
    m = json.loads((out / "manifest.json").read_text())
    reasons = {Path(x["path"]).name: x["reason"] for x in m["skipped"]}
    assert reasons == {
        "copy_of_p000.png": "duplicate",
        "notes.jpg": "unreadable",
        "cut.jpg": "truncated",
        "small.png": "tiny",
        "bw_rgb.png": "grayscale",
        "bw_l.png": "grayscale",
    }
    total = 0
    for split in ("train", "val", "test"):
        arr = load_split(out, split)
        assert arr.dtype == np.uint8 and arr.shape[1:] == (32, 32, 3)
        total += len(arr)
    assert total == 30
    # each photo's row holds that photo (resized + centre-cropped), in its hash's split
    item = m["items"][5]
    assert item["split"] == split_of(item["sha256"], 0.1, 0.1)
    row = load_split(out, item["split"])[item["index"]]
    want = np.asarray(Image.open(item["path"]).convert("RGB").resize((32, 32), Image.LANCZOS))
    assert np.abs(row.astype(int) - want.astype(int)).mean() < 3

    # adding photos never moves old ones to another split
    make_photos(img / "c", 20, seed=2, prefix="new")
    out2 = tmp_path / "data2"
    s2 = prepare(PrepareConfig(images=[str(img)], out=str(out2), size=(32, 32)))
    assert s2.kept == 50
    m2 = json.loads((out2 / "manifest.json").read_text())
    before = {i["sha256"]: i["split"] for i in m["items"]}
    after = {i["sha256"]: i["split"] for i in m2["items"]}
    assert all(after[h] == sp for h, sp in before.items())


def test_prepare_stores_a_rotated_phone_photo_upright(tmp_path):
    """A phone stores a portrait photo sideways with an EXIF orientation tag; inference shows
    it upright, so training must store it upright too (not sky on the left)."""
    upright = np.zeros((60, 40, 3), np.uint8)  # portrait, H 60 x W 40
    upright[:30] = [110, 165, 240]  # sky on top
    upright[30:] = [45, 115, 40]  # ground below
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    img = tmp_path / "img"
    img.mkdir()
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # sideways, 60x40
    stored.save(img / "phone.jpg", "JPEG", quality=95, exif=exif)
    assert Image.open(img / "phone.jpg").size == (60, 40)

    out = tmp_path / "data"
    s = prepare(PrepareConfig(images=[str(img)], out=str(out), size=(32, 32), val_fraction=0.0,
                              test_fraction=0.0))  # fmt: skip
    assert s.kept == 1
    row = load_split(out, "train")[0].astype(int)
    blue = row[..., 2] > row[..., 1]
    assert blue[:8].mean() > 0.95 and not blue[-8:].any()  # sky on top, ground below
    item = json.loads((out / "manifest.json").read_text())["items"][0]
    assert item["orig_size"] == [40, 60]  # the photo as shown: portrait


def test_prepare_cli_streetside_crop_and_errors(tmp_path, capsys, caplog):
    img = tmp_path / "frames"
    img.mkdir()
    rng = np.random.default_rng(3)
    for i in range(3):  # full Street View frames with a magenta GUI band at the bottom
        frame = np.zeros((1024, 1280, 3), np.uint8)
        frame[:] = scene(rng, 8).repeat(128, 0).repeat(160, 1)
        frame[968:] = [255, 0, 255]
        Image.fromarray(frame).save(img / f"f{i}.png")
    out = tmp_path / "st"
    rc = cli(
        [
            "prepare",
            "--images",
            str(img),
            "--out",
            str(out),
            "--size",
            "114x88",
            "--streetside-crop",
        ]
    )
    assert rc == 0 and "kept 3" in capsys.readouterr().out
    arrs = [load_split(out, s) for s in ("train", "val", "test")]
    x = np.concatenate([a for a in arrs if len(a)])
    assert x.shape == (3, 88, 114, 3)  # size-preserving: the crop's 114x88 is kept as is
    magenta = (x[..., 0] > 200) & (x[..., 1] < 60) & (x[..., 2] > 200)
    assert not magenta.any()  # the GUI band is gone
    # bad arguments: a clear error, nothing written
    assert cli(["prepare", "--images", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
    bad = ["prepare", "--images", str(img), "--out", str(tmp_path / "y"), "--size", "big"]
    assert cli(bad) == 2 and "--size must be N or WxH" in caplog.text
    assert not (tmp_path / "y").exists()


# ---------------------------------------------------------------------------- config
def test_config_toml_and_overrides(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('model = "cunet"\nlr = 0.01\n[model_args]\nbase = 8\n')
    cfg = load_config(p, ["lr=2e-3", "model_args.base=4", "betas=[0.5, 0.9]", "schedule=step"])
    assert cfg.model == "cunet" and cfg.lr == 2e-3 and cfg.model_args == {"base": 4}
    assert cfg.betas == (0.5, 0.9) and cfg.schedule == "step"
    with pytest.raises(ConfigError, match="unknown config key 'lrate'"):
        load_config(p, ["lrate=1"])
    with pytest.raises(ConfigError, match="epochs must be int"):
        load_config(p, ["epochs=two"])
    with pytest.raises(ConfigError, match="schedule must be one of"):
        load_config(p, ["schedule=linear"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_config_extends_a_base_and_names_its_out_dir_after_the_run(tmp_path):
    (tmp_path / "base.toml").write_text(
        'loss = "ce"\nlr = 0.01\nepochs = 3\nout_dir = "runs/the_base"\n'
        "[model_args]\nwidths = [4, 8, 8, 16]\ninput_size = [32, 32]\n"
    )
    (tmp_path / "chain").mkdir()
    stage = tmp_path / "chain" / "stage.toml"
    stage.write_text(
        'extends = "../base.toml"\nname = "stage2"\nlr = 0.002\n[model_args]\ninput_size = [64, 64]\n'
    )
    cfg = load_config(stage, ["epochs=5"])
    assert (cfg.loss, cfg.lr, cfg.epochs) == ("ce", 0.002, 5)  # base, file, --set: in that order
    assert cfg.model_args == {"widths": [4, 8, 8, 16], "input_size": [64, 64]}  # merged by key
    assert cfg.out_dir == "runs/stage2"  # the run's own name, not the base's folder
    assert load_config(stage, ["name=other"]).out_dir == "runs/other"
    assert load_config(stage, ['out_dir="elsewhere"']).out_dir == "elsewhere"
    assert load_config(tmp_path / "base.toml").out_dir == "runs/the_base"
    (tmp_path / "a.toml").write_text('extends = "b.toml"\n')
    (tmp_path / "b.toml").write_text('extends = "a.toml"\n')
    with pytest.raises(ConfigError, match="extends chain comes back to it"):
        load_config(tmp_path / "a.toml")
    (tmp_path / "lost.toml").write_text('extends = "nope.toml"\n')
    with pytest.raises(ConfigError, match="extends 'nope.toml', but .*nope.toml is not a file"):
        load_config(tmp_path / "lost.toml")
    # the shipped chains say what each stage changes, over the house recipe
    shipped = load_config(CONFIGS / "landscape" / "landscape_stage2.toml")
    assert shipped.val_limit == 256 and shipped.temperature_rule == "floor"  # from base.toml
    assert shipped.out_dir == "runs/landscape_stage2"


@pytest.mark.parametrize(
    "override, message",
    [
        ("lr=nan", "lr must be a finite number"),
        ("lr=inf", "lr must be a finite number"),
        ("temperature=nan", "temperature must be a finite number"),
        ("temperature=inf", "temperature must be a finite number"),
        ("temperature_grid=[0.3, nan]", "temperature_grid values must be finite"),
        ("temperature_grid=[inf]", "temperature_grid values must be finite"),
        ("max_minutes=-5.0", "max_minutes must be a finite number >= 0"),
        ("max_minutes=nan", "max_minutes must be a finite number >= 0"),
        ("max_steps=-1", "max_steps must be >= 0"),
    ],
)
def test_config_refuses_non_finite_and_negative_budgets_up_front(tmp_path, override, message):
    # TOML spells nan and inf, in a file as on --set; both paths go through validate().
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])
    p = tmp_path / "c.toml"
    p.write_text(override.replace("=", " = ", 1) + "\n")
    with pytest.raises(ConfigError, match=message):
        load_config(p)


def test_lr_schedules():
    cfg = load_config(
        None, ["epochs=4", "lr=1.0", "schedule=step", "step_epochs=[2]", "step_gamma=0.5"]
    )
    assert [lr_factor(cfg, s, 10) for s in (0, 19, 20, 39)] == [1.0, 1.0, 0.5, 0.5]
    cfg = load_config(None, ["epochs=2", "schedule=cosine", "warmup_steps=5", "min_lr_ratio=0.1"])
    f = [lr_factor(cfg, s, 10) for s in range(20)]
    assert f[0] == pytest.approx(0.2) and f[4] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[5:], f[6:], strict=False)) and f[-1] > 0.1


def test_batch_crops_and_flips_per_photo():
    imgs = torch.arange(4 * 6 * 6 * 3, dtype=torch.int64).reshape(4, 6, 6, 3).to(torch.uint8)
    g = torch.Generator().manual_seed(0)
    x = make_batch(imgs, torch.tensor([0, 1, 2, 3]), 4, True, g, torch.device("cpu"))
    assert x.shape == (4, 3, 4, 4) and x.dtype == torch.float32
    for b in range(4):  # every crop is a (possibly mirrored) window of its own photo
        crop = (x[b].permute(1, 2, 0) * 255).round().to(torch.uint8)
        src = imgs[b]
        found = any(
            torch.equal(crop, w) or torch.equal(crop, w.flip(1))
            for w in (src[i : i + 4, j : j + 4] for i in range(3) for j in range(3))
        )
        assert found


def test_haze_greys_the_far_rows_of_the_photos_it_picks():
    """add_haze: a neutral fog, thicker at the top (far) than at the bottom (near): the picked
    photos lose chroma and their L goes towards the fog's grey; the others are untouched; the
    same generator gives the same fog."""
    torch.manual_seed(0)
    rgb = torch.rand(16, 3, 32, 32) * 0.5 + torch.tensor([0.5, 0.2, 0.0])[:, None, None] * 0.9
    hazy = add_haze(rgb, 1.0, torch.Generator().manual_seed(3))
    assert torch.equal(hazy, add_haze(rgb, 1.0, torch.Generator().manual_seed(3)))
    assert 0 <= float(hazy.min()) and float(hazy.max()) <= 1
    chroma = lambda x: rgb_to_lab(x)[:, 1:].norm(dim=1)  # noqa: E731  (B, H, W)
    c0, c1 = chroma(rgb), chroma(hazy)
    assert bool((c1.mean((1, 2)) < c0.mean((1, 2))).all())  # every photo greyer
    kept_top = (c1[:, :4] / c0[:, :4]).mean()  # far rows keep less of their colour ...
    kept_bottom = (c1[:, -4:] / c0[:, -4:]).mean()  # ... than the near bottom rows
    assert float(kept_top) < float(kept_bottom) < 1.0
    # L moves towards the fog's grey (0.6-0.95 sRGB: L 63-98) most where the fog is thick
    dark = torch.full((4, 3, 32, 32), 0.1)  # L 9
    L = rgb_to_lab(add_haze(dark, 1.0, torch.Generator().manual_seed(3)))[:, 0]  # (B, H, W)
    assert bool((L[:, 0] > L[:, -1]).all()) and float(L[:, 0].min()) > 30
    assert torch.equal(add_haze(rgb, 0.0, torch.Generator().manual_seed(3)), rgb)
    some = add_haze(rgb, 0.5, torch.Generator().manual_seed(3))
    changed = (some != rgb).flatten(1).any(1)
    assert 0 < int(changed.sum()) < 16  # about half picked, the rest as they were
    assert torch.equal(some[~changed], rgb[~changed])


def test_haze_config_is_a_share_and_not_beside_a_feature_cache(tiny_data, tmp_path):
    for bad in ("1.5", "-0.1", "true"):
        with pytest.raises(ConfigError, match="haze"):
            load_config(None, tiny_config(tiny_data, tmp_path / "a", haze=bad))
    with pytest.raises(ConfigError, match="feature_cache"):
        load_config(None, tiny_config(tiny_data, tmp_path / "a", haze=0.3, feature_cache='"c"'))


# ---------------------------------------------------------------------------- train
@pytest.mark.parametrize(
    "extra",
    [{}, {"source_weights": '{"*img"=2.0}'}, {"haze": 0.5}],
    ids=["plain", "balance", "haze"],
)
def test_train_resume_matches_unbroken_run(tiny_data, tmp_path, extra):
    from colorizer.models import load_checkpoint

    # a plain shuffle, source_weights (epochs drawn with replacement), or synthetic fog
    whole = tmp_path / "whole"
    cfg = load_config(None, tiny_config(tiny_data, whole, **extra))
    metrics = train(cfg, command="test")
    # killed right after the checkpoint of step 5 (mid-epoch 2), then resumed
    broken = tmp_path / "broken"
    cfg = load_config(
        None,
        tiny_config(tiny_data, broken, save_every_steps=5, max_steps=5, **extra),
    )
    assert train(cfg) == {"stopped_at_step": 5}
    assert not (broken / "final.pt").exists()
    with pytest.raises(TrainingError, match="exists: pass --resume"):
        train(load_config(None, tiny_config(tiny_data, broken)))
    sets = sum((["--set", s] for s in tiny_config(tiny_data, broken, **extra)), [])
    assert cli(["train", "--resume", *sets]) == 0

    a = torch.load(whole / "final.pt", weights_only=True)
    b = torch.load(broken / "final.pt", weights_only=True)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert a["decoding"] == b["decoding"] and a["decoding"]["temperature"] in (0.3, 1.0)

    model, meta = load_checkpoint(whole / "final.pt")
    assert meta["arch"] == "colornet_tiny" and meta["bins"] is not None
    assert meta["train"]["command"] == "test" and meta["train"]["hardware"]
    assert meta["metrics"]["temperature"] == model.decoding.temperature == metrics["temperature"]
    assert set(meta["metrics"]["temperature_table"]) == {"T=0.3", "T=1"}
    rows = (whole / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and "euclidean" in rows[0].split(",") and "psnr_db" in rows[0]
    assert len((broken / "metrics.csv").read_text().splitlines()) == 3
    assert (whole / "loss.png").stat().st_size > 1000 and (whole / "temperature.csv").is_file()


RESUME_V1 = Path(__file__).resolve().parent / "data" / "resume_v1"


def test_a_last_pt_of_the_previous_code_resumes(tiny_data, tmp_path):
    """tests/data/resume_v1 is a run killed after step 5 (last.pt, metrics.csv, steps.csv),
    written by the code of commit 1834b77 (before the evaluation core and the step-wise
    train) with tiny_config(save_every_steps=5, max_steps=5, epochs=40, max_minutes=0.05) and
    FIT_AFTER_STEPS = 2: its time budget fitted 14 of the 40 epochs, and its metrics.csv has
    the older metric names (seed_euclidean, seed_psnr)."""
    out = tmp_path / "old"
    shutil.copytree(RESUME_V1, out)
    cfg = load_config(None, tiny_config(tiny_data, out, epochs=40))
    metrics = train(cfg, resume=True)
    assert cfg.epochs == 40  # a run changes its own plan, never the config it was given
    ckpt = torch.load(out / "final.pt", weights_only=True)
    assert ckpt["train"]["epochs"] == 14 and ckpt["train"]["epochs_fitted"]  # as fitted
    assert ckpt["train"]["config"]["epochs"] == 40
    steps = (out / "steps.csv").read_text().splitlines()
    assert steps[5].startswith("5,2,") and steps[-1].startswith(f"{14 * 4},14,")
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 14 and rows[1].startswith("1,4,")  # the old run's row is kept
    assert rows[0].split(",")[6:10] == ["euclidean", "psnr_seed", "psnr_db", "colorfulness"]
    assert np.isfinite(metrics["psnr_db"]) and metrics["photos"] > 0


def test_a_time_budget_shortens_the_run_not_its_config(tiny_data, tmp_path, monkeypatch):
    import training.train as T

    monkeypatch.setattr(T, "FIT_AFTER_STEPS", 2)  # fit after step 2 (tiny epochs of 4 steps)
    cfg = load_config(None, tiny_config(tiny_data, tmp_path / "b", epochs=1000, max_minutes=0.05))
    train(cfg)
    ckpt = torch.load(tmp_path / "b" / "final.pt", weights_only=True)
    assert cfg.epochs == 1000 and ckpt["train"]["config"]["epochs"] == 1000  # as given
    assert ckpt["train"]["epochs_fitted"] and ckpt["train"]["epochs"] < 1000  # what it planned


def test_validation_scores_what_the_library_colorizes(tiny_data):
    """Validation during training decodes and composes through the library: on photos at
    the model's working size its means are those of Colorizer.colorize, photo for photo."""
    from colorizer.imageio import to_tensor
    from colorizer.inference import Colorizer
    from colorizer.metrics import score
    from colorizer.models import create_model
    from training.data import load_images
    from training.validate import METRIC_KEYS, validate

    torch.manual_seed(0)
    model = create_model("colornet_tiny")  # works at 32x32, the size the photos are stored at
    images = load_images(tiny_data, "val")
    got = validate(model, images, torch.device("cpu"), [0.4])[0.4]
    colorizer = Colorizer(model, device="cpu")
    sums = dict.fromkeys(METRIC_KEYS, 0.0)
    for photo in images.numpy():
        truth = Image.fromarray(photo)
        pred = to_tensor(colorizer.colorize(truth, temperature=0.4))
        for k, v in score(pred, to_tensor(truth), keys=METRIC_KEYS).items():
            sums[k] += float(v)
    for k in METRIC_KEYS:
        assert got[k] == pytest.approx(sums[k] / len(images), rel=1e-6), k


def test_balanced_order_draws_by_probability_and_resumes_exactly():

    probs = torch.tensor([0.1, 0.1, 0.4, 0.4], dtype=torch.float64)
    a = balanced_order(probs, epoch=3, seed=1, rank=0, world=1, per_rank=20_000)
    assert torch.equal(a, balanced_order(probs, epoch=3, seed=1, rank=0, world=1, per_rank=20_000))
    assert not torch.equal(
        a, balanced_order(probs, epoch=4, seed=1, rank=0, world=1, per_rank=20_000)
    )
    counts = torch.bincount(a, minlength=4).double() / len(a)
    assert torch.allclose(counts, probs, atol=0.015)
    # two ranks share one draw: disjoint halves that together are the one-rank list
    r0 = balanced_order(probs, 3, 1, rank=0, world=2, per_rank=10_000)
    r1 = balanced_order(probs, 3, 1, rank=1, world=2, per_rank=10_000)
    assert torch.equal(torch.stack([r0, r1], 1).flatten(), a)


def test_nan_loss_stops_with_clear_message_and_keeps_last_checkpoint(tiny_data, tmp_path):
    out = tmp_path / "nan"
    train(load_config(None, tiny_config(tiny_data, out, epochs=1, temperature=0.5)))
    before = (out / "last.pt").read_bytes()
    cfg = load_config(None, tiny_config(tiny_data, out, epochs=3, lr=1e12, schedule='"constant"'))
    with pytest.raises(
        TrainingError, match=r"loss is nan at epoch 2.*last good checkpoint is .*last\.pt"
    ):
        train(cfg, resume=True)
    assert (out / "last.pt").read_bytes() == before  # nothing lost


def test_regression_model_and_wrong_loss(tiny_data, tmp_path):
    cfg = load_config(
        None,
        tiny_config(tiny_data, tmp_path / "r", model='"streetside_tiny"', loss='"l1"', epochs=1),
    )
    m = train(cfg)
    assert m["temperature"] == 1.0 and np.isfinite(m["psnr_db"])
    bad = load_config(
        None, tiny_config(tiny_data, tmp_path / "r2", model='"streetside_tiny"', loss='"ce"')
    )
    with pytest.raises(TrainingError, match="regression model: use loss = 'mse' or 'l1'"):
        train(bad)
    with pytest.raises(ConfigError, match="unknown config key 'photo_balance'"):  # removed
        load_config(None, tiny_config(tiny_data, tmp_path / "r4", photo_balance=1))


def test_fresh_start_after_an_early_kill_starts_its_logs_afresh(tiny_data, tmp_path):
    """A run killed before its first checkpoint leaves steps.csv but no last.pt; starting
    afresh in that folder must not append to the dead run's rows."""
    out = tmp_path / "run"
    out.mkdir()
    dead = ["1,1,9.9,0.1,1.0", "2,1,9.8,0.1,1.0"]
    (out / "steps.csv").write_text("step,epoch,loss,lr,photos_s\n" + "\n".join(dead) + "\n")
    (out / "metrics.csv").write_text("epoch,step\n7,70\n")
    train(load_config(None, tiny_config(tiny_data, out, epochs=1)))
    steps = (out / "steps.csv").read_text().splitlines()
    # the dead run's rows, whole (a substring such as "9.9" also matches a new row's
    # photos_s of 309.92, which failed this test by chance)
    assert steps[0].startswith("step,") and not set(dead) & set(steps)
    numbers = [int(r.split(",")[0]) for r in steps[1:]]
    assert numbers[0] == 1 and numbers == sorted(set(numbers))  # one run's rows, once each
    assert "7,70" not in (out / "metrics.csv").read_text()


def test_source_weights_set_each_sources_share(tmp_path):
    """source_weights scales a source's draws: weight 0 leaves a folder out of training, 3
    triples it against a same-sized folder; a pattern that matches nothing is refused."""
    make_photos(tmp_path / "img" / "common", 20, seed=3)
    make_photos(tmp_path / "img" / "fog", 20, seed=4)
    make_photos(tmp_path / "img" / "never", 20, seed=5)
    folders = [str(tmp_path / "img" / n) for n in ("common", "fog", "never")]
    prepare(PrepareConfig(images=folders, out=str(tmp_path / "data"), size=(32, 32)))
    weights = '{"*fog"=3.0, "*never"=0.0}'
    run = build(
        load_config(None, tiny_config(tmp_path / "data", tmp_path / "r", source_weights=weights))
    )
    sources = train_sources(run.manifest, len(run.train_images))
    share = {}
    for src, p in zip(sources, run.photo_probs.tolist(), strict=True):
        share[Path(src).name] = share.get(Path(src).name, 0.0) + p
    n = {k: sum(Path(s).name == k for s in sources) for k in ("common", "fog")}
    assert share["never"] == 0.0
    assert share["fog"] / share["common"] == pytest.approx(3.0 * n["fog"] / n["common"])
    order = balanced_order(run.photo_probs, 0, 0, 0, 1, 400)
    assert not any(Path(sources[i]).name == "never" for i in order.tolist())
    with pytest.raises(
        TrainingError, match=r"source_weights \['\*mist'\] match no training source"
    ):
        build(
            load_config(
                None,
                tiny_config(tmp_path / "data", tmp_path / "r2", source_weights='{"*mist"=2.0}'),
            )
        )
    with pytest.raises(ConfigError, match="source_weights must be finite numbers >= 0"):
        load_config(
            None, tiny_config(tmp_path / "data", tmp_path / "r3", source_weights='{"*fog"=-1.0}')
        )


@pytest.mark.parametrize(
    "name", sorted(str(p.relative_to(CONFIGS).with_suffix("")) for p in CONFIGS.rglob("*.toml"))
)
def test_each_shipped_config_runs_end_to_end(name, tiny_data, tmp_path):
    """Every config in training/configs (the seeds' reproductions, our shipped models, the
    baselines) trains end to end with its own loss, targets, lambda, schedule and temperature,
    on the tiny data with the tiny variant of its model family."""
    path = CONFIGS / f"{name}.toml"
    orig = load_config(path)
    # what the config trains (hint inputs, what is frozen), without its sizes
    kept = {
        k: v
        for k, v in orig.model_args.items()
        if k in ("hints", "hint_levels", "freeze_base", "freeze_encoder")
    }
    model_args = ", ".join(f"{k} = {json.dumps(v)}" for k, v in kept.items())
    cfg = load_config(
        path,
        [
            f'data="{tiny_data}"',
            f'out_dir="{tmp_path / name}"',
            f'model="{orig.model}_tiny"',  # the tiny variant of its family
            f"model_args={{{model_args}}}",
            'init_from=""',
            "init_only=[]",  # what to take from init_from, which the tiny run has none of
            "epochs=1",
            "batch_size=8",
            "max_train=24",
            f"crop={MIN_SIDE.get(orig.model, 24)}",
            "threads=0",
            "max_minutes=0",
            "save_every_steps=0",
            "temperature_grid=[0.4, 1.0]",
            "source_weights={}",  # the tiny data has none of the real sources
            *([f'feature_cache="{tmp_path / "cache"}"'] if orig.feature_cache else []),
        ],
    )
    metrics = train(cfg)
    ckpt = torch.load(tmp_path / name / "final.pt", weights_only=True)
    saved = ckpt["train"]["config"]
    for key in ("loss", "targets", "lam", "lr", "schedule", "step_epochs", "temperature"):
        assert saved[key] == getattr(orig, key), key
    if orig.temperature:
        assert ckpt["decoding"]["temperature"] == orig.temperature == metrics["temperature"]
    assert np.isfinite(metrics["psnr_db"])


def test_prior_and_evaluate_cli(tiny_data, tmp_path, capsys):
    out = tmp_path / "prior"
    assert (
        cli(
            [
                "prior",
                "--data",
                str(tiny_data),
                "--bins",
                "seed104",
                "--lam",
                "0.5",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = (out / "prior_seed104.csv").read_text().splitlines()[1:]
    p = np.array([float(r.split(",")[3]) for r in rows])
    w = np.array([float(r.split(",")[4]) for r in rows])
    assert len(rows) == 105 and p.sum() == pytest.approx(1.0, abs=1e-4)
    from colorizer.bins import get_bins, smooth_prior

    smoothed = smooth_prior(torch.tensor(p, dtype=torch.float32), get_bins("seed104"), 5.0)
    assert float((smoothed.double() * torch.tensor(w)).sum()) == pytest.approx(1.0, rel=1e-3)
    assert w[p.argmax()] == w.min()  # the commonest colour weighs least
    assert Image.open(out / "prior_seed104.png").size[0] > 500

    run = tmp_path / "run"
    train(load_config(None, tiny_config(tiny_data, run, epochs=10, lr=1e-2)))
    ev = tmp_path / "eval"
    rc = cli(
        [
            "evaluate",
            "--data",
            str(tiny_data),
            "--split",
            "train",
            "--limit",
            "12",
            "--models",
            "gray",
            str(run / "final.pt"),
            "eccv16",
            "--out",
            str(ev),
            "--grid",
            "4",
        ]
    )
    assert rc == 0
    s = json.loads((ev / "summary.json").read_text())
    assert list(s["models"]) == ["gray", "run"]  # eccv16 skipped: no official weights here
    gray, ours = s["models"]["gray"], s["models"]["run"]
    assert gray["colorfulness"]["mean"] < 1.0 < ours["colorfulness"]["mean"]
    # blue-over-green scenes are easy: a trained model must beat the gray floor
    assert ours["psnr_db"]["mean"] > gray["psnr_db"]["mean"]
    assert ours["euclidean"]["mean"] < gray["euclidean"]["mean"]
    md = (ev / "summary.md").read_text()
    assert "| gray |" in md and "| run |" in md and "Euclidean distance ↓ mean | std" in md
    assert len((ev / "per_photo.csv").read_text().splitlines()) == 1 + 2 * 12
    # one schema and one set of units with `python -m colorizer evaluate`: the registry's
    # columns, AuC in %, photos named by their original file (not row numbers)
    pp = pd.read_csv(ev / "per_photo.csv")
    assert list(pp.columns) == ["model", "photo", *METRICS]
    assert pp["auc"].min() > 1.0 and s["split"] == "train" and s["photos"] == 12
    names = photo_names(tiny_data, "train")
    run_rows = pp[pp["model"] == "run"]["photo"]
    assert list(run_rows) == names[:12] and names[0].startswith("img/p")
    grid = Image.open(ev / "grid.png")
    h = 2 * np.load(tiny_data / "train.npy").shape[1]  # small photos are shown at 2x
    assert grid.size == (3 * h + 4 * 4, 18 + 4 * (h + 4) + 4)  # truth, gray input, run; 4 rows
    assert cli(["evaluate", "--data", str(tiny_data), "--models", "nope.pt", "--out", str(ev)]) == 2

    shipped = tmp_path / "ship.pt"
    assert (
        cli(
            [
                "export",
                "--ckpt",
                str(run / "final.pt"),
                "--out",
                str(shipped),
                "--metrics",
                str(ev / "summary.json"),
                "--label",
                "run",
            ]
        )
        == 0
    )
    ck = torch.load(shipped, weights_only=True)
    assert all(v.dtype != torch.float32 for v in ck["state_dict"].values())
    assert ck["metrics"]["test"]["psnr_db"]["mean"] == pytest.approx(ours["psnr_db"]["mean"])
    assert ck["decoding"] == torch.load(run / "final.pt")["decoding"]
    hotter = tmp_path / "hot.pt"
    args = ["export", "--ckpt", str(run / "final.pt"), "--out", str(hotter)]
    assert cli([*args, "--temperature", "0.9", "--why", "test"]) == 0
    ck = torch.load(hotter, weights_only=True)
    assert (
        ck["decoding"]["temperature"] == 0.9
        and ck["metrics"]["temperature_override"]["why"] == "test"
    )
    assert cli([*args, "--temperature", "-1"]) == 2


def test_temperature_rules():
    gt = 30.0
    table = {  # colder (lower T) = more colourful, less PSNR: the usual trade-off
        0.2: dict(psnr_db=21.0, euclidean=300.0, colorfulness=35.0, gt_colorfulness=gt),
        0.5: dict(psnr_db=23.5, euclidean=250.0, colorfulness=22.0, gt_colorfulness=gt),
        1.0: dict(psnr_db=24.0, euclidean=240.0, colorfulness=12.0, gt_colorfulness=gt),
    }
    scores = {t: Scores(v) for t, v in table.items()}

    def pick(rule, gray=None):
        return tune_decoding(scores, None if gray is None else Scores(gray), rule)

    assert pick("psnr") == 1.0
    assert pick("ed") == 1.0
    assert pick("balanced") == 0.5  # within 0.5 dB, closest colourfulness
    assert pick("floor", dict(psnr_db=23.0, euclidean=260.0)) == 0.5
    assert pick("floor", dict(psnr_db=20.5, euclidean=400.0)) == 0.2
    assert pick("floor", dict(psnr_db=30.0, euclidean=100.0)) == 1.0
    with pytest.raises(ValueError, match="needs the gray floor"):
        pick("floor")


def test_init_from_checkpoint(tiny_data, tmp_path):
    first = tmp_path / "first"
    train(load_config(None, tiny_config(tiny_data, first, epochs=1, temperature=0.5)))
    again = tmp_path / "again"
    cfg = tiny_config(tiny_data, again, epochs=1, temperature=0.5, lr=1e-9)
    train(load_config(None, [*cfg, f'init_from="{first / "final.pt"}"']))
    a = torch.load(first / "final.pt", weights_only=True)["state_dict"]
    b = torch.load(again / "final.pt", weights_only=True)["state_dict"]
    convs = [k for k in a if k.endswith("weight") and a[k].dim() == 4]
    assert convs and all(torch.allclose(a[k], b[k], atol=1e-6) for k in convs)
    bad = tiny_config(tiny_data, tmp_path / "bad", model='"streetside_tiny"', loss='"mse"')
    with pytest.raises(TrainingError, match="holds a 'colornet_tiny'"):
        train(load_config(None, [*bad, f'init_from="{first / "final.pt"}"']))
    # the same family with other widths: the validated loader names the misfit tensors, where
    # a bare load_state_dict raised torch's RuntimeError
    wide = tiny_config(
        tiny_data, tmp_path / "wide", epochs=1, **{"model_args.widths": "[8, 8, 8, 16]"}
    )
    with pytest.raises(TrainingError, match=r"init_from: .*does not fit.*shape mismatches"):
        train(load_config(None, [*wide, f'init_from="{first / "final.pt"}"']))
    assert not (tmp_path / "wide" / "last.pt").exists()


def test_init_only_takes_the_named_prefixes_and_leaves_the_rest_fresh(tiny_data, tmp_path):
    first = tmp_path / "first"
    train(load_config(None, tiny_config(tiny_data, first, epochs=1, temperature=0.5)))
    a = torch.load(first / "final.pt", weights_only=True)["state_dict"]
    prefix = next(iter(a)).split(".")[0] + "."  # the network's first module
    cfg = tiny_config(tiny_data, tmp_path / "part", epochs=1, temperature=0.5, lr=1e-9)
    extra = [f'init_from="{first / "final.pt"}"', f'init_only=["{prefix}"]']
    train(load_config(None, [*cfg, *extra]))
    b = torch.load(tmp_path / "part" / "final.pt", weights_only=True)["state_dict"]
    convs = [k for k in a if k.endswith("weight") and a[k].dim() == 4]
    taken = [k for k in convs if k.startswith(prefix)]
    rest = [k for k in convs if not k.startswith(prefix)]
    assert taken and rest
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in taken)
    assert not any(torch.allclose(a[k], b[k], atol=1e-6) for k in rest)
    cfg = tiny_config(tiny_data, tmp_path / "none", epochs=1, temperature=0.5)
    with pytest.raises(TrainingError, match="holds nothing under nowhere."):
        train(load_config(None, [*cfg, extra[0], 'init_only=["nowhere."]']))
    with pytest.raises(ConfigError, match="set init_from"):
        load_config(None, [*cfg, 'init_only=["x."]'])
    with pytest.raises(ConfigError, match="pretrained_encoder is not loaded"):  # not a random one
        load_config(None, [*cfg, extra[0], 'init_only=["x."]', "pretrained_encoder=true"])


def test_resume_from_a_damaged_or_foreign_last_pt_is_a_clear_error(tiny_data, tmp_path):
    out = tmp_path / "run"
    train(load_config(None, tiny_config(tiny_data, out, epochs=1, temperature=0.5)))
    last = out / "last.pt"
    whole = last.read_bytes()
    last.write_bytes(whole[: len(whole) // 2])  # cut off (a full disk, a killed copy)
    cfg = load_config(None, tiny_config(tiny_data, out, epochs=2, temperature=0.5))
    with pytest.raises(
        TrainingError, match=r"--resume: cannot read checkpoint .*last\.pt.*truncated"
    ):
        train(cfg, resume=True)
    assert last.read_bytes() == whole[: len(whole) // 2]  # nothing written over it
    torch.save({k: v for k, v in torch.load(out / "final.pt")["state_dict"].items()}, last)
    with pytest.raises(TrainingError, match="--resume: .*plain state dict"):
        train(cfg, resume=True)
    other = load_config(None, tiny_config(tiny_data, out, epochs=2, model='"cunet_tiny"'))
    shutil.copy(out / "final.pt", last)  # a checkpoint of another architecture
    with pytest.raises(
        TrainingError, match="--resume: .*holds a 'colornet_tiny', not a 'cunet_tiny'"
    ):
        train(other, resume=True)


def test_calibrate_cli_writes_a_calibrated_checkpoint(tiny_data, tmp_path, caplog):
    """calibrate fits w(entropy) on val, scores each temperature with it, picks the default
    by the floor rule and writes both into the checkpoint, with the table beside it."""
    run = tmp_path / "run"
    train(load_config(None, tiny_config(tiny_data, run, epochs=3, reg_weight=1.0)))
    out = tmp_path / "cal.pt"
    args = ["calibrate", "--ckpt", str(run / "final.pt"), "--data", str(tiny_data)]
    assert cli([*args, "--out", str(out), "--temperatures", "0.3", "0.6"]) == 0
    ckpt = torch.load(out, weights_only=True)
    cal = ckpt["decoding"]["calibration"]
    # one temperature: the decoding's (the curves keep no copy of the T they were fitted at)
    assert "temperature" not in cal and ckpt["decoding"]["temperature"] in (0.3, 0.6)
    assert ckpt["decoding"]["temperature"] == ckpt["metrics"]["calibration"]["temperature"]
    assert len(cal["entropy"]) == len(cal["weight"]) > 0
    assert all(0 <= w <= 1 for w in cal["weight"])
    assert "calibration" in ckpt["metrics"]
    assert cal["floor"] == ckpt["metrics"]["calibration"]["floor"]
    # the per-source table: every setting x every source of the split, one chosen setting
    src_rows = list(csv.DictReader((tmp_path / "cal_sources.csv").open()))
    n_sources = len({r["source"] for r in src_rows})
    assert n_sources >= 1 and len(src_rows) == 2 * 2 * 6 * n_sources
    assert {r["chosen"] for r in src_rows} == {"0", "1"}
    assert ckpt["metrics"]["calibration"]["rule"] in ("per_source", "pooled")
    rows = (tmp_path / "cal.csv").read_text().splitlines()
    from training.calibrate import FLOORS

    # plain T 0.3, 0.6, 1; then T x (blend, blend + mean scale) x floors; then gray
    assert rows[0].startswith("temperature,mean_scale,floor")
    assert len(rows) == 1 + 3 + 2 * 2 * len(FLOORS) + 1
    assert sum(r.endswith(",1") for r in rows) == 1  # one chosen setting
    scaled = ckpt["metrics"]["calibration"]["mean_scale"]
    assert ("mean_weight" in cal) == scaled
    from colorizer.models import load_checkpoint

    model, _ = load_checkpoint(out)
    assert model.decoding.calibration == cal  # the decode uses it from now on
    reg = tmp_path / "reg"
    train(load_config(None, tiny_config(tiny_data, reg, model='"streetside_tiny"', loss='"mse"')))
    bad = ["calibrate", "--ckpt", str(reg / "final.pt"), "--data", str(tiny_data)]
    assert cli([*bad, "--out", str(tmp_path / "x.pt")]) == 2
    assert "regression model" in caplog.text
    (tmp_path / "notes.pt").write_text("not a checkpoint")  # one line, exit 2, no traceback
    bad = ["calibrate", "--ckpt", str(tmp_path / "notes.pt"), "--data", str(tiny_data)]
    assert cli([*bad, "--out", str(tmp_path / "y.pt")]) == 2 and "text file" in caplog.text


def test_multiscale_crops_and_regression_term(tiny_data, tmp_path):
    gen = torch.Generator().manual_seed(0)
    images = torch.from_numpy(np.array(load_split(tiny_data, "train")))
    x = make_batch(images, torch.arange(4), 24, True, gen, torch.device("cpu"), scale_min=0.5)
    assert x.shape == (4, 3, 24, 24) and 0 <= float(x.min()) and float(x.max()) <= 1
    with pytest.raises(ConfigError, match="scale_min"):
        load_config(None, tiny_config(tiny_data, tmp_path / "a", scale_min=0))
    with pytest.raises(TrainingError, match="reg_weight"):
        reg = tiny_config(tiny_data, tmp_path / "b", model='"streetside_tiny"', loss='"mse"')
        train(load_config(None, [*reg, "reg_weight=1.0"]))


@pytest.mark.slow
def test_ddp_two_processes_with_torchrun(tiny_data, tmp_path):
    """torchrun, 2 CPU processes (gloo): each rank takes half the photos; rank 0 writes."""
    import subprocess
    import sys

    out = tmp_path / "ddp"
    sets = sum((["--set", s] for s in tiny_config(tiny_data, out, temperature=0.5)), [])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--standalone", "-m", "training", "train", *sets]  # fmt: skip
    env = {
        **__import__("os").environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(CONFIGS.parents[1]),
    }
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = (out / "metrics.csv").read_text().splitlines()
    n_train = len(load_split(tiny_data, "train"))
    assert len(rows) == 3 and rows[1].split(",")[1] == str(n_train // 2 // 8)  # steps per rank
    ck = torch.load(out / "final.pt", weights_only=True)
    assert ck["decoding"]["temperature"] == 0.5 and ck["train"]["hardware"].startswith("2 x")


def test_color_loss_equals_the_dense_loss_it_replaced():
    """ColorLoss gathers the k soft-target bins and takes the mean from its own log-softmax
    (a third of the time); the value and gradient are those of the dense formulation."""
    from benchmarks.bench_train_step import loss_before
    from colorizer.models import create_model
    from training.config import TrainConfig
    from training.train import ColorLoss

    model = create_model("effunet_tiny")
    g = torch.Generator().manual_seed(0)
    weights = torch.rand(model.bins.num_classes, generator=g) + 0.5
    loss = ColorLoss(TrainConfig(lam=0.5, reg_weight=1.0), model, weights)
    out = torch.randn(3, model.bins.num_classes, 8, 8, generator=g, requires_grad=True)
    ab = (torch.rand(3, 2, 32, 32, generator=g) - 0.5) * 160
    new, old = loss(out, ab), loss_before(loss, out, ab)
    (g_new,) = torch.autograd.grad(new, out)
    (g_old,) = torch.autograd.grad(old, out)
    assert torch.allclose(new, old, atol=1e-5), (float(new), float(old))
    assert torch.allclose(g_new, g_old, atol=1e-7)


def test_calibration_holds_the_colour_on_the_drabbest_source():
    # pooled, setting "mild" is 90 % as colourful as the photos, but one source (sunrises) gets
    # 60 % of its colour; "bold" gives every source >= 85 %: the per-source rule takes it, the
    # pooled rule the better-PSNR "mild" (the failure of issue 24)

    def sc(psnr, colour, sunrise, fog):
        pooled = dict(psnr_db=psnr, euclidean=300.0, colorfulness=colour)
        return Scores(
            pooled, {"sunrise": dict(colorfulness=sunrise), "fog": dict(colorfulness=fog)}
        )

    photos = Scores(dict(colorfulness=30.0), {"sunrise": dict(colorfulness=40.0), "fog": dict(colorfulness=10.0)})  # fmt: skip
    gray = Scores(dict(psnr_db=22.0, euclidean=320.0), {})
    table = {"mild": sc(24.0, 27.0, 24.0, 16.0), "bold": sc(23.5, 33.0, 35.0, 17.0)}
    assert tune_decoding(table, gray, "pooled", photos, 0.85) == "mild"
    assert tune_decoding(table, gray, "per_source", photos, 0.85) == "bold"
    # none holds every source: the one whose drabbest source is the most colourful
    table["bold"] = sc(23.5, 33.0, 30.0, 17.0)  # sunrise 75 %
    assert tune_decoding(table, gray, "per_source", photos, 0.85) == "bold"
    table["greyer"] = sc(22.5, 20.0, 20.0, 8.0)
    assert tune_decoding(table, gray, "per_source", photos, 0.85) == "bold"
