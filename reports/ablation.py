"""An ablation's arms side by side, one line per source, from a ``reports.per_source`` table.

    python -m reports.ablation --table results/training/ablation/per_source.csv \
        --arms runs/size128/final.pt=128px runs/size160/final.pt=160px default=shipped \
        --title "Working size 128 against 160" --out results/training/ablation/summary.md

Each cell is the arm's PSNR over the gray floor on that source (dB) and its colourfulness as a
share of the photos' own; the last lines average the test-split sources and the check-set
categories (each source weighing the same, as the targets are per source). The best arm per
row is bold. Reads only the table: what each row means (photos, sizes, command) is in the
per_source.md beside it.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd


def parse_arms(specs: list[str]) -> dict[str, str]:
    """["model=label", ...] -> {model: label} (the label defaults to the model)."""
    arms = {}
    for spec in specs:
        model, _, label = spec.partition("=")
        arms[model] = label or model
    return arms


def per_arm(table: pd.DataFrame, arms: dict[str, str]) -> pd.DataFrame:
    """Rows: sources; columns: (arm, 'over_gray' | 'colour'), from the per-source table."""
    missing = sorted(set(arms) - set(table["model"]))
    if missing:
        raise SystemExit(f"not in the table: {', '.join(missing)}")
    if "gray" not in set(table["model"]):
        raise SystemExit("the table has no gray rows to measure 'over gray' against")
    gray = table[table["model"] == "gray"].set_index("source")["psnr_db"]
    out = {}
    for model, label in arms.items():
        rows = table[table["model"] == model].set_index("source")
        out[(label, "over_gray")] = rows["psnr_db"] - gray.reindex(rows.index)
        out[(label, "colour")] = 100 * rows["colorfulness"] / rows["photos_colorfulness"]
    order = list(dict.fromkeys(table["source"]))
    return pd.DataFrame(out).reindex(order)


def mean_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Means over the test sources and over the check-set categories, leaving out a source
    where gray is exact (monochrome originals: 'over gray' is undefined there)."""
    gains = frame.xs("over_gray", axis=1, level=1)
    defined = frame[gains.apply(lambda r: r.map(math.isfinite).all(), axis=1)]
    rows = {}
    for prefix, name in (("test:", "mean, test sources"), ("checkset:", "mean, check set")):
        part = defined[defined.index.str.startswith(prefix)]
        if len(part):
            rows[f"{name} ({len(part)})"] = part.mean()
    return pd.DataFrame(rows).T


def markdown(frame: pd.DataFrame, title: str, command: str) -> str:
    labels = list(dict.fromkeys(label for label, _ in frame.columns))
    lines = [
        f"# {title}",
        "",
        f"Command: `{command}`  ",
        "Each cell: PSNR over the gray floor (dB) / colourfulness as % of the photos'. "
        "Bold: the best 'over gray' of the row. Means: each source weighs the same; a source "
        "where gray is exact (monochrome originals) is left out of them.",
        "",
        "| source | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * len(labels),
    ]
    for source, row in pd.concat([frame, mean_rows(frame)]).iterrows():
        gains = {label: row[(label, "over_gray")] for label in labels}
        finite = [g for g in gains.values() if math.isfinite(g)]
        best = max(finite) if finite else math.nan
        cells = []
        for label in labels:
            g, c = gains[label], row[(label, "colour")]
            cell = f"{g:+.2f} / {c:.0f} %" if math.isfinite(g) else f"- / {c:.0f} %"
            cells.append(f"**{cell}**" if math.isfinite(g) and g == best else cell)
        lines.append(f"| {source} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from colorizer.atomic import write_text
    from colorizer.provenance import invocation

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--table", type=Path, required=True, help="a reports.per_source CSV")
    p.add_argument("--arms", nargs="+", required=True, help="MODEL[=LABEL] as in the table")
    p.add_argument("--title", default="Ablation")
    p.add_argument("--out", type=Path, required=True, help="the markdown file to write")
    args = p.parse_args(argv)
    frame = per_arm(pd.read_csv(args.table), parse_arms(args.arms))
    text = markdown(frame, args.title, invocation())
    write_text(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
