"""Evaluate several models on one split of a prepared data set, side by side.

    python -m training evaluate --data data/landscape --split test \
        --models gray runs/landscape/final.pt runs/cunet_landscape/final.pt --out results/training/x

Every model goes through the library's own inference pipeline (colorizer.inference.Colorizer:
resize to the model's working size, predict, upsample a*b*, join with the full-resolution L),
so the numbers are what a user gets. Writes:

- per_photo.csv: one row per (model, photo) with every metric;
- summary.csv, summary.md: mean and std per metric and model, in the first seed's table format;
- summary.json: the same, machine-readable (python -m training export puts it in a checkpoint);
- grid.png: ground truth, grayscale input, then each model, for a few photos.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from colorizer.evaluate import picture_grid
from colorizer.provenance import machine_string
from training.prepare import load_manifest, load_split

log = logging.getLogger(__name__)

METRICS = ("seed_euclidean", "seed_psnr", "psnr_db", "ssim", "auc_ab", "colorfulness")
LABELS = {
    "seed_euclidean": "Euclidean distance (seed)",
    "seed_psnr": "PSNR (seed)",
    "psnr_db": "PSNR dB",
    "ssim": "SSIM",
    "auc_ab": "AuC ab",
    "colorfulness": "Colourfulness",
}


def _label(spec: str, taken: set[str]) -> str:
    """A short, unique column name: runs/landscape/final.pt -> landscape."""
    from colorizer.inference import checkpoint_label

    name = checkpoint_label(spec)
    label, i = name, 2
    while label in taken:
        label, i = f"{name}-{i}", i + 1
    taken.add(label)
    return label


def resolve_models(specs: list[str]) -> list[tuple[str, str]]:
    """(label, spec) for each model spec; 'eccv16' without its weights file is skipped with a
    warning (the official file cannot be downloaded here), anything else missing is an error."""
    from colorizer.models import list_models, model_info

    taken: set[str] = set()
    out = []
    for spec in specs:
        if spec == "gray":
            out.append((_label("gray", taken), spec))
            continue
        if spec in list_models():
            info = model_info(spec)
            if info.get("weights") and not info.get("weights_present"):
                log.warning(
                    "skipping %s: its weights are not at %s (put the official file there)",
                    spec,
                    info.get("weights_path"),
                )
                continue
            out.append((_label(spec, taken), spec))
            continue
        if not Path(spec).is_file():
            raise FileNotFoundError(
                f"--models: {spec!r} is neither a checkpoint file nor a model name"
            )
        out.append((_label(spec, taken), spec))
    if not out:
        raise ValueError("no model left to evaluate")
    return out


@torch.inference_mode()
def colorize_split(
    colorizer: Any, images: np.ndarray, batch_size: int, desc: str
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Colorize every photo of a uint8 (N, H, W, 3) array; returns predictions (same shape)
    and per-photo metrics."""
    from colorizer import metrics as M

    preds = np.empty_like(images)
    values: dict[str, list[torch.Tensor]] = {k: [] for k in METRICS}
    for i in tqdm(range(0, len(images), batch_size), desc=desc, leave=False):
        batch = [Image.fromarray(np.asarray(a)) for a in images[i : i + batch_size]]
        L = torch.cat([colorizer.working_l(img) for img in batch])  # (B, 1, h, w)
        ab = colorizer.predict(L).ab  # (B, 2, h', w') at the model's output size
        outs = [np.asarray(colorizer.compose(img, ab[j])) for j, img in enumerate(batch)]
        preds[i : i + len(batch)] = np.stack(outs)
        x = torch.from_numpy(np.stack(outs)).permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W)
        y = (
            torch.from_numpy(np.array(images[i : i + len(batch)])).permute(0, 3, 1, 2).float()
            / 255.0
        )
        values["seed_euclidean"].append(M.seed_euclidean(x, y))
        values["seed_psnr"].append(M.seed_psnr(x, y))
        values["psnr_db"].append(M.psnr_db(x, y))
        values["ssim"].append(M.ssim(x, y))
        values["auc_ab"].append(M.auc_ab(x, y))
        values["colorfulness"].append(M.colorfulness(x))
    return preds, {k: torch.cat(v).double().numpy() for k, v in values.items()}


def gray_of(images: np.ndarray) -> np.ndarray:
    """What the model sees: the L channel shown as a gray RGB image."""
    from colorizer.lab import lab_to_rgb, rgb_to_lab

    rgb = torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).float() / 255.0
    lab = rgb_to_lab(rgb)
    lab[:, 1:] = 0.0
    out = lab_to_rgb(lab).mul(255).round().to(torch.uint8)
    return out.permute(0, 2, 3, 1).numpy()


def _fmt(v: float) -> str:
    return f"{v:.2f}" if abs(v) >= 10 else f"{v:.4f}" if abs(v) < 1 else f"{v:.3f}"


def summary_markdown(
    summary: dict[str, dict[str, Any]], split: str, n: int, size: list[int]
) -> str:
    head = "| Model | " + " | ".join(f"{LABELS[k]} mean | std" for k in METRICS) + " |"
    sep = "|---|" + "---:|---:|" * len(METRICS)
    lines = [
        f"{n} photos of the {split} split at {size[0]}x{size[1]}; mean and std per photo. "
        "Euclidean distance and PSNR (seed) are the first seed's definitions (REFERENCE.md; "
        "they scale with image size, its table was at 256x256); PSNR dB = 20 log10(255/RMSE).",
        "",
        head,
        sep,
    ]
    for name, s in summary.items():
        cells = " | ".join(f"{_fmt(s[k]['mean'])} | {_fmt(s[k]['std'])}" for k in METRICS)
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines) + "\n"


def evaluate_models(
    data: str,
    models: list[str],
    split: str = "test",
    out: str = "results/training/eval",
    limit: int = 0,
    grid: int = 6,
    batch_size: int = 32,
    command: str = "",
    device: str | None = None,
) -> str:
    """Evaluate the models; write per-photo and summary tables and a picture grid. Returns the
    Markdown table."""
    from colorizer.inference import Colorizer

    manifest = load_manifest(data)
    images = load_split(data, split)
    if limit:
        images = images[:limit]
    if len(images) == 0:
        raise ValueError(f"{data}: the {split} split is empty")
    resolved = resolve_models(models)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)

    columns: list[tuple[str, np.ndarray]] = [
        ("ground truth", images),
        ("grayscale", gray_of(images)),
    ]
    summary: dict[str, dict[str, Any]] = {}
    per_photo: list[dict[str, Any]] = []
    temps: dict[str, float] = {}
    for label, spec in resolved:
        c = Colorizer(spec, device=device)
        temps[label] = c.default_temperature if c.kind == "classification" else float("nan")
        preds, vals = colorize_split(c, images, batch_size, desc=label)
        if spec != "gray":  # the gray floor looks exactly like the grayscale column
            columns.append((label, preds))
        summary[label] = {
            k: {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}
            for k, v in vals.items()
        }
        summary[label]["temperature"] = temps[label]
        summary[label]["model"] = spec
        for i in range(len(images)):
            per_photo.append(
                {"model": label, "photo": i, **{k: f"{vals[k][i]:.5f}" for k in METRICS}}
            )
        log.info(
            "%s: PSNR %.2f dB, seed ED %.1f, seed PSNR %.2f",
            label,
            summary[label]["psnr_db"]["mean"],
            summary[label]["seed_euclidean"]["mean"],
            summary[label]["seed_psnr"]["mean"],
        )

    with open(out_dir / "per_photo.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["model", "photo", *METRICS])
        w.writeheader()
        w.writerows(per_photo)
    with open(out_dir / "summary.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "model",
                "spec",
                "temperature",
                *(f"{k}_{s}" for k in METRICS for s in ("mean", "std")),
            ]
        )
        for name, s in summary.items():
            w.writerow(
                [
                    name,
                    s["model"],
                    s["temperature"],
                    *(f"{s[k][m]:.5f}" for k in METRICS for m in ("mean", "std")),
                ]
            )
    size = manifest.get("size", [images.shape[2], images.shape[1]])
    table = summary_markdown(summary, split, len(images), size)
    md = f"# Evaluation on {data} ({split})\n\nCommand: `{command}`\n\nMachine: {machine_string()}\n\n{table}"
    (out_dir / "summary.md").write_text(md)
    (out_dir / "summary.json").write_text(
        json.dumps(
            dict(data=data, split=split, photos=len(images), command=command, models=summary),
            indent=1,
        )
    )
    if grid:
        rows = (
            np.linspace(0, len(images) - 1, num=min(grid, len(images))).round().astype(int).tolist()
        )
        scale = 2 if max(images.shape[1:3]) <= 128 else 1  # small photos: 2x, pixel-exact
        picked = [
            (name, [Image.fromarray(np.asarray(arr[i])) for i in rows]) for name, arr in columns
        ]
        picture_grid(
            picked, height=images.shape[1] * scale, resample=Image.Resampling.NEAREST
        ).save(out_dir / "grid.png")
    return table
