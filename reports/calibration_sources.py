"""Per-source table of a calibration: dB over gray and colour against the photos', for the
setting ``python -m training calibrate`` chose and for any other setting of its table.

    python -m reports.calibration_sources --table runs/recal/default_per_source_sources.csv \
        --compare 0.7,1,0.7 --out results/default_model/per_source_calibration/README.md

``--compare T,mean_scale,floor`` names another row of the table (e.g. the shipped default's
shape of setting), shown beside the chosen one.
"""

from __future__ import annotations

import argparse
import csv

from colorizer.atomic import write_text
from colorizer.provenance import invocation, machine_info, utc_now

FIELDS = ("temperature", "mean_scale", "floor")  # --compare, compared as numbers


def setting(rows: list[dict], key: tuple[str, str, str] | None) -> dict[str, dict]:
    """source -> row, for the chosen setting (key None) or the named one."""
    pick = [
        r
        for r in rows
        if (
            r["chosen"] == "1"
            if key is None
            else all(float(r[k]) == float(v) for k, v in zip(FIELDS, key, strict=True))
        )
    ]
    if not pick:
        raise SystemExit(f"no rows for setting {key or 'chosen'}")
    return {r["source"]: r for r in pick}


def cell(r: dict) -> str:
    db = float(r["psnr_db"]) - float(r["gray_psnr_db"])
    return f"{db:+.2f} ({100 * float(r['colour_ratio']):.0f} %)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", required=True, help="a calibrate run's <out>_sources.csv")
    p.add_argument("--compare", help="T,mean_scale,floor of another setting to show beside it")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    rows = list(csv.DictReader(open(args.table, newline="")))
    chosen = setting(rows, None)
    key = tuple(args.compare.split(",")) if args.compare else None
    other = setting(rows, key) if key else None
    c0 = next(iter(chosen.values()))
    head = f"chosen: T {c0['temperature']}, mean scale {c0['mean_scale']}, floor {c0['floor']}"
    cols = [head] + ([f"T {key[0]}, mean scale {key[1]}, floor {key[2]}"] if key else [])
    lines = [
        "# A calibration per source: dB over gray (colourfulness against the photos')",
        "",
        f"`{invocation()}` on {utc_now()}; {machine_info()}. Table: `{args.table}`.",
        "",
        "| source | " + " | ".join(cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for src in sorted(chosen, key=lambda s: float(chosen[s]["colour_ratio"])):
        cells = [cell(chosen[src])] + ([cell(other[src])] if other else [])
        lines.append(f"| {src.split('data/')[-1]} | " + " | ".join(cells) + " |")
    write_text(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
