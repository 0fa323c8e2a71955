"""Evaluate several models on one split of a prepared data set, side by side.

    python -m training evaluate --data data/landscape --split test \
        --models gray runs/landscape/final.pt runs/cunet_landscape/final.pt --out results/training/x

A thin adapter over the one evaluation core (``colorizer.evaluate``): the split's photos, as
stored (the training size), are the ground truth, each named by its original file
(``training.prepare.photo_names``); every model goes through the library's inference pipeline
(colorizer.inference.Colorizer), so the numbers are what a user gets, in the units of
``colorizer.metrics.METRICS``. Writes what ``python -m colorizer evaluate`` writes:
per_photo.csv, summary.csv, summary.md, summary.json (``python -m training export`` puts a
model's into its checkpoint) and grid.png (ground truth, then each model; small photos at 2x,
pixel-exact).
"""

from __future__ import annotations

import logging
from pathlib import Path

from PIL import Image

from colorizer.evaluate import EvalConfig, evaluate_models, write_results
from training.prepare import load_split, photo_names

log = logging.getLogger(__name__)


def resolve_models(specs: list[str]) -> list[str]:
    """The model specs to evaluate: a registry model whose weights file is not here (eccv16's
    official file cannot be downloaded here) is skipped with a warning; a spec that is neither a
    model name nor a file is an error."""
    from colorizer.inference import GRAY
    from colorizer.models import list_models, model_info

    out = []
    for spec in specs:
        if spec in list_models():
            info = model_info(spec)
            if info["weights"] and not info["weights_present"]:
                log.warning(
                    "skipping %s: its weights are not at %s (put the file there)",
                    spec,
                    info["weights_path"],
                )
                continue
        elif spec != GRAY and not Path(spec).is_file():
            raise FileNotFoundError(
                f"--models: {spec!r} is neither a checkpoint file nor a model name"
            )
        out.append(spec)
    if not out:
        raise ValueError("no model left to evaluate")
    return out


def evaluate_split(
    data: str,
    models: list[str],
    split: str = "test",
    out: str = "results/training/eval",
    limit: int = 0,
    grid: int = 6,
    command: str = "",
    device: str | None = None,
) -> str:
    """Evaluate the models on the split and write the tables and grid; returns summary.md."""
    images = load_split(data, split)
    if limit:
        images = images[:limit]
    if len(images) == 0:
        raise ValueError(f"{data}: the {split} split is empty")
    photos = list(zip(photo_names(data, split), images, strict=False))  # names: all rows
    small = max(images.shape[1:3]) <= 128  # shown at 2x, pixel-exact
    cfg = EvalConfig(
        size=0,
        grid=grid,
        grid_height=images.shape[1] * (2 if small else 1),
        grid_resample=Image.Resampling.NEAREST,
        device=device,
    )
    result = evaluate_models(resolve_models(models), photos, cfg)
    where = f"{data} ({split} split)"
    paths = write_results(result, out, where, 0, command or None, data=data, split=split)
    return paths["markdown"].read_text(encoding="utf-8")
