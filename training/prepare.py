"""Turn folders of photos into packed, checked, deterministically split training arrays.

    python -m training prepare --images DIR [DIR ...] --out DATA --size N [--streetside-crop]

Every file is read once and decoded by the library's loader, as at inference (so a phone
photo's EXIF orientation is applied), and checked (unreadable, truncated, tiny,
black-and-white photos are skipped and counted; byte-identical duplicates are dropped by
SHA-256), resized on its short side and centre-cropped, then assigned to train/val/test by
a hash of its CONTENT, so adding photos later never moves an old photo to another split. Each
split is written as one uint8 array of shape (N, H, W, 3) in a .npy file (memory-mappable
with np.load(mmap_mode="r")), next to a manifest.json that records where every photo came
from and why the others did not make it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from colorizer.atomic import atomic_write, write_text
from colorizer.imageio import ImageError, list_images, load_image

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
# The second seed cut Street View's GUI off 1280x1024 frames and downscaled by 11; its own
# images (../shared/data/streetside) are 114x88, i.e. 1254x968 before the downscale. So the
# 56 rows at the bottom (the GUI's logo strip) and 13 columns each side are cut. Its README
# quotes 112x88: what its net saw after cropping to a multiple of 4 (prepare --size 112x88).
STREETSIDE_FRAME = (1280, 1024)
STREETSIDE_FACTOR = 11
STREETSIDE_OUT = (114, 88)  # (W, H) after the downscale
STREETSIDE_BAND = 56


class PrepareError(RuntimeError):
    """Bad arguments to prepare (nothing is written)."""


@dataclass
class PrepareConfig:
    images: list[str]
    out: str
    size: tuple[int, int] = (256, 256)  # (W, H) of every stored photo
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    min_side: int = 0  # 0: half the short side of `size`
    gray_threshold: float = 2.0  # mean |R-G|,|G-B|,|R-B| (0..255) below which a photo is B&W
    streetside_crop: bool = False
    limit: int = 0  # keep at most this many photos (0: all); handy for quick trials


@dataclass
class Item:
    path: str
    sha256: str
    split: str
    index: int  # row in the split's array
    source: str  # which --images folder it came from
    orig_size: tuple[int, int]


@dataclass
class Summary:
    found: int = 0
    kept: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)


def parse_size(text: str) -> tuple[int, int]:
    """'256' -> (256, 256); '112x88' -> (112, 88) as (W, H)."""
    try:
        if "x" in text.lower():
            w, h = text.lower().split("x")
            size = (int(w), int(h))
        else:
            size = (int(text), int(text))
    except ValueError as e:
        raise PrepareError(f"--size must be N or WxH (e.g. 256 or 112x88), got {text!r}") from e
    if min(size) < 8:
        raise PrepareError(f"--size must be at least 8 pixels a side, got {text!r}")
    return size


def split_of(sha256: str, val_fraction: float, test_fraction: float) -> str:
    """Split from the content hash alone: stable when photos are added or removed."""
    u = int(sha256[:12], 16) / float(16**12)  # uniform in [0, 1)
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def find_images(folders: list[str]) -> list[tuple[str, Path]]:
    """(source folder, file) for every image file below the folders, in the library's order
    (colorizer.imageio.list_images: sorted, hidden files skipped); the first of duplicates is
    kept."""
    found: list[tuple[str, Path]] = []
    for folder in folders:
        try:
            found += [(folder, p) for p in list_images(folder)]
        except ImageError as e:
            raise PrepareError(f"--images: {e}") from e
    return found


def _load(data: bytes) -> Image.Image:
    """Decode with the library's loader, as inference does (EXIF orientation applied,
    transparency composited on white, any mode to RGB), once.

    Raises ValueError('unreadable' | 'truncated', detail).
    """
    try:
        return load_image(data)
    except ImageError as e:
        cause = str(e.__cause__ or "")  # PIL's own message says whether the data was cut off
        reason = "truncated" if ("truncated" in cause or "broken data" in cause) else "unreadable"
        raise ValueError(reason, str(e)) from e


def is_grayscale(img: Image.Image, threshold: float) -> tuple[bool, float]:
    """A photo whose colour channels barely differ is black and white stored as RGB."""
    small = np.asarray(img.resize((64, 64), Image.BILINEAR), dtype=np.float32)
    r, g, b = small[..., 0], small[..., 1], small[..., 2]
    spread = float((np.abs(r - g) + np.abs(g - b) + np.abs(r - b)).mean() / 3.0)
    return spread < threshold, spread


def streetside_crop(img: Image.Image) -> Image.Image:
    """The second seed's crop: a full 1280x1024 Street View frame -> GUI band cut, / 11.

    Frames that are not 1280x1024 are returned unchanged (already cropped, as ours are).
    """
    if img.size != STREETSIDE_FRAME:
        return img
    w, h = STREETSIDE_FRAME
    w_keep, h_keep = (n * STREETSIDE_FACTOR for n in STREETSIDE_OUT)  # 1254 x 968
    assert h_keep == h - STREETSIDE_BAND
    left = (w - w_keep) // 2
    img = img.crop((left, 0, left + w_keep, h_keep))
    return img.resize((w_keep // STREETSIDE_FACTOR, h_keep // STREETSIDE_FACTOR), Image.LANCZOS)


def resize_crop(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale so the photo covers `size` (W, H), then centre-crop. No resize when it already fits
    exactly on one side (size-preserving, e.g. 114x88 street views into 112x88)."""
    tw, th = size
    w, h = img.size
    scale = max(tw / w, th / h)
    if abs(scale - 1.0) > 1e-9:
        nw, nh = max(tw, round(w * scale)), max(th, round(h * scale))
        img = img.resize((nw, nh), Image.LANCZOS if scale < 1 else Image.BICUBIC)
        w, h = nw, nh
    left, top = (w - tw) // 2, (h - th) // 2
    return img.crop((left, top, left + tw, top + th))


def prepare(cfg: PrepareConfig, command: str = "") -> Summary:
    """Check, dedupe, resize, split and pack the photos; write arrays and manifest.json."""
    W, H = cfg.size
    min_side = cfg.min_side or max(8, min(W, H) // 2)
    for frac in (cfg.val_fraction, cfg.test_fraction):
        if not 0.0 <= frac < 1.0:
            raise PrepareError("val/test fractions must be in [0, 1)")
    if cfg.val_fraction + cfg.test_fraction >= 1.0:
        raise PrepareError("val + test fractions must leave something to train on")
    files = find_images(cfg.images)
    if not files:
        raise PrepareError(f"no image files under {cfg.images}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)

    seen: dict[str, str] = {}
    arrays: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    items: list[Item] = []
    skipped: list[dict] = []
    reasons: Counter[str] = Counter()
    t0 = time.time()
    bar = tqdm(files, desc="prepare", unit="photo", dynamic_ncols=True, file=sys.stderr)
    for source, path in bar:
        if cfg.limit and len(items) >= cfg.limit:
            break
        try:
            data = path.read_bytes()
        except OSError as e:
            reasons["unreadable"] += 1
            skipped.append(dict(path=str(path), reason="unreadable", detail=str(e)))
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen:
            reasons["duplicate"] += 1
            skipped.append(
                dict(path=str(path), reason="duplicate", detail=f"same bytes as {seen[digest]}")
            )
            continue
        seen[digest] = str(path)
        try:
            img = _load(data)
            orig = img.size
            if cfg.streetside_crop:
                img = streetside_crop(img)
            if min(img.size) < min_side:
                raise ValueError("tiny", f"{img.size[0]}x{img.size[1]} < {min_side} px short side")
            gray, spread = is_grayscale(img, cfg.gray_threshold)
            if gray:
                raise ValueError("grayscale", f"channel spread {spread:.2f} < {cfg.gray_threshold}")
        except ValueError as e:
            reason, detail = (e.args + ("",))[:2] if len(e.args) >= 1 else ("unreadable", "")
            if reason not in ("unreadable", "truncated", "tiny", "grayscale"):
                reason, detail = "unreadable", str(e)
            reasons[reason] += 1
            skipped.append(dict(path=str(path), reason=reason, detail=detail))
            continue
        arr = np.asarray(resize_crop(img, cfg.size), dtype=np.uint8)  # (H, W, 3)
        split = split_of(digest, cfg.val_fraction, cfg.test_fraction)
        items.append(
            Item(str(path), digest, split, len(arrays[split]), source, (int(orig[0]), int(orig[1])))
        )
        arrays[split].append(arr)
        bar.set_postfix(kept=len(items), skipped=sum(reasons.values()))
    bar.close()
    if not items:
        raise PrepareError(f"none of the {len(files)} files was usable: {dict(reasons)}")

    for split in SPLITS:
        stack = np.stack(arrays[split]) if arrays[split] else np.zeros((0, H, W, 3), np.uint8)
        with atomic_write(out / f"{split}.npy") as f:  # a killed prepare leaves no half array
            np.save(f, stack)
    summary = Summary(
        found=len(files),
        kept=len(items),
        skipped=dict(sorted(reasons.items())),
        splits={s: len(arrays[s]) for s in SPLITS},
    )
    manifest = dict(
        format="colorizer-data",
        version=1,
        command=command,
        config={**asdict(cfg), "min_side": min_side},
        size=[W, H],
        layout="uint8 (N, H, W, 3) RGB per split, <split>.npy",
        seconds=round(time.time() - t0, 1),
        summary=asdict(summary),
        items=[asdict(i) for i in items],
        skipped=skipped,
    )
    write_text(out / "manifest.json", json.dumps(manifest, indent=1))
    log.info(
        "kept %d of %d files (%s); skipped %s -> %s",
        summary.kept,
        summary.found,
        ", ".join(f"{k} {v}" for k, v in summary.splits.items()),
        summary.skipped or "none",
        out,
    )
    return summary


def load_manifest(data: str | Path) -> dict:
    path = Path(data) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: run `python -m training prepare --images ... --out {data}` first"
        )
    return json.loads(path.read_text())


def photo_names(data: str | Path, split: str) -> list[str]:
    """The name of each row of a split, as evaluation tables give photos: the original file
    under its --images folder's name (``landscapes/x.jpg``), like a folder evaluation's."""
    names = {}
    for item in load_manifest(data)["items"]:
        if item["split"] == split:
            path, source = Path(item["path"]), Path(item["source"])
            try:
                names[item["index"]] = Path(source.resolve().name) / path.relative_to(source)
            except ValueError:  # not below its source folder (a hand-edited manifest)
                names[item["index"]] = path
    return [names[i].as_posix() for i in range(len(names))]


def load_split(data: str | Path, split: str, mmap: bool = True) -> np.ndarray:
    """The packed uint8 (N, H, W, 3) array of one split (memory-mapped by default)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    path = Path(data) / f"{split}.npy"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `python -m training prepare` first")
    arr = np.load(path, mmap_mode="r" if mmap else None)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"{path}: expected uint8 (N, H, W, 3), got {arr.dtype} {arr.shape}")
    return arr
