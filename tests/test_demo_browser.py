"""The demo page in a real browser: Debian's chromium driven by playwright.

Loads the page at a desktop and a phone viewport, clicks a bundled example's thumbnail,
presses Colorize and checks what a person sees: the photo in the input, the result beside the
before/after slider above the fold, no sideways scrolling on the phone, knobs named in plain
words. Skipped (not failed) only where /usr/bin/chromium is absent.

The same code takes the screenshots committed under results/demo/ (real weights):

    python tests/test_demo_browser.py --models-dir weights --out-dir results/demo
"""

from __future__ import annotations

import argparse
import io
import os
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

from conftest import free_port  # noqa: E402

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


DESKTOP = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}  # a common phone's CSS pixels
# What a person must see without scrolling after pressing Colorize, and where.
LAYOUT = ["#photo", "#model", "#temperature", "#colorize-btn", "#colorized", "#before-after",
          "#download", "#info"]  # fmt: skip


def _loaded(selector: str) -> str:
    return (
        f"() => {{ const i = document.querySelector('{selector}');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )


STREAMS = ("/heartbeat/", "/queue/data")  # Gradio's long-lived connections (see open_demo)


def open_demo(page, url: str, timeout_ms: int = 60_000, quiet_ms: int = 500) -> None:
    """Open the demo and wait as ``wait_until="networkidle"`` would (no request in flight for
    ``quiet_ms``: assets, examples, the load event's queue/join), not counting Gradio's two
    long-lived streams: the heartbeat, which the page keeps open for as long as it lives (it
    lets the server drop a closed tab's per-session state, the Hints tab's), and the queue's
    event stream, which Gradio may keep open beside it. So the network is never idle; what a
    test needs from the load event it waits for itself (``expect``)."""
    import time

    pending: dict[int, str] = {}

    def track(add: bool):
        def handler(request) -> None:
            if any(stream in request.url for stream in STREAMS):
                return
            if add:
                pending[id(request)] = request.url
            else:
                pending.pop(id(request), None)

        return handler

    page.on("request", track(True))
    page.on("requestfinished", track(False))
    page.on("requestfailed", track(False))
    page.goto(url, wait_until="load", timeout=timeout_ms)
    deadline = time.monotonic() + timeout_ms / 1000
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        page.wait_for_timeout(100)
        if pending:
            quiet_since = time.monotonic()
        elif (time.monotonic() - quiet_since) * 1000 >= quiet_ms:
            return
    raise TimeoutError(f"{url}: still in flight after {timeout_ms} ms: {sorted(pending.values())}")


def colorize_in_browser(
    url: str,
    screenshot: Path,
    viewport: dict[str, int] = DESKTOP,
    timeout_ms: int = 60_000,
    example: str = "aitzgorri.jpg",
) -> dict:
    """Open the page, click an example's thumbnail, press Colorize, wait for the result.

    Returns what the page showed: the output <img> src and natural size, the info line, the
    example thumbnails' natural widths, the page's scroll width, the bounding boxes of LAYOUT
    with the page scrolled to the top, and the labels of the model and colour knobs.
    """
    from playwright.sync_api import sync_playwright

    phone = viewport["width"] < 600
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport=viewport, is_mobile=phone, has_touch=phone)
            page = context.new_page()
            open_demo(page, url, timeout_ms)
            page.get_by_role("button", name="Colorize", exact=True).wait_for(timeout=timeout_ms)
            # gr.Examples over an image input shows each example as a thumbnail picture.
            thumbs = page.locator("#examples img")
            thumbs.first.wait_for(timeout=timeout_ms)
            page.wait_for_function(
                "() => [...document.querySelectorAll('#examples img')]"
                ".every(i => i.complete && i.naturalWidth > 0)",
                timeout=timeout_ms,
            )
            thumb_widths = thumbs.evaluate_all("els => els.map(i => i.naturalWidth)")
            page.locator(f'#examples img[src$="/{example}"]').click()
            # The input shows the photo itself, not a file name.
            page.wait_for_function(_loaded("#photo img"), timeout=timeout_ms)
            page.get_by_role("button", name="Colorize", exact=True).click()
            page.locator("#colorized img").first.wait_for(state="visible", timeout=timeout_ms)
            page.wait_for_function(_loaded("#colorized img"), timeout=timeout_ms)
            page.wait_for_function(_loaded("#before-after img"), timeout=timeout_ms)
            img = page.locator("#colorized img").first
            page.wait_for_timeout(500)  # let the slider finish painting
            page.evaluate("window.scrollTo(0, 0)")
            page.wait_for_timeout(200)
            shown = {
                "src": img.get_attribute("src"),
                "natural": page.evaluate(
                    "() => { const i = document.querySelector('#colorized img');"
                    " return [i.naturalWidth, i.naturalHeight]; }"
                ),
                "info": page.locator("#info").inner_text(),
                "thumb_widths": thumb_widths,
                "scroll_width": page.evaluate("document.documentElement.scrollWidth"),
                "boxes": {sel: page.locator(sel).first.bounding_box() for sel in LAYOUT},
                "model_label": page.locator("#model").inner_text(),
                "model_shown": page.locator("#model input").input_value(),
                "knob_label": page.locator("#temperature").inner_text(),
            }
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            # Phones: the whole page (the result is below the knobs); desktop: the first screen.
            page.screenshot(path=str(screenshot), full_page=phone)
        finally:
            browser.close()
    return shown


def serve_demo(tmp_path_factory: pytest.TempPathFactory, names: list[str], tag: str):
    """A live demo on a free port over a models folder of the tiny ``names`` (the first is the
    page's start); yields its URL, closes it after."""
    models = tmp_path_factory.mktemp(tag)
    for name in names:
        torch.manual_seed(0)
        save_checkpoint(models / f"{name}.pt", create_model(name))
    app = demo_module.build_demo(
        models_dir=models, device="cpu", scratch_dir=tmp_path_factory.mktemp(f"{tag}_scratch")
    )
    app.queue()
    _, local_url, _ = app.launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True
    )
    yield local_url
    app.close()


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory):
    yield from serve_demo(tmp_path_factory, ["colornet_tiny"], "models")


# Three classification models (they predict a colour distribution, hence an uncertainty map)
# and one regression model (streetside predicts a*b* directly: no distribution, no map).
ZOO = ["colornet_tiny", "cunet_tiny", "eccv16_tiny", "streetside_tiny"]
WIDE = {"width": 1366, "height": 900}  # a common laptop screen


@pytest.fixture(scope="module")
def zoo_url(tmp_path_factory: pytest.TempPathFactory):
    """A demo serving every model in ZOO (colornet_tiny, the first, is the page's start)."""
    yield from serve_demo(tmp_path_factory, ZOO, "zoo")


def assert_not_blank(shot: Path) -> None:
    # A real screenshot of text, photos and widgets varies a lot.
    pixels = np.asarray(Image.open(io.BytesIO(shot.read_bytes())).convert("L"), np.float32)
    assert pixels.std() > 20.0


def test_page_colorizes_an_example_on_a_desktop(url: str, tmp_path: Path) -> None:
    shot = tmp_path / "desktop.png"
    shown = colorize_in_browser(url, shot, DESKTOP)
    assert shown["src"] and ("/file=" in shown["src"] or "gradio_api/file" in shown["src"])
    # The example is 1024x682; the page got the full-resolution result, not a thumbnail.
    assert shown["natural"] == [1024, 682]
    assert "1024x682 px" in shown["info"] and "colornet_tiny" in shown["info"]
    n_examples = len(list((REPO / "examples").glob("*.jpg")))
    assert len(shown["thumb_widths"]) == n_examples and min(shown["thumb_widths"]) > 0
    boxes = shown["boxes"]
    # Everything a person needs, from the photo to the download, fits the first screen.
    for sel, box in boxes.items():
        assert box is not None and box["y"] >= 0, sel
        assert box["y"] + box["height"] <= DESKTOP["height"], (sel, box)
    # The result and the before/after slider side by side, the photo and knobs to their left.
    result, slider = boxes["#colorized"], boxes["#before-after"]
    assert abs(result["y"] - slider["y"]) < 2 and slider["x"] >= result["x"] + result["width"]
    assert boxes["#photo"]["x"] + boxes["#photo"]["width"] <= result["x"]
    assert shown["scroll_width"] <= DESKTOP["width"]
    assert "Colour strength / vividness: lower = more vivid" in shown["knob_label"]
    assert "Which trained model paints the colours" in shown["model_label"]
    assert shown["model_shown"] == "colornet_tiny (a checkpoint file)"
    assert_not_blank(shot)


def test_page_colorizes_an_example_on_a_phone(url: str, tmp_path: Path) -> None:
    shot = tmp_path / "phone.png"
    shown = colorize_in_browser(url, shot, PHONE)
    assert shown["natural"] == [1024, 682] and "1024x682 px" in shown["info"]
    # One column: nothing wider than the screen, no sideways scrolling, and the page reads
    # top to bottom: photo, knobs, button, result, slider, download.
    assert shown["scroll_width"] <= PHONE["width"]
    boxes = shown["boxes"]
    for sel, box in boxes.items():
        assert box is not None and box["x"] >= 0, sel
        assert box["x"] + box["width"] <= PHONE["width"], (sel, box)
    order = ["#photo", "#model", "#temperature", "#colorize-btn", "#colorized", "#before-after"]
    tops = [boxes[sel]["y"] for sel in order]
    assert tops == sorted(tops), dict(zip(order, tops, strict=True))
    # The photo and the button that starts the work are on the first screen.
    assert (
        boxes["#photo"]["y"] < PHONE["height"] and boxes["#colorize-btn"]["y"] < 2 * PHONE["height"]
    )
    assert_not_blank(shot)


def test_phone_scrolls_to_the_result_when_it_arrives(url: str) -> None:
    """On a phone the result is below the knobs: after a tap on Colorize the page scrolls
    so that the colorized photo is on screen (nothing else would show that it is done)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
            page = context.new_page()
            open_demo(page, url, 60_000)
            page.locator("#photo input[type=file]").set_input_files(
                str(REPO / "examples" / "dune.jpg")
            )
            page.wait_for_function(_loaded("#photo img"), timeout=30_000)
            button = page.get_by_role("button", name="Colorize", exact=True)
            button.scroll_into_view_if_needed()
            before = page.locator("#colorized").bounding_box()
            # The result's box is (at least partly) below the fold when the button is tapped.
            assert before is not None and before["y"] + before["height"] > PHONE["height"]
            button.tap()
            page.wait_for_function(_loaded("#colorized img"), timeout=60_000)
            # Scrolling is smooth: give it time to settle, then the result must be on screen.
            page.wait_for_function(
                "h => { const b = document.querySelector('#colorized img')"
                ".getBoundingClientRect(); return b.top >= 0 && b.bottom <= h; }",
                arg=PHONE["height"],
                timeout=10_000,
            )
            box = page.locator("#colorized img").first.bounding_box()
            assert box is not None and box["height"] > 50, box
            assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], box
        finally:
            browser.close()


def test_compare_gallery_shows_every_model_with_its_caption(zoo_url: str) -> None:
    """At 1366x900 the Compare gallery (original + 4 models: two rows) shows every picture and
    caption on the page: none is clipped inside a fixed-height box that scrolls on its own."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport=WIDE)
            open_demo(page, zoo_url, 60_000)
            page.get_by_role("tab", name="Compare").click()
            page.locator("#compare-photo input[type=file]").set_input_files(
                str(REPO / "examples" / "dune.jpg")
            )
            page.wait_for_function(_loaded("#compare-photo img"), timeout=30_000)
            page.get_by_role("button", name="Compare all models").click()
            expect(page.locator("#compare-note")).to_contain_text(
                f"{len(ZOO)} models compared", timeout=120_000
            )
            gallery = page.locator("#compare-gallery")
            captions = gallery.locator(".caption-label")
            expect(captions).to_have_count(len(ZOO) + 1, timeout=30_000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('#compare-gallery img')]"
                ".every(i => i.complete && i.naturalWidth > 0)",
                timeout=30_000,
            )
            # For each caption: the boxes that clip it (any ancestor inside the gallery that
            # does not let its content overflow) and how far their content scrolls.
            clipped = page.evaluate(
                """() => {
                const gallery = document.getElementById('compare-gallery');
                const out = [];
                for (const cap of gallery.querySelectorAll('.caption-label')) {
                    const c = cap.getBoundingClientRect();
                    for (let el = cap.parentElement; el; el = el.parentElement) {
                        const st = getComputedStyle(el);
                        if (st.overflowY !== 'visible' || st.overflowX !== 'visible') {
                            const b = el.getBoundingClientRect();
                            if (c.top < b.top - 1 || c.bottom > b.bottom + 1 ||
                                c.left < b.left - 1 || c.right > b.right + 1 ||
                                el.scrollHeight > el.clientHeight + 1)
                                out.push([cap.textContent, el.className,
                                          el.scrollHeight, el.clientHeight]);
                        }
                        if (el === gallery) break;
                    }
                }
                return out;
            }"""
            )
            assert clipped == [], clipped
            shown = [c.strip() for c in captions.all_inner_texts()]
            assert shown[0] == "original" and all(any(n in c for c in shown) for n in ZOO), shown
            for i in range(len(ZOO) + 1):  # the page itself scrolls to each: all are there
                captions.nth(i).scroll_into_view_if_needed()
                expect(captions.nth(i)).to_be_in_viewport()
        finally:
            browser.close()


def test_uncertainty_map_has_a_legend_fits_the_screen_and_hides_for_regression(
    zoo_url: str,
) -> None:
    """A classification model's map is shown below the result with its legend, no taller
    than the screen; for a regression model (no colour distribution) it is hidden."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport=WIDE)
            open_demo(page, zoo_url, 60_000)
            expect(page.locator("#model input")).to_have_value(
                "colornet_tiny (a checkpoint file)", timeout=30_000
            )
            page.locator("#photo input[type=file]").set_input_files(
                str(REPO / "examples" / "dune.jpg")
            )
            page.wait_for_function(_loaded("#photo img"), timeout=30_000)
            page.get_by_role("button", name="Colorize", exact=True).click()
            page.wait_for_function(_loaded("#uncertainty img"), timeout=60_000)
            unc = page.locator("#uncertainty")
            expect(unc).to_be_visible()
            legend = page.locator("#uncertainty-legend")
            expect(legend).to_be_visible()
            expect(legend).to_contain_text("dark: confident · bright: uncertain")
            expect(legend).to_contain_text("0 confident")
            expect(legend).to_contain_text("1 uncertain")
            box = unc.bounding_box()
            assert box is not None and 100 < box["height"] <= WIDE["height"], box
            assert box["x"] >= 0 and box["x"] + box["width"] <= WIDE["width"], box
            img = page.locator("#uncertainty img").first.bounding_box()
            assert img is not None and img["height"] <= WIDE["height"], img
            # Below the result (same column), not pushed off to a far end of the page.
            result = page.locator("#colorized").bounding_box()
            assert result is not None and box["y"] >= result["y"] + result["height"], (box, result)
            assert box["x"] >= result["x"] - 1, (box, result)

            page.locator("#model input").click()
            page.get_by_role("option", name="streetside_tiny (a checkpoint file)").click()
            expect(page.locator("#temperature input[type=number]")).to_be_disabled(timeout=30_000)
            expect(unc).to_be_hidden(timeout=30_000)
            expect(legend).to_be_hidden()
            page.get_by_role("button", name="Colorize", exact=True).click()
            expect(page.locator("#info")).to_contain_text("streetside_tiny", timeout=60_000)
            expect(unc).to_be_hidden()

            page.locator("#model input").click()  # and back: the map returns
            page.get_by_role("option", name="cunet_tiny (a checkpoint file)").click()
            expect(unc).to_be_visible(timeout=30_000)
            expect(legend).to_contain_text("dark: confident · bright: uncertain")
        finally:
            browser.close()


def test_photo_input_shows_16_bit_and_cmyk_photos(url: str, tmp_path: Path) -> None:
    """The input previews the odd modes the library reads, and Colorize still works on them."""
    from playwright.sync_api import expect, sync_playwright

    base = Image.open(REPO / "examples" / "dune.jpg")
    deep = tmp_path / "deep16.png"  # two sizes, so the second result is told from the first
    Image.fromarray(np.asarray(base.resize((320, 200)).convert("L"), np.uint16) * 257).save(deep)
    cmyk = tmp_path / "print_cmyk.jpg"
    base.resize((300, 180)).convert("CMYK").save(cmyk, quality=95)
    assert Image.open(deep).mode == "I;16" and Image.open(cmyk).mode == "CMYK"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport=DESKTOP)
            open_demo(page, url, 60_000)
            for path in (deep, cmyk):
                w, h = Image.open(path).size
                page.locator("#photo input[type=file]").set_input_files(str(path))
                page.wait_for_function(
                    "([name, w]) => { const i = document.querySelector('#photo img');"
                    " return i && i.src.endsWith(name) && i.complete && i.naturalWidth == w; }",
                    arg=[path.name, w],
                    timeout=30_000,
                )
                page.get_by_role("button", name="Colorize", exact=True).click()
                expect(page.locator("#info")).to_contain_text(f"{w}x{h} px", timeout=30_000)
        finally:
            browser.close()


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
            open_demo(page, url, 60_000)
            page.locator("#photo input[type=file]").set_input_files(str(bad))
            # The browser cannot show it, but it is uploaded: the input points at it.
            page.wait_for_function(
                "() => { const i = document.querySelector('#photo img');"
                " return i && i.src.endsWith('/notes.jpg'); }",
                timeout=30_000,
            )
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
    parser = argparse.ArgumentParser(
        description="Screenshot the demo after colorizing an example, at a desktop and a phone "
        "viewport: OUT_DIR/desktop.png (the first screen) and OUT_DIR/phone.png (whole page)."
    )
    parser.add_argument("--models-dir", type=Path, default=REPO / "weights")
    parser.add_argument("--out-dir", type=Path, default=REPO / "results" / "demo")
    parser.add_argument("--example", default="aitzgorri.jpg", help="example photo to click")
    args = parser.parse_args()
    app = demo_module.build_demo(models_dir=args.models_dir)
    app.queue()
    _, local_url, _ = app.launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True
    )
    try:
        for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            out = args.out_dir / f"{name}.png"
            shown = colorize_in_browser(
                local_url, out, viewport, timeout_ms=300_000, example=args.example
            )
            print(f"{out} ({viewport['width']}x{viewport['height']}): {shown['info']!r}")
            print(f"  scroll width {shown['scroll_width']}, boxes {shown['boxes']}")
    finally:
        app.close()


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
                open_demo(page, url, 60_000)
                status = page.locator("#model-status")
                expect(status).to_contain_text("colornet_tiny", timeout=30_000)
                expect(status).not_to_contain_text("freshmodel")
                save_checkpoint(models / "freshmodel.pt", create_model("streetside_tiny"))
                page.get_by_role("button", name="Rescan models folder").click()
                expect(status).to_contain_text("freshmodel", timeout=30_000)
                page.locator("#model input").click()
                expect(
                    page.get_by_role("option", name="freshmodel (a checkpoint file)")
                ).to_be_visible(timeout=30_000)

                later = browser.new_page(viewport={"width": 1400, "height": 1100})
                open_demo(later, url, 60_000)
                expect(later.locator("#model-status")).to_contain_text("freshmodel", timeout=30_000)
                later.locator("#model input").click()
                expect(
                    later.get_by_role("option", name="freshmodel (a checkpoint file)")
                ).to_be_visible(timeout=30_000)
            finally:
                browser.close()
    finally:
        app.close()


if __name__ == "__main__":
    main()
