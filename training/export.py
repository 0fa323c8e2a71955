"""Ship a trained checkpoint: fp16 weights + provenance + test-split metrics, atomically.

    python -m training export --ckpt runs/landscape/final.pt --out weights/landscape.pt \
        --metrics results/training/landscape/summary.json --label landscape
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from colorizer.checkpoint import save_checkpoint
from colorizer.models import load_checkpoint

log = logging.getLogger(__name__)


def export_checkpoint(
    ckpt: str,
    out: str,
    metrics_json: str | None = None,
    label: str | None = None,
    half: bool = True,
    temperature: float | None = None,
    temperature_note: str = "",
) -> Path:
    """Re-save `ckpt` (a final.pt) for shipping; adds the evaluation of `label` in
    `metrics_json` (a summary.json of `python -m training evaluate`) as metrics["test"].
    `temperature` replaces the tuned default (say why in `temperature_note`)."""
    model, meta = load_checkpoint(ckpt)
    metrics = dict(meta.get("metrics", {}))
    default_t = meta.get("default_temperature")
    if temperature is not None:
        if temperature <= 0:
            raise ValueError(f"--temperature must be > 0, got {temperature}")
        metrics["temperature_override"] = dict(
            tuned=default_t, shipped=float(temperature), why=temperature_note
        )
        default_t = float(temperature)
    if metrics_json:
        summary = json.loads(Path(metrics_json).read_text())
        models = summary.get("models", {})
        if label not in models:
            raise ValueError(f"{metrics_json} has no model {label!r} (has {sorted(models)})")
        test = {k: v for k, v in models[label].items() if isinstance(v, dict)}
        metrics["test"] = dict(
            split=summary.get("split"),
            photos=summary.get("photos"),
            data=summary.get("data"),
            **test,
        )
        if "gray" in models:
            metrics["test_gray_floor"] = {
                k: v for k, v in models["gray"].items() if isinstance(v, dict)
            }
    path = save_checkpoint(
        out,
        model,
        default_temperature=default_t,
        train=meta.get("train", {}),
        metrics=metrics,
        half=half,
    )
    log.info("exported %s -> %s (%.1f MB)", ckpt, path, path.stat().st_size / 1e6)
    return path
