"""Image loading: anything a user may hand us -> a fully decoded RGB ``PIL.Image``.

One entry point, :func:`load_image`, so that the CLI, the demo, evaluation and training all
accept the same inputs and fail the same way. Every failure is an :class:`ImageError` (a
``ValueError``) with a message that names the input and says what is wrong with it.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

# Largest image we agree to decode. Checked from the header, before any pixel is decoded, so a
# tiny file claiming a gigantic size (a decompression bomb) costs nothing. 80 MP covers every
# camera we expect (a 61 MP full-frame sensor is 9504x6336) while keeping an RGB decode < 250 MB.
MAX_PIXELS = 80_000_000

# Extensions list_images() picks up (lower case). Decoding still decides what is an image.
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)

ImageSource = (
    str | os.PathLike | bytes | bytearray | memoryview | IO[bytes] | Image.Image | np.ndarray
)


class ImageError(ValueError):
    """The input is not a usable image (missing, empty, corrupt, too large, unsupported)."""


def _describe(src: Any) -> str:
    if isinstance(src, str | os.PathLike):
        return f"'{os.fspath(src)}'"
    if isinstance(src, bytes | bytearray | memoryview):
        return f"<{len(src)} bytes>"
    if isinstance(src, np.ndarray):
        return f"<array {src.shape} {src.dtype}>"
    if isinstance(src, Image.Image):
        return f"<PIL {src.mode} {src.size[0]}x{src.size[1]}>"
    name = getattr(src, "name", None)
    return f"'{name}'" if isinstance(name, str) else f"<{type(src).__name__}>"


def _check_size(width: int, height: int, max_pixels: int | None, what: str) -> None:
    if width < 1 or height < 1:
        raise ImageError(f"{what}: image has no pixels ({width}x{height})")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(
            f"{what}: image is {width}x{height} = {width * height / 1e6:.1f} MP, more than the "
            f"{max_pixels / 1e6:.0f} MP limit (possible decompression bomb); downscale it first"
        )


def _white_composite(img: Image.Image) -> Image.Image:
    """RGBA -> RGB over white: transparent areas of a logo or cut-out are paper, not black."""
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _to_rgb(img: Image.Image, what: str) -> Image.Image:
    """Any PIL mode -> 8-bit RGB. High bit depths are scaled, not clipped."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        return _white_composite(img)
    if mode in ("L", "1", "P", "CMYK", "YCbCr", "HSV"):
        return img.convert("RGB")
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(img)
        return _array_to_rgb(arr, what, from_mode=mode, max_pixels=None)
    try:
        return img.convert("RGB")
    except (ValueError, OSError) as e:
        raise ImageError(f"{what}: unsupported image mode {mode!r} ({e})") from e


def _array_to_rgb(
    arr: np.ndarray, what: str, from_mode: str | None = None, max_pixels: int | None = MAX_PIXELS
) -> Image.Image:
    """numpy HxW / HxWx1 / HxWx2 / HxWx3 / HxWx4 (uint8, uint16, other ints, bool, float) -> RGB.

    Float arrays are taken as [0, 1] (what skimage and torch produce). uint16 is scaled by
    1/257 so 65535 -> 255. Other integer arrays must already lie in 0..255, except PIL's
    32-bit "I" mode, which 16-bit PNGs and TIFFs decode to: there values above 255 mean 16 bit.
    """
    if arr.size == 0:
        raise ImageError(f"{what}: empty array {arr.shape}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (2, 3, 4)):
        raise ImageError(f"{what}: expected an HxW, HxWx3 or HxWx4 array, got shape {arr.shape}")
    h, w = arr.shape[:2]
    _check_size(w, h, max_pixels, what)

    if arr.dtype == np.bool_:
        u8 = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint8:
        u8 = arr
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ImageError(f"{what}: float image contains NaN or infinity")
        lo, hi = float(arr.min()), float(arr.max())
        if from_mode == "F" and hi > 1.0:
            # PIL "F" images (e.g. 32-bit float TIFF) are commonly on the 0..255 scale.
            arr = arr / 255.0
        elif lo < -1e-3 or hi > 1.0 + 1e-3:
            raise ImageError(
                f"{what}: float image values must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]"
            )
        u8 = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif arr.dtype == np.uint16 or (from_mode or "").startswith("I;16"):
        u8 = ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.integer):
        lo, hi = int(arr.min()), int(arr.max())
        if from_mode == "I" and lo >= 0 and hi <= 65535:
            if hi > 255:
                arr = (arr.astype(np.int64) * 255 + 32767) // 65535
            u8 = arr.astype(np.uint8)
        elif lo < 0 or hi > 255:
            raise ImageError(
                f"{what}: integer image values must lie in 0..255 (or use uint16), got {lo}..{hi}"
            )
        else:
            u8 = arr.astype(np.uint8)
    else:
        raise ImageError(f"{what}: unsupported array dtype {arr.dtype}")

    u8 = np.ascontiguousarray(u8)
    if u8.ndim == 2:
        return Image.fromarray(u8, "L").convert("RGB")
    channels = u8.shape[2]
    if channels == 3:
        return Image.fromarray(u8, "RGB")
    mode = "LA" if channels == 2 else "RGBA"
    return _white_composite(Image.fromarray(u8, mode))


def _downsize(img: Image.Image, max_side: int | None) -> Image.Image:
    if max_side is None or max(img.size) <= max_side:
        return img
    scale = max_side / max(img.size)
    size = (max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale)))
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _open_bytes(
    data: bytes, what: str, max_pixels: int | None, max_side: int | None
) -> Image.Image:
    if len(data) == 0:
        raise ImageError(f"{what}: empty input (0 bytes)")
    try:
        # Our own MAX_PIXELS check below is the policy; silence PIL's weaker warning and keep
        # its hard DecompressionBombError (raised at open for > 2x its limit) as a backstop.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                _check_size(img.size[0], img.size[1], max_pixels, what)
                if max_side is not None and img.format == "JPEG":
                    # JPEG can decode at 1/2, 1/4, 1/8 scale directly: a 12 MP photo wanted at
                    # 1000 px never needs its full-size buffer.
                    img.draft("RGB", (max_side, max_side))
                img.load()
                # exif_transpose needs the EXIF of the original file; apply it before the mode
                # conversion, which drops info.
                img = ImageOps.exif_transpose(img)
                img = _to_rgb(img, what)
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageError(f"{what}: refused as a decompression bomb ({e})") from e
    except UnidentifiedImageError as e:
        raise ImageError(f"{what}: not an image (unrecognised file format)") from e
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as e:
        # PIL reports truncated and corrupt data with all of these depending on the codec.
        raise ImageError(f"{what}: corrupt or truncated image ({e})") from e
    return _downsize(img, max_side)


def load_image(
    src: ImageSource,
    *,
    max_pixels: int | None = MAX_PIXELS,
    max_side: int | None = None,
) -> Image.Image:
    """Load ``src`` as a fully decoded 8-bit RGB ``PIL.Image``.

    ``src`` may be a path, raw file bytes, a binary file object, a ``PIL.Image`` of any mode, or
    a numpy array (HxW, HxWx3, HxWx4; uint8, uint16, bool or float in [0, 1]). EXIF orientation
    is applied, transparency is composited on white, 16-bit data is scaled to 8 bit.
    ``max_pixels`` refuses images larger than that from the header (None: no limit);
    ``max_side`` downsizes so the longest side is at most that many pixels.
    Raises :class:`ImageError` for anything that is not a usable image.
    """
    what = _describe(src)
    if isinstance(src, Image.Image):
        _check_size(src.size[0], src.size[1], max_pixels, what)
        try:
            src.load()
            img = _to_rgb(ImageOps.exif_transpose(src), what)
        except ImageError:
            raise
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise ImageError(f"{what}: corrupt or truncated image ({e})") from e
        # Never hand back the caller's own object: they may close or mutate it.
        return _downsize(img.copy() if img is src else img, max_side)
    if isinstance(src, np.ndarray):
        return _downsize(_array_to_rgb(src, what, max_pixels=max_pixels), max_side)
    if isinstance(src, bytes | bytearray | memoryview):
        return _open_bytes(bytes(src), what, max_pixels, max_side)
    if isinstance(src, str | os.PathLike):
        path = Path(src)
        if not path.exists():
            raise ImageError(f"{what}: no such file")
        if path.is_dir():
            raise ImageError(f"{what}: is a folder, not an image file")
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ImageError(f"{what}: cannot read ({e.strerror or e})") from e
        return _open_bytes(data, what, max_pixels, max_side)
    if hasattr(src, "read"):
        try:
            data = src.read()
        except OSError as e:
            raise ImageError(f"{what}: cannot read ({e})") from e
        if not isinstance(data, bytes | bytearray):
            raise ImageError(f"{what}: file object must be opened in binary mode")
        return _open_bytes(bytes(data), what, max_pixels, max_side)
    raise ImageError(f"unsupported image source of type {type(src).__name__}")


def to_tensor(img: Image.Image | np.ndarray) -> torch.Tensor:
    """RGB PIL image or HxWx3 uint8 array -> (3, H, W) float32 tensor in [0, 1]."""
    # np.array copies: PIL's buffer is read-only and torch wants a writable array.
    arr = np.array(img, dtype=np.uint8) if isinstance(img, Image.Image) else np.asarray(img)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image; got {arr.shape} {arr.dtype}")
    if not arr.flags.writeable:
        arr = arr.copy()
    # (H, W, 3) uint8 -> (3, H, W) float32
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).float().div_(255.0)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) from the header only, after EXIF orientation; ImageError if unreadable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                orientation = img.getexif().get(0x0112, 1)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageError(f"'{os.fspath(path)}': not a readable image ({e})") from e
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def list_images(
    folder: str | os.PathLike, recursive: bool = True, exclude: Iterable[str | os.PathLike] = ()
) -> list[Path]:
    """Image files (by extension) under ``folder``, sorted; hidden files and folders skipped.

    ``exclude`` lists folders not to descend into (e.g. an output folder inside the input one,
    so a second run does not colorize its own outputs).
    """
    root = Path(folder)
    if not root.exists():
        raise ImageError(f"'{root}': no such folder")
    if not root.is_dir():
        raise ImageError(f"'{root}': is not a folder")
    skip = {Path(p).resolve() for p in exclude}
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        # Prune in place so os.walk does not descend into hidden or excluded folders.
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and (here / d).resolve() not in skip
        )
        for name in filenames:
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                found.append(here / name)
        if not recursive:
            break
    return sorted(found)
