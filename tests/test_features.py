"""The frozen stage's feature cache (training/features.py): it gives the decoder exactly what
the live encoder gives it, a cached run resumes exactly, and a cache made for anything else
is refused rather than reused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from colorizer.hints import simulate_hints
from colorizer.models import create_model
from training.config import TrainingError, load_config
from training.data import load_images, to_lab
from training.features import CacheError, forward_cached, open_cache
from training.prepare import PrepareConfig, prepare
from training.train import train

from conftest import sample_photos

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """40 photos prepared at 40 px (effunet needs crops of 32 px and more)."""
    root = tmp_path_factory.mktemp("features")
    sample_photos(root / "img", 40, size=48, seed=3)
    prepare(PrepareConfig(images=[str(root / "img")], out=str(root / "data"), size=(40, 40)))
    return root / "data"


def config(data: Path, out: Path, cache: Path, **kw):
    sets = {
        "data": f'"{data}"',
        "out_dir": f'"{out}"',
        "model": '"effunet_tiny"',
        "model_args": "{freeze_encoder = true}",
        "feature_cache": f'"{cache}"',
        "cache_variants": "3",
        "epochs": "2",
        "batch_size": "8",
        "lr": "3e-3",
        "crop": "32",
        "scale_min": "0.7",
        "warmup_steps": "2",
        "temperature_grid": "[0.5]",
        "log_every": "1",
        "seed": "4",
    }
    sets.update({k: str(v) for k, v in kw.items()})
    return load_config(None, [f"{k}={v}" for k, v in sets.items()])


def frozen_model(seed: int = 0):
    torch.manual_seed(seed)
    return create_model("effunet_tiny", freeze_encoder=True).train()


@pytest.mark.parametrize("amp", [False, True])
def test_cached_features_are_what_the_encoder_gives(data, tmp_path, amp):
    cfg = config(data, tmp_path / "run", tmp_path / "cache", cpu_amp=str(amp).lower())
    torch.manual_seed(0)
    model = create_model("effunet_tiny", freeze_encoder=True, hints=True, hint_sees_image=True)
    model = model.train().to(memory_format=torch.channels_last)  # as the trainer holds it
    images = load_images(str(data), "train")
    cache = open_cache(cfg.feature_cache, cfg, model, images, CPU)
    assert cache.spec.dtype == ("bfloat16" if amp else "float32")
    idx, variant = torch.arange(len(images))[:12], torch.tensor([0, 1, 2] * 4)
    rgb, taps, pooled = cache.batch(idx, variant, CPU)
    assert rgb.shape == (12, 3, 32, 32) and 0.0 <= float(rgb.min()) and float(rgb.max()) <= 1.0
    L, ab = to_lab(rgb)
    L = L.contiguous(memory_format=torch.channels_last)
    hints = simulate_hints(ab, torch.Generator().manual_seed(1), 4.0, 0.0, 3)
    # the hint branches are zero-initialised: give them weights so that they change the output
    for p in model.hint_branches.parameters():
        torch.nn.init.normal_(p, std=0.1)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        live = model(L)
        cached = forward_cached(model, L, taps, pooled)
        live_h = model(L, hints)
        cached_h = forward_cached(model, L, taps, pooled, hints)
    assert torch.equal(live, cached) and torch.equal(live_h, cached_h)
    assert not torch.equal(live, live_h)
    # the variants of one photo are different crops of it
    rgb_all, _, _ = cache.batch(torch.zeros(3, dtype=torch.long), torch.arange(3), CPU)
    assert not torch.equal(rgb_all[0], rgb_all[1]) and not torch.equal(rgb_all[1], rgb_all[2])


def test_plain_crops_are_crop_sized_windows_as_in_the_live_path(data, tmp_path):
    """scale_min = 1: windows of `crop` pixels at random places, flipped or not, no resize."""
    images = load_images(str(data), "train")
    cfg = config(data, tmp_path / "r", tmp_path / "cache", scale_min="1.0")
    cache = open_cache(cfg.feature_cache, cfg, frozen_model(), images, CPU)
    places = set()
    for i in range(6):
        rgb, _, _ = cache.batch(torch.full((3,), i), torch.arange(3), CPU)
        for crop in (rgb * 255).round().to(torch.uint8).permute(0, 2, 3, 1):
            hits = [
                (y, x)
                for y in range(40 - 32 + 1)
                for x in range(40 - 32 + 1)
                if any(
                    torch.equal(crop, w)
                    for w in (
                        images[i, y : y + 32, x : x + 32],
                        images[i, y : y + 32, x : x + 32].flip(1),
                    )
                )
            ]
            assert hits, "a stored crop is not a window of its photo"
            places.add(hits[0])
    assert len(places) > 3  # at random places, not one corner


def test_a_cached_run_resumes_exactly(data, tmp_path, monkeypatch):
    import training.train as trainer

    def live_path(*args, **kw):
        raise AssertionError("a cached run cut a live batch")

    monkeypatch.setattr(trainer, "make_batch", live_path)
    cache = tmp_path / "cache"
    whole = config(data, tmp_path / "whole", cache)
    train(whole)
    broken = config(data, tmp_path / "broken", cache, save_every_steps=3, max_steps=3)
    assert train(broken) == {"stopped_at_step": 3}
    train(config(data, tmp_path / "broken", cache), resume=True)
    a = torch.load(tmp_path / "whole" / "final.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "broken" / "final.pt", weights_only=True)["state_dict"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the cache is the run's: it lands in the checkpoint's config, and only the decoder moved
    ckpt = torch.load(tmp_path / "whole" / "final.pt", weights_only=True)
    assert ckpt["train"]["config"]["feature_cache"] == str(cache)
    init = frozen_model(seed=4).state_dict()
    assert all(torch.equal(init[k], a[k]) for k in a if k.startswith("encoder."))
    assert not all(torch.equal(init[k], a[k]) for k in a if k.startswith("head."))


def test_a_cache_made_for_something_else_is_refused(data, tmp_path):
    cache = tmp_path / "cache"
    images = load_images(str(data), "train")
    open_cache(cache, config(data, tmp_path / "r", cache), frozen_model(), images, CPU)
    before = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    for kw, what in [({"seed": "5"}, "seed"), ({"crop": "36"}, "crop"), ({}, "encoder_sha256")]:
        model = frozen_model(seed=9) if what == "encoder_sha256" else frozen_model()
        with pytest.raises(CacheError, match=f"made for another run .*{what}"):
            open_cache(cache, config(data, tmp_path / "r", cache, **kw), model, images, CPU)
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == before  # untouched
    # an encoder that trains cannot be cached, nor can a model without an encoder
    torch.manual_seed(0)
    live = create_model("effunet_tiny").train()
    with pytest.raises(TrainingError, match="encoder frozen"):
        open_cache(
            tmp_path / "c2", config(data, tmp_path / "r", tmp_path / "c2"), live, images, CPU
        )
    with pytest.raises(TrainingError, match="separate encoder"):
        open_cache(
            tmp_path / "c3",
            config(data, tmp_path / "r", tmp_path / "c3"),
            create_model("colornet_tiny"),
            images,
            CPU,
        )
    # a folder of something else is not overwritten; a damaged meta is a clear error
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(CacheError, match="holds no feature cache"):
        open_cache(other, config(data, tmp_path / "r", other), frozen_model(), images, CPU)
    assert (other / "notes.txt").read_text() == "mine"
    (cache / "meta.json").write_text("{not json")
    with pytest.raises(CacheError, match="unreadable"):
        open_cache(cache, config(data, tmp_path / "r", cache), frozen_model(), images, CPU)


def test_a_killed_build_leaves_no_cache(data, tmp_path, monkeypatch):
    import training.features as features

    cache = tmp_path / "cache"
    images = load_images(str(data), "train")
    cfg = config(data, tmp_path / "r", cache)

    calls = []
    lab_l = features._lab_l

    def killed(*args, **kw):  # killed once the first batch is on disk
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return lab_l(*args, **kw)

    monkeypatch.setattr(features, "_lab_l", killed)
    with pytest.raises(KeyboardInterrupt):
        open_cache(cache, cfg, frozen_model(), images, CPU)
    assert not cache.exists() and (tmp_path / "cache.partial" / "rgb.npy").is_file()
    monkeypatch.undo()
    opened = open_cache(cache, cfg, frozen_model(), images, CPU)
    assert json.loads((cache / "meta.json").read_text())["variants"] == 3
    assert opened.spec.photos == len(images)
    assert not (tmp_path / "cache.partial").exists()
    # a damaged or missing array is refused by name, never read as features
    f8 = cache / "f8.npy"
    f8.write_bytes(f8.read_bytes()[: f8.stat().st_size // 2])
    with pytest.raises(CacheError, match="damaged feature cache"):
        open_cache(cache, cfg, frozen_model(), images, CPU)
    f8.unlink()
    with pytest.raises(CacheError, match=r"incomplete feature cache \(f8\)"):
        open_cache(cache, cfg, frozen_model(), images, CPU)
