"""The demo page in a real browser: Debian's chromium driven by playwright.

Loads the page, picks a bundled example photo, presses Colorize and checks that the output
image element got a picture and that the screenshot is not blank. Skipped (not failed) only
where /usr/bin/chromium is absent.

The same code also takes the screenshot committed as results/demo_screenshot.png:

    python tests/test_demo_browser.py --models-dir weights --out results/demo_screenshot.png
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # when run as a script
    sys.path.insert(0, str(REPO))

import demo as demo_module  # noqa: E402
from colorizer.checkpoint import save_checkpoint  # noqa: E402
from colorizer.models import create_model  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def colorize_in_browser(
    url: str, screenshot: Path, timeout_ms: int = 60_000, example: str = "aitzgorri.jpg"
) -> dict:
    """Open the page, click an example photo, press Colorize, wait for the result.

    Returns what the page showed: the output <img> src, its natural size, the info line.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(url, wait_until="networkidle", timeout=timeout_ms)
            page.get_by_role("button", name="Colorize", exact=True).wait_for(timeout=timeout_ms)
            # gr.Examples renders each example as a clickable cell showing the file name.
            page.get_by_text(example).first.click()
            page.locator(f'#photo td.filename[aria-label="{example}"]').wait_for(timeout=timeout_ms)
            page.get_by_role("button", name="Colorize", exact=True).click()
            img = page.locator("#colorized img").first
            img.wait_for(state="visible", timeout=timeout_ms)
            page.wait_for_function(
                "() => { const i = document.querySelector('#colorized img');"
                " return i && i.complete && i.naturalWidth > 0; }",
                timeout=timeout_ms,
            )
            shown = {
                "src": img.get_attribute("src"),
                "natural": page.evaluate(
                    "() => { const i = document.querySelector('#colorized img');"
                    " return [i.naturalWidth, i.naturalHeight]; }"
                ),
                "info": page.get_by_text("px, model").first.inner_text(),
            }
            page.wait_for_timeout(500)  # let the slider and uncertainty map paint
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return shown


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory):
    models = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    save_checkpoint(models / "colornet_tiny.pt", create_model("colornet_tiny"))
    app = demo_module.build_demo(
        models_dir=models, device="cpu", scratch_dir=tmp_path_factory.mktemp("scratch")
    )
    app.queue()
    _, local_url, _ = app.launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True
    )
    yield local_url
    app.close()


def test_page_colorizes_an_example(url: str, tmp_path: Path) -> None:
    shot = tmp_path / "demo.png"
    shown = colorize_in_browser(url, shot)
    assert shown["src"] and ("/file=" in shown["src"] or "gradio_api/file" in shown["src"])
    # The example is 1024x682; the page got the full-resolution result, not a thumbnail.
    assert shown["natural"] == [1024, 682]
    assert "1024x682 px" in shown["info"] and "colornet_tiny" in shown["info"]
    # Not a blank page: a real screenshot of text, photo and widgets varies a lot.
    pixels = np.asarray(Image.open(io.BytesIO(shot.read_bytes())).convert("L"), np.float32)
    assert pixels.std() > 20.0


def test_page_reports_bad_files(url: str, tmp_path: Path) -> None:
    """A bad upload shows the library's message on the page; a batch with a bad file still
    produces its zip and lists the bad file in the report."""
    from playwright.sync_api import expect, sync_playwright

    bad = tmp_path / "notes.jpg"
    bad.write_bytes(b"this is text, not a photo")
    good = [str(REPO / "examples" / "dune.jpg"), str(REPO / "examples" / "storm_road.jpg")]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(url, wait_until="networkidle", timeout=60_000)
            page.locator("#photo input[type=file]").set_input_files(str(bad))
            page.locator('#photo td.filename[aria-label="notes.jpg"]').wait_for(timeout=30_000)
            page.get_by_role("button", name="Colorize", exact=True).click()
            expect(page.get_by_text("'notes.jpg': not an image").first).to_be_visible(
                timeout=30_000
            )

            page.get_by_role("tab", name="Batch").click()
            page.locator("#batch-photos input[type=file]").set_input_files([*good, str(bad)])
            page.locator('#batch-photos td.filename[aria-label="notes.jpg"]').wait_for(
                timeout=30_000
            )
            page.get_by_role("button", name="Colorize all").click()
            expect(page.get_by_text("colorized_colornet_tiny").first).to_be_visible(timeout=60_000)
            report = page.locator("#batch-report")
            expect(report).to_contain_text("dune_color.png (1024x640)")
            expect(report).to_contain_text("storm_road_color.png (1024x683)")
            expect(report).to_contain_text("'notes.jpg': not an image")
            expect(page.get_by_text("1 of 3 files could not be colorized").first).to_be_visible()
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Screenshot the demo after colorizing an example.")
    parser.add_argument("--models-dir", type=Path, default=REPO / "weights")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "demo_screenshot.png")
    parser.add_argument("--example", default="aitzgorri.jpg", help="example photo to click")
    args = parser.parse_args()
    app = demo_module.build_demo(models_dir=args.models_dir)
    app.queue()
    _, local_url, _ = app.launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True
    )
    try:
        shown = colorize_in_browser(local_url, args.out, timeout_ms=300_000, example=args.example)
    finally:
        app.close()
    print(f"{args.out}: {shown}")


if __name__ == "__main__":
    main()


def test_rescan_button_shows_new_weights_without_restart(tmp_path: Path) -> None:
    """Weights copied into the folder of a running demo appear after Rescan, in the status line
    and the dropdown; a page opened afterwards lists them straight away."""
    from playwright.sync_api import expect, sync_playwright

    models = tmp_path / "models"
    models.mkdir()
    torch.manual_seed(0)
    save_checkpoint(models / "colornet_tiny.pt", create_model("colornet_tiny"))
    app = demo_module.build_demo(models_dir=models, device="cpu", scratch_dir=tmp_path / "s")
    app.queue()
    _, url, _ = app.launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True
    )
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1100})
                page.goto(url, wait_until="networkidle", timeout=60_000)
                status = page.locator("#model-status")
                expect(status).to_contain_text("colornet_tiny", timeout=30_000)
                expect(status).not_to_contain_text("freshmodel")
                save_checkpoint(models / "freshmodel.pt", create_model("streetside_tiny"))
                page.get_by_role("button", name="Rescan models folder").click()
                expect(status).to_contain_text("freshmodel", timeout=30_000)
                page.locator("#model input").click()
                expect(page.get_by_role("option", name="freshmodel")).to_be_visible(timeout=30_000)

                later = browser.new_page(viewport={"width": 1400, "height": 1100})
                later.goto(url, wait_until="networkidle", timeout=60_000)
                expect(later.locator("#model-status")).to_contain_text("freshmodel", timeout=30_000)
                later.locator("#model input").click()
                expect(later.get_by_role("option", name="freshmodel")).to_be_visible(timeout=30_000)
            finally:
                browser.close()
    finally:
        app.close()
