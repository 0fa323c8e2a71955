"""PSNR and colourfulness against the number of user hints, and a picture grid.

    python -m reports.hints_curve --model default --data data/all160 \
        --checkset checkset/photos --out results/hints

For each photo set and each N in --ns (0 = the automatic colorization), every photo goes
through what ``python -m colorizer evaluate --model M --images DIR --hints random:N`` does (the
one evaluator, ``colorizer.evaluate.evaluate_models``, scoring at 256 px): N points at random
places, each with the truth's mean colour over a 5x5 patch there, a fixed seed per photo, the
first N points of a larger N the same. Two sets, neither seen in training:

- the test split of a ``python -m training prepare`` folder (its ORIGINAL files, --limit of
  them evenly spread over the split, so every source is in), and its landscapes alone;
- the out-of-source check set (``checkset/photos/<category>/``).

Writes curve.csv / curve.md (mean PSNR, gain over N = 0, colourfulness as a share of the
photos'), curve.png (both against N) and grid.png: for --grid check-set photos, gray | automatic
| 5 hints (their points marked) | truth.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from colorizer.atomic import write_text
from colorizer.evaluate import EvalConfig, evaluate_models, photo_hints, picture_grid, prepare_truth  # noqa: E402
from colorizer.hints import mark_hints  # noqa: E402
from colorizer.imageio import list_images, to_tensor  # noqa: E402
from colorizer.inference import Colorizer  # noqa: E402
from colorizer.metrics import colorfulness  # noqa: E402
from colorizer.provenance import invocation, machine_info  # noqa: E402

log = logging.getLogger("hints_curve")
NS = (0, 1, 2, 5, 10, 20, 50)
SIZE = 256  # what `python -m colorizer evaluate` scores at by default


def test_split_photos(
    data: Path, split: str, limit: int, source: str | None = None
) -> list[tuple[str, Path]]:
    """``limit`` of the split's original files (of one source folder, e.g. "landscapes", when
    given), evenly spread, as (name, path)."""
    manifest = json.loads((data / "manifest.json").read_text())
    items = [
        i
        for i in manifest["items"]
        if i["split"] == split and source in (None, Path(i["source"]).name)
    ]
    if limit and len(items) > limit:
        step = len(items) / limit
        items = [items[int(k * step)] for k in range(limit)]
    photos = []
    for item in items:
        src = Path(item["path"])
        name = f"{Path(item['source']).name}/{item['index']:05d}{src.suffix.lower()}"
        photos.append((name, src))
    return photos


def checkset_photos(checkset: Path) -> list[tuple[str, Path]]:
    return [(str(p.relative_to(checkset)), p) for p in list_images(checkset)]


def truth_colourfulness(photos: list[tuple[str, Image.Image]]) -> float:
    vals = [float(colorfulness(to_tensor(img)[None])[0]) for _, img in photos]
    return sum(vals) / len(vals)


def scored_truths(photos: list[tuple[str, Path]]) -> list[tuple[str, Image.Image]]:
    """Each photo as the evaluator scores it (RGB at SIZE x SIZE), made once for every N."""
    return [(name, prepare_truth(path, SIZE)) for name, path in photos]


def curve(model: str, sets: dict[str, list], ns: list[int]) -> pd.DataFrame:
    rows = []
    for set_name, files in sets.items():
        photos = scored_truths(files)
        gt = truth_colourfulness(photos)
        for n in ns:
            t0 = time.perf_counter()
            res = evaluate_models([model], photos, EvalConfig(size=SIZE, hints=n), progress=False)
            s = res.summary.iloc[0]
            rows.append(
                dict(
                    set=set_name,
                    hints=n,
                    photos=int(s["n"]),
                    psnr_db=float(s["psnr_db_mean"]),
                    euclidean=float(s["euclidean_mean"]),
                    colorfulness=float(s["colorfulness_mean"]),
                    colourfulness_share=float(s["colorfulness_mean"]) / gt,
                )
            )
            log.info(
                "%s N=%d: %.2f dB (%.0f s)",
                set_name,
                n,
                rows[-1]["psnr_db"],
                time.perf_counter() - t0,
            )
    df = pd.DataFrame(rows)
    base = df[df.hints == 0].set_index("set")["psnr_db"]
    df["gain_db"] = df.apply(lambda r: r.psnr_db - base[r.set], axis=1)
    return df


def plot(df: pd.DataFrame, path: Path, title: str) -> None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for set_name, g in df.groupby("set"):
        ax1.plot(g.hints, g.gain_db, "o-", label=f"{set_name} (n={g.photos.iloc[0]})")
        ax2.plot(g.hints, 100 * g.colourfulness_share, "o-", label=set_name)
    ax1.axhline(2.0, color="grey", ls="--", lw=1, label="+2 dB at 10 hints (goal)")
    ax1.axvline(10, color="grey", ls=":", lw=1)
    ax2.axhline(100, color="grey", ls="--", lw=1, label="the photos' own")
    for ax in (ax1, ax2):
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xticks(sorted(df.hints.unique()))
        ax.set_xticklabels([str(n) for n in sorted(df.hints.unique())])
        ax.set_xlabel("random user hints per photo (N)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax1.set_ylabel("PSNR gain over N = 0 (dB)")
    ax2.set_ylabel("colourfulness, % of the photos'")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def hint_grid(model: str, photos: list[tuple[str, Path]], n: int, height: int = 200) -> Image.Image:
    """gray | automatic | n hints (points marked) | truth, one row per photo."""
    c = Colorizer(model)
    gray = Colorizer("gray")
    cfg = EvalConfig(size=SIZE, hints=n)
    cols: list[tuple[str, list[Image.Image]]] = [
        ("gray", []),
        ("automatic", []),
        (f"{n} hints (marked)", []),
        ("truth", []),
    ]
    for name, p in photos:
        truth = prepare_truth(p, SIZE)
        hints = photo_hints(name, truth, cfg)
        cols[0][1].append(gray.colorize(truth))
        cols[1][1].append(c.colorize(truth))
        cols[2][1].append(mark_hints(c.colorize(truth, hints=hints), hints))
        cols[3][1].append(truth)
    return picture_grid(cols, height=height)


def markdown(df: pd.DataFrame, args: argparse.Namespace, seconds: float) -> str:
    lines = [
        f"# {args.model}: PSNR and colourfulness against the number of random user hints",
        "",
        f"`{invocation()}`; {machine_info()}; load average {os.getloadavg()[0]:.2f}; "
        f"{seconds / 60:.1f} min. Scored at {SIZE} px as `python -m colorizer evaluate "
        "--hints random:N` does: N random points per photo, each the truth's mean colour "
        "over a 5x5 patch there.",
        "",
        "| set | photos | N | PSNR dB | gain over N = 0 | seed ED | colourfulness vs the photos' |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in df.itertuples():
        lines.append(
            f"| {r.set} | {r.photos} | {r.hints} | {r.psnr_db:.2f} | {r.gain_db:+.2f} | "
            f"{r.euclidean:.1f} | {100 * r.colourfulness_share:.0f} % |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default")
    p.add_argument("--data", default="data/all160", help="a prepared folder: its test split")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=300, help="test photos, evenly spread")
    p.add_argument("--checkset", default="checkset/photos")
    p.add_argument("--ns", type=int, nargs="+", default=list(NS))
    p.add_argument("--grid", type=int, default=9, help="check-set photos in grid.png")
    p.add_argument("--grid-hints", type=int, default=5)
    p.add_argument("--out", default="results/hints")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sets = {}
    if args.data:
        data = Path(args.data)
        sets[f"test split ({data.name})"] = test_split_photos(data, args.split, args.limit)
        sets["test split: landscapes"] = test_split_photos(
            data, args.split, args.limit, "landscapes"
        )
    check = checkset_photos(Path(args.checkset))
    sets["check set"] = check
    df = curve(args.model, sets, args.ns)
    write_text(out / "curve.csv", df.to_csv(index=False, float_format="%.4f"))
    write_text(out / "curve.md", markdown(df, args, time.perf_counter() - t0))
    plot(df, out / "curve.png", f"{args.model}: random user hints, scored at {SIZE} px")
    if args.grid:
        # one photo per category of the check set, in its sorted order
        seen, picks = set(), []
        for name, path in check:
            cat = name.split("/")[0]
            if cat not in seen:
                seen.add(cat)
                picks.append((name, path))
        hint_grid(args.model, picks[: args.grid], args.grid_hints).save(out / "grid.png")
    print((out / "curve.md").read_text())


if __name__ == "__main__":
    main()
