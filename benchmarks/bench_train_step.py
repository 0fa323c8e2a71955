"""Training steps per CPU-second: the trainer as it was (2026-12-02) against the trainer now,
side by side in one run, on real photos, for both stages of the default recipe.

    python -m benchmarks.bench_train_step [--data data/all160] [--steps 12] [--loss-steps 60]

"Before" is the step as training/train.py ran it until 2026-12-02, rebuilt here: NCHW
tensors on CPU, fp32, and the loss multiplying a dense (B, 313, h, w) soft target and running
a second softmax for the mean term. "Now" is the trainer's own code (``make_batch``,
``to_lab``, ``ColorLoss``) with its CPU settings: channels-last memory, the sparse (gathered)
soft target, the mean from the same log-softmax, and bf16 autocast where the stage's config
turns it on (``cpu_amp``, the frozen-encoder stage). Profiled first (torch.profiler, one
thread): convolutions were 60 % of a step, the dense target and second softmax 17 %.

"Cached" (frozen stage only) is the trainer with ``feature_cache`` (training/features.py):
the encoder's features of K fixed crops per photo computed once, so a step runs the decoder
alone; its one-off cost (the build) is timed too and charged per step of a run below.

Two measurements, each for the frozen-encoder stage (stage 1/3 configs) and the full
fine-tune (stage 2/4):

- speed: the paths alternate step by step on the same batches (so load from other
  processes hits all alike); ms per step and the ratio. Only the step is timed: the fp32
  yardstick below is computed outside the clock (until 2026-12-04 it was inside, which
  added the same ~0.3 s to every path and understated each ratio);
- loss per step: all paths train from the same initial weights on the same batches for
  ``--loss-steps`` steps; the mean training loss of the last half of each, measured by the
  same (fp32) loss function, must match for "same loss per step".

"Partly frozen" (full fine-tune only, ``--freeze-blocks N``) is the trainer now with the
encoder's stem and first N blocks frozen (``freeze_blocks``, colorizer/models/effunet.py): the
layers at 1/2 and 1/4 of the input side, the dearest to back-propagate through. It changes the
recipe, so its loss per step is the one to watch, and quality is judged by training runs.

The batches are the cache's own crops for every path, so all of them see the same pixels.

Writes results/bench_train_step.csv and .md with the command and the machine.
"""

from __future__ import annotations

import argparse
import copy
import csv
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from colorizer.atomic import atomic_text, write_text
from colorizer.models import create_model
from colorizer.provenance import invocation, machine_string, utc_now
from training.config import TrainConfig, load_config
from training.data import load_images, to_lab
from training.features import FeatureCache, forward_cached, open_cache
from training.train import ColorLoss

FROZEN = "training/configs/default/stage3_weather.toml"
FULL = "training/configs/default/stage4_weather_finetune.toml"


def loss_before(loss: ColorLoss, out: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """ColorLoss.forward as it was: a dense soft target, and a second softmax for the mean."""
    cfg, bins = loss.cfg, loss.bins
    if ab.shape[-2:] != out.shape[-2:]:
        ab = F.interpolate(ab, size=out.shape[-2:], mode="area")
    out = out.float()
    logp = F.log_softmax(out, dim=1)
    target = bins.encode_soft(ab, k=cfg.soft_k, sigma=cfg.soft_sigma)  # (B, Q, h, w)
    nll = -(target * logp).sum(1)
    w = loss.weights[target.argmax(1)]
    total = (nll * w).mean()
    if cfg.reg_weight:
        p = torch.softmax(out, dim=1)
        mean_ab = torch.einsum("bqhw,qc->bchw", p, bins.centers)
        total = total + cfg.reg_weight * F.smooth_l1_loss(mean_ab / 10.0, ab / 10.0)
    return total


class Stepper:
    """One way of taking a step: its model copy, optimizer and settings."""

    def __init__(self, cfg: TrainConfig, model: torch.nn.Module, weights: torch.Tensor, now: bool):
        self.now, self.cfg = now, cfg
        self.model = copy.deepcopy(model)
        if now and cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.loss = ColorLoss(cfg, self.model, weights)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.Adam(params, lr=cfg.lr)

    def step(self, batch: Batch, cached: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step; returns (the output, the target ab) for the yardstick."""
        L, ab = to_lab(batch.rgb)
        amp = self.now and self.cfg.cpu_amp
        if self.now and self.cfg.channels_last:
            L = L.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            if cached:
                out = forward_cached(self.model, L, batch.taps, batch.pooled)
            else:
                out = self.model(L)
        loss = self.loss(out, ab) if self.now else loss_before(self.loss, out, ab)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return out.detach(), ab

    def yardstick(self, out: torch.Tensor, ab: torch.Tensor) -> float:
        with torch.no_grad():  # the same fp32 loss for every path
            return float(loss_before(self.loss, out.float(), ab))


@dataclass
class Batch:
    rgb: torch.Tensor
    taps: dict[int, torch.Tensor]
    pooled: torch.Tensor


def batches(cache: FeatureCache, cfg: TrainConfig, n: int, seed: int) -> list[Batch]:
    """n batches of stored crops (with their features), drawn as the trainer draws them."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        idx = torch.randint(0, cache.spec.photos, (cfg.batch_size,), generator=gen)
        variant = torch.randint(0, cache.spec.variants, (cfg.batch_size,), generator=gen)
        out.append(Batch(*cache.batch(idx, variant, torch.device("cpu"))))
    return out


def make_cache(
    config: str, images: torch.Tensor, folder: Path, variants: int
) -> tuple[FeatureCache, float]:
    """The frozen stage's cache over the loaded photos (its crops feed every path of both
    stages); returns it and the seconds its build took."""
    cfg = load_config(config)
    cfg.feature_cache, cfg.cache_variants = str(folder), variants
    model = stage_model(cfg).to(memory_format=torch.channels_last)
    t0 = time.perf_counter()
    cache = open_cache(folder, cfg, model, images, torch.device("cpu"))
    return cache, time.perf_counter() - t0


SHIPPED = "weights/default.pt"


def stage_init(cfg: TrainConfig) -> str:
    """The weights a stage starts from: its init_from where this machine has it, else the
    shipped default (a trained network either way, so the losses compared are real ones)."""
    if cfg.init_from and Path(cfg.init_from).is_file():
        return cfg.init_from
    if not Path(SHIPPED).is_file():
        raise SystemExit(f"neither {cfg.init_from or '(no init_from)'} nor {SHIPPED} is here")
    return SHIPPED


def stage_model(cfg: TrainConfig, **model_args) -> torch.nn.Module:
    from training.train import left_behind, load_weights

    torch.manual_seed(0)
    model = create_model(cfg.model, **{**cfg.model_args, **model_args})
    load_weights(model, stage_init(cfg), "init_from", drop=left_behind(model))
    return model.train()


def bench_stage(
    name: str,
    config: str,
    cache: FeatureCache,
    build_s: float,
    steps: int,
    loss_steps: int,
    freeze_blocks: int = 0,
) -> dict:
    cfg = load_config(config)
    frozen = bool(cfg.model_args.get("freeze_encoder"))
    model = stage_model(cfg)
    paths = {"before": (False, False), "now": (True, False)}
    models = dict.fromkeys(paths, model)
    if frozen:
        paths["cached"], models["cached"] = (True, True), model
    elif freeze_blocks:  # the same weights, the stem and first blocks frozen
        paths["partial"] = (True, False)
        models["partial"] = stage_model(cfg, freeze_blocks=freeze_blocks)
    weights = torch.ones(model.bins.num_classes)

    def fresh() -> dict[str, Stepper]:
        return {k: Stepper(cfg, models[k], weights, now) for k, (now, _) in paths.items()}

    # speed: alternate, after 2 warm-up steps each
    steppers = fresh()
    secs = dict.fromkeys(paths, 0.0)
    order = list(paths.items())
    for i, batch in enumerate(batches(cache, cfg, steps + 2, seed=1)):
        order = order[1:] + order[:1]  # rotate, so that no path always runs first
        for key, (_, cached) in order:
            t0 = time.perf_counter()
            steppers[key].step(batch, cached)
            if i >= 2:
                secs[key] += time.perf_counter() - t0
    # loss per step: fresh copies from the same weights, the same batches
    steppers = fresh()
    curves: dict[str, list[float]] = {k: [] for k in paths}
    for batch in batches(cache, cfg, loss_steps, seed=2):
        for key, (_, cached) in paths.items():
            curves[key].append(steppers[key].yardstick(*steppers[key].step(batch, cached)))
    half = loss_steps // 2
    row = {
        "stage": name,
        "config": config,
        "init": stage_init(cfg),
        "cpu_amp": cfg.cpu_amp,
        "loss_steps": loss_steps,
    }
    for key in paths:
        row[f"ms_step_{key}"] = 1000 * secs[key] / steps
        row[f"loss_{key}"] = sum(curves[key][half:]) / (loss_steps - half)
    row["ratio"] = secs["before"] / secs["now"]
    if "partial" in paths:
        row["freeze_blocks"] = freeze_blocks
        row["ratio_partial"] = secs["before"] / secs["partial"]
    if frozen:
        row["build_ms_per_crop"] = 1000 * build_s / (cache.spec.photos * cache.spec.variants)
        row["ratio_cached"] = secs["before"] / secs["cached"]
    print(
        f"{name}: " + ", ".join(f"{k} {row[f'ms_step_{k}']:.0f}" for k in paths) + " ms/step; "
        f"now {row['ratio']:.2f}x"
        + (f", cached {row['ratio_cached']:.2f}x" if frozen else "")
        + (f", partly frozen {row['ratio_partial']:.2f}x" if "partial" in paths else "")
        + "; loss "
        + ", ".join(f"{k} {row[f'loss_{k}']:.4f}" for k in paths),
        flush=True,
    )
    return row


def amortized(row: dict, batch: int, epochs: int, variants: int) -> float:
    """ms per step of a cached run of ``epochs`` epochs: the step plus its share of the build
    (``variants`` crops per photo built once; an epoch is photos / batch steps, so the build
    adds variants x batch / epochs crops' worth of build time to each step)."""
    return row["ms_step_cached"] + row["build_ms_per_crop"] * variants * batch / epochs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="data/all160", help="a prepared folder (training/prepare)")
    p.add_argument("--photos", type=int, default=512, help="train photos loaded")
    p.add_argument("--steps", type=int, default=12, help="timed steps per path and stage")
    p.add_argument("--loss-steps", type=int, default=60, help="steps of the loss comparison")
    p.add_argument("--variants", type=int, default=8, help="cached crops per photo")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--frozen", default=FROZEN, help="the frozen stage's config (its crop feeds all)"
    )
    p.add_argument("--full", default=FULL, help="the whole-network stage's config")
    p.add_argument(
        "--freeze-blocks", type=int, default=3, help="the partly frozen path's frozen blocks"
    )
    p.add_argument("--out", default="results/bench_train_step")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    images = load_images(args.data, "train", limit=args.photos, spread=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench_cache_"))
    try:
        cache, build_s = make_cache(args.frozen, images, tmp / "cache", args.variants)
        stages = {
            "frozen encoder (stage 1/3)": args.frozen,
            "full fine-tune (stage 2/4)": args.full,
        }
        rows = [
            bench_stage(n, c, cache, build_s, args.steps, args.loss_steps, args.freeze_blocks)
            for n, c in stages.items()
        ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_text(out.with_suffix(".csv")) as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    batch = load_config(args.frozen).batch_size
    lines = [
        "# Training steps per CPU-second: the trainer before (2026-12-02), now, cached, and "
        "partly frozen",
        "",
        f"Command: `{invocation()}`  ",
        f"Machine: {machine_string()}, {args.threads} torch thread(s); {utc_now()}  ",
        f"Data: {args.data}, {len(images)} train photos; batch of each stage's config; "
        f"cache of {args.variants} crops per photo.  ",
        f"Configs: frozen stage `{args.frozen}`, whole-network stage `{args.full}`.",
        "",
        "| stage | bf16 (cpu_amp) | ms/step before | now | cached | partly frozen | "
        "now vs before | cached vs before | partly frozen vs before | train loss before | now | "
        "cached | partly frozen |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def cell(r: dict, key: str, fmt: str, wrap: str = "{}") -> str:
        return wrap.format(format(r[key], fmt)) if key in r else "-"

    for r in rows:
        lines.append(
            f"| {r['stage']} | {'on' if r['cpu_amp'] else 'off'} | {r['ms_step_before']:.0f} | "
            f"{r['ms_step_now']:.0f} | {cell(r, 'ms_step_cached', '.0f')} | "
            f"{cell(r, 'ms_step_partial', '.0f')} | "
            f"**{r['ratio']:.2f}x** | {cell(r, 'ratio_cached', '.2f', '**{}x**')} | "
            f"{cell(r, 'ratio_partial', '.2f', '**{}x**')} | "
            f"{r['loss_before']:.4f} | {r['loss_now']:.4f} | {cell(r, 'loss_cached', '.4f')} | "
            f"{cell(r, 'loss_partial', '.4f')} |"
        )
    frozen = rows[0]
    lines += [
        "",
        f"Train loss: the mean over the last {rows[0]['loss_steps'] // 2} of "
        f"{rows[0]['loss_steps']} steps from the same weights on the same batches, each "
        "measured by the fp32 loss as it was. Every path is fed the same stored crops, so "
        "cached and now agree by construction here: what fixed crops cost in quality is "
        "measured by training runs at equal minutes, not by this benchmark.",
        f"Partly frozen: the encoder's stem and first {args.freeze_blocks} blocks frozen "
        "(`freeze_blocks`), everything else as now.",
        "Initial weights: " + ", ".join(f"{r['stage']}: {r['init']}" for r in rows) + ".",
        "",
        f"The cache's build: {frozen['build_ms_per_crop']:.1f} ms per crop, "
        f"{args.variants} crops per photo, built once. Charged to runs of several lengths, "
        "a cached step costs:",
        "",
        "| run length (epochs) | cached ms/step, build included | vs before | vs now |",
        "|---:|---:|---:|---:|",
    ]
    for epochs in (5, 10, 20, 40):
        ms = amortized(frozen, batch, epochs, args.variants)
        lines.append(
            f"| {epochs} | {ms:.0f} | {frozen['ms_step_before'] / ms:.2f}x | "
            f"{frozen['ms_step_now'] / ms:.2f}x |"
        )
    lines.append("")
    write_text(out.with_suffix(".md"), "\n".join(lines))
    print(f"wrote {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
