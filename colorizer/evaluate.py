"""THE evaluation core: colorizers (or a folder of ready-made colorizations) against ground truth.

    python -m colorizer evaluate --model gray cunet --images photos/ --out results/eval_x
    python -m colorizer evaluate --predictions zhang_out/ --images photos/ --out results/eval_z

``python -m training evaluate`` is an adapter over ``evaluate_models`` (a prepared split's rows
as the photos) and ``reports.per_source`` calls it per source; the metrics, their names and
units are ``colorizer.metrics.METRICS`` and ``score``, the same validation uses in training.

Each ground-truth photo is resized to ``size`` x ``size`` (default 256, LANCZOS, as the first
seed's LHQ-256 set was) before anything is scored, so the seed's size-dependent "Euclidean
distance" lines up with its table. ``write_results`` writes ``per_photo.csv`` (model, photo,
every metric), ``summary.csv`` (mean and std per metric and model), ``summary.md`` (the seed's
table layout, with the command and machine) and ``summary.json`` (the same per model, with its
spec and temperature); with ``--grid N`` also ``grid.png``, the first N photos beside each
model's colorization, for a person to judge (``--size 0`` keeps their shape).
"""

from __future__ import annotations

import json
import logging
import os
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from colorizer.atomic import write_text
from colorizer.bins import class_prior, get_bins, rebalance_weights
from colorizer.hints import Hint, HintError, random_hints
from colorizer.imageio import ImageError, ImageSource, list_images, load_image, to_tensor
from colorizer.lab import rgb_to_lab
from colorizer.metrics import METRICS, score
from colorizer.provenance import invocation, machine_info

log = logging.getLogger(__name__)

RESAMPLE = Image.Resampling.LANCZOS
GRID_HEIGHT = 240  # rows of grid.png, in pixels: big enough to judge colour, small to commit


@dataclass
class EvalConfig:
    size: int = 256  # ground truth and predictions are scored at size x size; 0 = as they are
    temperature: float | None = None  # decoding temperature (None: each model's default)
    rebalance_lam: float = 0.0  # AuC rebal.: 0 = inverse class frequency of the test set
    limit: int | None = None  # score only the first N photos (sorted), for quick looks
    grid: int = 0  # grid.png of the first N photos: ground truth, then each model (0 = none)
    grid_height: int = (
        GRID_HEIGHT  # every tile of grid.png scaled to this height, keeping its aspect
    )
    grid_resample: Image.Resampling = Image.Resampling.LANCZOS  # NEAREST: pixel-exact tiles
    device: str | None = None
    weights_dir: str | None = None
    # simulated user hints: N random points per photo, each the truth's mean colour over a
    # 5x5 patch there (colorizer.hints.random_hints, a fixed seed per photo); 0 = automatic
    hints: int = 0
    hint_seed: int = 0


@dataclass
class EvalResult:
    per_photo: pd.DataFrame
    summary: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (photo, reason)
    unmatched: list[str] = field(default_factory=list)  # prediction files with no ground truth
    missing: list[str] = field(default_factory=list)  # ground truth with no prediction
    grid: Image.Image | None = None  # ground truth and each model's output, side by side
    models: dict[str, dict[str, object]] = field(default_factory=dict)  # label -> spec, T


Batch = tuple[torch.Tensor, ...]  # (rgb8 uint8 (B, 3, H, W) truth, ...what the settings read)


@torch.no_grad()
def score_batches(
    batches: Iterable[Batch],
    settings: dict[Any, Callable[[Batch], torch.Tensor]],
    keys: Sequence[str],
) -> dict[Any, dict[str, torch.Tensor]]:
    """THE batch scorer on tensors (validation in training, calibration): for each setting,
    each photo's ``keys`` metrics, (N,) per key, over one pass through ``batches``. A setting
    maps a batch (its first item the uint8 truth) to float RGB (B, 3, H, W) in [0, 1], e.g.
    the model's output decoded one way and composed (``colorizer.inference.compose_batch``).
    Scores are ``colorizer.metrics.score``'s, so a batch gives each photo what the
    photo-by-photo path gives it (tests/test_metrics.py)."""
    parts: dict[Any, dict[str, list[torch.Tensor]]] = {
        name: {k: [] for k in keys} for name in settings
    }
    for batch in batches:
        truth = batch[0].float() / 255
        for name, to_rgb in settings.items():
            m = score(to_rgb(batch), truth, keys=keys)
            for k in keys:
                parts[name][k].append(m[k].double().cpu().reshape(-1))
    return {
        name: {
            k: torch.cat(v) if v else torch.empty(0, dtype=torch.float64) for k, v in got.items()
        }
        for name, got in parts.items()
    }


def _to_height(img: Image.Image, height: int, resample: Image.Resampling) -> Image.Image:
    """``img`` scaled to ``height`` pixels, keeping its aspect (itself when already that size)."""
    w = max(1, round(img.width * height / img.height))
    return img if img.size == (w, height) else img.resize((w, height), resample)


def picture_grid(
    columns: Sequence[tuple[str, Sequence[Image.Image]]],
    height: int | None = None,
    resample: Image.Resampling = Image.Resampling.LANCZOS,
) -> Image.Image:
    """One row per photo, one labelled column per source (ground truth, gray, each model).

    Every tile is scaled to ``height`` (default: the first photo's own) keeping its aspect, so
    photos of any shape line up; a column is as wide as its widest tile.
    """
    if not columns or not columns[0][1]:
        raise ValueError("picture_grid needs at least one column with one photo")
    n = len(columns[0][1])
    if any(len(imgs) != n for _, imgs in columns):
        raise ValueError("every column of the grid needs the same number of photos")
    h = height or columns[0][1][0].height
    pad, head = 4, 18
    tiles = [[_to_height(img.convert("RGB"), h, resample) for img in imgs] for _, imgs in columns]
    widths = [max(t.width for t in col) for col in tiles]
    grid = Image.new(
        "RGB", (sum(widths) + pad * (len(widths) + 1), head + n * (h + pad) + pad), "white"
    )
    draw = ImageDraw.Draw(grid)
    x = pad
    for (name, _), col, w in zip(columns, tiles, widths, strict=True):
        draw.text((x + 2, 3), name[: max(4, w // 6)], fill="black")
        for r, tile in enumerate(col):
            grid.paste(tile, (x, head + pad + r * (h + pad)))
        x += w + pad
    return grid


def prepare_truth(src: ImageSource, size: int) -> Image.Image:
    """Ground truth as scored: loaded as RGB, resized to size x size (size 0: unchanged)."""
    img = load_image(src)
    if size and img.size != (size, size):
        img = img.resize((size, size), RESAMPLE)
    return img


def truth_class_weights(
    photos: Sequence[tuple[str, ImageSource]], size: int, lam: float = 0.0, progress: bool = True
) -> tuple[torch.Tensor, list[tuple[str, str]]]:
    """Class weights for the rebalanced AuC from the a*b* prior of the ground truth itself.

    One cheap pass over the (name, photo) pairs (zhang313 bins, prior smoothed with sigma 5).
    Returns the (313,) weights and the photos that could not be read, (name, reason).
    """
    bins = get_bins("zhang313")
    bad: list[tuple[str, str]] = []

    def ab_batches():
        for name, p in tqdm(photos, desc="class prior", unit="img", disable=not progress):
            try:
                img = prepare_truth(p, size)
            except ImageError as e:
                bad.append((name, str(e)))
                continue
            yield rgb_to_lab(to_tensor(img)[None])[:, 1:]  # (1, 2, H, W)

    try:
        prior = class_prior(bins, ab_batches())
    except ValueError as e:
        raise ImageError("no readable ground-truth photo to evaluate on") from e
    return rebalance_weights(prior, lam=lam, sigma=5.0, bins=bins), bad


def summarize(per_photo: pd.DataFrame) -> pd.DataFrame:
    """Per-photo rows -> one row per model: n, then <metric>_mean and <metric>_std."""
    rows = []
    for model, group in per_photo.groupby("model", sort=False):
        row: dict[str, object] = {"model": model, "n": len(group)}
        for m in METRICS:
            # A perfect photo has PSNR = inf: the mean is then inf, the std undefined (NaN).
            with np.errstate(invalid="ignore"):
                row[f"{m}_mean"] = group[m].mean()
                row[f"{m}_std"] = group[m].std(ddof=1) if len(group) > 1 else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def summary_markdown(result: EvalResult, title: str, images: str, size: int, command: str) -> str:
    """The summary as the first seed's table: a row per model, mean and std per metric."""
    s = result.summary
    head = ["Model", "N"]
    for m in METRICS.values():
        head += [f"{m.heading} {'↑' if m.higher_is_better else '↓'} mean", "std"]
    lines = [
        f"# {title}",
        "",
        f"Ground truth: `{images}`, {int(s['n'].max()) if len(s) else 0} photos, "
        + (f"resized to {size}x{size} (LANCZOS)." if size else "at their own size."),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for _, row in s.iterrows():
        cells = [str(row["model"]), str(int(row["n"]))]
        for m in METRICS:
            cells += [f"{row[f'{m}_mean']:.2f}", f"{row[f'{m}_std']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Euclidean distance and PSNR (seed) are the first seed's definitions (PSNR (seed) is "
        "10 log10(255^2 / ED^2), not dB); PSNR dB is 20 log10(255 / RMSE) on 8-bit RGB; AuC is "
        "the area under the CDF of per-pixel a*b* error over 0..150 (Zhang et al.), rebal. with "
        "pixels weighted by the inverse frequency of their a*b* class in this ground truth.",
    ]
    if result.skipped:
        lines += ["", f"Skipped {len(result.skipped)} unreadable photos:", ""]
        lines += [f"- `{p}`: {why}" for p, why in result.skipped]
    if result.unmatched:
        lines += ["", f"{len(result.unmatched)} prediction files matched no ground truth:", ""]
        lines += [f"- `{p}`" for p in result.unmatched]
    if result.missing:
        lines += ["", f"{len(result.missing)} ground-truth photos had no prediction:", ""]
        lines += [f"- `{p}`" for p in result.missing]
    info = machine_info()
    lines += [
        "",
        f"Command: `{command}`",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()),
        "",
    ]
    return "\n".join(lines)


# What is evaluated on: a folder (walked by list_images, photos named by their path below it) or
# (name, photo) pairs, e.g. the rows of a prepared split (python -m training evaluate).
Photos = str | os.PathLike | Sequence[tuple[str, ImageSource]]


def _ground_truth(images: Photos, limit: int | None) -> list[tuple[str, ImageSource]]:
    if isinstance(images, str | os.PathLike):
        photos: list[tuple[str, ImageSource]] = [(_rel(p, images), p) for p in list_images(images)]
        if not photos:
            raise ImageError(f"'{images}': no image files found")
    else:
        photos = list(images)
        if not photos:
            raise ImageError("no photo to evaluate on")
    return photos[:limit] if limit else photos


def evaluate_models(
    models: Sequence[str | os.PathLike | torch.nn.Module],
    images: Photos,
    config: EvalConfig | None = None,
    progress: bool = True,
) -> EvalResult:
    """Colorize every ground-truth photo with each model and score it.

    ``models``: registry names, checkpoint paths, "gray" or modules (see Colorizer).
    """
    from colorizer.inference import Colorizer

    cfg = config or EvalConfig()
    photos = _ground_truth(images, cfg.limit)
    colorizers = [
        Colorizer(m, device=cfg.device, temperature=cfg.temperature, weights_dir=cfg.weights_dir)
        for m in models
    ]
    no_hints = [c.name for c in colorizers if cfg.hints and not c.accepts_hints]
    if no_hints:
        raise HintError(f"--hints random:{cfg.hints}: {', '.join(no_hints)} take(s) no hints")
    labels = _unique_labels([c.name for c in colorizers])
    info = {
        label: {
            "spec": os.fspath(m) if isinstance(m, str | os.PathLike) else c.name,
            "temperature": c.default_temperature if c.kind == "classification" else None,
            "hints": f"random:{cfg.hints}" if cfg.hints else None,
        }
        for label, m, c in zip(labels, models, colorizers, strict=True)
    }
    weights, skipped = truth_class_weights(photos, cfg.size, cfg.rebalance_lam, progress)
    bad = {name for name, _ in skipped}
    rows = []
    # grid.png keeps the first cfg.grid photos (the sorted order), small, for a person to judge
    grid_cols: list[tuple[str, list[Image.Image]]] = [("ground truth", [])]
    grid_cols += [(label, []) for label in labels]
    for name, photo in tqdm(photos, desc="evaluate", unit="img", disable=not progress):
        if name in bad:
            continue
        truth_img = prepare_truth(photo, cfg.size)
        truth = to_tensor(truth_img)
        in_grid = len(grid_cols[0][1]) < cfg.grid
        if in_grid:
            grid_cols[0][1].append(_thumb(truth_img, cfg.grid_height))
        for c, (label, colorizer) in enumerate(zip(labels, colorizers, strict=True)):
            pred_img = colorizer.colorize(truth_img, hints=photo_hints(name, truth_img, cfg))
            if in_grid:
                grid_cols[c + 1][1].append(_thumb(pred_img, cfg.grid_height))
            rows.append(
                {
                    "model": label,
                    "photo": name,
                    **_floats(score(to_tensor(pred_img), truth, weights)),
                }
            )
    per_photo = pd.DataFrame(rows, columns=["model", "photo", *METRICS])
    grid = None
    if grid_cols[0][1]:
        grid = picture_grid(grid_cols, height=cfg.grid_height, resample=cfg.grid_resample)
    return EvalResult(per_photo, summarize(per_photo), skipped, grid=grid, models=info)


def photo_hints(name: str, truth: Image.Image, cfg: EvalConfig) -> list[Hint] | None:
    """The simulated user's hints for one photo (None for automatic colorization): its seed
    comes from the photo's name, so the points do not depend on which photos come before it,
    and the first N of N + k are the same points (the curve over N adds hints, never moves
    them)."""
    if not cfg.hints:
        return None
    seed = zlib.crc32(name.encode("utf-8")) ^ cfg.hint_seed
    return random_hints(np.asarray(truth), cfg.hints, seed=seed)


def _thumb(img: Image.Image, height: int) -> Image.Image:
    """A copy no taller than ``height``, so a grid of 12 MP photos stays small in memory."""
    if img.height <= height:
        return img.copy()
    return _to_height(img, height, RESAMPLE)


def evaluate_predictions(
    predictions: str | os.PathLike,
    images: str | os.PathLike,
    config: EvalConfig | None = None,
    label: str | None = None,
    progress: bool = True,
) -> EvalResult:
    """Score a folder of ready-made colorizations, matched to ground truth by file stem.

    Predictions of another size are resized to the scoring size like the ground truth.
    Unmatched files on either side are reported, not fatal; ambiguous stems are skipped.
    """
    cfg = config or EvalConfig()
    truth_by_stem: dict[str, list[Path]] = {}
    for _, p in _ground_truth(images, None):
        truth_by_stem.setdefault(Path(p).stem, []).append(Path(p))
    preds = list_images(predictions)
    if not preds:
        raise ImageError(f"'{predictions}': no image files found")
    pairs: list[tuple[Path, Path]] = []
    skipped: list[tuple[str, str]] = []
    unmatched: list[str] = []
    used: set[str] = set()
    for pred in preds:
        cands = truth_by_stem.get(pred.stem, [])
        if not cands:
            unmatched.append(str(pred))
        elif len(cands) > 1:
            skipped.append(
                (str(pred), f"ambiguous: {len(cands)} ground-truth photos named {pred.stem}.*")
            )
        elif pred.stem in used:
            skipped.append((str(pred), f"a second prediction for {pred.stem}"))
        else:
            used.add(pred.stem)
            pairs.append((pred, cands[0]))
    missing = sorted(
        str(ps[0]) for stem, ps in truth_by_stem.items() if stem not in used and len(ps) == 1
    )
    if cfg.limit:
        pairs = pairs[: cfg.limit]
    if not pairs:
        raise ImageError(f"no prediction in '{predictions}' matches a photo in '{images}' by name")

    weights, bad_truth = truth_class_weights(
        [(_rel(t, images), t) for _, t in pairs], cfg.size, cfg.rebalance_lam, progress
    )
    skipped += bad_truth
    bad = {p for p, _ in bad_truth}
    name = label or Path(predictions).resolve().name
    rows = []
    for pred_path, truth_path in tqdm(pairs, desc="score", unit="img", disable=not progress):
        if _rel(truth_path, images) in bad:
            continue
        truth_img = prepare_truth(truth_path, cfg.size)
        try:
            pred_img = load_image(pred_path)
        except ImageError as e:
            skipped.append((str(pred_path), str(e)))
            continue
        if pred_img.size != truth_img.size:
            pred_img = pred_img.resize(truth_img.size, RESAMPLE)
        s = _floats(score(to_tensor(pred_img), to_tensor(truth_img), weights))
        rows.append({"model": name, "photo": _rel(truth_path, images), **s})
    per_photo = pd.DataFrame(rows, columns=["model", "photo", *METRICS])
    info = {name: {"spec": str(predictions), "temperature": None}}
    return EvalResult(per_photo, summarize(per_photo), skipped, unmatched, missing, models=info)


def _floats(values: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: v.item() for k, v in values.items()}


def _rel(path: Path, root: str | os.PathLike) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _unique_labels(names: list[str]) -> list[str]:
    """Two checkpoints both called best.pt must not merge into one row of the summary."""
    out, seen = [], {}
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out


def summary_json(
    result: EvalResult, images: str, size: int, command: str, **context: object
) -> dict[str, object]:
    """The summary, machine-readable: per model its n, spec, temperature and each metric's
    mean and std (``python -m training export`` puts a model's into its checkpoint)."""
    models: dict[str, object] = {}
    for _, row in result.summary.iterrows():
        label = str(row["model"])
        models[label] = {
            "n": int(row["n"]),
            **result.models.get(label, {}),
            **{m: {"mean": row[f"{m}_mean"], "std": row[f"{m}_std"]} for m in METRICS},
        }
    photos = int(result.summary["n"].max()) if len(result.summary) else 0
    return dict(images=images, size=size, photos=photos, command=command, **context, models=models)


def write_results(
    result: EvalResult,
    out_dir: str | os.PathLike,
    images: str,
    size: int,
    command: str | None = None,
    **context: object,
) -> dict[str, Path]:
    """THE writer of every evaluation: per_photo.csv, summary.csv, summary.md, summary.json
    (with ``context``, e.g. data and split) and grid.png when the result has a grid, under
    ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    command = command or invocation()
    paths = {
        "per_photo": out / "per_photo.csv",
        "summary": out / "summary.csv",
        "markdown": out / "summary.md",
        "json": out / "summary.json",
    }
    write_text(paths["per_photo"], result.per_photo.to_csv(index=False, float_format="%.6g"))
    write_text(paths["summary"], result.summary.to_csv(index=False, float_format="%.6g"))
    title = f"Evaluation: {out.name}"
    write_text(paths["markdown"], summary_markdown(result, title, images, size, command))
    summary = summary_json(result, images, size, command, **context)
    write_text(paths["json"], json.dumps(summary, indent=1) + "\n")
    if result.grid is not None:
        paths["grid"] = out / "grid.png"
        result.grid.save(paths["grid"])
    return paths


def run(
    models: Sequence[str],
    images: str,
    out_dir: str,
    predictions: str | None = None,
    config: EvalConfig | None = None,
    progress: bool = True,
    log_fn: Callable[[str], None] = log.info,
) -> EvalResult:
    """What ``python -m colorizer evaluate`` does: evaluate, then write the three files."""
    cfg = config or EvalConfig()
    start = time.perf_counter()
    parts: list[EvalResult] = []
    if models:
        parts.append(evaluate_models(models, images, cfg, progress))
    if predictions:
        parts.append(evaluate_predictions(predictions, images, cfg, progress=progress))
    if not parts:
        raise ValueError("nothing to evaluate: give --model and/or --predictions")
    per_photo = pd.concat([p.per_photo for p in parts], ignore_index=True)
    result = EvalResult(
        per_photo=per_photo,
        summary=summarize(per_photo),
        skipped=sorted({s for p in parts for s in p.skipped}),
        unmatched=[u for p in parts for u in p.unmatched],
        missing=[m for p in parts for m in p.missing],
        grid=parts[0].grid if models else None,
        models={k: v for p in parts for k, v in p.models.items()},
    )
    paths = write_results(result, out_dir, images, cfg.size)
    log_fn(f"scored {len(per_photo)} (model, photo) pairs in {time.perf_counter() - start:.1f} s")
    for key, path in paths.items():
        log_fn(f"wrote {key}: {path}")
    return result
