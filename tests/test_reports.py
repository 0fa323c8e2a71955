"""The report generators that turn evaluation tables into the committed summaries."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from reports.ablation import main as ablation


def per_source_table() -> pd.DataFrame:
    """A reports.per_source table of SIMULATED figures (two arms, gray; a test source, two
    check-set categories of which one is monochrome, where gray is exact)."""
    rows = []
    for source, gray_db, photos_c in [
        ("test: fog", 30.0, 10.0),
        ("checkset: sunset", 20.0, 40.0),
        ("checkset: colourless", math.inf, 1.0),
    ]:
        for model, gain, colour in [("gray", 0.0, 0.0), ("a.pt", 1.0, 8.0), ("b.pt", -2.0, 30.0)]:
            rows.append(
                dict(
                    source=source,
                    model=model,
                    photos=10,
                    psnr_db=gray_db + gain,
                    euclidean=1.0,
                    auc=90.0,
                    colorfulness=colour,
                    photos_colorfulness=photos_c,
                )
            )
    return pd.DataFrame(rows)


def test_ablation_summary_per_source_and_means(tmp_path):
    table = tmp_path / "per_source.csv"
    per_source_table().to_csv(table, index=False)
    out = tmp_path / "summary.md"
    assert ablation(["--table", str(table), "--arms", "a.pt=A", "b.pt", "--out", str(out)]) == 0
    lines = {line.split(" | ")[0]: line for line in out.read_text().splitlines() if "|" in line}
    assert lines["| test: fog"] == "| test: fog | **+1.00 / 80 %** | -2.00 / 300 % |"
    assert lines["| checkset: sunset"] == "| checkset: sunset | **+1.00 / 20 %** | -2.00 / 75 % |"
    assert lines["| checkset: colourless"] == "| checkset: colourless | - / 800 % | - / 3000 % |"
    # the monochrome category stays out of the check-set mean
    assert lines["| mean, check set (1)"].endswith("**+1.00 / 20 %** | -2.00 / 75 % |")
    assert "| source | A | b.pt |" in out.read_text()


def test_ablation_refuses_an_arm_the_table_lacks(tmp_path):
    table = tmp_path / "per_source.csv"
    per_source_table().to_csv(table, index=False)
    with pytest.raises(SystemExit, match="not in the table: c.pt"):
        ablation(["--table", str(table), "--arms", "c.pt", "--out", str(tmp_path / "s.md")])


def test_appending_a_remeasured_model_replaces_its_rows():
    from reports.per_source import merge

    old = per_source_table()
    new = per_source_table()
    new = new[new["model"] == "a.pt"].assign(psnr_db=lambda t: t["psnr_db"] + 5)
    merged = merge(old, new)
    assert len(merged) == len(old) and not merged.duplicated(["source", "model"]).any()
    a = merged[merged["model"] == "a.pt"].set_index("source")["psnr_db"]
    assert a["test: fog"] == 36.0  # the new figure, not the stale one
    assert list(dict.fromkeys(merged["source"])) == list(dict.fromkeys(old["source"]))


def test_bn_drift_moves_only_the_unfrozen_encoder_statistics():
    import torch

    from colorizer.models import create_model
    from reports.bn_drift import drift_statistics

    model = create_model("effunet_tiny", freeze_encoder=True, freeze_blocks=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    photos = torch.randint(0, 256, (6, 48, 48, 3), dtype=torch.uint8)  # SIMULATED photos
    n_bn = drift_statistics(model, photos, batches=2, batch=3, crop=40, seed=0)
    assert n_bn > 0 and not model.training
    for k, v in model.state_dict().items():
        moved = not torch.equal(v, before[k])
        stat = k.endswith(("running_mean", "running_var", "num_batches_tracked"))
        early = k.startswith(("encoder._bn0", "encoder._blocks.0.", "encoder._blocks.1."))
        unfrozen = k.startswith("encoder.") and not early  # later blocks and the head
        assert moved == (stat and unfrozen and "num_batches" not in k) or "num_batches" in k, k


def test_gate_ranking_gates_the_top_photos_and_scores_each_source():
    import pandas as pd

    from reports.gate_ranking import ranking

    # SIMULATED per-photo rows: fog scores high and the expert halves its error; the clear
    # photos score low but one, whose colour the expert takes from 40 to 20
    table = pd.DataFrame(
        {
            "source": ["fog"] * 2 + ["clear"] * 4,
            "score": [0.9, 0.8, 0.7, 0.1, 0.0, -0.1],
            "truth_chroma": [2.0, 2.0, 40.0, 40.0, 40.0, 40.0],
            "base_mse": [100.0, 100.0, 50.0, 50.0, 50.0, 50.0],
            "expert_mse": [50.0, 50.0, 60.0, 10.0, 10.0, 10.0],
            "base_chroma": [10.0, 10.0, 40.0, 40.0, 40.0, 40.0],
            "expert_chroma": [2.0, 2.0, 20.0, 0.0, 0.0, 0.0],
        }
    )
    t = ranking(table, top=0.5)  # the three best scores: both fog photos and one clear
    assert t.loc["fog", "in_top"] == 1.0 and t.loc["clear", "in_top"] == 0.25
    assert t.loc["fog", "gated_db"] - t.loc["fog", "base_db"] == pytest.approx(3.01, abs=0.01)
    assert t.loc["fog", "gated_colour"] == 1.0 and t.loc["fog", "base_colour"] == 5.0
    assert t.loc["clear", "gated_colour"] == pytest.approx(0.875)  # (20 + 3 x 40) / 4 / 40
    assert t.loc["clear", "gated_db"] < t.loc["clear", "base_db"]  # 52.5 > 50 mean MSE


def test_a_limited_source_is_spread_over_it_not_its_first_photos(tmp_path):
    from reports.per_source import split_groups

    items = []
    for i in range(40):  # two sources interleaved, one split
        photo = tmp_path / "photos" / f"{i:03d}.jpg"
        photo.parent.mkdir(exist_ok=True)
        photo.write_bytes(b"x")
        source = "data/street" if i % 2 else "data/land"
        items.append(dict(path=str(photo), source=source, split="test", index=i))
    items.append(dict(path=str(photo), source="data/land", split="val", index=40))
    (tmp_path / "manifest.json").write_text(json.dumps(dict(items=items)))
    groups = split_groups(tmp_path, "test", tmp_path / "links", limit=5)
    assert sorted(groups) == ["test: land", "test: street"]
    street = sorted(p.name for p in groups["test: street"].iterdir())
    assert street == ["00001.jpg", "00011.jpg", "00021.jpg", "00029.jpg", "00039.jpg"]
    whole = split_groups(tmp_path, "test", tmp_path / "all", limit=0)
    assert len(list(whole["test: land"].iterdir())) == 20  # the val photo is not in it
