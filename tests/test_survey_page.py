"""The participant page in Chromium, on a desktop and on a phone-sized screen; the admin page.

Arrow keys vote, the next pair is fetched while the current one is shown (and so appears at
once), the progress bar follows the answers, and on a phone the two photos stay side by
side with both buttons on the first screen. The admin page shows its tables when the
password is sent with Enter. The served page asks the manifest's question, in one wording. A real `survey.py serve` on a free port, a
survey made from three of the bundled example photos.

The same code takes the screenshots committed under results/survey/:

    python tests/test_survey_page.py --out results/survey/
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

REPO = Path(__file__).resolve().parents[1]
for p in (REPO, REPO / "tests"):  # when run as a script
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from test_survey_server import Server, assert_blind, read_rows  # noqa: E402

from survey_core import Manifest, PrepareConfig, prepare_survey  # noqa: E402
from survey_core.design import QUESTIONS  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip
PHOTOS = ("aitzgorri", "dune", "sunset")
N_TRIALS = len(PHOTOS) + 1  # one pair per photo, one catch trial
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True,
         "has_touch": True}  # fmt: skip


def browser_test(fn):
    """Runs in headless Chromium (skipped without it, or with -m "not browser")."""
    fn = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed")(fn)
    return pytest.mark.browser(fn)


def make_page_survey(folder: Path) -> Path:
    """Real photos against a muted and a gray version, at the default --max-side 512."""
    photos, muted = folder / "photos", folder / "sysmuted"
    photos.mkdir(parents=True)
    muted.mkdir()
    for name in PHOTOS:
        shutil.copy(REPO / "examples" / f"{name}.jpg", photos / f"{name}.jpg")
        im = Image.open(photos / f"{name}.jpg").convert("RGB")
        ImageEnhance.Color(im).enhance(0.4).save(muted / f"{name}.png")
    systems = [("sysmuted", str(muted)), ("sysgray", "gray")]
    prepare_survey(PrepareConfig(photos, systems, folder / "survey", catch=1))
    return folder / "survey"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("page")
    srv = Server(make_page_survey(folder), folder / "votes.csv", folder / "server.log").start()
    yield srv
    srv.stop()


def pair_state(page) -> dict:
    """The pair on screen: trial, image sources, and whether they are loaded already."""
    return page.evaluate(
        """() => {
        const pair = document.querySelector('#survey-pair .survey-pair');
        const imgs = [...pair.querySelectorAll('img')];
        const bar = document.querySelector('#survey-progress progress');
        return {trial: pair.dataset.trial, srcs: imgs.map(i => new URL(i.src).pathname),
                loaded: imgs.map(i => i.complete && i.naturalWidth > 0),
                bar: [Number(bar.value), Number(bar.max)]};
    }"""
    )


def wait_for_new_pair(page, old_trial: str) -> None:
    page.wait_for_function(
        "(t) => { const p = document.querySelector('#survey-pair .survey-pair');"
        " return p && p.dataset.trial !== t; }",
        arg=old_trial,
    )


def start(page, url: str) -> None:
    page.goto(url + "/")
    page.get_by_label("I have read this and agree to take part").check()
    page.locator("#survey-start").click()
    page.locator("#survey-progress").get_by_text(f"Photo pair 1 of {N_TRIALS}").wait_for()


def run_desktop(url: str, screenshot: Path) -> dict:
    """Arrow keys through the whole survey; every next pair was fetched before its vote."""
    from playwright.sync_api import sync_playwright

    fetched: list[str] = []
    keys, states = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(**DESKTOP)
            page.on("request", lambda r: fetched.append(r.url))
            page.goto(url + "/")
            page.keyboard.press("ArrowLeft")  # on the consent screen: nothing happens
            start(page, url)
            for i in range(1, N_TRIALS + 1):
                page.locator("#survey-progress").get_by_text(
                    f"Photo pair {i} of {N_TRIALS}"
                ).wait_for()
                state = pair_state(page)
                page.wait_for_load_state("networkidle")  # the preload has been fetched
                state["fetched_before_vote"] = [u.split(url, 1)[-1] for u in fetched]
                states.append(state)
                if i == 2:
                    page.screenshot(path=str(screenshot))
                key = "ArrowLeft" if i % 2 else "ArrowRight"
                keys.append(key)
                page.keyboard.press(key)
                if i < N_TRIALS:
                    wait_for_new_pair(page, state["trial"])
                    # Read the moment the new pair is in the page: loaded already?
                    state["next_loaded_at_once"] = pair_state(page)["loaded"]
            page.locator("#survey-thanks").get_by_text("Thank you").wait_for()
            token = page.url.split("t=", 1)[1].split(".")[0]
            html = page.content()
        finally:
            browser.close()
    return {"states": states, "keys": keys, "token": token, "fetched": fetched, "html": html}


def run_phone(url: str, screenshot: Path) -> dict:
    """Layout on a phone-sized screen; tap to vote."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(**PHONE)
            start(page, url)
            first = pair_state(page)
            page.locator("#survey-right").tap()
            wait_for_new_pair(page, first["trial"])
            page.locator("#survey-progress").get_by_text(f"Photo pair 2 of {N_TRIALS}").wait_for()
            page.wait_for_load_state("networkidle")
            layout = page.evaluate(
                """() => {
                const box = (e) => { const r = e.getBoundingClientRect();
                    return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; };
                const imgs = [...document.querySelectorAll('#survey-pair .survey-pair img')];
                return {scroll_width: document.documentElement.scrollWidth,
                        width: innerWidth, height: innerHeight,
                        imgs: imgs.map(box),
                        left: box(document.getElementById('survey-left')),
                        right: box(document.getElementById('survey-right')),
                        progress: box(document.querySelector('#survey-progress progress'))};
            }"""
            )
            page.screenshot(path=str(screenshot))
            token = page.url.split("t=", 1)[1].split(".")[0]
        finally:
            browser.close()
    return {"layout": layout, "token": token}


def assert_not_blank(path: Path) -> None:
    pixels = np.asarray(Image.open(io.BytesIO(path.read_bytes())).convert("L"), np.float32)
    assert pixels.std() > 20.0, path


@browser_test
def test_desktop_arrow_keys_preload_and_progress(server, tmp_path):
    shot = tmp_path / "page_desktop.png"
    got = run_desktop(server.url, shot)
    states = got["states"]
    assert len(states) == N_TRIALS
    for i, s in enumerate(states, start=1):
        assert s["bar"] == [i - 1, N_TRIALS]  # the bar shows the pairs already answered
        if i < N_TRIALS:
            nxt = states[i]["srcs"]
            # The next pair was fetched while this one was on screen, and was complete the
            # moment it replaced it.
            assert set(nxt) <= set(s["fetched_before_vote"]), (i, nxt)
            assert s["next_loaded_at_once"] == [True, True], i
    imgs = [u for u in got["fetched"] if "/img/" in u]
    assert len(imgs) == len(set(imgs))  # each image fetched once: the preload is reused
    # The arrow keys voted, in the order pressed; the one on the consent screen did nothing.
    mine = sorted(
        (r for r in read_rows(server.votes) if r["participant"] == got["token"]),
        key=lambda r: int(r["position"]),
    )
    want = ["left" if k == "ArrowLeft" else "right" for k in got["keys"]]
    assert [r["choice"] for r in mine] == want
    assert_blind(got["html"], "final page")
    for u in got["fetched"]:
        assert_blind(u, "request url")
    assert_not_blank(shot)


@browser_test
def test_phone_layout(server, tmp_path):
    shot = tmp_path / "page_phone.png"
    got = run_phone(server.url, shot)
    lay = got["layout"]
    assert lay["scroll_width"] <= lay["width"]  # no sideways scrolling
    (a, b) = lay["imgs"]
    assert abs(a["top"] - b["top"]) < 1 and a["right"] <= b["left"]  # side by side
    assert a["right"] - a["left"] > 0.35 * lay["width"]  # each photo fills half the width
    for box in (*lay["imgs"], lay["left"], lay["right"], lay["progress"]):
        assert 0 <= box["top"] and box["bottom"] <= lay["height"], box  # one screen, no scroll
        assert 0 <= box["left"] and box["right"] <= lay["width"], box
    assert abs(lay["left"]["top"] - lay["right"]["top"]) < 1  # buttons in one row
    rows = [r for r in read_rows(server.votes) if r["participant"] == got["token"]]
    assert [r["choice"] for r in rows] == ["right"]  # the tap voted
    assert_not_blank(shot)


def post_api(url: str, name: str, data: list) -> dict:
    """One call of the survey's plain HTTP API (POST, then GET the result)."""
    req = urllib.request.Request(
        f"{url}/gradio_api/call/{name}",
        json.dumps({"data": data}).encode(),
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        event = json.load(r)["event_id"]
    with urllib.request.urlopen(f"{url}/gradio_api/call/{name}/{event}", timeout=30) as r:
        text = r.read().decode()
    return json.loads(text.split("data: ", 1)[1])[0]


def test_one_wording_of_the_question(server):
    """The consent screen's heading and every trial ask the manifest's question, the one the
    analysis reports; the old heading "Which photo looks real?" is gone."""
    question = QUESTIONS["pairwise"]
    assert Manifest.load(server.survey).question == question
    with urllib.request.urlopen(server.url + "/config", timeout=30) as r:
        config = r.read().decode()
    with urllib.request.urlopen(server.url + "/", timeout=30) as r:
        html = r.read().decode()
    for text in (config, html):
        assert f"## {question}" in text  # the consent heading
        assert "looks real?" not in text.lower()
        assert "which looks more realistic" not in text.lower()
    d = post_api(server.url, "start", [True])
    assert d["status"] == "trial" and d["question"] == question


def admin_tables(url: str) -> dict:
    """The admin page in Chromium: a wrong password, then the right one, each sent with Enter."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(**DESKTOP)
            page.goto(url + "/admin/")
            box = page.locator("#admin-password input")
            box.fill("wrong")
            t0 = time.monotonic()
            box.press("Enter")
            page.locator("#admin-counts").get_by_text("Wrong password.").wait_for()
            wrong_s = time.monotonic() - t0
            wrong_tables = page.locator("#admin-counts table").count()
            box.fill("pw")
            box.press("Enter")
            page.locator("#admin-counts table").first.wait_for()
            tables = page.evaluate(
                """() => [...document.querySelectorAll('#admin-counts table')].map(t =>
                    [...t.querySelectorAll('tr')].map(r =>
                        [...r.querySelectorAll('th, td')].map(c => c.textContent.trim())))"""
            )
        finally:
            browser.close()
    return {"wrong_s": wrong_s, "wrong_tables": wrong_tables, "tables": tables}


@browser_test
def test_admin_page_enter_shows_vote_tables(server):
    # One participant votes on three trials (a catch trial among them, maybe), through the API.
    d = post_api(server.url, "start", [True])
    for choice in ("left", "right", "left"):
        d = post_api(server.url, "vote", [d["token"], d["trial"], choice])
        assert d["recorded"], d
    rows = read_rows(server.votes)
    counted = [r for r in rows if r["is_catch"] != "1"]
    catch = [r for r in rows if r["is_catch"] == "1"]
    wins = Counter(r["chosen_system"] for r in counted)
    per_photo = Counter((r["photo"], r["chosen_system"]) for r in counted)

    got = admin_tables(server.url)
    assert got["wrong_s"] >= 0.9 and got["wrong_tables"] == 0  # still slow, and no counts
    people, systems, catches, photos = got["tables"]
    assert people[0] == ["started", "finished", "live (in server memory)"]
    assert people[1][0] == str(len({r["participant"] for r in rows}))
    assert systems[0] == ["system", "wins", "share of counted votes"]
    shown = {r[0]: int(r[1]) for r in systems[1:]}
    # Every system, one without a win too (0), and the total of the counted votes.
    manifest = Manifest.load(server.survey)
    assert shown == {**{s: wins[s] for s in manifest.systems}, "(all)": len(counted)}
    assert catches[1][:2] == [str(len(catch)), str(sum(r["correct"] == "1" for r in catch))]
    header = photos[0]
    assert header[0] == "photo" and header[-1] == "votes"
    for r in photos[1:]:
        cells = dict(zip(header[1:-1], map(int, r[1:-1]), strict=True))
        assert cells == {s: per_photo[(r[0], s)] for s in header[1:-1]}
        assert int(r[-1]) == sum(cells.values())
    assert sum(int(r[-1]) for r in photos[1:]) == len(counted)
    assert sorted(r[0] for r in photos[1:]) == sorted(manifest.photos)  # unvoted ones: 0


def main() -> None:
    parser = argparse.ArgumentParser(description="Screenshot the survey page, desktop and phone.")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "survey")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="survey-page-"))
    try:
        srv = Server(make_page_survey(tmp), tmp / "votes.csv", tmp / "server.log").start()
        try:
            run_desktop(srv.url, args.out / "page_desktop.png")
            run_phone(srv.url, args.out / "page_phone.png")
        finally:
            srv.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"written: {args.out / 'page_desktop.png'}, {args.out / 'page_phone.png'}")


if __name__ == "__main__":
    main()
