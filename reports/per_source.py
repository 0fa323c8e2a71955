"""Every shipped model against the gray floor, per source of photos, as a user would run them.

    python -m reports.per_source --data data/outdoor160 --checkset checkset/photos \
        --models default landscape street seed1_cunet seed2_cnn gray --out results/default_model

Two kinds of sources:
- the test split of a ``python -m training prepare`` folder, grouped by the folder each photo came
  from (landscapes, each scene class, streetside): the ORIGINAL files at their native size, never
  seen in training (the split is by content hash);
- an out-of-source check set (``checkset/photos/<category>/``): photos from other cameras and
  places that no training saw, at their own size (up to 1024 px).

Each group is scored by the one folder evaluator (``colorizer.evaluate.evaluate_models``) through
the full-resolution pipeline, so the figures are what ``python -m colorizer colorize`` gives.
Writes ``per_source.md`` / ``per_source.csv`` and, for the check set only (its photos may be
redistributed; the training sets' may not), a picture grid per category.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from PIL import Image

from colorizer.atomic import write_text
from colorizer.evaluate import EvalConfig, evaluate_models
from colorizer.imageio import list_images, load_image, to_tensor
from colorizer.metrics import colorfulness
from colorizer.provenance import invocation, machine_info
from training.data import spread_rows

log = logging.getLogger("per_source")
COLUMNS = ("psnr_db", "euclidean", "auc", "colorfulness")


def split_groups(data: Path, split: str, root: Path, limit: int = 0) -> dict[str, Path]:
    """Folders of links to the split's original photos, one per source folder; at most
    ``limit`` per source (0: all), spread evenly over it: a source's first photos in file
    order are not a sample of it (scenes/street's first 30 test photos: -0.18 dB over gray,
    all 123: +0.27)."""
    manifest = json.loads((data / "manifest.json").read_text())
    by_source: dict[str, list[dict]] = {}
    for item in manifest["items"]:
        if item["split"] == split:
            by_source.setdefault(Path(item["source"]).name, []).append(item)
    groups: dict[str, Path] = {}
    for name, items in by_source.items():
        folder = groups.setdefault(f"test: {name}", root / name)
        folder.mkdir(parents=True, exist_ok=True)
        for row in spread_rows(len(items), limit):
            item = items[int(row)]
            src = Path(item["path"])
            link = folder / f"{item['index']:05d}{src.suffix.lower()}"
            if not link.exists():
                os.symlink(src.resolve(), link)
    return groups


def checkset_groups(checkset: Path) -> dict[str, Path]:
    return {f"checkset: {d.name}": d for d in sorted(checkset.iterdir()) if d.is_dir()}


def photos_colorfulness(folder: Path, limit: int = 0) -> float:
    photos = list_images(folder)[: limit or None]
    values = [float(colorfulness(to_tensor(load_image(p))[None])[0]) for p in photos]
    return sum(values) / len(values)


def run(
    models: list[str], groups: dict[str, Path], out: Path, grid: int, limit: int = 0
) -> pd.DataFrame:
    rows = []
    for group, folder in groups.items():
        cfg = EvalConfig(
            size=0, grid=grid if group.startswith("checkset") else 0, limit=limit or None
        )
        t0 = time.time()
        res = evaluate_models(models, folder, cfg, progress=False)
        gt_colour = photos_colorfulness(folder, limit)
        for _, r in res.summary.iterrows():
            rows.append(
                {
                    "source": group,
                    "model": r["model"],
                    "photos": int(r["n"]),
                    **{c: r[f"{c}_mean"] for c in COLUMNS},
                    "photos_colorfulness": gt_colour,
                }
            )
        if res.grid is not None:
            # half size, JPEG: a picture to judge colour by, small enough to commit
            small = res.grid.resize((res.grid.width // 2, res.grid.height // 2), Image.LANCZOS)
            small.save(out / f"grid_{folder.name}.jpg", quality=85)
        log.info("%s: %d photos in %.0f s", group, int(res.summary["n"].iloc[0]), time.time() - t0)
    return pd.DataFrame(rows)


def merge(kept: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """``kept``'s rows of the models ``new`` has not measured, then ``new``'s, grouped by
    source in first-seen order. By the table's model names: a model given as a path is
    named by its stem, so matching the command's arguments would keep a stale row beside
    the new one."""
    replaced = sorted(set(kept["model"]) & set(new["model"]))
    if replaced:  # two files with one stem also land here: the log says which rows went
        log.warning("--append: replacing the rows of %s", ", ".join(replaced))
    kept = kept[~kept["model"].isin(set(new["model"]))]
    table = pd.concat([kept, new]).reset_index(drop=True)
    order = {s: i for i, s in enumerate(dict.fromkeys(table["source"]))}
    return table.sort_values("source", key=lambda c: c.map(order), kind="stable")


def markdown(table: pd.DataFrame, command: str) -> str:
    lines = [
        "# Every model per source of photos, full-resolution pipeline",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine_info()}  ",
        "PSNR in dB (higher is better), ED = the first seed's Euclidean distance (lower is "
        "better), AuC in % (higher), colourfulness (Hasler-Suesstrunk) beside the photos' own; "
        "each model at its default setting. 'over gray' is PSNR minus the gray floor's.",
        "",
    ]
    for source, g in table.groupby("source", sort=False):
        gray = g[g["model"] == "gray"]["psnr_db"]
        floor = float(gray.iloc[0]) if len(gray) else float("nan")
        n, gt = int(g["photos"].iloc[0]), float(g["photos_colorfulness"].iloc[0])
        lines += [
            f"## {source} ({n} photos, photos' colourfulness {gt:.1f})",
            "",
            "| model | PSNR dB | over gray | ED | AuC % | colourfulness | % of photos' |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for _, r in g.iterrows():
            over = r["psnr_db"] - floor if math.isfinite(floor) else float("nan")
            lines.append(
                f"| {r['model']} | {r['psnr_db']:.2f} | {over:+.2f} | "
                f"{r['euclidean']:.1f} | {r['auc']:.1f} | {r['colorfulness']:.1f} | "
                f"{100 * r['colorfulness'] / gt:.0f} |"
            )
        if not math.isfinite(floor):
            lines.append(
                "\n(Some photos here are monochrome originals, which gray reproduces exactly: "
                "its mean PSNR is infinite, so 'over gray' is undefined; compare ED and AuC.)"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, help="a prepare folder: its test split, per source")
    p.add_argument("--split", default="test")
    p.add_argument("--checkset", type=Path, help="folder of category folders of photos")
    p.add_argument("--models", nargs="+", default=["default", "gray"])
    p.add_argument("--grid", type=int, default=8, help="photos per check-set grid")
    p.add_argument(
        "--limit",
        type=int,
        default=0,
        help="at most N photos per source (0: all): spread over a test source, the first N "
        "sorted of a check-set category",
    )
    p.add_argument(
        "--append",
        action="store_true",
        help="keep the rows of other models already in OUT/per_source.csv (same photos)",
    )
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        groups = split_groups(args.data, args.split, Path(tmp), args.limit) if args.data else {}
        if args.checkset:
            groups.update(checkset_groups(args.checkset))
        if not groups:
            p.error("give --data and/or --checkset")
        table = run(args.models, groups, args.out, args.grid, args.limit)
    old = args.out / "per_source.csv"
    if args.append and old.is_file():
        table = merge(pd.read_csv(old), table)
    write_text(old, table.to_csv(index=False, float_format="%.4f"))
    log_path = args.out / "commands.txt"  # every command whose rows are in the table
    previous = log_path.read_text() if args.append and log_path.is_file() else ""
    write_text(log_path, previous + invocation() + "\n")
    text = markdown(table, "`; `".join(log_path.read_text().split("\n")[:-1]))
    write_text(args.out / "per_source.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
