"""Training configuration: one dataclass, loaded from TOML, overridable with --set key=value.

A config file may start from another: ``extends = "base.toml"`` (a path relative to the file's
folder) takes that file's values (its own extends resolved first) and this file's over them;
the [model_args] tables merge key by key. training/configs/base.toml is the house recipe the
shipped chains extend, so each stage's file says only what the stage changes. ``out_dir``
defaults to ``runs/<name>``.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEDULES = ("constant", "step", "cosine")
LOSSES = ("ce", "mse", "l1")
TARGETS = ("soft", "hard")
TEMPERATURE_RULES = ("psnr", "ed", "balanced", "floor")


class TrainingError(RuntimeError):
    """The run cannot go on (NaN loss, bad data, model/loss mismatch); the message says why."""


class ConfigError(ValueError):
    """A config file or override that cannot be used (nothing has been trained yet)."""


@dataclass
class TrainConfig:
    # what and where
    name: str = "run"
    data: str = "data/landscape"  # folder written by `python -m training prepare`
    out_dir: str = ""  # last.pt, final.pt, metrics.csv, steps.csv, loss.png ("": runs/<name>)
    model: str = "colornet"  # any registered model name
    model_args: dict[str, Any] = field(default_factory=dict)  # overrides for create_model
    init_from: str = ""  # start from this checkpoint's weights (fine-tuning); "" = random init
    # parameter-name prefixes that init_from may lack (modules new to the architecture, e.g.
    # "hint_branches." when hints are added to a trained model); they keep their own init
    init_new: list[str] = field(default_factory=list)
    # parameter-name prefixes to take from init_from, the rest keeping their fresh init (e.g.
    # ["encoder."]: a fine-tuned encoder under a decoder trained from scratch); []: all of it
    init_only: list[str] = field(default_factory=list)
    # models with a pretrained part (effunet's ImageNet encoder): load it before step 1 unless
    # init_from or --resume brings weights
    pretrained_encoder: bool = False
    # fine-tuning a pretrained encoder: its learning rate is this fraction of the schedule's (the
    # decoder's); models without an ``encoder`` submodule must leave it at 1
    encoder_lr_ratio: float = 1.0
    # loss
    loss: str = "ce"  # "ce" for classification models, "mse" or "l1" for regression ones
    targets: str = "soft"  # "soft" (Zhang: 5 nearest bins, Gaussian) or "hard" (the seed)
    soft_k: int = 5
    soft_sigma: float = 5.0
    lam: float = 0.5  # rebalancing lambda: 1.0 = uniform weights (no rebalancing)
    prior_sigma: float = 5.0  # Gaussian smoothing of the prior over the ab plane
    # classification models: + reg_weight * smooth-L1 between the distribution's mean a*b*
    # (T = 1) and the photo's, in units of 10 Lab: keeps the safe mean accurate while the
    # rebalanced cross-entropy keeps the distribution vivid. 0: plain cross-entropy.
    reg_weight: float = 0.0
    # classification models: + adv_weight * a patch critic's hinge term on the decoded a*b*
    # (training/adversarial.py), a vividness term; the critic learns at adv_lr and the term
    # joins the loss from step adv_start_step (the critic learns alone before). 0: off.
    adv_weight: float = 0.0
    adv_lr: float = 2e-4
    adv_start_step: int = 100
    adv_temperature: float = 0.5  # the annealed mean the critic judges
    # optimisation
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "cosine"  # constant | step | cosine
    warmup_steps: int = 0
    step_epochs: list[int] = field(default_factory=list)  # "step": multiply lr by step_gamma at
    step_gamma: float = 0.1  # the start of each of these epochs
    min_lr_ratio: float = 0.01  # cosine floor, as a fraction of lr
    grad_clip: float = 0.0  # 0: off
    # data
    crop: int = 0  # random square crop side (0: whole stored photo)
    # multi-scale crops: each step cuts a square of side U(scale_min, 1) x the stored short
    # side at a random place and resizes it to `crop` (or the stored size); 1: plain crops
    scale_min: float = 1.0
    flip: bool = True  # random horizontal flips
    # share of the drawn photos given a synthetic fog (training.data.add_haze), a neutral grey
    # that thickens with the row's distance: every clear day is also a foggy one (issue 24)
    haze: float = 0.0
    # frozen-encoder runs: a folder for the encoder's features of cache_variants fixed crops
    # per training photo, computed once (training/features.py); "": the live encoder each step
    feature_cache: str = ""
    cache_variants: int = 8
    max_train: int = 0  # use at most this many training photos (0: all)
    # Source-level rebalancing: {pattern: weight}, each pattern an fnmatch over the --images
    # folder a photo came from (the manifest's "source", e.g. "*weather/dawn-fog"); a photo's
    # draw probability is multiplied by the weight of the first pattern it matches (1 if none),
    # so a small set of weak scenes (fog, sunsets) is seen as often as the big ones. Epochs then
    # draw with replacement. {}: off (every photo once per epoch, a plain shuffle).
    source_weights: dict[str, float] = field(default_factory=dict)
    # simulated user colour hints (models with hints=True; colorizer.hints.simulate_hints):
    # mean number of points per photo (0: no hints), share of photos given none, patch side
    hint_points: float = 0.0
    hint_none: float = 0.0
    hint_patch: int = 3
    val_limit: int = 0  # per-epoch validation on this many evenly spaced val photos (0: all)
    # decoding (classification)
    temperature: float = 0.0  # 0: tune on the val split over temperature_grid
    temperature_grid: list[float] = field(default_factory=lambda: [0.2, 0.3, 0.38, 0.5, 0.7, 1.0])
    temperature_rule: str = "floor"  # psnr | ed | balanced | floor (see validate.tune_decoding)
    # machinery
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # bf16 autocast (CUDA only)
    # bf16 autocast on CPU (oneDNN; fast where the CPU has AMX or AVX512-BF16): 1.7x a step
    # with the encoder frozen, but 0.87x one that trains it (benchmarks/bench_train_step).
    cpu_amp: bool = False
    channels_last: bool = True  # NHWC memory: 1.2x a CPU step (benchmarks/bench_train_step)
    threads: int = 0  # torch.set_num_threads on CPU (0: leave torch's default)
    save_every_steps: int = 0  # also write last.pt every N steps (0: once per epoch)
    max_steps: int = 0  # stop right after step N (as if killed after a checkpoint); 0: off
    max_minutes: float = 0.0  # wall-time budget: finish the run cleanly when spent; 0: off
    log_every: int = 10  # steps between loss-curve rows

    def __post_init__(self) -> None:
        if not self.out_dir:  # a run's folder is named after the run
            self.out_dir = f"runs/{self.name}"

    def autocast_on(self, device_type: str) -> bool:
        """Whether steps run under bf16 autocast on this kind of device (amp on CUDA, cpu_amp
        on the CPU)."""
        return self.amp if device_type == "cuda" else device_type == "cpu" and self.cpu_amp

    def validate(self) -> None:
        """Raise ConfigError on values that would only fail later, mid-run."""
        if self.loss not in LOSSES:
            raise ConfigError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.targets not in TARGETS:
            raise ConfigError(f"targets must be one of {TARGETS}, got {self.targets!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.temperature_rule not in TEMPERATURE_RULES:
            raise ConfigError(f"temperature_rule must be one of {TEMPERATURE_RULES}")
        if self.init_only and not self.init_from:
            raise ConfigError("init_only names what to take from init_from: set init_from")
        if self.init_only and self.pretrained_encoder:  # init_from wins: it would stay random
            raise ConfigError(
                "pretrained_encoder is not loaded when init_from brings weights; with init_only, "
                "take the encoder from the file (init_only = ['encoder.', ...]) and set "
                "pretrained_encoder = false"
            )
        if not 0.0 <= self.lam <= 1.0:
            raise ConfigError(f"lam must be in [0, 1], got {self.lam}")
        if self.model_args.get("gray_tilt"):  # a frozen head fitted to a decoder that moves
            raise ConfigError("gray_tilt is fitted after training: python -m training fit-tilt")
        if self.model_args.get("experts"):  # trained decoders, put together after training
            raise ConfigError(
                "expert decoders are added after training: python -m training add-expert"
            )
        if self.hint_points < 0 or not 0.0 <= self.hint_none <= 1.0 or self.hint_patch < 1:
            raise ConfigError("hint_points must be >= 0, hint_none in [0, 1], hint_patch >= 1")
        if self.feature_cache and (self.crop < 1 or self.cache_variants < 1):
            raise ConfigError("feature_cache needs crop >= 1 and cache_variants >= 1")
        for key in ("epochs", "batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")
        # NaN compares False with everything, so `x <= 0` lets it through: check finiteness
        # first, or a NaN or infinite value only shows up as a NaN loss (or a refusal at
        # temperature tuning) after a whole epoch.
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise ConfigError(f"lr must be a finite number > 0, got {self.lr}")
        if not math.isfinite(self.max_minutes) or self.max_minutes < 0:
            raise ConfigError(
                f"max_minutes must be a finite number >= 0 (0: no time budget), got "
                f"{self.max_minutes}"
            )
        for key in ("max_steps", "save_every_steps"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must be >= 0 (0: off), got {getattr(self, key)}")
        bad_w = {
            k: w
            for k, w in self.source_weights.items()
            if isinstance(w, bool)
            or not isinstance(w, int | float)
            or not math.isfinite(w)
            or w < 0
        }
        if bad_w:
            raise ConfigError(f"source_weights must be finite numbers >= 0, got {bad_w}")
        if self.crop < 0:
            raise ConfigError(f"crop must be >= 0, got {self.crop}")
        if not 0.0 < self.scale_min <= 1.0:
            raise ConfigError(f"scale_min must be in (0, 1], got {self.scale_min}")
        if isinstance(self.haze, bool) or not 0.0 <= self.haze <= 1.0:
            raise ConfigError(f"haze must be a share in [0, 1], got {self.haze!r}")
        if self.haze and self.feature_cache:
            raise ConfigError("haze changes the encoder's input: it cannot use a feature_cache")
        if not math.isfinite(self.reg_weight) or self.reg_weight < 0:
            raise ConfigError(f"reg_weight must be >= 0, got {self.reg_weight}")
        if not math.isfinite(self.adv_weight) or self.adv_weight < 0:
            raise ConfigError(f"adv_weight must be a finite number >= 0, got {self.adv_weight}")
        if not math.isfinite(self.adv_lr) or self.adv_lr <= 0:
            raise ConfigError(f"adv_lr must be a finite number > 0, got {self.adv_lr}")
        from colorizer.bins import MODE_T

        if not math.isfinite(self.adv_temperature) or self.adv_temperature <= MODE_T:
            raise ConfigError(
                f"adv_temperature must be > {MODE_T} (at or below it the decode is the mode, "
                f"which passes no gradient), got {self.adv_temperature}"
            )
        if self.adv_start_step < 0:
            raise ConfigError(f"adv_start_step must be >= 0, got {self.adv_start_step}")
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise ConfigError(
                f"temperature must be a finite number > 0 (0: tune it on val), got "
                f"{self.temperature}"
            )
        bad_t = [t for t in self.temperature_grid if not math.isfinite(t) or t <= 0]
        if bad_t:
            raise ConfigError(f"temperature_grid values must be finite numbers > 0, got {bad_t}")


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def _coerce(key: str, value: Any) -> Any:
    """Check a value against the field's type and convert what TOML cannot say (tuples)."""
    if key not in _FIELDS:
        close = [k for k in _FIELDS if k.startswith(key[:3])]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"unknown config key {key!r}{hint}")
    default = getattr(TrainConfig(), key)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, tuple):
        if not isinstance(value, list | tuple) or len(value) != len(default):
            raise ConfigError(f"{key} must be a list of {len(default)} numbers, got {value!r}")
        return tuple(float(v) for v in value)
    if isinstance(default, list) and not isinstance(value, list):
        raise ConfigError(f"{key} must be a list, got {value!r}")
    if isinstance(default, dict) and not isinstance(value, dict):
        raise ConfigError(f"{key} must be a table, got {value!r}")
    if type(default) in (int, float, str) and not isinstance(value, type(default)):
        raise ConfigError(f"{key} must be {type(default).__name__}, got {value!r}")
    return value


def _parse_value(text: str) -> Any:
    """TOML syntax for a --set value; a bare word is taken as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """--set key=value (value in TOML syntax); model_args.width=32 sets one model argument."""
    values = dict(values)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, text = item.split("=", 1)
        key = key.strip()
        value = _parse_value(text.strip())
        if key.startswith("model_args."):
            args = dict(values.get("model_args", {}))
            args[key.split(".", 1)[1]] = value
            values["model_args"] = args
        else:
            values[key] = value
    return values


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    cfg = TrainConfig(**{k: _coerce(k, v) for k, v in values.items()})
    cfg.validate()
    return cfg


def read_config_file(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A TOML config's values with its ``extends`` chain resolved: the base file's first, this
    file's over them, [model_args] merged key by key."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} not found")
    if p.resolve() in _seen:
        chain = " -> ".join(str(s) for s in (*_seen, p.resolve()))
        raise ConfigError(f"{p}: its extends chain comes back to it ({chain})")
    try:
        values = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from e
    base = values.pop("extends", None)
    if base is None:
        return values
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{p}: extends must name a config file, got {base!r}")
    if not (p.parent / base).is_file():
        raise ConfigError(f"{p}: extends {base!r}, but {p.parent / base} is not a file")
    merged = read_config_file(p.parent / base, (*_seen, p.resolve()))
    merged.pop("out_dir", None)  # the base run's folder is its own: this run's is runs/<name>
    args, own = merged.get("model_args"), values.get("model_args")
    merged.update(values)
    if isinstance(args, dict) and isinstance(own, dict):
        merged["model_args"] = {**args, **own}
    return merged


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """TOML file (flat keys, a [model_args] table, optionally ``extends``) + overrides -> a
    checked TrainConfig."""
    values = read_config_file(path) if path is not None else {}
    return config_from_dict(apply_overrides(values, overrides or []))


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """Primitives only (checkpoint-safe)."""
    d = dataclasses.asdict(cfg)
    d["betas"] = list(cfg.betas)
    return d
