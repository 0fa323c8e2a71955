"""Train any registered colorization model from a TrainConfig.

    python -m training train --config training/configs/street/street.toml [--set key=value] [--resume]
    torchrun --nproc_per_node 4 -m training train --config ...   (DDP, one process per GPU)

The loop in reading order: ``build`` (model, data, optimiser: a ``Run``), ``restore`` (a
resumed run), ``run_epoch`` (steps, checkpoints, the time budget), ``end_epoch`` (validation,
metrics.csv, the loss curve), ``finish`` (the decode temperature, final.pt). The data side is
``training.data``, validation ``training.validate``.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from colorizer.atomic import atomic_text
from colorizer.bins import ColorBins, Decoding, rebalance_weights
from colorizer.hints import simulate_hints
from colorizer.inference import decoding_at
from colorizer.lab import ab_to_unit
from colorizer.metrics import RENAMED
from colorizer.models.effunet import EXPERTS_PREFIX, TILT_PREFIX
from colorizer.provenance import hardware_string
from training.adversarial import Adversary
from training.config import TrainConfig, TrainingError, config_to_dict
from training.data import (
    add_haze,
    balanced_order,
    compute_prior,
    load_images,
    make_batch,
    on_grid,
    source_factors,
    to_lab,
    train_sources,
)
from training.features import FeatureCache, forward_cached, open_cache
from training.prepare import load_manifest
from training.validate import METRIC_KEYS, Scores, tune_decoding, validate

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- environment
@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> Dist:
    """Join the process group torchrun describes in the environment (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    backend = "nccl" if torch.cuda.is_available() and device != "cpu" else "gloo"
    dist.init_process_group(backend=backend)  # reads MASTER_ADDR/PORT, RANK, WORLD_SIZE
    d = Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if backend == "nccl":
        torch.cuda.set_device(d.local_rank)
    return d


def pick_device(name: str, d: Dist) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and d.world > 1:
        name = f"cuda:{d.local_rank}"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError(f"device {name!r} asked for, but torch sees no CUDA GPU")
    return torch.device(name)


# ---------------------------------------------------------------------------- loss
class ColorLoss(nn.Module):
    """Weighted cross-entropy on soft or hard bin targets, or MSE / L1 on unit-scaled ab."""

    def __init__(self, cfg: TrainConfig, model: nn.Module, weights: torch.Tensor | None):
        super().__init__()
        self.cfg = cfg
        self.kind = model.kind
        self.bins: ColorBins | None = model.bins
        if self.kind != "classification" and cfg.reg_weight:
            raise TrainingError("reg_weight adds a term to the cross-entropy of a class model")
        if self.kind == "classification":
            if cfg.loss != "ce":
                raise TrainingError(
                    f"{model.arch_name} is a classification model: use loss = 'ce', not {cfg.loss!r}"
                )
            assert weights is not None
            self.register_buffer("weights", weights.float())
        elif cfg.loss not in ("mse", "l1"):
            raise TrainingError(
                f"{model.arch_name} is a regression model: use loss = 'mse' or 'l1', not {cfg.loss!r}"
            )

    def forward(self, out: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        # Models that predict at a lower resolution (eccv16: 1/4) learn the area-averaged
        # colour of each output cell.
        ab = on_grid(ab, out.shape[-2:])
        out = out.float()  # the loss in fp32 even under bf16 autocast
        if self.kind == "regression":
            target = ab_to_unit(ab)
            return F.mse_loss(out, target) if self.cfg.loss == "mse" else F.l1_loss(out, target)
        assert self.bins is not None
        logp = F.log_softmax(out, dim=1)  # (B, Q, h, w)
        if self.cfg.targets == "hard":
            cls = self.bins.encode_hard(ab)  # (B, h, w)
            nll = F.nll_loss(logp, cls, reduction="none")
            w = self.weights[cls]
        else:
            # The soft target has k non-zero bins per pixel: gather their log-probabilities
            # rather than multiply a dense (B, Q, h, w) target (same loss, a third the time).
            idx, tw = self.bins.soft_targets(ab, k=self.cfg.soft_k, sigma=self.cfg.soft_sigma)
            nll = -(tw * logp.gather(1, idx)).sum(1)  # (B, h, w)
            w = self.weights[idx[:, 0]]  # Zhang: the weight of the nearest bin
        loss = (nll * w).mean()
        if self.cfg.reg_weight:
            # The distribution's mean (THE decode at T = 1), from the log-probabilities above:
            # exp(log_softmax) is softmax, so a second softmax pass is saved. A null bucket
            # must get no mass, which only decode's masking gives.
            p = logp.exp() if self.bins.null_index is None else self.bins.probabilities(out)
            mean_ab = self.bins.expectation(p)  # (B, 2, h, w)
            loss = loss + self.cfg.reg_weight * F.smooth_l1_loss(mean_ab / 10.0, ab / 10.0)
        return loss


# ---------------------------------------------------------------------------- schedule
def lr_factor(
    cfg: TrainConfig, step: int, steps_per_epoch: int, epochs: int | None = None
) -> float:
    """Multiplier of cfg.lr at optimizer step `step` (0-based) of a run of ``epochs`` epochs
    (default cfg.epochs; fewer when the run fitted its time budget)."""
    total = (epochs or cfg.epochs) * steps_per_epoch
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "step":
        epoch = step // steps_per_epoch
        return cfg.step_gamma ** sum(1 for e in cfg.step_epochs if epoch >= e)
    progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


# ---------------------------------------------------------------------------- plots and logs
def _truncate_csv(path: Path, key: str, last: int) -> None:
    """Drop rows written after the checkpoint a resumed run starts from; a header of older
    metric names gets the registry's (the resumed run appends rows under those)."""
    if not path.is_file():
        return
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    with atomic_text(path) as f:
        w = csv.writer(f)
        w.writerow([RENAMED.get(k, k) for k in rows[0]])
        w.writerows(r.values() for r in rows if int(float(r[key])) <= last)


def _append_csv(path: Path, row: dict[str, Any]) -> None:
    new = not path.is_file()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row.keys()))
        if new:
            w.writeheader()
        w.writerow(row)


def plot_loss_curve(steps_csv: Path, out_png: Path, title: str, window: int = 10) -> None:
    """Per-step loss with a moving average over `window` points, as the second seed plots it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(steps_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    step = np.array([int(r["step"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.plot(step, loss, lw=0.6, alpha=0.4, label="loss")
    if len(loss) >= window:
        ma = np.convolve(loss, np.ones(window) / window, mode="valid")
        ax.plot(step[window - 1 :], ma, lw=1.6, label=f"moving average ({window})")
    ax.set_xlabel("step (batch)")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)


# ---------------------------------------------------------------------------- checkpoints
def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": torch.from_numpy(
            np.frombuffer(np.random.get_state()[1].tobytes(), dtype=np.uint8).copy()
        ),
        "python": repr(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def param_groups(model: nn.Module, encoder_lr_ratio: float) -> list[dict[str, Any]]:
    """The optimizer's parameter groups, each with the ``lr_scale`` the loop multiplies the
    schedule by: one group, or the pretrained encoder apart at ``encoder_lr_ratio`` (a lower rate
    keeps the ImageNet features while the decoder, trained from scratch, moves faster)."""
    if encoder_lr_ratio <= 0:
        raise TrainingError(f"encoder_lr_ratio must be positive, got {encoder_lr_ratio}")
    # frozen parameters stay in (Adam skips them: no grad) so the groups match a resumed state
    params = list(model.parameters())
    if encoder_lr_ratio == 1.0:
        return [dict(params=params, lr_scale=1.0)]
    encoder = getattr(model, "encoder", None)
    if not isinstance(encoder, nn.Module):
        raise TrainingError(
            f"encoder_lr_ratio {encoder_lr_ratio} needs a model with an encoder; "
            f"{type(model).__name__} has none"
        )
    enc_ids = {id(p) for p in encoder.parameters()}
    enc = [p for p in params if id(p) in enc_ids]
    rest = [p for p in params if id(p) not in enc_ids]
    return [dict(params=rest, lr_scale=1.0), dict(params=enc, lr_scale=encoder_lr_ratio)]


def left_behind(model: nn.Module) -> tuple[str, ...]:
    """Modules a file to fine-tune from may carry that ``model`` was built without: a model
    with hints=False starts from one with hint branches (the shipped default) without them,
    and a model without a gray tilt from one whose tilt was fitted (it is fitted again after
    training: training.tilt), or without an expert decoder from one that has one (only the
    base decoder trains: training.gate)."""
    hints = () if getattr(model, "accepts_hints", False) else ("hint_branches.",)
    tilt = () if getattr(model, "gray_tilt", None) is not None else (TILT_PREFIX,)
    expert = () if len(getattr(model, "experts", ())) else (EXPERTS_PREFIX,)
    return (*hints, *tilt, *expert)


def load_weights(
    model: nn.Module,
    path: str | Path,
    what: str,
    new: tuple[str, ...] = (),
    drop: tuple[str, ...] = (),
    only: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Put the weights of the checkpoint at ``path`` (a final.pt to fine-tune from, a last.pt to
    resume) into ``model`` through the validated reader and loader; returns the checkpoint. A
    file that is damaged, foreign, of another architecture or of other shapes stops the run
    before anything is written, with a message that names ``what`` it was for. The file's
    tensors under the prefixes ``drop`` that the model lacks are left behind (logged). With
    ``only``, the file's tensors under those prefixes are taken and every other tensor keeps the
    model's own init (the file must still fit the model under them)."""
    from colorizer.checkpoint import CheckpointError, load_state, read_checkpoint

    try:
        ckpt = read_checkpoint(path)
        if ckpt["arch"] != model.arch_name:
            raise CheckpointError(f"{path} holds a {ckpt['arch']!r}, not a {model.arch_name!r}")
        state, own = ckpt["state_dict"], model.state_dict()
        if drop:
            gone = [k for k in state if k.startswith(drop) and k not in own]
            state = {k: v for k, v in state.items() if k not in gone}
            if gone:
                log.info("%s: left %d tensors of %s behind", what, len(gone), ", ".join(drop))
        if only:
            taken = {k: v for k, v in state.items() if k.startswith(only)}
            if not taken:
                raise CheckpointError(f"{path} holds nothing under {', '.join(only)}")
            kept = {k: v for k, v in own.items() if not k.startswith(only)}
            log.info("%s: took %d tensors under %s", what, len(taken), ", ".join(only))
            state = {**kept, **taken}
        load_state(model, state, str(path), new)
    except CheckpointError as e:
        raise TrainingError(f"{what}: {e}") from e
    return ckpt


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def _save(
    path: Path,
    model: nn.Module,
    decoding: Decoding,
    train: dict[str, Any],
    metrics: dict[str, Any],
    **extra: Any,
) -> None:
    from colorizer.checkpoint import save_checkpoint

    save_checkpoint(
        path,
        _unwrap(model),
        decoding=decoding,
        train=train,
        metrics=metrics,
        extra=extra or None,
    )


# ---------------------------------------------------------------------------- the run
FIT_AFTER_STEPS = 30


def fit_epochs_to_budget(
    cfg: TrainConfig,
    step: int,
    steps_per_epoch: int,
    elapsed: float,
    epochs: int,
    spent: float = 0.0,
) -> int:
    """With a wall-time budget, the epochs (at most ``epochs``) the run can finish, measured
    once, early: training fewer lets the LR schedule complete instead of being cut off at a high
    LR. 20 % of the budget is kept for validation and temperature tuning. ``elapsed``: the
    seconds of the ``step`` steps so far; ``spent``: budget used before them (a cache build)."""
    rate = step / max(elapsed, 1e-6)  # steps per second so far
    affordable = step + rate * (cfg.max_minutes * 60 * 0.8 - elapsed - spent)
    fit = max(1, int(affordable // steps_per_epoch))
    if fit < epochs:
        log.warning(
            "at %.2f steps/s only %d of %d epochs fit in %.0f min: training %d epochs",
            rate,
            fit,
            epochs,
            cfg.max_minutes,
            fit,
        )
        return fit
    return epochs


def _step_generator(seed: int, step: int) -> torch.Generator:
    """Augmentation randomness as a pure function of (seed, step): resuming at any step draws
    exactly the crops and flips the unbroken run drew."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


@dataclass
class Run:
    """What a training run holds between its named steps: ``build`` makes it, ``restore`` puts
    a killed run's state back, ``run_epoch`` and ``end_epoch`` advance it, ``finish`` ends it.
    ``cfg`` is the run's configuration as given and is never changed: what the run itself
    decides (the epochs that fit its time budget) lives here."""

    cfg: TrainConfig
    command: str
    dist: Dist
    device: torch.device
    model: nn.Module  # DistributedDataParallel-wrapped with several processes (see unwrap())
    loss_fn: ColorLoss
    opt: torch.optim.Optimizer
    manifest: dict[str, Any]
    train_images: torch.Tensor
    val_images: torch.Tensor
    prior: torch.Tensor | None  # class prior of the training photos (class models)
    photo_probs: torch.Tensor | None  # source_weights: each photo's draw probability, or None
    sampler: DistributedSampler
    steps_per_epoch: int
    epochs: int  # cfg.epochs, or fewer once fitted to the time budget
    val_temperature: float  # the temperature of the per-epoch validation
    hardware: str
    resumed: bool = False
    epochs_fitted: bool = False
    step: int = 0  # optimizer steps done, by this run and the runs it resumes
    saved_epoch: int = 0  # the epoch the restored last.pt was written at
    seconds_before: float = 0.0  # training time of the runs it resumes
    t_start: float = 0.0
    cache: FeatureCache | None = None  # cfg.feature_cache, opened once the weights are in
    adversary: Adversary | None = None  # cfg.adv_weight: the vividness critic (training only)

    @property
    def out_dir(self) -> Path:
        return Path(self.cfg.out_dir)

    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.pt"

    def unwrap(self) -> nn.Module:
        return _unwrap(self.model)

    def seconds(self) -> float:
        """Training time so far, the resumed runs' included."""
        return self.seconds_before + time.time() - self.t_start

    def lr(self, step: int) -> float:
        return self.cfg.lr * lr_factor(self.cfg, step, self.steps_per_epoch, self.epochs)

    def train_meta(self) -> dict[str, Any]:
        """The provenance a checkpoint of this run carries."""
        return dict(
            data=str(self.cfg.data),
            data_summary=self.manifest.get("summary", {}),
            command=self.command,
            config=config_to_dict(self.cfg),
            epochs=self.epochs,
            epochs_fitted=self.epochs_fitted,
            hardware=self.hardware,
            seconds=round(self.seconds(), 1),
        )


def build(cfg: TrainConfig, resume: bool = False, command: str = "") -> Run:
    """Devices, the model (fresh, from init_from or with its pretrained encoder), the data,
    the class prior and loss weights, the optimizer and the epoch plan."""
    cfg.validate()
    d = setup_distributed(cfg.device)
    device = pick_device(cfg.device, d)
    if device.type == "cpu" and cfg.threads:
        torch.set_num_threads(cfg.threads)
    out_dir = Path(cfg.out_dir)
    last_path = out_dir / "last.pt"
    if d.main:
        out_dir.mkdir(parents=True, exist_ok=True)
    if resume and not last_path.is_file():
        raise TrainingError(f"--resume: no {last_path} to resume from (start without --resume)")
    if not resume and last_path.is_file():
        raise TrainingError(
            f"{last_path} exists: pass --resume to continue that run, or choose another out_dir"
        )
    if not resume and d.main:
        # A run killed before its first checkpoint leaves logs but no last.pt: a fresh start
        # must not append its rows to that run's.
        for stale in ("steps.csv", "metrics.csv", "loss.png"):
            (out_dir / stale).unlink(missing_ok=True)

    from colorizer.models import create_model

    torch.manual_seed(cfg.seed)  # same initial weights on every rank and every rerun
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    model = create_model(cfg.model, **cfg.model_args)
    if cfg.adv_weight and model.kind != "classification":
        raise TrainingError("adv_weight judges a class model's decoded colours")
    if cfg.hint_points and not getattr(model, "accepts_hints", False):
        raise TrainingError(f"hint_points needs a model built with hints=True; {cfg.model} is not")
    if cfg.init_from and not resume:
        load_weights(
            model,
            cfg.init_from,
            "init_from",
            tuple(cfg.init_new),
            left_behind(model),
            tuple(cfg.init_only),
        )
        log.info("initialised from %s", cfg.init_from)
    elif cfg.pretrained_encoder and not resume:
        if not hasattr(model, "load_pretrained_encoder"):
            raise TrainingError(f"{cfg.model} has no pretrained encoder to load")
        model.load_pretrained_encoder()
        log.info("encoder initialised from its pretrained weights")
    manifest = load_manifest(cfg.data)
    train_images = load_images(cfg.data, "train", cfg.max_train)
    val_images = load_images(cfg.data, "val", cfg.val_limit, spread=True)
    on_cuda = device.type == "cuda"
    if on_cuda:
        train_images = train_images.to(device)  # the whole split lives on the GPU

    weights, prior, photo_probs = None, None, None
    if model.kind == "classification":
        prior = compute_prior(model.bins, train_images)
        weights = rebalance_weights(prior, lam=cfg.lam, sigma=cfg.prior_sigma, bins=model.bins)
    if cfg.source_weights:
        sources = train_sources(manifest, len(train_images))
        factors = source_factors(sources, cfg.source_weights)
        if float(factors.sum()) <= 0:
            raise TrainingError("source_weights give every training photo weight 0")
        photo_probs = factors / factors.sum()
        share = Counter()
        for src, p in zip(sources, photo_probs.tolist(), strict=True):
            share[src] += p
        log.info(
            "draw share per source: %s", ", ".join(f"{k} {v:.1%}" for k, v in sorted(share.items()))
        )
    loss_fn = ColorLoss(cfg, model, weights).to(device)
    adversary = None
    if cfg.adv_weight:
        if d.world > 1:
            raise TrainingError("adv_weight runs in one process (its critic is not synchronised)")
        adversary = Adversary(model.bins, cfg.adv_temperature, cfg.adv_lr, device)
    model.to(device)
    if cfg.channels_last:  # NHWC: faster convolutions on CUDA and on CPU (oneDNN) alike
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(
        param_groups(model, cfg.encoder_lr_ratio),
        lr=cfg.lr,
        betas=cfg.betas,
        weight_decay=cfg.weight_decay,
    )
    sampler = DistributedSampler(
        range(len(train_images)),
        num_replicas=d.world,
        rank=d.rank,
        shuffle=True,
        seed=cfg.seed,
        drop_last=True,
    )
    steps_per_epoch = len(sampler) // cfg.batch_size
    if steps_per_epoch == 0:
        raise TrainingError(
            f"{len(train_images)} training photos over {d.world} process(es) make no full batch of "
            f"{cfg.batch_size}: lower batch_size"
        )
    return Run(
        cfg=cfg,
        command=command,
        dist=d,
        device=device,
        model=model,
        loss_fn=loss_fn,
        opt=opt,
        manifest=manifest,
        train_images=train_images,
        val_images=val_images,
        prior=prior,
        photo_probs=photo_probs,
        sampler=sampler,
        steps_per_epoch=steps_per_epoch,
        epochs=cfg.epochs,
        val_temperature=cfg.temperature or decoding_at(model).temperature,
        hardware=hardware_string(device, d.world),
        adversary=adversary,
    )


def restore(run: Run) -> None:
    """Put the killed run's last.pt back: weights, optimizer, step, time so far, the epochs its
    budget fitted and the RNG; drop the log rows written after it."""
    state = load_weights(run.unwrap(), run.last_path, "--resume")
    run.opt.load_state_dict(state["optimizer"])
    if run.adversary is not None:
        if "adversary" not in state:
            raise TrainingError(f"--resume: {run.last_path} has no critic for adv_weight")
        run.adversary.load_state_dict(state["adversary"], lr=run.cfg.adv_lr)
    elif "adversary" in state:
        log.warning("--resume: adv_weight is 0, so %s's critic is left behind", run.last_path)
    run.resumed = True
    run.step = int(state["step"])
    run.saved_epoch = int(state["epoch"])
    run.seconds_before = float(state["train"].get("seconds", 0.0))
    # A budget-fitted run keeps the epoch count it fitted (its LR schedule depends on it).
    if state["train"].get("epochs_fitted"):
        run.epochs = int(state["train"]["epochs"])
        run.epochs_fitted = True
    _set_rng_state(state["rng"])
    log.info(
        "resumed %s at epoch %d, step %d", run.last_path, run.step // run.steps_per_epoch, run.step
    )
    if run.dist.main:
        _truncate_csv(run.out_dir / "steps.csv", "step", run.step)
        _truncate_csv(run.out_dir / "metrics.csv", "step", run.step)


def save_resume(run: Run, epoch: int) -> None:
    """last.pt: everything restore() needs (rank 0 writes it)."""
    if run.dist.main:
        critic = {} if run.adversary is None else {"adversary": run.adversary.state_dict()}
        _save(
            run.last_path,
            run.model,
            decoding=decoding_at(run.unwrap()),
            train=run.train_meta(),
            metrics={},
            optimizer=run.opt.state_dict(),
            scheduler={"name": run.cfg.schedule, "step": run.step},
            epoch=epoch,
            step=run.step,
            rng=_rng_state(),
            **critic,
        )


@dataclass
class EpochEnd:
    """How an epoch's steps ended: the last LR, loss and speed, and why it stopped early
    ("max_steps" or "budget"; "" when it ran to its end)."""

    lr: float
    loss: float
    rate: float
    stopped: str = ""


def run_epoch(run: Run, epoch: int) -> EpochEnd:
    """The optimizer steps of one epoch (from the step a resumed run stopped at)."""
    cfg, d, device = run.cfg, run.dist, run.device
    autocast = torch.autocast(
        device.type,
        dtype=torch.bfloat16,
        enabled=cfg.autocast_on(device.type),
    )
    if run.photo_probs is None:
        run.sampler.set_epoch(epoch)
        order = torch.tensor(list(iter(run.sampler)), dtype=torch.long)
    else:
        order = balanced_order(run.photo_probs, epoch, cfg.seed, d.rank, d.world, len(run.sampler))
    first = run.step - epoch * run.steps_per_epoch  # > 0 only when resuming mid-epoch
    bar = tqdm(
        range(first, run.steps_per_epoch),
        desc=f"epoch {epoch + 1}/{run.epochs}",
        disable=not d.main,
        dynamic_ncols=True,
        leave=False,
    )
    seen, t_epoch = 0, time.time()
    end = EpochEnd(math.nan, math.nan, math.nan)
    for b in bar:
        lr = run.lr(run.step)
        for g in run.opt.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)
        gen = _step_generator(cfg.seed * 1000 + d.rank, run.step)
        idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
        if run.cache is None:
            rgb = make_batch(run.train_images, idx, cfg.crop, cfg.flip, gen, device, cfg.scale_min)
            if cfg.haze:
                rgb = add_haze(rgb, cfg.haze, gen)
        else:  # one of the photo's stored crops, and the encoder's features of it
            variant = torch.randint(0, run.cache.spec.variants, (len(idx),), generator=gen)
            rgb, taps, pooled = run.cache.batch(idx, variant, device)
        L, ab = to_lab(rgb)  # Lab of the whole batch on the training device
        if cfg.channels_last:
            L = L.contiguous(memory_format=torch.channels_last)
        hints = ()
        if cfg.hint_points:
            hints = (simulate_hints(ab, gen, cfg.hint_points, cfg.hint_none, cfg.hint_patch),)
        with autocast:
            if run.cache is None:
                out = run.model(L, *hints)
            else:
                out = forward_cached(run.model, L, taps, pooled, *hints)
        loss = run.loss_fn(out, ab)
        loss_val = loss.detach()  # the colour loss alone: curves compare with runs without a critic
        adv, fake = run.adversary, None
        term_on = adv is not None and run.step >= cfg.adv_start_step
        if adv is not None:  # before the term joins, only the critic's step reads it
            with torch.set_grad_enabled(term_on):
                fake = adv.decoded(out)
        if term_on:
            g = adv.generator_loss(L, fake)
            if not torch.isfinite(g):  # a diverged critic must not step the model
                raise TrainingError(
                    f"the critic's term is {float(g)} at step {run.step + 1}: training stopped. "
                    f"Lower adv_weight or adv_lr; the last good checkpoint is {run.last_path}"
                )
            loss = loss + cfg.adv_weight * g
        if d.world > 1:  # every rank must agree on NaN and on the logged value
            import torch.distributed as dist

            dist.all_reduce(loss_val)
            loss_val /= d.world
        loss_f = float(loss_val)
        if not math.isfinite(loss_f):
            raise TrainingError(
                f"loss is {loss_f} at epoch {epoch + 1}, step {run.step + 1} (lr {lr:.3g}): "
                f"training stopped. Lower lr or check the data; the last good checkpoint is "
                f"{run.last_path if run.last_path.is_file() else 'none (no epoch finished)'}"
            )
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
        run.opt.step()
        if adv is not None:
            adv.critic_step(L, fake, ab)
        run.step += 1
        seen += len(idx) * d.world
        rate = seen / max(1e-9, time.time() - t_epoch)
        end = EpochEnd(lr, loss_f, rate)
        bar.set_postfix(loss=f"{loss_f:.4f}", lr=f"{lr:.2e}", photos_s=f"{rate:.1f}")
        if d.main and (run.step % cfg.log_every == 0 or run.step == 1):
            _append_csv(
                run.out_dir / "steps.csv",
                dict(
                    step=run.step,
                    epoch=epoch + 1,
                    loss=f"{loss_f:.6f}",
                    lr=f"{lr:.6g}",
                    photos_s=f"{rate:.1f}",
                    **({} if adv is None else adv.stats.row()),
                ),
            )
        if cfg.save_every_steps and run.step % cfg.save_every_steps == 0:
            save_resume(run, epoch)
        if cfg.max_steps and run.step >= cfg.max_steps:
            end.stopped = "max_steps"  # as if killed right after that checkpoint
            break
        if cfg.max_minutes and not run.resumed and run.step == FIT_AFTER_STEPS and epoch == 0:
            elapsed = time.time() - run.t_start
            fit = fit_epochs_to_budget(
                cfg, run.step, run.steps_per_epoch, elapsed, run.epochs, run.seconds_before
            )
            run.epochs_fitted, run.epochs = fit < run.epochs, fit
        if cfg.max_minutes and run.seconds() > cfg.max_minutes * 60:
            log.info(
                "time budget of %.1f min spent at step %d: finishing", cfg.max_minutes, run.step
            )
            end.stopped = "budget"
            break
    bar.close()
    return end


def end_epoch(run: Run, epoch: int, end: EpochEnd) -> None:
    """Validate, log a metrics row, redraw the loss curve (rank 0)."""
    if not run.dist.main:
        return
    t, cfg = run.val_temperature, run.cfg
    # a run of the hint branches alone (hint_none 0) is judged with every val photo hinted; a
    # run that also trains the automatic model (hint_none > 0) by that model, as finish() is
    hint_points = cfg.hint_points if not cfg.hint_none else 0.0
    res = validate(
        run.unwrap(), run.val_images, run.device, [t], run.loss_fn, 32, hint_points, cfg.hint_patch
    )[t]
    row = dict(
        epoch=epoch + 1,
        step=run.step,
        lr=f"{end.lr:.6g}",
        train_loss=f"{end.loss:.6f}",
        val_loss=f"{res['val_loss']:.6f}",
        temperature=t,
        hint_points=hint_points,
        **{k: f"{res[k]:.4f}" for k in METRIC_KEYS},
        seconds=round(run.seconds(), 1),
        photos_s=f"{end.rate:.1f}",
    )
    _append_csv(run.out_dir / "metrics.csv", row)
    log.info(
        "epoch %d/%d step %d: val loss %.4f, PSNR %.2f dB, seed ED %.1f, colourfulness %.1f",
        epoch + 1,
        run.epochs,
        run.step,
        res["val_loss"],
        res["psnr_db"],
        res["euclidean"],
        res["colorfulness"],
    )
    plot_loss_curve(
        run.out_dir / "steps.csv", run.out_dir / "loss.png", f"{run.cfg.name}: {run.cfg.model}"
    )


def train(cfg: TrainConfig, resume: bool = False, command: str = "") -> dict[str, Any]:
    """Run (or resume) a training run; returns the final metrics. Writes into cfg.out_dir."""
    run = build(cfg, resume, command)
    if resume:
        restore(run)
    if cfg.feature_cache:  # after restore: the cache is keyed by the encoder's weights
        if run.dist.world > 1:
            raise TrainingError("feature_cache runs in one process (it is a CPU speed-up)")
        t0 = time.time()
        run.cache = open_cache(cfg.feature_cache, cfg, run.model, run.train_images, run.device)
        run.seconds_before += time.time() - t0  # a build is training time: it counts in budgets
    if run.dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        on_cuda = run.device.type == "cuda"
        run.model = DDP(run.model, device_ids=[run.device.index] if on_cuda else None)
    run.t_start = time.time()
    run.model.train()
    epoch = run.step // run.steps_per_epoch
    if run.resumed and run.saved_epoch < epoch:
        # killed after the last step of an epoch but before its validation: do it now
        end_epoch(run, epoch - 1, EpochEnd(run.lr(run.step - 1), math.nan, math.nan))
        save_resume(run, epoch)
    while epoch < run.epochs:  # run.epochs may shrink once the budget is fitted
        end = run_epoch(run, epoch)
        if cfg.max_steps and end.stopped:
            return {"stopped_at_step": run.step}
        end_epoch(run, epoch, end)
        save_resume(run, epoch if end.stopped else epoch + 1)
        if end.stopped:
            break
        epoch += 1
    if run.step == 0:
        raise TrainingError("no training step was run")
    metrics = finish(run)
    if run.dist.world > 1:
        import torch.distributed as dist

        dist.barrier()  # the other ranks wait for rank 0's final checkpoint
        dist.destroy_process_group()
    return metrics


def finish(run: Run) -> dict[str, Any]:
    """Tune the temperature on val, write final.pt (model + provenance + metrics)."""
    cfg, m, device, loss_fn = run.cfg, run.unwrap(), run.device, run.loss_fn
    if not run.dist.main:
        return {}
    out_dir = run.out_dir
    val_images = run.val_images
    if cfg.val_limit:  # per-epoch checks may use a subset; the temperature is tuned on all of val
        val_images = load_images(cfg.data, "val")
    if m.kind == "classification":
        grid = [cfg.temperature] if cfg.temperature else sorted(set(cfg.temperature_grid))
        table = validate(m, val_images, device, grid, loss_fn)
        from colorizer.inference import GrayModel

        gray = validate(GrayModel(), val_images, device, [1.0])[1.0]
        scores = {t: Scores(v) for t, v in table.items()}
        best_t = cfg.temperature or tune_decoding(scores, Scores(gray), cfg.temperature_rule)
        with atomic_text(out_dir / "temperature.csv") as f:
            w = csv.writer(f)
            w.writerow(["temperature", *METRIC_KEYS, "gt_colorfulness", "chosen"])
            for t in grid:
                w.writerow(
                    [
                        t,
                        *(f"{table[t][k]:.4f}" for k in METRIC_KEYS),
                        f"{table[t]['gt_colorfulness']:.4f}",
                        int(t == best_t),
                    ]
                )
        m.decoding = Decoding(best_t)
        res = table[best_t]
        tuning = {f"T={t:g}": {k: round(v[k], 4) for k in METRIC_KEYS} for t, v in table.items()}
    else:
        best_t = 1.0
        res = validate(m, val_images, device, [1.0], loss_fn)[1.0]
        tuning = {}
    metrics = {
        "split": "val",
        "photos": len(val_images),
        "temperature": float(best_t),
        "temperature_rule": cfg.temperature_rule if not cfg.temperature else "fixed",
        **{k: round(float(res[k]), 4) for k in (*METRIC_KEYS, "gt_colorfulness", "val_loss")},
        "temperature_table": tuning,
    }
    if m.kind == "classification":
        metrics["gray_floor"] = {k: round(float(gray[k]), 4) for k in METRIC_KEYS}
    extra = {"prior": run.prior} if run.prior is not None else {}
    _save(
        final_path := out_dir / "final.pt",
        m,
        decoding=Decoding(best_t),
        train=run.train_meta(),
        metrics=metrics,
        **extra,
    )
    log.info(
        "final: T=%.2f, val PSNR %.2f dB, seed ED %.1f, colourfulness %.1f (gt %.1f) -> %s",
        best_t,
        res["psnr_db"],
        res["euclidean"],
        res["colorfulness"],
        res["gt_colorfulness"],
        final_path,
    )
    return metrics
