"""reports.desaturate: a model's a*b* scaled by s, scored per folder against gray."""

from __future__ import annotations

import numpy as np
from PIL import Image

from colorizer.inference import Colorizer
from colorizer.models import create_model
from reports.desaturate import SCALES, main, scaled_psnrs


def photos(folder, n=2):
    rng = np.random.default_rng(0)
    folder.mkdir()
    for i in range(n):
        arr = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"{i}.png")
    return folder


def test_scaling_to_zero_is_the_gray_floor_and_one_is_the_model(tmp_path):
    folder = photos(tmp_path / "p")
    col = Colorizer(create_model("effunet_tiny").eval())
    res = scaled_psnrs(col, folder)
    gray = scaled_psnrs(Colorizer("gray"), folder)
    assert set(res) == set(SCALES) and len(res[1.0]) == 2
    np.testing.assert_allclose(res[0.0], gray[1.0], atol=0.01)  # s = 0: gray (8-bit rounding)
    assert not np.allclose(res[1.0], res[0.0])  # the untrained model paints something
    out = tmp_path / "d.md"
    assert main(["--model", "gray", "--images", str(folder), "--out", str(out)]) == 0
    row = [ln for ln in out.read_text().splitlines() if ln.startswith("| p |")][0]
    assert row == "| p | 2 | +0.00 | +0.00 | +0.00 | +0.00 | +0.00 |"
