"""The demo's Hints tab in a real browser (Debian's chromium driven by playwright), on the
SHIPPED default model (weights/default.pt, whose hint branches were trained: a tiny random
model would prove nothing about colour).

A person uploads a photo of a grey wall beside a sky, clicks the wall, types red into the
colour picker and applies it: the served picture must turn red around the click and stay as
it was far from it (in the sky); the hints then go out as JSON and come back in. On a phone
the same page has no sideways scrolling and the picture is tappable.

    python tests/test_demo_hints_browser.py --out-dir results/hints   # its screenshots
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # when run as a script
    sys.path.insert(0, str(REPO))

from test_demo_browser import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    PHONE,
    _loaded,
    open_demo,
)

import demo as demo_module  # noqa: E402
from colorizer.lab import rgb_to_lab  # noqa: E402

from conftest import free_port  # noqa: E402

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed"),
]

SHIPPED = REPO / "weights" / "default.pt"
W, H = 640, 480
WALL_X = 420  # the wall is x < WALL_X; the sky beside it
CLICK = (200, 240)  # on the wall, in the photo's pixels (the preview is the photo: 640 px)
RED = "#c81e1e"


def wall_photo(path: Path) -> Path:
    """A grey rendered wall (mortar lines every 40 px) beside a bright sky gradient."""
    img = np.full((H, W, 3), 128, np.uint8)
    img[::40, :WALL_X] = 100  # mortar courses
    rng = np.random.default_rng(0)
    img[:, :WALL_X] = np.clip(img[:, :WALL_X] + rng.integers(-4, 5, (H, WALL_X, 1)), 0, 255)
    sky = np.linspace(235, 190, H).astype(np.uint8)[:, None, None]
    img[:, WALL_X:] = sky
    Image.fromarray(img).save(path)
    return path


def lab_of(block: np.ndarray) -> np.ndarray:
    t = torch.from_numpy(block.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    return rgb_to_lab(t)[0].reshape(3, -1).mean(1).numpy()


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory):
    if not SHIPPED.is_file():
        pytest.fail(f"{SHIPPED} is missing: the Hints tab is checked on the shipped model")
    models = tmp_path_factory.mktemp("hint_models")
    shutil.copy(SHIPPED, models / "default.pt")
    app = demo_module.build_demo(
        models_dir=models, device="cpu", scratch_dir=tmp_path_factory.mktemp("hint_scratch")
    )
    app.queue()
    _, local_url, _ = app.launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True
    )
    yield local_url
    app.close()


def served_canvas(page, base_url: str) -> np.ndarray:
    """The picture the page shows, as the server sent it (fetched by its URL)."""
    src = page.locator("#hint-canvas img").first.get_attribute("src")
    full = src if src.startswith("http") else base_url.rstrip("/") + "/" + src.lstrip("/")
    with urllib.request.urlopen(full, timeout=30) as r:
        return np.asarray(Image.open(io.BytesIO(r.read())).convert("RGB"))


def open_hints_tab(p, url: str, photo: Path, viewport: dict[str, int]):
    phone = viewport["width"] < 600
    browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    context = browser.new_context(
        viewport=viewport, is_mobile=phone, has_touch=phone, accept_downloads=True
    )
    page = context.new_page()
    open_demo(page, url, 120_000)
    page.get_by_role("tab", name="Hints").click(timeout=120_000)
    page.locator("#hint-photo input[type=file]").set_input_files(str(photo))
    page.wait_for_function(_loaded("#hint-canvas img"), timeout=120_000)
    page.wait_for_function(
        "() => document.querySelector('#hint-info').innerText.includes('0 hints')",
        timeout=120_000,
    )
    return browser, page


def click_photo(page, x: float, y: float, tap: bool = False) -> None:
    """Click (or tap) the shown picture at the photo's pixel (x, y)."""
    img = page.locator("#hint-canvas img").first
    box = img.bounding_box()
    nat = img.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    # the picture is letterboxed inside its <img> box (object-fit: contain)
    s = min(box["width"] / nat[0], box["height"] / nat[1])
    ox, oy = (box["width"] - nat[0] * s) / 2, (box["height"] - nat[1] * s) / 2
    pos = {"x": ox + x * s, "y": oy + y * s}
    if tap:
        img.tap(position=pos)
    else:
        img.click(position=pos)


def pick_colour(page, hexa: str) -> None:
    """Open the colour picker, type the colour, close it, apply it."""
    page.locator("#hint-picker button.dialog-button").click()
    field = page.locator("#hint-picker input[type=text]")
    field.fill(hexa)
    field.press("Enter")
    page.keyboard.press("Escape")
    page.locator("#hint-info").click()  # outside the dialog: it closes
    page.get_by_role("button", name="Use this colour").click()


def test_a_red_hint_on_a_grey_wall_turns_the_wall_red_and_leaves_the_sky(
    url: str, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    photo = wall_photo(tmp_path / "wall.png")
    with sync_playwright() as p:
        browser, page = open_hints_tab(p, url, photo, DESKTOP)
        try:
            before = served_canvas(page, url)
            assert before.shape == (H, W, 3)
            click_photo(page, *CLICK)
            page.wait_for_function(
                "() => document.querySelector('#hint-info').innerText.includes('chosen')",
                timeout=60_000,
            )
            # the suggestions for the point: swatches, most likely first
            assert page.locator("#hint-swatches label").count() >= 2
            assert page.locator("#hint-swatch-view .hint-swatch").count() >= 2
            pick_colour(page, RED)
            page.wait_for_function(
                "() => document.querySelector('#hint-info').innerText.includes('1 hint,')",
                timeout=60_000,
            )
            after = served_canvas(page, url)
            table = page.locator("#hint-table").inner_text()
            shot = tmp_path / "hint.png"
            page.screenshot(path=str(shot))
            # the hints leave as JSON ...
            with page.expect_download() as dl:
                page.locator("#hint-save").click()
            hints_file = tmp_path / dl.value.suggested_filename
            dl.value.save_as(hints_file)
            saved = json.loads(hints_file.read_text())
            # ... and come back: clear, then load the file
            page.get_by_role("button", name="Clear all").click()
            page.wait_for_function(
                "() => document.querySelector('#hint-info').innerText.includes('0 hints')",
                timeout=60_000,
            )
            with page.expect_file_chooser() as chooser:
                page.locator("#hint-load").click()
            chooser.value.set_files(str(hints_file))
            page.wait_for_function(
                "() => document.querySelector('#hint-info').innerText.includes('1 hint,')",
                timeout=60_000,
            )
            reloaded = served_canvas(page, url)
        finally:
            browser.close()
    x, y = CLICK
    assert "200" in table and "240" in table  # listed in the photo's pixels
    (hint,) = saved["hints"]
    assert abs(hint["x"] - x) <= 2 and abs(hint["y"] - y) <= 2
    # near the click (outside the drawn marker): red now, where the automatic output was not.
    # Red: a clear a* and the hue of the picked colour (within 25 degrees: the model spreads
    # the hint at the wall's own lightness, which moves the hue a little)
    near = (slice(y + 18, y + 30), slice(x - 6, x + 6))
    _, a_red, b_red = lab_of(np.array([[list(bytes.fromhex(RED[1:]))]], np.uint8))
    hue_red = np.degrees(np.arctan2(b_red, a_red))
    for image, is_red in ((before, False), (after, True)):
        _, a_, b_ = lab_of(image[near])
        red = a_ > 25 and abs(np.degrees(np.arctan2(b_, a_)) - hue_red) < 25
        assert red == is_red, (is_red, lab_of(image[near]), hue_red)
    # far from it, in the sky: as it was (within a few 8-bit levels)
    far = (slice(20, 60), slice(W - 60, W - 20))
    assert np.abs(after[far].astype(int) - before[far].astype(int)).mean() < 3.0
    # the reloaded hints give the same picture
    assert np.abs(reloaded.astype(int) - after.astype(int)).max() <= 1


def test_the_hints_tab_fits_a_phone_and_a_tap_places_a_point(url: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    photo = wall_photo(tmp_path / "wall.png")
    with sync_playwright() as p:
        browser, page = open_hints_tab(p, url, photo, PHONE)
        try:
            page.locator("#hint-canvas img").first.scroll_into_view_if_needed()
            click_photo(page, *CLICK, tap=True)
            page.wait_for_function(
                "() => document.querySelector('#hint-info').innerText.includes('chosen')",
                timeout=60_000,
            )
            scroll_width = page.evaluate("document.documentElement.scrollWidth")
            info = page.locator("#hint-info").inner_text()
        finally:
            browser.close()
    assert scroll_width <= PHONE["width"] + 1
    assert "Point (" in info


def main() -> None:
    """Screenshots of the Hints tab on the shipped model (desktop), for results/hints/."""
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--out-dir", type=Path, default=REPO / "results" / "hints")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    args.out_dir.mkdir(parents=True, exist_ok=True)
    app = demo_module.build_demo(models_dir=SHIPPED.parent, device="cpu")
    app.queue()
    _, local_url, _ = app.launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True
    )
    try:
        photo = wall_photo(args.out_dir / "wall_input.png")
        with sync_playwright() as p:
            browser, page = open_hints_tab(p, local_url, photo, DESKTOP)
            click_photo(page, *CLICK)
            page.wait_for_function(
                "() => document.querySelector('#hint-info').innerText.includes('chosen')",
                timeout=60_000,
            )
            pick_colour(page, RED)
            page.wait_for_function(
                "() => document.querySelector('#hint-info').innerText.includes('1 hint,')",
                timeout=60_000,
            )
            page.evaluate("window.scrollTo(0, 0)")
            page.wait_for_timeout(300)
            page.screenshot(path=str(args.out_dir / "demo_hints_desktop.png"), full_page=True)
            browser.close()
    finally:
        app.close()
    print(f"wrote {args.out_dir}")


if __name__ == "__main__":
    main()
