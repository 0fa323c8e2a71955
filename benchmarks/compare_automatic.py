"""Do two models colorize photos identically without hints? Pixel for pixel, through the CLI's
pipeline (``Colorizer.colorize`` at native size).

    git show HEAD~1:weights/default.pt > /tmp/default_before.pt
    python -m benchmarks.compare_automatic --a /tmp/default_before.pt --b weights/default.pt \
        --images checkset/photos examples --out results/hints/automatic_unchanged.md

For each photo: the largest and mean absolute difference of the two 8-bit RGB outputs and
whether they are byte-identical. Used to show that grafting hint branches onto the default
model (``python -m training graft``) left its automatic colorization exactly as it was.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

from colorizer.imageio import list_images
from colorizer.inference import Colorizer
from colorizer.provenance import invocation, machine_info, utc_now


def sha(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", required=True, help="the model before")
    p.add_argument("--b", required=True, help="the model after")
    p.add_argument("--images", nargs="+", required=True, help="folders of photos")
    p.add_argument("--out", required=True, help="a markdown file")
    args = p.parse_args()
    a, b = Colorizer(args.a, device="cpu"), Colorizer(args.b, device="cpu")
    rows, same = [], 0
    photos = [f for d in args.images for f in list_images(d)]
    for f in photos:
        x = np.asarray(a.colorize(f), np.int16)
        y = np.asarray(b.colorize(f), np.int16)
        d = np.abs(x - y)
        identical = bool((d == 0).all())
        same += identical
        rows.append(
            f"| {f} | {x.shape[1]}x{x.shape[0]} | {int(d.max())} | {d.mean():.4f} | {identical} |"
        )
    lines = [
        "# Automatic colorization before and after, pixel for pixel",
        "",
        f"`{invocation()}` on {utc_now()}; {machine_info()}.",
        f"a = `{args.a}` (sha256 {sha(args.a)}...), b = `{args.b}` (sha256 {sha(args.b)}...); "
        f"b takes hints: {b.accepts_hints}.",
        "",
        f"**{same} of {len(photos)} photos byte-identical.**",
        "",
        "| photo | size | max abs diff | mean abs diff | identical |",
        "|---|---|---:|---:|---|",
        *rows,
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines[:7]))


if __name__ == "__main__":
    main()
