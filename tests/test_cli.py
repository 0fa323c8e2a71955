"""`python -m colorizer` in a subprocess on a tiny model saved with save_checkpoint."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from colorizer.__main__ import main
from colorizer.bins import Decoding
from colorizer.checkpoint import save_checkpoint
from colorizer.evaluate import prepare_truth
from colorizer.imageio import to_tensor
from colorizer.inference import Colorizer
from colorizer.metrics import METRICS, psnr_db, seed_euclidean
from colorizer.models import create_model, list_models

from conftest import colorizer_cli as cli  # python -m colorizer -q ARGS, a subprocess


def photo(h: int, w: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 60 + 40 * seed)], -1)
    noise = rng.integers(-10, 11, (h, w, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    save_checkpoint(d / "tiny.pt", create_model("cunet_tiny"), decoding=Decoding(0.3))
    (d / "photos" / "sub").mkdir(parents=True)
    photo(40, 60, 0).save(d / "photos" / "p0.png")
    photo(50, 50, 1).save(d / "photos" / "p1.jpg")
    photo(30, 20, 2).save(d / "photos" / "sub" / "p2.png")
    return d


def test_models_lists_every_model(workdir):
    # a "shipped" file
    save_checkpoint(workdir / "landscape.pt", create_model("cunet_tiny"), decoding=Decoding(0.25))
    r = cli("models", cwd=workdir)
    assert r.returncode == 0, r.stderr
    shown = {line.split()[0] for line in r.stdout.splitlines()[1:-1]}
    # by default only what has (or can fetch) weights: no random-init or test-only entries
    assert {"landscape", "street", "default", "eccv16", "gray"} <= shown
    assert not shown & {"colornet", "cunet", "effunet", "cunet_tiny", "effunet_tiny"}, shown
    assert "--all lists them" in r.stdout.splitlines()[-1]
    r = cli("models", "--all", cwd=workdir)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    for name in [*list_models(), "gray"]:
        assert any(line.split()[0] == name for line in lines), name
    landscape = next(line for line in lines if line.startswith("landscape "))
    assert "present" in landscape and str(workdir / "landscape.pt") in landscape
    # what the checkpoint really decodes at (its saved default), not the registry's "-"
    assert re.search(r"present: \S+ +0.25 ", landscape), landscape
    street = next(line for line in lines if line.startswith("street "))
    assert "MISSING" in street and str(workdir / "street.pt") in street
    cunet = next(line for line in lines if line.startswith("cunet "))
    assert " 0.5 " in cunet  # its default temperature
    (workdir / "landscape.pt").unlink()


def test_colorize_files_and_folders(workdir):
    out = workdir / "out"
    r = cli(
        "colorize",
        str(workdir / "photos"),
        str(workdir / "photos" / "p0.png"),
        "--model",
        str(workdir / "tiny.pt"),
        "--out",
        str(out),
        "--temperature",
        "0.2",
        "--uncertainty",
    )
    assert r.returncode == 0, r.stderr
    assert Image.open(out / "p1.png").size == (50, 50)
    assert Image.open(out / "sub" / "p2.png").size == (20, 30)
    assert Image.open(out / "p0_uncertainty.png").size == (60, 40)
    # The same command through main() in this process gives the same pixels (deterministic).
    again = workdir / "again"
    code = main(["-q", "colorize", str(workdir / "photos" / "p1.jpg"), "--model", str(workdir / "tiny.pt"),
                 "--out", str(again), "--temperature", "0.2"])  # fmt: skip
    assert code == 0
    np.testing.assert_array_equal(
        np.asarray(Image.open(again / "p1.png")), np.asarray(Image.open(out / "p1.png"))
    )


def test_errors_are_one_line_with_exit_code_2(workdir, capsys):
    bad = workdir / "notes.jpg"
    bad.write_text("not a photo")
    r = cli("colorize", str(bad), "--model", "gray", "--out", str(workdir / "o"))
    assert r.returncode == 2
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert "not an image" in r.stderr and err[-1].startswith("error:")
    assert "Traceback" not in r.stderr

    def run(*argv: str) -> tuple[int, str]:
        code = main(["-q", *argv])
        return code, capsys.readouterr().err

    code, err = run(
        "colorize", str(workdir / "photos"), "--model", "nope", "--out", str(workdir / "o")
    )
    assert code == 2 and err.startswith("error: unknown model 'nope'") and err.count("\n") == 1
    empty = workdir / "no_weights"
    empty.mkdir()
    code, err = run("colorize", str(workdir / "photos"), "--model", "street", "--weights-dir", str(empty),
                    "--out", str(workdir / "o"))  # fmt: skip
    assert code == 2 and "missing" in err and str(empty / "street.pt") in err
    broken = workdir / "broken.pt"
    broken.write_bytes(b"PK\x03\x04 truncated")
    code, err = run(
        "colorize", str(workdir / "photos"), "--model", str(broken), "--out", str(workdir / "o")
    )
    assert code == 2 and "broken.pt" in err and err.count("\n") == 1
    code, err = run(
        "evaluate",
        "--model",
        "gray",
        "--images",
        str(workdir / "nothing"),
        "--out",
        str(workdir / "o"),
    )
    assert code == 2 and "no such folder" in err
    code, err = run("evaluate", "--images", str(workdir / "photos"), "--out", str(workdir / "o"))
    assert code == 2 and "--model" in err
    with pytest.raises(SystemExit) as exc:  # argparse: bad temperature
        main(["colorize", "x.png", "--model", "gray", "--out", "o", "--temperature", "-1"])
    assert exc.value.code == 2
    assert not (workdir / "o").exists() or not any((workdir / "o").iterdir())


def test_evaluate_models_and_predictions(workdir):
    out = workdir / "eval"
    r = cli("evaluate", "--model", "gray", str(workdir / "tiny.pt"), "--images", str(workdir / "photos"),
            "--out", str(out), "--size", "32")  # fmt: skip
    assert r.returncode == 0, r.stderr
    per_photo = pd.read_csv(out / "per_photo.csv")
    assert list(per_photo.columns) == ["model", "photo", *METRICS]
    assert len(per_photo) == 6 and set(per_photo["model"]) == {"gray", "tiny"}
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["model"]) == ["gray", "tiny"] and list(summary["n"]) == [3, 3]
    md = (out / "summary.md").read_text()
    assert "| gray | 3 |" in md and "| tiny | 3 |" in md and "Command:" in md and "Machine:" in md

    # The CSV's numbers are the metrics of the prediction, recomputed here independently.
    truth = prepare_truth(workdir / "photos" / "p1.jpg", 32)
    assert truth.size == (32, 32)
    pred = to_tensor(Colorizer("gray").colorize(truth))
    row = per_photo[(per_photo.model == "gray") & (per_photo.photo == "p1.jpg")].iloc[0]
    assert row["euclidean"] == pytest.approx(
        seed_euclidean(pred, to_tensor(truth)).item(), rel=1e-5
    )
    assert row["psnr_db"] == pytest.approx(psnr_db(pred, to_tensor(truth)).item(), rel=1e-5)
    g = summary.set_index("model").loc["gray"]
    # Both CSVs hold 6 significant digits (%.6g): the mean of rounded values and the rounded
    # mean agree to 5e-6 relative, not to pytest.approx's default 1e-6.
    assert g["euclidean_mean"] == pytest.approx(
        per_photo[per_photo.model == "gray"]["euclidean"].mean(), rel=1e-5
    )

    # Ready-made predictions, matched by stem: the truth itself scores perfectly; an extra
    # file is reported, a missing one listed.
    preds = workdir / "preds"
    preds.mkdir()
    photo(40, 60, 0).save(preds / "p0.png")
    photo(50, 50, 1).resize((64, 64)).save(preds / "p1.png")  # other size: resized for scoring
    photo(10, 10, 3).save(preds / "stranger.png")
    out2 = workdir / "eval_preds"
    code = main(["-q", "evaluate", "--predictions", str(preds), "--images", str(workdir / "photos"),
                 "--out", str(out2), "--size", "32"])  # fmt: skip
    assert code == 0
    pp = pd.read_csv(out2 / "per_photo.csv").set_index("photo")
    assert set(pp.index) == {"p0.png", "p1.jpg"}
    assert pp.loc["p0.png", "euclidean"] == pytest.approx(0.0, abs=1e-6)
    assert pp.loc["p0.png", "auc"] == pytest.approx(100.0)
    assert pp.loc["p1.jpg", "euclidean"] > 0
    md2 = (out2 / "summary.md").read_text()
    assert "stranger.png" in md2 and "p2.png" in md2  # unmatched prediction, missing truth


def test_evaluate_size_zero_and_limit(workdir):
    out = workdir / "eval_native"
    code = main(["-q", "evaluate", "--model", "gray", "--images", str(workdir / "photos"), "--out", str(out),
                 "--size", "0", "--limit", "1"])  # fmt: skip
    assert code == 0
    pp = pd.read_csv(out / "per_photo.csv")
    assert list(pp["photo"]) == ["p0.png"]  # sorted, first only
    truth = prepare_truth(workdir / "photos" / "p0.png", 0)
    assert truth.size == (60, 40)  # scored at its own size
    pred = to_tensor(Colorizer("gray").colorize(truth))
    assert pp.loc[0, "euclidean"] == pytest.approx(
        seed_euclidean(pred, to_tensor(truth)).item(), rel=1e-5
    )
    assert "at their own size" in (out / "summary.md").read_text()


def test_evaluate_grid_shows_truth_and_each_model_side_by_side(workdir):
    # Photos of three shapes at their own size (--size 0): every row is GRID_HEIGHT tall, each
    # tile keeps its photo's aspect, and the first column is the ground truth itself.
    from colorizer.evaluate import GRID_HEIGHT

    out = workdir / "eval_grid"
    code = main(["-q", "evaluate", "--model", "gray", str(workdir / "tiny.pt"), "--images",
                 str(workdir / "photos"), "--out", str(out), "--size", "0", "--grid", "2"])  # fmt: skip
    assert code == 0
    grid = np.asarray(Image.open(out / "grid.png").convert("RGB")).astype(int)
    pad, head = 4, 18
    assert grid.shape[0] == head + 2 * (GRID_HEIGHT + pad) + pad  # 2 rows, not 3
    # widest photo of the first two (p0 60x40 -> 360 wide) sets each column's width; 3 columns
    assert grid.shape[1] == 3 * 360 + 4 * pad
    truth = photo(40, 60, 0).resize((360, GRID_HEIGHT), Image.Resampling.LANCZOS)
    tile = grid[head + pad : head + pad + GRID_HEIGHT, pad : pad + 360]
    assert np.abs(tile - np.asarray(truth).astype(int)).mean() < 1.0
    gray_tile = grid[head + pad : head + pad + GRID_HEIGHT, 2 * pad + 360 : 2 * pad + 720]
    assert np.abs(gray_tile[..., 0] - gray_tile[..., 2]).max() <= 3  # the gray floor is gray
    # without --grid no picture is written
    assert not (workdir / "eval_native" / "grid.png").exists()


def test_checkpoint_labels_and_the_recorded_command(workdir):
    # A run's final.pt is named after its run folder, a shipped file after itself; the
    # summary records the command as typed (python -m colorizer), not __main__.py's path.
    from colorizer.inference import checkpoint_label

    assert checkpoint_label("runs/landscape_stage6/final.pt") == "landscape_stage6"
    assert (
        checkpoint_label("runs/x/last.pt") == "x"
        and checkpoint_label("weights/street.pt") == "street"
    )
    run = workdir / "myrun"
    run.mkdir()
    shutil.copy(workdir / "tiny.pt", run / "final.pt")
    out = workdir / "eval_labels"
    r = cli("evaluate", "--model", str(run / "final.pt"), "--images", str(workdir / "photos"),
            "--out", str(out), "--size", "16")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert list(pd.read_csv(out / "summary.csv")["model"]) == ["myrun"]
    assert "Command: `python -m colorizer -q evaluate --model " in (out / "summary.md").read_text()


def test_out_naming_an_existing_file_is_a_one_line_error(workdir):
    # Before: a FileExistsError traceback from the first write, exit 1.
    target = workdir / "taken.txt"
    target.write_text("keep me")
    for out in (target, target / "sub"):
        r = cli("colorize", str(workdir / "photos"), "--model", "gray", "--out", str(out))
        assert r.returncode == 2, r.stderr
        assert r.stderr.startswith("error: output folder") and r.stderr.count("\n") == 1
        assert "existing file, not a folder" in r.stderr and "Traceback" not in r.stderr
    assert target.read_text() == "keep me"


def test_outputs_never_collide_with_uncertainty_maps(workdir, tmp_path):
    # a.jpg's map is a_uncertainty.png; a photo really named a_uncertainty.jpg must get its
    # own name. Before, it was skipped as "exists" (exit 0), and with --overwrite its
    # colorization replaced a.jpg's map. Different sizes tell the files apart.
    src = tmp_path / "in"
    src.mkdir()
    photo(20, 30, 0).save(src / "a.jpg")
    photo(24, 36, 1).save(src / "a_uncertainty.jpg")
    out = tmp_path / "out"
    args = ["-q", "colorize", str(src), "--model", str(workdir / "tiny.pt"), "--out", str(out),
            "--uncertainty"]  # fmt: skip
    for extra in ([], ["--overwrite"]):
        assert main([*args, *extra]) == 0
        sizes = {p.name: Image.open(p).size for p in sorted(out.iterdir())}
        assert sizes == {
            "a.png": (30, 20),
            "a_uncertainty.png": (30, 20),  # a.jpg's map
            "a_uncertainty-2.png": (36, 24),  # the photo named a_uncertainty.jpg
            "a_uncertainty-2_uncertainty.png": (36, 24),
        }
    # Without --uncertainty the plan is the same, so a later run with maps finds its names free.
    plain = tmp_path / "plain"
    assert main(["-q", "colorize", str(src), "--model", "gray", "--out", str(plain)]) == 0
    assert sorted(p.name for p in plain.iterdir()) == ["a.png", "a_uncertainty-2.png"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_outputs_honour_the_umask(workdir, tmp_path, umask, mode):
    # Before: every output was 0600 (mkstemp's mode), unreadable to the group whatever the umask.
    old = os.umask(umask)
    try:
        code = main(["-q", "colorize", str(workdir / "photos" / "p0.png"), "--model",
                     str(workdir / "tiny.pt"), "--out", str(tmp_path / "o"), "--uncertainty"])  # fmt: skip
    finally:
        os.umask(old)
    assert code == 0
    written = sorted((tmp_path / "o").iterdir())
    assert [p.name for p in written] == ["p0.png", "p0_uncertainty.png"]
    for p in written:
        assert p.stat().st_mode & 0o777 == mode, (p.name, oct(p.stat().st_mode))


def test_colorize_without_model_uses_the_default_model(workdir, tmp_path):
    from colorizer.models import DEFAULT_MODEL

    weights = tmp_path / "weights"
    weights.mkdir()
    r = cli("colorize", str(workdir / "photos" / "p0.png"), "--out", str(tmp_path / "none"),
            "--weights-dir", str(weights))  # fmt: skip
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert f"model {DEFAULT_MODEL!r} is missing" in r.stderr
    assert str(weights / f"{DEFAULT_MODEL}.pt") in r.stderr
    assert not (tmp_path / "none").exists()
    shutil.copy(workdir / "tiny.pt", weights / f"{DEFAULT_MODEL}.pt")
    for out, model in (
        (tmp_path / "default", []),
        (tmp_path / "named", ["--model", str(workdir / "tiny.pt")]),
    ):
        code = main(["-q", "colorize", str(workdir / "photos" / "p0.png"), "--out", str(out),
                     "--weights-dir", str(weights), *model])  # fmt: skip
        assert code == 0
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / "default" / "p0.png")),
        np.asarray(Image.open(tmp_path / "named" / "p0.png")),
    )


def test_odd_checkpoint_is_named_in_one_line(workdir, tmp_path, capsys):
    # A NaN default temperature used to load, then fail on each photo with "got None".
    ckpt = torch.load(workdir / "tiny.pt", weights_only=True)
    ckpt["decoding"]["temperature"] = float("nan")
    torch.save(ckpt, tmp_path / "nan_t.pt")
    code = main(["-q", "colorize", str(workdir / "photos"), "--model", str(tmp_path / "nan_t.pt"),
                 "--out", str(tmp_path / "o")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "nan_t.pt" in err and "temperature must be a positive finite number" in err
    assert not (tmp_path / "o").exists()


def test_colorize_checks_its_inputs_and_output_before_loading_a_model(workdir, tmp_path):
    """A missing path, an empty folder, --out equal to an input folder and an unwritable
    --out are each one `error:` line and exit 2, said before the model loads (a model that
    cannot load would otherwise be the error reported)."""
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"PK\x03\x04 not a checkpoint")  # loading it would fail
    empty = tmp_path / "empty"
    empty.mkdir()
    readonly = tmp_path / "ro"
    readonly.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=16k", "tmpfs", str(readonly)], check=False
    )
    cases = {
        "no such file or folder: ": [str(tmp_path / "typo.jpg")],
        "no images found in ": [str(empty)],
        "is an input folder": [str(workdir / "photos"), "--out", str(workdir / "photos")],
    }
    if os.path.ismount(readonly):  # a real read-only filesystem where root may mount one
        cases["cannot write to output folder"] = [
            str(workdir / "photos"),
            "--out",
            str(readonly / "o"),
        ]
    try:
        for expected, argv in cases.items():
            if "--out" not in argv:
                argv = [*argv, "--out", str(tmp_path / "o")]
            r = cli("colorize", *argv, "--model", str(broken))
            lines = r.stderr.strip().splitlines()
            assert r.returncode == 2 and len(lines) == 1, (expected, r.stderr)
            assert lines[0].startswith("error: ") and expected in lines[0], (expected, r.stderr)
            assert "broken.pt" not in r.stderr  # the inputs were checked first
    finally:
        if os.path.ismount(readonly):
            subprocess.run(["umount", str(readonly)], check=False)
    assert not (tmp_path / "o").exists()


def test_a_bad_file_in_a_folder_is_one_line_then_the_summary(workdir, tmp_path):
    photos = tmp_path / "photos"
    shutil.copytree(workdir / "photos", photos)
    (photos / "notes.jpg").write_text("not a photo")
    r = cli("colorize", str(photos), "--model", "gray", "--out", str(tmp_path / "o"))
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2
    assert len(lines) == 2, r.stderr  # the bad file once, then the summary
    assert "notes.jpg" in lines[0] and lines[0].count("notes.jpg") == 1, lines[0]
    assert lines[1].startswith("error: 1 input(s) could not be colorized")
    assert len(list((tmp_path / "o").rglob("*.png"))) == 3  # the good photos were colorized
