"""How far a plain desaturation of a model's output moves its PSNR over gray, per folder.

    python -m reports.desaturate --model default --images /tmp/testlinks/street \
        /tmp/testlinks/buildings --out results/training/third_expert/desaturate.md

Each photo is colorized as the CLI does (native size, the model's own decode), its a*b* then
scaled by s and scored against the photo; s = 0 is the gray floor. A mean that rises as s falls
below 1 says the model paints those scenes more than their colours bear (the gray tilt's job).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from colorizer.atomic import write_text
from colorizer.imageio import list_images, load_image, to_tensor
from colorizer.inference import Colorizer
from colorizer.lab import lab_to_rgb, rgb_to_lab
from colorizer.metrics import psnr_db
from colorizer.provenance import invocation, machine_info

SCALES = (1.0, 0.8, 0.6, 0.4, 0.0)


def scaled_psnrs(col: Colorizer, folder: Path) -> dict[float, np.ndarray]:
    """Each photo's PSNR (dB) with the model's a*b* scaled by each of SCALES."""
    out: dict[float, list[float]] = {s: [] for s in SCALES}
    for path in list_images(folder):
        truth = load_image(path).convert("RGB")
        lab = rgb_to_lab(to_tensor(col.colorize(truth).convert("RGB"))[None])
        target = to_tensor(truth)[None]
        for s in SCALES:
            scaled = lab.clone()
            scaled[:, 1:] *= s
            rgb8 = (lab_to_rgb(scaled) * 255).round() / 255  # as the 8-bit file would be
            out[s].append(float(psnr_db(rgb8, target)))
    return {s: np.array(v) for s, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--images", nargs="+", type=Path, required=True, help="folders of photos")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    col = Colorizer(args.model)
    head = " | ".join(f"x{s:g}" for s in SCALES)
    lines = [
        f"# {args.model}'s a*b* scaled by s: mean PSNR over gray (dB)",
        "",
        f"Command: `{invocation()}`  ",
        f"Machine: {machine_info()}",
        "",
        f"| folder | photos | {head} |",
        "|---|---:|" + "---:|" * len(SCALES),
    ]
    for folder in args.images:
        res = scaled_psnrs(col, folder)
        gray = res[0.0]
        # round, then + 0.0: a rounding-level mean must not print as "-0.00", a loss
        cells = " | ".join(f"{round(float(np.mean(res[s] - gray)), 2) + 0.0:+.2f}" for s in SCALES)
        lines.append(f"| {folder.name} | {len(gray)} | {cells} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
