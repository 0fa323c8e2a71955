"""Each decoder of a model on photos it trained on and on held-back ones, per source.

    python -m reports.seen_photos --ckpt weights/default.pt --data data/all160 \
        --sources '*dawn-fog' '*dawn-snow' '*mwd-rain' '*scenes/street' \
        --out results/training/haze_expert/seen_photos.md

Why: a decoder that paints grey weather on held-back photos may have learnt the wrong thing
(more data or more steps will not help) or may never have learnt it (the photos are too few).
Scoring it on its own training photos tells the two apart. Each photo (the prepared split's
160 px copy, up to ``--limit`` spread over each source) is colorized through every decoder
alone, the gated mixture and the shipped file (mixture + tilt), at the file's decode and at the
plain mean (T = 1, no calibration), composed as the library composes, and scored as PSNR over
the gray floor (dB).
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from colorizer.atomic import write_text
from colorizer.bins import Decoding, output_to_ab
from colorizer.inference import Colorizer, GrayModel, compose_batch
from colorizer.metrics import psnr_db
from colorizer.models.effunet import Expert
from colorizer.provenance import invocation, machine_info
from training.calibrate import source_groups
from training.data import load_images, spread_rows
from training.tilt import working_batches
from training.validate import outputs_to_rgb


@torch.no_grad()
def decoder_logits(
    model: torch.nn.Module, f: dict[int, torch.Tensor], g: torch.Tensor
) -> dict[str, torch.Tensor]:
    """``encode``'s output -> each decoder's logits alone, the gated mixture's and the file's."""
    base, experts = model.decoders(f, g)
    out = {"base": base, **{f"expert {i + 1}": e for i, e in enumerate(experts)}}
    if experts:
        gammas = torch.stack([e.weight(g) for e in model.experts], 1)  # (B, n)
        out["mixture"] = Expert.mix(base, experts, gammas)
    out["file"] = model.decode((f, g))  # the mixture, tilted
    return out


@torch.no_grad()
def scores(model: torch.nn.Module, images: torch.Tensor) -> dict[str, np.ndarray]:
    """uint8 (N, H, W, 3) photos -> {"<decoder>" and "<decoder>, mean": dB over gray (N,)},
    the model run at its working size as the tilt's and gates' fits run it."""
    out: dict[str, list[torch.Tensor]] = defaultdict(list)
    gray, plain = GrayModel(), Decoding(1.0)
    for rgb8, (f, g) in working_batches(model, images):
        rgb8 = rgb8.contiguous()  # (B, 3, H, W)
        truth = rgb8.float() / 255
        floor = psnr_db(outputs_to_rgb(gray, rgb8, gray(f[0]), 1.0), truth)  # f[0]: the L
        for name, logits in decoder_logits(model, f, g).items():
            for label, ab in (
                (name, output_to_ab(model, logits.float())),
                (f"{name}, mean", model.bins.decode(logits.float(), plain)),
            ):
                out[label].append(psnr_db(compose_batch(rgb8, ab).float() / 255, truth) - floor)
    return {k: torch.cat(v).numpy() for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", default="default")
    ap.add_argument("--data", required=True, help="a folder written by training prepare")
    ap.add_argument("--sources", nargs="+", required=True, help="fnmatch patterns of sources")
    ap.add_argument("--limit", type=int, default=20, help="photos per source and split (0: all)")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    col = Colorizer(args.ckpt, device="cpu")
    rows, header, size = [], None, 0
    for split in ("train", "test"):
        images = load_images(args.data, split)
        for src, idx in source_groups(args.data, split).items():
            if not any(fnmatch.fnmatch(src, p) for p in args.sources):
                continue
            pick = idx[spread_rows(len(idx), args.limit)]  # 0: all of them
            s = scores(col.model, images[pick])
            header = header or list(s)
            cells = " | ".join(f"{s[k].mean():+.2f}" for k in header)
            label = "/".join(Path(src).parts[-2:])  # e.g. weather/dawn-fog
            rows.append(f"| {label} | {split} | {len(pick)} | {cells} |")
            size = images.shape[1]
    if not rows:
        print(f"no source matches {args.sources}", file=sys.stderr)
        return 2
    lines = [
        f"# {args.ckpt}: each decoder on photos it trained on and on held-back ones",
        "",
        f"Command: `{invocation()}`  ",
        f"Machine: {machine_info()}  ",
        f"Each cell: mean PSNR over the gray floor (dB), the prepared {size} px photos; "
        "'mean': decoded at the plain mean (T = 1, no calibration).",
        "",
        f"| source | split | photos | {' | '.join(header)} |",
        "|---|---|---:|" + "---:|" * len(header),
        *rows,
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
