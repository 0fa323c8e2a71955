"""Do two models colorize photos identically without hints? Pixel for pixel, through the CLI's
pipeline (``Colorizer.colorize`` at native size).

    git show HEAD~1:weights/default.pt > /tmp/default_before.pt
    python -m reports.compare_automatic --a /tmp/default_before.pt --b weights/default.pt \
        --images checkset/photos examples --out results/hints/automatic_unchanged.md

For each photo: the largest and mean absolute difference of the two 8-bit RGB outputs and
whether they are byte-identical. Used to show that grafting hint branches onto the default
model (``python -m training graft``) left its automatic colorization exactly as it was.

With two FOLDERS of outputs instead (``--a-dir``, ``--b-dir``: what two checkouts' CLIs
wrote, same relative paths), it compares those files pixel for pixel: the same models
before and after a change of code (the Decoding redesign of issue 20)::

    git worktree add /tmp/before <commit before>; git worktree add /tmp/after <commit after>
    (cd /tmp/before && python -m colorizer colorize DIR --model M --out /tmp/cmp/before/M/..)
    (cd /tmp/after && ...same, --out /tmp/cmp/after/M/..)
    python -m reports.compare_automatic --a-dir /tmp/cmp/before --b-dir /tmp/cmp/after \
        --out results/decoding/outputs_unchanged.md
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

from colorizer.atomic import write_text
from colorizer.imageio import list_images
from colorizer.inference import Colorizer
from colorizer.provenance import invocation, machine_info, utc_now


def sha(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", help="the model before")
    p.add_argument("--b", help="the model after")
    p.add_argument("--images", nargs="+", help="folders of photos")
    p.add_argument("--a-dir", help="instead: a folder of outputs before")
    p.add_argument("--b-dir", help="instead: the same outputs after")
    p.add_argument("--out", required=True, help="a markdown file")
    args = p.parse_args()
    if args.a_dir and args.b_dir:
        return compare_folders(Path(args.a_dir), Path(args.b_dir), Path(args.out))
    if not (args.a and args.b and args.images):
        p.error("give --a, --b and --images, or --a-dir and --b-dir")
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
    write_text(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines[:7]))


def compare_folders(a_dir: Path, b_dir: Path, out: Path) -> None:
    """Every PNG under ``a_dir`` against the file at the same place under ``b_dir``."""
    from PIL import Image

    files = sorted(f.relative_to(a_dir) for f in a_dir.rglob("*.png"))
    if not files:
        raise SystemExit(f"no PNG files under {a_dir}")
    rows, same, missing = [], 0, 0
    for rel in files:
        if not (b_dir / rel).is_file():
            missing += 1
            rows.append(f"| {rel} | - | - | - | missing after |")
            continue
        x = np.asarray(Image.open(a_dir / rel).convert("RGB"), np.int16)
        y = np.asarray(Image.open(b_dir / rel).convert("RGB"), np.int16)
        d = np.abs(x - y) if x.shape == y.shape else None
        identical = d is not None and bool((d == 0).all())
        same += identical
        worst = "size differs | -" if d is None else f"{int(d.max())} | {d.mean():.4f}"
        rows.append(f"| {rel} | {x.shape[1]}x{x.shape[0]} | {worst} | {identical} |")
    models = sorted({rel.parts[0] for rel in files})
    lines = [
        "# The shipped models' output before and after a change of code, pixel for pixel",
        "",
        f"`{invocation()}` on {utc_now()}; {machine_info()}.",
        f"Outputs of `python -m colorizer colorize` (native size, each model's own decode) "
        f"written by two checkouts: a = `{a_dir}`, b = `{b_dir}`; models: {', '.join(models)}.",
        "",
        f"**{same} of {len(files)} outputs byte-identical** ({missing} missing after).",
        "",
        "| output | size | max abs diff | mean abs diff | identical |",
        "|---|---|---:|---:|---|",
        *rows,
    ]
    write_text(out, "\n".join(lines) + "\n")
    print("\n".join(lines[:7]))


if __name__ == "__main__":
    main()
