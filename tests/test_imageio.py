"""load_image / list_images: every accepted input kind and mode, every refused input."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from colorizer.imageio import MAX_PIXELS, ImageError, list_images, load_image, to_tensor


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height but which holds almost no data: a bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def photo() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), "RGB")


# ---------------------------------------------------------------------- sources
def test_every_source_kind_gives_the_same_pixels(photo, tmp_path):
    data = encode(photo)
    path = tmp_path / "p.png"
    path.write_bytes(data)
    ref = np.asarray(photo)
    for src in (
        path,
        str(path),
        data,
        bytearray(data),
        memoryview(data),
        io.BytesIO(data),
        photo,
        ref,
    ):
        img = load_image(src)
        assert img.mode == "RGB" and img.size == (32, 24)
        np.testing.assert_array_equal(np.asarray(img), ref)


def test_pil_input_is_copied_not_aliased(photo):
    before = photo.getpixel((0, 0))
    out = load_image(photo)
    assert out is not photo
    out.putpixel((0, 0), (before[0] ^ 1, 2, 3))
    assert photo.getpixel((0, 0)) == before


# ---------------------------------------------------------------------- modes
def test_mode_L_and_1_and_CMYK():
    assert load_image(Image.new("L", (3, 2), 77)).getpixel((0, 0)) == (77, 77, 77)
    assert load_image(Image.new("1", (3, 2), 1)).getpixel((1, 1)) == (255, 255, 255)
    assert load_image(Image.new("1", (3, 2), 0)).getpixel((1, 1)) == (0, 0, 0)
    # CMYK (0, 255, 255, 0) is pure red.
    assert load_image(Image.new("CMYK", (3, 2), (0, 255, 255, 0))).getpixel((0, 0)) == (255, 0, 0)


def test_alpha_is_composited_on_white():
    rgba = Image.new("RGBA", (2, 1), (200, 10, 10, 255))
    rgba.putpixel((1, 0), (200, 10, 10, 0))  # fully transparent red -> white paper
    out = load_image(rgba)
    assert out.getpixel((0, 0)) == (200, 10, 10)
    assert out.getpixel((1, 0)) == (255, 255, 255)
    half = load_image(Image.new("RGBA", (1, 1), (0, 0, 0, 128)))  # half-transparent black
    assert all(abs(v - 127) <= 1 for v in half.getpixel((0, 0)))
    la = Image.new("LA", (2, 1), (100, 255))
    la.putpixel((1, 0), (100, 0))
    out = load_image(encode(la))  # through a file too
    assert out.getpixel((0, 0)) == (100, 100, 100) and out.getpixel((1, 0)) == (255, 255, 255)


def test_palette_with_and_without_transparency():
    p = Image.new("P", (2, 1))
    p.putpalette([10, 20, 30, 200, 100, 50] + [0] * (256 * 3 - 6))
    p.putpixel((0, 0), 0)
    p.putpixel((1, 0), 1)
    assert load_image(p).getpixel((0, 0)) == (10, 20, 30)
    p.info["transparency"] = 0  # index 0 transparent
    out = load_image(encode(p))
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((1, 0)) == (200, 100, 50)


def test_16_bit_is_scaled_not_clipped():
    arr = np.array([[0, 257 * 128, 65535]], dtype=np.uint16)
    img16 = Image.fromarray(arr)
    assert img16.mode.startswith("I;16")
    for src in (img16, encode(img16), arr):
        out = np.asarray(load_image(src))[0, :, 0]
        assert out.tolist() == [0, 128, 255], src.__class__
    # mode I (32-bit int): 16-bit data scaled, 8-bit-range data kept
    i16 = Image.fromarray(np.array([[0, 65535]], dtype=np.int32))
    assert i16.mode == "I"
    assert np.asarray(load_image(i16))[0, :, 0].tolist() == [0, 255]
    i8 = Image.fromarray(np.array([[3, 200]], dtype=np.int32))
    assert np.asarray(load_image(i8))[0, :, 0].tolist() == [3, 200]


def test_float_mode_F():
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert unit.mode == "F"
    assert np.asarray(load_image(unit))[0, :, 0].tolist() == [0, 128, 255]
    scale255 = Image.fromarray(np.array([[0.0, 100.0, 255.0]], dtype=np.float32))
    assert np.asarray(load_image(scale255))[0, :, 0].tolist() == [0, 100, 255]


def test_numpy_arrays():
    gray = np.full((4, 5), 9, dtype=np.uint8)
    assert load_image(gray).size == (5, 4) and load_image(gray).getpixel((0, 0)) == (9, 9, 9)
    assert load_image(gray[:, :, None]).getpixel((0, 0)) == (9, 9, 9)
    f = np.zeros((2, 2, 3))
    f[..., 0] = 1.0
    assert load_image(f).getpixel((1, 1)) == (255, 0, 0)
    rgba = np.zeros((1, 1, 4), dtype=np.uint8)  # transparent black -> white
    assert load_image(rgba).getpixel((0, 0)) == (255, 255, 255)
    assert load_image(np.ones((2, 2), dtype=bool)).getpixel((0, 0)) == (255, 255, 255)
    assert load_image(np.full((2, 2), 200, dtype=np.int64)).getpixel((0, 0)) == (200, 200, 200)


@pytest.mark.parametrize(
    "arr, message",
    [
        (np.zeros((0, 5, 3), np.uint8), "empty"),
        (np.zeros((4, 4, 5), np.uint8), "shape"),
        (np.zeros((2, 2, 2, 3), np.uint8), "shape"),
        (np.full((2, 2, 3), 2.0), r"\[0, 1\]"),
        (np.full((2, 2, 3), np.nan), "NaN"),
        (np.full((2, 2), 300, np.int32), "0..255"),
        (np.zeros((2, 2), np.complex64), "dtype"),
    ],
)
def test_bad_arrays(arr, message):
    with pytest.raises(ImageError, match=message):
        load_image(arr)


def test_exif_orientation_applied():
    # Left half red, right half blue, stored sideways with orientation 6 (rotate 90 CW to view).
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20, 0] = 255
    arr[:, 20:, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(Image.fromarray(arr), "JPEG", quality=95, exif=exif.tobytes())
    out = load_image(data)
    assert out.size == (20, 40)  # width and height swapped
    top, bottom = out.getpixel((10, 5)), out.getpixel((10, 35))
    assert top[0] > 200 and top[2] < 60  # the left (red) half is now on top
    assert bottom[2] > 200 and bottom[0] < 60


# ---------------------------------------------------------------------- refused inputs
def test_not_an_image_and_empty(tmp_path):
    with pytest.raises(ImageError, match="not an image"):
        load_image(b"hello, this is text and not a picture")
    with pytest.raises(ImageError, match="empty"):
        load_image(b"")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(empty)
    with pytest.raises(ImageError, match="empty"):
        load_image(io.BytesIO())
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)
    with pytest.raises(ImageError, match="binary mode"):
        load_image(io.StringIO("text"))
    with pytest.raises(ImageError, match="unsupported image source"):
        load_image(12345)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_and_corrupt_files(photo, fmt):
    data = encode(photo.resize((128, 96)), fmt)
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(data[: len(data) // 2])
    # Keep the header, garble the compressed pixel data.
    garbled = data[:100] + bytes(b ^ 0x5A for b in data[100:-20]) + data[-20:]
    with pytest.raises(ImageError):
        load_image(garbled)


def test_decompression_bomb_refused_from_header():
    # Far beyond PIL's own limit: PIL's DecompressionBombError is mapped to ImageError.
    with pytest.raises(ImageError, match="MP|bomb"):
        load_image(png_header_only(100_000, 100_000))
    # Above our MAX_PIXELS but below PIL's hard limit: our header check catches it.
    w, h = 10_000, 9_000
    assert w * h > MAX_PIXELS and w * h < 2 * Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageError, match="90.0 MP"):
        load_image(png_header_only(w, h))
    # A caller-chosen limit applies to real images too.
    with pytest.raises(ImageError, match="limit"):
        load_image(encode(Image.new("RGB", (100, 100))), max_pixels=5_000)
    with pytest.raises(ImageError, match="limit"):
        load_image(np.zeros((100, 100), np.uint8), max_pixels=5_000)


def test_big_legal_photo_downsized_on_load():
    # A 12 MP JPEG read with max_side: JPEG draft mode decodes at reduced scale, then LANCZOS.
    arr = np.zeros((3000, 4000, 3), np.uint8)
    arr[:, :, 1] = np.linspace(0, 255, 4000, dtype=np.uint8)[None, :]
    data = encode(Image.fromarray(arr), "JPEG", quality=85)
    out = load_image(data, max_side=800)
    assert out.size == (800, 600)
    g = np.asarray(out)[300, :, 1].astype(int)
    assert g[0] < 10 and g[-1] > 245 and np.all(np.diff(g) >= -3)  # the gradient survived
    # A PNG (no draft mode) takes the plain resize path.
    out = load_image(encode(Image.fromarray(arr[:300, :400])), max_side=100)
    assert out.size == (100, 75)
    # Full size when max_side is not given.
    assert load_image(data).size == (4000, 3000)


# ---------------------------------------------------------------------- list_images, tensors
def test_list_images(tmp_path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "out").mkdir()
    for rel in ["b.JPG", "a.png", "notes.txt", ".x.png", "sub/c.webp", "sub/deeper/d.tif",
                ".hidden/e.png", "out/f.png"]:  # fmt: skip
        (tmp_path / rel).write_bytes(b"x")
    names = lambda paths: [p.relative_to(tmp_path).as_posix() for p in paths]  # noqa: E731
    assert names(list_images(tmp_path)) == [
        "a.png", "b.JPG", "out/f.png", "sub/c.webp", "sub/deeper/d.tif"
    ]  # fmt: skip
    assert names(list_images(tmp_path, recursive=False)) == ["a.png", "b.JPG"]
    assert "out/f.png" not in names(list_images(tmp_path, exclude=[tmp_path / "out"]))
    with pytest.raises(ImageError, match="no such folder"):
        list_images(tmp_path / "nope")
    with pytest.raises(ImageError, match="not a folder"):
        list_images(tmp_path / "a.png")


def test_tensor_round_trip(photo):
    t = to_tensor(photo)
    assert t.shape == (3, 24, 32) and t.dtype == torch.float32
    assert 0.0 <= t.min() and t.max() <= 1.0
    back = t.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(back, np.asarray(photo))
    with pytest.raises(ValueError):
        to_tensor(np.zeros((4, 4), np.uint8))
