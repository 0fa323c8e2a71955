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

Two measurements, each for the frozen-encoder stage (stage 1/3 configs) and the full
fine-tune (stage 2/4):

- speed: the two paths alternate step by step on the same batches (so load from other
  processes hits both alike); ms per step and the ratio;
- loss per step: both train from the same initial weights on the same batches for
  ``--loss-steps`` steps; the mean training loss of the last half of each, measured by the
  same (fp32) loss function, must match for "same loss per step".

Writes results/bench_train_step.csv and .md with the command and the machine.
"""

from __future__ import annotations

import argparse
import copy
import csv
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from colorizer.models import create_model
from colorizer.provenance import invocation, machine_string, utc_now
from training.config import TrainConfig, load_config
from training.data import load_images, make_batch, to_lab
from training.train import ColorLoss

STAGES = {
    "frozen encoder (stage 1/3)": "training/configs/default/stage3_weather.toml",
    "full fine-tune (stage 2/4)": "training/configs/default/stage4_weather_finetune.toml",
}


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

    def step(self, rgb: torch.Tensor) -> float:
        L, ab = to_lab(rgb)
        amp = self.now and self.cfg.cpu_amp
        if self.now and self.cfg.channels_last:
            L = L.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            out = self.model(L)
        loss = self.loss(out, ab) if self.now else loss_before(self.loss, out, ab)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        with torch.no_grad():  # the same fp32 yardstick for both paths
            return float(loss_before(self.loss, out.detach().float(), ab))


def batches(images: torch.Tensor, cfg: TrainConfig, n: int, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        idx = torch.randint(0, len(images), (cfg.batch_size,), generator=gen)
        out.append(
            make_batch(images, idx, cfg.crop, cfg.flip, gen, torch.device("cpu"), cfg.scale_min)
        )
    return out


def bench_stage(name: str, config: str, images: torch.Tensor, steps: int, loss_steps: int) -> dict:
    cfg = load_config(config)
    torch.manual_seed(0)
    model = create_model(cfg.model, **cfg.model_args)
    if cfg.init_from and Path(cfg.init_from).is_file():
        from training.train import left_behind, load_weights

        load_weights(model, cfg.init_from, "init_from", drop=left_behind(model))
    model.train()
    weights = torch.ones(model.bins.num_classes)
    before, now = Stepper(cfg, model, weights, False), Stepper(cfg, model, weights, True)
    # speed: alternate, after 2 warm-up steps each
    secs = {"before": 0.0, "now": 0.0}
    for i, rgb in enumerate(batches(images, cfg, steps + 2, seed=1)):
        for key, path in (("before", before), ("now", now)):
            t0 = time.perf_counter()
            path.step(rgb)
            if i >= 2:
                secs[key] += time.perf_counter() - t0
    # loss per step: fresh copies from the same weights, the same batches
    before, now = Stepper(cfg, model, weights, False), Stepper(cfg, model, weights, True)
    curves: dict[str, list[float]] = {"before": [], "now": []}
    for rgb in batches(images, cfg, loss_steps, seed=2):
        curves["before"].append(before.step(rgb))
        curves["now"].append(now.step(rgb))
    half = loss_steps // 2
    row = {
        "stage": name,
        "config": config,
        "cpu_amp": cfg.cpu_amp,
        "ms_step_before": 1000 * secs["before"] / steps,
        "ms_step_now": 1000 * secs["now"] / steps,
        "ratio": secs["before"] / secs["now"],
        "loss_before": sum(curves["before"][half:]) / (loss_steps - half),
        "loss_now": sum(curves["now"][half:]) / (loss_steps - half),
        "loss_steps": loss_steps,
    }
    print(
        f"{name}: {row['ms_step_before']:.0f} -> {row['ms_step_now']:.0f} ms/step, "
        f"{row['ratio']:.2f}x; loss over steps {half + 1}-{loss_steps}: "
        f"{row['loss_before']:.4f} before, {row['loss_now']:.4f} now",
        flush=True,
    )
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="data/all160", help="a prepared folder (training/prepare)")
    p.add_argument("--photos", type=int, default=512, help="train photos loaded")
    p.add_argument("--steps", type=int, default=12, help="timed steps per path and stage")
    p.add_argument("--loss-steps", type=int, default=60, help="steps of the loss comparison")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="results/bench_train_step")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    images = load_images(args.data, "train", limit=args.photos, spread=True)
    rows = [bench_stage(n, c, images, args.steps, args.loss_steps) for n, c in STAGES.items()]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = [
        "# Training steps per CPU-second: the trainer before (2026-12-02) and now",
        "",
        f"Command: `{invocation()}`  ",
        f"Machine: {machine_string()}, {args.threads} torch thread(s); {utc_now()}  ",
        f"Data: {args.data}, {len(images)} train photos; batch of each stage's config.",
        "",
        "| stage | bf16 (cpu_amp) | ms/step before | ms/step now | speed-up | "
        "train loss before | train loss now |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['stage']} | {'on' if r['cpu_amp'] else 'off'} | {r['ms_step_before']:.0f} | "
            f"{r['ms_step_now']:.0f} | **{r['ratio']:.2f}x** | {r['loss_before']:.4f} | "
            f"{r['loss_now']:.4f} |"
        )
    lines += [
        "",
        f"Train loss: the mean over the last {rows[0]['loss_steps'] // 2} of "
        f"{rows[0]['loss_steps']} steps from the same weights on the same batches, both "
        "measured by the fp32 loss as it was.",
        "",
    ]
    out.with_suffix(".md").write_text("\n".join(lines))
    print(f"wrote {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
