"""Checkpoints: round trips, fp16 shipping, atomic writes, and a clear error for every bad file."""

from __future__ import annotations

import dataclasses
import fractions
import pickle
import zipfile

import numpy as np
import pytest
import torch

from colorizer.atomic import atomic_text, atomic_write, write_text
from colorizer.bins import Decoding, DecodingError, get_bins
from colorizer.checkpoint import (
    FORMAT,
    CheckpointError,
    read_checkpoint,
    save_checkpoint,
)
from colorizer.models import create_model, load_checkpoint

from conftest import TINY


def lightness(h: int = 32, w: int = 32) -> torch.Tensor:
    return torch.rand(2, 1, h, w, generator=torch.Generator().manual_seed(0)) * 100


def trained(name: str, **overrides) -> torch.nn.Module:
    """A tiny model whose BN statistics and weights differ from a fresh one's."""
    torch.manual_seed(1)
    model = create_model(name, **overrides).train()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
        model(lightness())  # moves BN running stats
    return model.eval()


@pytest.mark.parametrize("name", TINY)
def test_round_trip_every_family(tmp_path, name):
    model = trained(name)
    train = {"data": "landscapes", "command": "python -m training train", "epochs": 3}
    path = save_checkpoint(
        tmp_path / "m.pt", model, decoding=Decoding(0.37), train=train, metrics={"auc": 0.9}
    )
    loaded, meta = load_checkpoint(path)
    assert type(loaded) is type(model) and not loaded.training
    assert loaded.arch_name == name and loaded.arch_args == model.arch_args
    assert meta["format"] == FORMAT and meta["train"] == train and meta["metrics"] == {"auc": 0.9}
    assert meta["path"] == str(path) and "state_dict" not in meta
    assert loaded.decoding == Decoding(0.37)
    if model.bins is not None:
        assert loaded.bins == model.bins
    L = lightness()
    with torch.no_grad():
        assert torch.equal(loaded(L), model(L))
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_bins_come_back_from_the_file(tmp_path):
    model = trained("colornet_tiny", bins="seed104")
    loaded, meta = load_checkpoint(save_checkpoint(tmp_path / "m.pt", model))
    assert loaded.bins == get_bins("seed104") and loaded.bins.null_index == 104
    assert meta["bins"]["name"] == "seed104"
    assert meta["decoding"] == model.decoding.to_dict()  # the model's own setting


def test_half_ships_smaller_and_loads_as_fp32(tmp_path):
    model = trained("colornet_tiny")
    full = save_checkpoint(tmp_path / "full.pt", model)
    half = save_checkpoint(tmp_path / "half.pt", model, half=True)
    raw = read_checkpoint(half)
    assert raw["half"] is True and raw["state_dict"]["head.weight"].dtype == torch.float16
    assert raw["state_dict"]["stem.1.num_batches_tracked"].dtype == torch.int64
    assert half.stat().st_size < 0.75 * full.stat().st_size
    loaded, _ = load_checkpoint(half)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    L = lightness()
    with torch.no_grad():
        a, b = model(L), loaded(L)
    assert not torch.equal(a, b) and torch.allclose(a, b, atol=2e-2, rtol=1e-2)


def test_resume_extras_round_trip(tmp_path):
    model = trained("streetside_tiny")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(lightness()).mean().backward()
    opt.step()
    extra = {
        "optimizer": opt.state_dict(),
        "epoch": 4,
        "step": 1234,
        "rng": {"torch": torch.get_rng_state()},
    }
    path = save_checkpoint(tmp_path / "resume.pt", model, extra=extra)
    raw = read_checkpoint(path)
    assert raw["epoch"] == 4 and raw["step"] == 1234
    assert torch.equal(raw["rng"]["torch"], extra["rng"]["torch"])
    opt2 = torch.optim.Adam(create_model("streetside_tiny").parameters(), lr=1e-3)
    opt2.load_state_dict(raw["optimizer"])
    assert opt2.state_dict()["state"][0]["step"] == 1


def test_save_refuses_what_weights_only_cannot_load(tmp_path):
    import numpy as np

    model = trained("colornet_tiny")
    target = tmp_path / "m.pt"
    save_checkpoint(target, model, metrics={"v": 1})
    with pytest.raises(TypeError, match=r"train\['config'\]\['rng'\] is a ndarray"):
        save_checkpoint(target, model, train={"config": {"rng": np.zeros(3)}})
    with pytest.raises(TypeError, match=r"use str\(path\)"):
        save_checkpoint(target, model, train={"data": tmp_path})
    with pytest.raises(ValueError, match="may not override"):
        save_checkpoint(target, model, extra={"state_dict": {}})
    with pytest.raises(TypeError, match="only models from colorizer.models"):
        save_checkpoint(target, torch.nn.Linear(2, 2))
    # the earlier good file is untouched and nothing temporary is left behind
    assert read_checkpoint(target)["metrics"] == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "m.pt"
    save_checkpoint(target, trained("colornet_tiny"), metrics={"v": 1})
    before = target.read_bytes()
    # A real failure half-way through torch.save: a big tensor is written, then a lambda
    # cannot be pickled.
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        with atomic_write(target) as f:
            torch.save({"a": torch.zeros(100_000), "b": lambda: 0}, f)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]
    # overwriting and creating missing folders work
    save_checkpoint(tmp_path / "new" / "dir" / "m.pt", trained("cunet_tiny"))
    save_checkpoint(target, trained("streetside_tiny"))
    assert load_checkpoint(target)[1]["arch"] == "streetside_tiny"


def test_write_text_is_atomic_and_utf8(tmp_path):
    target = write_text(tmp_path / "a" / "b" / "r.md", "# Ablation: λ 0.8, 30 °C\n")
    assert target.read_bytes() == "# Ablation: λ 0.8, 30 °C\n".encode()
    # A failure while writing (a lone surrogate cannot be encoded) keeps the old report whole
    # and leaves no temp file beside it.
    with pytest.raises(UnicodeEncodeError):
        write_text(target, "half a report \ud800")
    assert target.read_text(encoding="utf-8") == "# Ablation: λ 0.8, 30 °C\n"
    assert [p.name for p in target.parent.iterdir()] == ["r.md"]


def test_atomic_text_writes_what_open_would_and_keeps_the_old_file_on_error(tmp_path):
    import csv

    rows = [["source", "psnr_db"], ["dawn-fog", "-2.95"], ['a "quoted", name', "λ"]]
    with open(tmp_path / "plain.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    target = tmp_path / "t.csv"
    with atomic_text(target) as f:
        csv.writer(f).writerows(rows)
    assert target.read_bytes() == (tmp_path / "plain.csv").read_bytes()  # \r\n kept
    with pytest.raises(RuntimeError):
        with atomic_text(target) as f:
            csv.writer(f).writerows(rows * 1000)
            raise RuntimeError("killed half-way")
    assert target.read_bytes() == (tmp_path / "plain.csv").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.csv", "t.csv"]


def test_load_moves_to_the_device(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", trained("colornet_tiny"))
    model, _ = load_checkpoint(path, device="meta")
    assert all(p.device.type == "meta" for p in model.parameters())


# ---------------------------------------------------------------------- bad files
def corrupt(path, data: bytes):
    path.write_bytes(data)
    return path


def test_missing_and_directory(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint file not found: .*nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="not a file"):
        load_checkpoint(tmp_path)


def test_truncated_empty_text_and_random_bytes(tmp_path):
    good = save_checkpoint(tmp_path / "good.pt", trained("colornet_tiny")).read_bytes()
    cases = {
        "truncated.pt": (good[: len(good) // 2], "zip archive .* truncated or corrupt"),
        "empty.pt": (b"", "empty"),
        "notes.pt": (b"these are my notes\nline 2\n", "text file .*these are my notes"),
        "noise.pt": (bytes(range(7, 250)) * 4, "unrecognised binary data"),
    }
    for name, (data, pattern) in cases.items():
        with pytest.raises(CheckpointError, match=pattern):
            load_checkpoint(corrupt(tmp_path / name, data))


def test_foreign_pickles_are_not_unpickled(tmp_path):
    path = tmp_path / "pickle.pt"
    with open(path, "wb") as f:
        pickle.dump({"weights": [1, 2, 3]}, f)
    with pytest.raises(CheckpointError, match="plain Python pickle"):
        load_checkpoint(path)
    torch.save({"lr": fractions.Fraction(1, 3)}, tmp_path / "objects.pt")
    with pytest.raises(CheckpointError, match="Python objects other than tensors.*Fraction"):
        load_checkpoint(tmp_path / "objects.pt")
    assert zipfile.is_zipfile(tmp_path / "objects.pt")


def test_foreign_torch_files_say_what_they_are(tmp_path):
    model = trained("colornet_tiny")
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    with pytest.raises(CheckpointError, match=r"plain state dict of \d+ tensors .*stem.0.weight"):
        load_checkpoint(tmp_path / "sd.pt")
    torch.save(create_model("eccv16_tiny").state_dict(), tmp_path / "zhang.pth")
    with pytest.raises(CheckpointError, match="official eccv16 weights.*load_eccv16_weights"):
        load_checkpoint(tmp_path / "zhang.pth")
    torch.save([torch.ones(1)], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="holds a list, not a dict"):
        load_checkpoint(tmp_path / "list.pt")
    torch.save({"epoch": 3, "model": model.state_dict()}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="without format='colorizer-checkpoint'.*epoch"):
        load_checkpoint(tmp_path / "other.pt")


def edited(tmp_path, **changes):
    path = save_checkpoint(tmp_path / "m.pt", trained("colornet_tiny"))
    ckpt = read_checkpoint(path)
    ckpt.update(changes)
    torch.save(ckpt, path)
    return path


def test_unknown_arch_newer_version_and_bad_args(tmp_path):
    with pytest.raises(CheckpointError, match="architecture 'resnet9'.*known: colornet"):
        load_checkpoint(edited(tmp_path, arch="resnet9"))
    with pytest.raises(CheckpointError, match="version 7; .*update the project"):
        load_checkpoint(edited(tmp_path, version=7))
    with pytest.raises(CheckpointError, match="cannot rebuild 'colornet_tiny'.*depth"):
        load_checkpoint(edited(tmp_path, arch_args={"depth": 3}))
    path = edited(tmp_path)
    ckpt = read_checkpoint(path)
    del ckpt["state_dict"]
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="without 'state_dict'"):
        load_checkpoint(path)


def test_mismatched_state_dict_lists_what_differs(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", trained("colornet_tiny"))
    ckpt = read_checkpoint(path)
    sd = ckpt["state_dict"]
    del sd["head.bias"]
    sd["extra.weight"] = torch.zeros(1)
    sd["stem.0.weight"] = torch.zeros(5, 1, 3, 3)
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    msg = str(err.value)
    assert "does not fit architecture 'colornet_tiny'" in msg
    assert "missing keys: head.bias" in msg
    assert "unexpected keys: extra.weight" in msg
    assert "stem.0.weight: file (5, 1, 3, 3) vs model (4, 1, 3, 3)" in msg
    # bins that do not fit the head
    path = edited(tmp_path, bins=get_bins("seed104").to_dict())
    with pytest.raises(CheckpointError, match="105 classes but 'colornet_tiny' outputs 313"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "changes, pattern",
    [
        ({"bins": {}}, "'bins' is an empty dict"),
        ({"bins": "seed104"}, "'bins' must be None .* got a str"),
        ({"bins": {"name": "x"}}, "'bins' has no 'centers'"),
        ({"bins": {"name": "x", "centers": torch.zeros(0, 2)}}, "colour bins are unusable"),
        (
            {"state_dict": [torch.zeros(1), torch.ones(2)]},
            "'state_dict' must be a dict .* list of 2",
        ),
        ({"state_dict": {"stem.0.weight": 3.0}}, "entries must be name -> tensor.*stem.0.weight"),
        ({"decoding": {"temperature": float("nan")}}, "'decoding' is unusable: temperature must"),
        ({"decoding": {"temperature": -0.5}}, "'decoding' is unusable: temperature must be a pos"),
        ({"decoding": {"temperature": "warm"}}, "'decoding' is unusable: .*got 'warm'"),
        ({"decoding": 0.5}, "'decoding' is unusable: a decoding is a dict"),
        ({"decoding": {"temperature": 0.5, "T": 1}}, "'decoding' is unusable: .*keys \\['T'"),
        # version 1's fields, upgraded as they are read, are checked the same way
        ({"version": 1, "default_temperature": float("inf")}, "'decoding' is unusable: temp"),
        ({"version": 1, "calibration": {"entropy": [0.6, 0.2], "weight": [1, 0]}}, "sorted"),
        ({"arch_args": [8, 16]}, "'arch_args' must be a dict, got a list"),
        ({"arch": 7}, "'arch' must be a model name, got int 7"),
    ],
    ids=lambda v: None if isinstance(v, dict) else v.split(" ")[0][:24],
)
def test_hand_made_checkpoints_with_odd_contents_say_what_is_odd(tmp_path, changes, pattern):
    # Before, these gave a KeyError, a TypeError from deep inside torch or, for a NaN
    # temperature, a model that loaded and then refused every photo with "got None".
    path = edited(tmp_path, **changes)
    with pytest.raises(CheckpointError, match=pattern) as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)


def test_the_checkpoint_module_does_not_import_the_registry():
    """The file format sits below the registry: colorizer.models imports colorizer.checkpoint
    (to read files and load weights), never the other way round, not even inside a function."""
    import ast
    from pathlib import Path

    import colorizer.checkpoint

    tree = ast.parse(Path(colorizer.checkpoint.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m and m.startswith("colorizer.models")}


def v1_file(tmp_path, name="v1.pt", **fields):
    """A checkpoint as version 1 wrote it: one temperature at the top, maybe a second inside
    arch_args (the families' args dataclasses had one), the calibration beside them."""
    ckpt = read_checkpoint(save_checkpoint(tmp_path / name, trained("colornet_tiny")))
    ckpt.pop("decoding")
    ckpt.update(version=1, **fields)
    torch.save(ckpt, tmp_path / name)
    return tmp_path / name


def test_version_1_files_load_as_they_did_the_top_temperature_winning(tmp_path):
    cal = {"temperature": 0.6, "entropy": [0.2, 0.6], "weight": [0.9, 0.1], "floor": 0.0}
    args = dict(trained("colornet_tiny").arch_args, default_temperature=0.4)
    both = v1_file(tmp_path, arch_args=args, default_temperature=0.6, calibration=cal)
    model, meta = load_checkpoint(both)
    assert meta["version"] == 3 and "default_temperature" not in meta["arch_args"]
    # one temperature: the top one, as loading a v1 file set it last; the curves' own copy of
    # the T they were fitted at is not kept
    assert model.decoding == Decoding(0.6, {k: v for k, v in cal.items() if k != "temperature"})
    only_args = v1_file(tmp_path, "a.pt", arch_args=args, default_temperature=None)
    assert load_checkpoint(only_args)[0].decoding == Decoding(0.4)
    neither = v1_file(tmp_path, "n.pt", default_temperature=None)
    assert load_checkpoint(neither)[0].decoding == create_model("colornet_tiny").decoding
    # saved again, it is a current file with one decoding field and nothing else of the kind
    again = read_checkpoint(save_checkpoint(tmp_path / "v3.pt", model))
    assert again["version"] == 3 and again["decoding"]["temperature"] == 0.6
    assert not {"default_temperature", "calibration"} & set(again)


def test_decoding_is_checked_once_and_cannot_change_behind_a_model():
    cal = {"entropy": [0.2, 0.6], "weight": [0.9, 0.1]}
    d = Decoding(0.5, cal)
    cal["weight"][0] = 7.0  # the caller's dict: the frozen setting holds its own copy
    assert d.calibration["weight"] == [0.9, 0.1]
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.temperature = 0.1  # type: ignore[misc]
    assert d.at(0.3) == Decoding(0.3, d.calibration) and d.at(None) is d
    assert Decoding.from_dict(d.to_dict()) == d and d.describe() == "0.5 calibrated"
    # a number of any kind is a number: numpy scalars and 0-d tensors (a slider, an array)
    assert Decoding(np.float32(0.5)).temperature == 0.5 and Decoding(np.int64(1)).temperature == 1
    assert Decoding(torch.tensor(0.25)).temperature == 0.25
    for t in (0, -1, float("nan"), float("inf"), True, "0.5", torch.zeros(2)):
        with pytest.raises(DecodingError, match="temperature must be a positive finite"):
            Decoding(t)
    with pytest.raises(DecodingError, match="'mean_weight'"):
        Decoding(0.5, dict(d.calibration, mean_weight=[0.5]))


def test_a_file_naming_a_shipped_checkpoint_as_its_architecture_is_refused(tmp_path):
    # load_checkpoint builds architectures only (build_model): a file whose arch is a shipped
    # name ("default") would otherwise load that file to build itself, and a file naming
    # itself would never stop
    with pytest.raises(CheckpointError, match="architecture 'default'"):
        load_checkpoint(edited(tmp_path, arch="default"))
    from colorizer.models import ModelError, build_model

    with pytest.raises(ModelError, match="shipped checkpoint, not an architecture"):
        build_model("landscape")
    assert build_model("colornet_tiny").arch_name == "colornet_tiny"
