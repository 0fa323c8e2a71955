"""Encoder features of the frozen stage, computed once per crop and kept on disk (issue 24).

With the encoder frozen (``model_args.freeze_encoder``), every step of the live path runs the
same pretrained network over a fresh crop only to throw its activations away. With
``feature_cache`` set, a run draws ``cache_variants`` crops per training photo ONCE, from the
config's own augmentation (a square of U(scale_min, 1) x the short side at a random place,
resized to ``crop``, flipped with p = 1/2), runs the encoder over them and keeps on disk:

    rgb.npy      (N*K, crop, crop, 3) uint8    the crop itself (the targets and L come from it)
    f4 ... f32   (N*K, h, w, C)                the encoder's taps, channels last
    pooled.npy   (N*K, 1280)                   the head, averaged (the trained ``scene`` reads it)
    meta.json    what the cache was made from; a different run refuses it (CacheError)

Features are kept in the dtype the run's autocast gives them (bf16, stored as its bits, or
fp32), so a step from the cache runs the decoder on exactly what the live encoder would have
given it for that crop. Each step picks one stored variant per photo with the step's own
random generator, so a resumed run draws the same. What differs from the live path: K fixed
crops per photo instead of a new one at every step, the crop scale drawn per photo instead of
per batch, and resized crops rounded to uint8 (the live path keeps them float). The speed is
measured in benchmarks/bench_train_step.py; what the differences cost in quality is a
training question, answered by runs at equal minutes (training/configs/experiments/
size128.toml against size128_cached.toml, results/training/feature_cache/).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from colorizer.atomic import write_text
from training.config import TrainConfig, TrainingError

log = logging.getLogger(__name__)

VERSION = 1
# how each encoder dtype is stored: (torch dtype, numpy dtype on disk, torch view to write it)
DTYPES = {
    "bfloat16": (torch.bfloat16, np.int16, torch.int16),
    "float32": (torch.float32, np.float32, torch.float32),
}


class CacheError(TrainingError):
    """A feature cache that is missing, incomplete or made for another run."""


@dataclass(frozen=True)
class CacheSpec:
    """Everything the cached values depend on; two runs with equal specs share a cache."""

    data: str
    photos: int
    photo_shape: tuple[int, int]  # stored H, W
    crop: int
    scale_min: float
    flip: bool
    variants: int
    seed: int
    dtype: str  # the encoder output's dtype under the run's autocast
    encoder_sha256: str
    manifest_sha256: str  # the prepared folder's manifest: re-preparing it makes a new cache
    torch: str  # kernels (bf16 ones above all) may round differently in another version

    def to_json(self) -> dict:
        return dict(version=VERSION, **asdict(self))


def encoder_digest(encoder: nn.Module) -> str:
    """SHA-256 over the encoder's state (names, shapes and bytes, in order)."""
    h = hashlib.sha256()
    for name, t in encoder.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


@dataclass
class CropPlan:
    """One row per (photo, variant): the square's side, its corner and whether it is flipped."""

    side: torch.Tensor
    oy: torch.Tensor
    ox: torch.Tensor
    flip: torch.Tensor


def draw_crops(spec: CacheSpec) -> CropPlan:
    """The crops of every (photo, variant), row ``photo * variants + variant``."""
    gen = torch.Generator().manual_seed(spec.seed)
    n = spec.photos * spec.variants
    H, W = spec.photo_shape
    u = spec.scale_min + (1.0 - spec.scale_min) * torch.rand(n, generator=gen)
    if spec.scale_min < 1.0:  # as make_batch: U(scale_min, 1) x the short side, then resized
        side = (u * min(H, W)).round().clamp(1, min(H, W)).long()
    else:  # plain crops: a crop-sized window, no resize
        side = torch.full((n,), spec.crop, dtype=torch.long)
    oy = (torch.rand(n, generator=gen) * (H - side + 1)).floor().long()
    ox = (torch.rand(n, generator=gen) * (W - side + 1)).floor().long()
    flip = torch.rand(n, generator=gen) < 0.5 if spec.flip else torch.zeros(n, dtype=torch.bool)
    return CropPlan(side, oy, ox, flip)


def cut(
    images: torch.Tensor, plan: CropPlan, rows: range, variants: int, crop: int
) -> torch.Tensor:
    """uint8 (N, H, W, 3) photos -> uint8 (len(rows), crop, crop, 3), one crop per plan row."""
    out = torch.empty((len(rows), crop, crop, 3), dtype=torch.uint8)
    for j, r in enumerate(rows):
        s, y, x = int(plan.side[r]), int(plan.oy[r]), int(plan.ox[r])
        img = images[r // variants, y : y + s, x : x + s]  # (s, s, 3)
        t = img.permute(2, 0, 1)[None].float().div_(255.0)  # (1, 3, s, s)
        if s != crop:
            t = F.interpolate(t, size=(crop, crop), mode="bilinear", antialias=True)
        if plan.flip[r]:
            t = t.flip(3)
        out[j] = t[0].clamp_(0.0, 1.0).mul_(255.0).round_().permute(1, 2, 0).to(torch.uint8)
    return out


def _float_rgb(rgb8: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Stored uint8 crops (B, c, c, 3) -> float RGB (B, 3, c, c) in [0, 1] on ``device``."""
    return rgb8.to(device).permute(0, 3, 1, 2).float().div_(255.0)


def _lab_l(rgb8: torch.Tensor, device: torch.device) -> torch.Tensor:
    from training.data import to_lab

    return to_lab(_float_rgb(rgb8, device))[0]


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """The model in eval mode (BN statistics untouched), put back as it was afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


class FeatureCache:
    """An opened cache: memory-mapped arrays and the spec they were made for."""

    def __init__(self, folder: Path, spec: CacheSpec) -> None:
        self.folder, self.spec = folder, spec
        self._dtype = DTYPES[spec.dtype][0]
        try:
            self.arrays = {p.stem: np.load(p, mmap_mode="r") for p in sorted(folder.glob("*.npy"))}
        except (OSError, ValueError) as e:
            raise CacheError(f"{folder}: damaged feature cache ({e}); delete it to rebuild") from e
        rows, disk = spec.photos * spec.variants, DTYPES[spec.dtype][1]
        want = {"rgb": ((rows, spec.crop, spec.crop, 3), np.uint8), "pooled": (None, disk)}
        want.update({f"f{s}": (None, disk) for s in (4, 8, 16, 32)})
        bad = sorted(set(want) ^ set(self.arrays))
        for key, (shape, dtype) in want.items():
            a = self.arrays.get(key)
            if a is not None and (
                a.dtype != dtype or a.shape[0] != rows or shape not in (None, a.shape)
            ):
                bad.append(key)
        if bad:
            raise CacheError(
                f"{folder}: incomplete feature cache ({', '.join(bad)}); delete it to rebuild"
            )

    @property
    def strides(self) -> list[int]:
        return sorted(int(k[1:]) for k in self.arrays if k.startswith("f"))

    def _tensor(self, key: str, rows: np.ndarray) -> torch.Tensor:
        a = torch.from_numpy(np.ascontiguousarray(self.arrays[key][rows]))
        return a if key == "rgb" else a.view(self._dtype)  # bf16 comes back from its bits

    def batch(
        self, idx: torch.Tensor, variant: torch.Tensor, device: torch.device
    ) -> tuple[torch.Tensor, dict[int, torch.Tensor], torch.Tensor]:
        """Photo indices and variants (B,) -> float RGB (B, 3, c, c), {stride: taps (B, C, h, w),
        channels last}, pooled head (B, 1280)."""
        rows = (idx * self.spec.variants + variant).numpy()
        rgb = _float_rgb(self._tensor("rgb", rows), device)
        taps = {s: self._tensor(f"f{s}", rows).to(device).permute(0, 3, 1, 2) for s in self.strides}
        return rgb, taps, self._tensor("pooled", rows).to(device)


def forward_cached(
    model: nn.Module,
    L: torch.Tensor,
    taps: dict[int, torch.Tensor],
    pooled: torch.Tensor,
    hints: torch.Tensor | None = None,
) -> torch.Tensor:
    """The model's forward from cached encoder features: ``decode(encode(L))`` without the
    encoder (its trained ``scene`` layer included)."""
    f = dict(taps)
    f[0] = L
    f[1] = pooled  # as encode() keeps it
    return model.decode((f, model.scene(pooled)), hints)


def check_model(model: nn.Module) -> None:
    """A cache stands in for the encoder only where the encoder does not train."""
    if not all(hasattr(model, a) for a in ("features", "decode", "scene", "encoder")):
        raise TrainingError(
            f"feature_cache needs a model with a separate encoder (effunet); "
            f"{type(model).__name__} has none"
        )
    trainable = [n for n, p in model.encoder.named_parameters() if p.requires_grad]
    if trainable or not getattr(model, "freeze_encoder", False):
        raise TrainingError(
            "feature_cache needs the encoder frozen (model_args.freeze_encoder = true): "
            "cached features would go stale as the encoder trains"
        )


def spec_for(
    cfg: TrainConfig, model: nn.Module, images: torch.Tensor, device: torch.device
) -> CacheSpec:
    """The spec this run's cache must have (its encoder's dtype found by one tiny forward)."""
    amp = cfg.autocast_on(device.type)
    with (
        _eval_mode(model),
        torch.no_grad(),
        torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp),
    ):  # eval: the probe must not touch the BN statistics
        _, pooled = model.features(torch.zeros(1, 1, 32, 32, device=device))
    dtype = {torch.bfloat16: "bfloat16", torch.float32: "float32"}.get(pooled.dtype)
    if dtype is None:
        raise TrainingError(f"feature_cache: encoder output dtype {pooled.dtype} is not supported")
    H, W = int(images.shape[1]), int(images.shape[2])
    if cfg.scale_min >= 1.0 and cfg.crop > min(H, W):
        raise CacheError(f"feature_cache: crop {cfg.crop} is larger than the stored {H}x{W}")
    manifest = Path(cfg.data) / "manifest.json"
    return CacheSpec(
        data=str(Path(cfg.data).resolve()),
        photos=len(images),
        photo_shape=(H, W),
        crop=cfg.crop,
        scale_min=float(cfg.scale_min),
        flip=bool(cfg.flip),
        variants=cfg.cache_variants,
        seed=cfg.seed,
        dtype=dtype,
        encoder_sha256=encoder_digest(model.encoder),
        manifest_sha256=hashlib.sha256(manifest.read_bytes()).hexdigest(),
        torch=torch.__version__,
    )


def build_cache(
    folder: Path,
    model: nn.Module,
    images: torch.Tensor,
    spec: CacheSpec,
    device: torch.device,
    amp: bool,
    batch: int = 64,
) -> None:
    """Cut every crop, run the encoder over it and write the arrays; the folder appears only
    once complete (written beside it, then renamed), so a killed build leaves no cache."""
    _, np_dtype, view = DTYPES[spec.dtype]
    part = folder.with_name(folder.name + ".partial")
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir(parents=True)
    plan, n = draw_crops(spec), spec.photos * spec.variants
    arrays: dict[str, np.memmap] = {}
    with _eval_mode(model):
        for start in tqdm(range(0, n, batch), desc="feature cache", unit="batch", leave=False):
            rows = range(start, min(n, start + batch))
            rgb8 = cut(images, plan, rows, spec.variants, spec.crop)
            L = _lab_l(rgb8, device).contiguous(memory_format=torch.channels_last)
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                taps, pooled = model.features(L)
            out = {"rgb": rgb8, "pooled": pooled}
            out.update({f"f{s}": t.permute(0, 2, 3, 1) for s, t in taps.items()})  # NHWC
            for key, t in out.items():
                t = t.detach().cpu().contiguous()
                if key != "rgb":
                    t = t.view(view)
                if key not in arrays:
                    arrays[key] = np.lib.format.open_memmap(
                        part / f"{key}.npy",
                        "w+",
                        np.uint8 if key == "rgb" else np_dtype,
                        (n, *t.shape[1:]),
                    )
                arrays[key][start : start + len(rows)] = t.numpy()
    for a in arrays.values():
        a.flush()  # msync: the arrays are on disk before the meta that vouches for them
    write_text(part / "meta.json", json.dumps(spec.to_json(), indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    part.rename(folder)


def open_cache(
    folder: str | Path,
    cfg: TrainConfig,
    model: nn.Module,
    images: torch.Tensor,
    device: torch.device,
) -> FeatureCache:
    """The run's cache: opened where one was made for this very spec, built where none is;
    a cache made for something else is refused, never silently reused or overwritten."""
    check_model(model)
    folder = Path(folder)
    spec = spec_for(cfg, model, images, device)
    meta = folder / "meta.json"
    if not meta.is_file():
        if folder.exists() and any(folder.iterdir()):
            raise CacheError(f"{folder} exists but holds no feature cache: choose another folder")
        log.info(
            "building the feature cache %s: %d photos x %d crops",
            folder,
            spec.photos,
            spec.variants,
        )
        amp = cfg.autocast_on(device.type)
        build_cache(folder, model, images, spec, device, amp)
    try:
        found = json.loads(meta.read_text())
    except (OSError, ValueError) as e:
        raise CacheError(f"{meta}: unreadable ({e}); delete {folder} to rebuild") from e
    want = json.loads(json.dumps(spec.to_json()))  # tuples as JSON lists, as stored
    diff = sorted(k for k in set(want) | set(found) if want.get(k) != found.get(k))
    if diff:
        raise CacheError(
            f"{folder} was made for another run (differs in {', '.join(diff)}): "
            f"point feature_cache at a new folder or delete this one"
        )
    log.info("feature cache %s: %d crops", folder, spec.photos * spec.variants)
    return FeatureCache(folder, spec)
