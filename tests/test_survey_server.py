"""The survey server for real: a subprocess on a free port, driven by gradio_client and Chromium."""

import csv
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from survey_core import REAL, Manifest, PrepareConfig, prepare_survey
from survey_core.analysis import AnalysisConfig, analyze_file
from survey_core.design import wrong_colors

from conftest import free_port, sample_photos

ROOT = Path(__file__).resolve().parents[1]
# Distinctive names so a leak scan cannot hit ordinary words.
SYSTEMS = ("sysalpha", "sysbeta")
SECRET_WORDS = (*SYSTEMS, "catch_wrong", "photo_0")
N_PHOTOS, N_CATCH = 5, 2
N_TRIALS = N_PHOTOS + N_CATCH  # two systems: one pair per photo
IMG_URL = re.compile(r"^/img/[0-9a-f]{16}\.png$")


class Server:
    """`python survey.py serve` in a subprocess; start() waits until it answers."""

    def __init__(self, survey: Path, votes: Path, log: Path, *extra: str):
        self.survey, self.votes, self.log, self.extra = survey, votes, log, extra
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Server":
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, str(ROOT / "survey.py"), "serve", "--survey", str(self.survey),
               "--votes", str(self.votes), "--port", str(self.port), "--admin-password", "pw",
               *self.extra]  # fmt: skip
        self._logf = open(self.log, "a")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self._logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/config", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"server did not start:\n{self.log.read_text()}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._logf.close()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._logf.close()


def make_survey(folder: Path) -> Manifest:
    photos = folder / "photos"
    sample_photos(photos, N_PHOTOS, size=64, seed=3)
    for name, fn in zip(
        SYSTEMS, (lambda im: im.convert("L").convert("RGB"), wrong_colors), strict=True
    ):
        out = folder / name
        out.mkdir()
        for p in sorted(photos.iterdir()):
            fn(Image.open(p).convert("RGB")).save(out / p.name)
    cfg = PrepareConfig(
        photos, [(s, str(folder / s)) for s in SYSTEMS], folder / "survey", catch=N_CATCH, seed=7
    )
    return prepare_survey(cfg)


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def assert_blind(response, where: str) -> None:
    """Nothing a participant can reach names a system, the catch image or a photo file."""
    text = json.dumps(response) if not isinstance(response, str) else response
    for w in SECRET_WORDS:
        assert w not in text, f"{where} reveals {w!r}: {text[:300]}"
    if isinstance(response, dict):
        assert REAL not in response.values(), where
        for side in ("left", "right"):
            if response.get(side):
                assert IMG_URL.match(response[side]), response[side]
        for url in response.get("preload", []):  # the next pair, fetched ahead
            assert IMG_URL.match(url), url


class Participant:
    """One simulated person: own gradio_client, votes, sometimes double-clicks or reloads."""

    def __init__(self, url: str, seed: int, log: list):
        self.url = url
        self.client = None  # made in run(), so 50 clients connect in parallel
        self.rng = random.Random(seed)
        self.log = log  # every response, for the leak scan
        self.acks: list[dict] = []  # votes the server acknowledged

    def call(self, *args, api_name: str) -> dict:
        d = self.client.predict(*args, api_name=api_name)
        self.log.append(d)
        return d

    def run(self, kill_event: threading.Event | None = None) -> None:
        from gradio_client import Client

        self.client = Client(self.url, verbose=False)
        d = self.call(True, api_name="/start")
        self.token = d["token"]
        self.resume_loop(d, kill_event)

    def resume_loop(self, d: dict, kill_event: threading.Event | None = None) -> None:
        while d["status"] == "trial":
            if kill_event is not None and kill_event.is_set():
                return
            choice = self.rng.choice(["left", "right"])
            if self.rng.random() < 0.15:  # a reload shows the same trial again
                again = self.call(self.token, api_name="/resume")
                assert again["trial"] == d["trial"] and again["index"] == d["index"]
            nxt = self.call(self.token, d["trial"], choice, api_name="/vote")
            assert nxt["recorded"], nxt
            self.acks.append({"trial": d["trial"], "choice": choice, "left": d["left"],
                              "right": d["right"]})  # fmt: skip
            if self.rng.random() < 0.15:  # a double click: acknowledged, not counted twice
                dup = self.call(self.token, d["trial"], choice, api_name="/vote")
                assert not dup["recorded"] and dup["trial"] == nxt["trial"]
            d = nxt
        assert d["status"] == "done" or kill_event is not None


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("survey")
    manifest = make_survey(folder)
    server = Server(folder / "survey", folder / "votes.csv", folder / "server.log").start()
    yield manifest, server
    server.stop()


def test_fifty_concurrent_participants(served, tmp_path):
    manifest, server = served
    responses: list = []
    people = [Participant(server.url, seed=i, log=responses) for i in range(50)]
    with ThreadPoolExecutor(max_workers=50) as ex:
        for f in [ex.submit(p.run) for p in people]:
            f.result()

    pids = {p.token.split(".")[0]: p for p in people}
    rows = [r for r in read_rows(server.votes) if r["participant"] in pids]
    # Exactly the acknowledged votes, each once.
    got = Counter((r["participant"], r["trial"], r["choice"]) for r in rows)
    want = Counter((pid, a["trial"], a["choice"]) for pid, p in pids.items() for a in p.acks)
    assert got == want and max(got.values()) == 1
    assert len(rows) == 50 * N_TRIALS
    trials = {t.id: t for t in manifest.trials}
    for pid in pids:  # left/right balanced within every participant
        mine = [r for r in rows if r["participant"] == pid]
        a_left = sum(r["left_system"] == trials[r["trial"]].a.system for r in mine)
        assert a_left in (N_TRIALS // 2, N_TRIALS - N_TRIALS // 2)
        assert all(float(r["response_ms"]) >= 0 for r in mine)

    # Independent recount from what participants saw + the organiser's manifest.
    system_of = {f"/img/{name}": v["system"] for name, v in manifest.images.items()}
    failed = {
        pid
        for pid, p in pids.items()
        for a in p.acks
        if trials[a["trial"]].is_catch and system_of[a[a["choice"]]] != REAL
    }
    wins: Counter = Counter()
    for pid, p in pids.items():
        if pid in failed:
            continue
        for a in p.acks:
            if not trials[a["trial"]].is_catch:
                wins[(trials[a["trial"]].photo, system_of[a[a["choice"]]])] += 1
    votes = tmp_path / "mine.csv"
    with open(server.votes) as f, open(votes, "w") as g:  # only this test's participants
        lines = f.readlines()
        g.write(lines[0])
        g.writelines(ln for ln in lines[1:] if ln.split(",")[3] in pids)
    cfg = AnalysisConfig(min_response_ms=0, max_catch_failures=0, bootstrap=0)
    res = analyze_file(votes, tmp_path / "out", cfg)
    pp = res.per_photo.set_index("photo")
    for (photo, system), k in wins.items():
        assert pp.loc[photo, f"{system}_wins"] == k
    assert res.overall.iloc[0]["n"] == sum(wins.values())
    assert int(res.participants["excluded"].sum()) == len(failed)

    # The leak scan: every API response, the page, its config, the API description, images.
    for i, d in enumerate(responses):
        assert_blind(d, f"response {i}")
    for path in ("/", "/config", "/gradio_api/info"):
        with urllib.request.urlopen(server.url + path) as r:
            assert_blind(r.read().decode(), path)
    some = responses[0]["left"]
    with urllib.request.urlopen(server.url + some) as r:
        assert r.headers["Content-Type"] == "image/png"
        assert_blind(json.dumps(dict(r.headers)), "image headers")
        assert Image.open(r).size == (64, 64)
    with pytest.raises(urllib.error.HTTPError):  # the manifest is not served
        urllib.request.urlopen(server.url + "/img/manifest.json")
    # The admin view is behind the password; participants get nothing from it.
    adm = people[0].call("wrong", api_name="/admin")
    assert adm["ok"] is False and len(adm) == 2
    responses.pop()
    adm = people[0].client.predict("pw", api_name="/admin")
    assert adm["ok"] and adm["votes"] >= 50 * N_TRIALS and adm["finished"] >= 50


def test_image_headers_do_not_tell_images_apart(served):
    """A curious participant reading the HTTP headers of every image learns nothing: no header
    differs between images except the length, and the date is the time of the reply."""
    from email.utils import parsedate_to_datetime

    manifest, server = served
    seen: dict[str, dict[str, str]] = {}
    for name in sorted(manifest.images):  # every image a participant could be shown
        before = time.time()
        with urllib.request.urlopen(f"{server.url}/img/{name}") as r:
            headers = {k.lower(): v for k, v in r.headers.items()}
            body = r.read()
        after = time.time()
        assert r.status == 200 and int(headers["content-length"]) == len(body)
        # Date is when the reply was made, nothing about the file (1 s resolution, and
        # uvicorn refreshes the value it sends once a second, hence the slack).
        date = parsedate_to_datetime(headers.pop("date")).timestamp()
        assert before - 2 <= date <= after, (headers, before, after)
        seen[name] = headers
    names = set().union(*(h.keys() for h in seen.values()))
    assert {"etag", "last-modified"}.isdisjoint(names)  # no per-file validator
    values = {k: {h.get(k) for h in seen.values()} for k in names}
    differing = {k for k, v in values.items() if len(v) > 1}
    assert differing <= {"content-length"}, {k: values[k] for k in differing}


def test_plain_http_api(served):
    """The documented HTTP API (POST /gradio_api/call/NAME, then GET the event) with a plain
    client: start, resume, vote, a repeated vote, and bad requests refused cleanly."""
    import http.client

    manifest, server = served
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)

    def call(name: str, *data, body: bytes | None = None) -> tuple[int, dict]:
        payload = body if body is not None else json.dumps({"data": list(data)}).encode()
        conn.request("POST", f"/gradio_api/call/{name}", body=payload,
                     headers={"Content-Type": "application/json"})  # fmt: skip
        r = conn.getresponse()
        answer = json.loads(r.read())
        if r.status != 200:
            return r.status, answer
        conn.request("GET", f"/gradio_api/call/{name}/{answer['event_id']}")
        r = conn.getresponse()
        text = r.read().decode()
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        event, data_line = text.strip().split("\n")
        assert event == "event: complete" and data_line.startswith("data: ")
        return 200, json.loads(data_line[6:])[0]

    status, d = call("start", True)
    assert status == 200 and d["status"] == "trial" and d["index"] == 1
    assert call("resume", d["token"])[1]["trial"] == d["trial"]
    status, nxt = call("vote", d["token"], d["trial"], "left")
    assert nxt["recorded"] and nxt["index"] == 2
    again = call("vote", d["token"], d["trial"], "left")[1]  # a retry: not counted twice
    assert not again["recorded"] and again["trial"] == nxt["trial"]
    pid = d["token"].split(".")[0]
    assert [r["trial"] for r in read_rows(server.votes) if r["participant"] == pid] == [d["trial"]]
    for reply in (d, nxt, again):
        assert_blind(reply, "http api")
    assert call("vote", d["token"], d["trial"])[0] == 422  # too few values
    assert call("vote", d["token"], ["x"], "left")[0] == 422  # not a string
    assert call("start", body=b"not json")[0] == 422
    conn.request("GET", "/gradio_api/call/vote/0123456789abcdef")
    r = conn.getresponse()
    assert r.status == 404 and r.read()
    conn.close()


def test_wrong_admin_passwords_are_slowed_down(served):
    # Guessing was 8 tries/s; now each failure costs 1 s, one at a time however many are sent.
    from gradio_client import Client

    manifest, server = served
    client = Client(server.url, verbose=False)
    t0 = time.monotonic()
    jobs = [client.submit(f"guess{i}", api_name="/admin") for i in range(4)]
    answers = [j.result(timeout=60) for j in jobs]
    took = time.monotonic() - t0
    assert all(a == {"ok": False, "message": "Wrong password."} for a in answers)
    assert took >= 4 * 0.95, took
    t0 = time.monotonic()
    assert client.predict("pw", api_name="/admin")["ok"]
    assert time.monotonic() - t0 < 1.0  # the organiser is not slowed down


def test_sigkill_loses_no_acknowledged_vote_and_torn_line_is_repaired(tmp_path):
    folder = tmp_path
    make_survey(folder)
    votes, log = folder / "votes.csv", folder / "server.log"
    server = Server(folder / "survey", votes, log).start()
    kill = threading.Event()
    people = [Participant(server.url, seed=100 + i, log=[]) for i in range(8)]

    def voter(p: Participant) -> None:
        try:
            p.run(kill_event=kill)
        except Exception:
            pass  # the server died under us: the reply to the last vote never came

    threads = [threading.Thread(target=voter, args=(p,)) for p in people]
    for t in threads:
        t.start()
    while sum(len(p.acks) for p in people) < 20:
        time.sleep(0.02)
    server.kill()  # SIGKILL mid-run, votes in flight
    kill.set()
    for t in threads:
        t.join(30)
    acked = {(p.token.split(".")[0], a["trial"], a["choice"]) for p in people for a in p.acks}
    # As if the kill had hit in the middle of a write.
    with open(votes, "ab") as f:
        f.write(b"deadbeef:t0,xx,pairwise,deadbeef,t0,pa")

    server = Server(folder / "survey", votes, log).start()
    try:
        assert "torn last line" in log.read_text()
        rows = read_rows(votes)
        stored = {(r["participant"], r["trial"], r["choice"]) for r in rows}
        assert acked <= stored  # nothing acknowledged is lost
        assert len(stored - acked) <= len(people)  # at most the votes in flight
        assert not any(r["participant"] == "deadbeef" for r in rows)
        # Everyone comes back with the same token and finishes; no trial twice.
        from gradio_client import Client

        for p in people:
            p.client = Client(server.url, verbose=False)
            d = p.call(p.token, api_name="/resume")
            assert d["status"] == "trial"
            assert (p.token.split(".")[0], d["trial"]) not in {(a, b) for a, b, _ in stored}
            p.resume_loop(d)
        rows = read_rows(votes)
        keys = Counter((r["participant"], r["trial"]) for r in rows)
        assert max(keys.values()) == 1 and len(rows) == len(people) * N_TRIALS
    finally:
        server.stop()


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="needs /usr/bin/chromium")
def test_chromium_completes_the_survey(served):
    from playwright.sync_api import sync_playwright

    manifest, server = served
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]  # fmt: skip
    seen_urls: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        page = browser.new_page()
        page.on("request", lambda r: seen_urls.append(r.url))
        page.goto(server.url + "/")
        page.get_by_label("I have read this and agree to take part").check()
        page.locator("#survey-start").click()
        progress = page.locator("#survey-progress")
        progress.get_by_text(f"Photo pair 1 of {N_TRIALS}").wait_for()
        for i in range(1, N_TRIALS + 1):
            progress.get_by_text(f"Photo pair {i} of {N_TRIALS}").wait_for()
            imgs = page.locator("#survey-pair .survey-pair img")  # not the preloaded pair
            assert imgs.count() == 2
            if i == 3:  # a reload continues with the same pair
                src = imgs.first.get_attribute("src")
                page.reload()
                progress.get_by_text(f"Photo pair 3 of {N_TRIALS}").wait_for()
                assert imgs.first.get_attribute("src") == src
            page.locator("#survey-left" if i % 2 else "#survey-right").click()
        page.locator("#survey-thanks").get_by_text("Thank you").wait_for()
        token = re.search(r"[?&]t=([0-9a-f]+)\.", page.url).group(1)
        html = page.content()
        browser.close()
    assert_blind(html, "final page")
    for u in seen_urls:
        assert_blind(u, "request url")
    mine = [r for r in read_rows(server.votes) if r["participant"] == token]
    assert len(mine) == N_TRIALS and len({r["trial"] for r in mine}) == N_TRIALS


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="needs /usr/bin/chromium")
def test_chromium_exposure_time_and_trial_subset(tmp_path):
    make_survey(tmp_path)
    server = Server(
        tmp_path / "survey", tmp_path / "votes.csv", tmp_path / "log", "--exposure-ms", "700",
        "--max-trials", "2",
    ).start()  # fmt: skip
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]  # fmt: skip
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=args)
            page = browser.new_page()
            page.goto(server.url + "/")
            page.locator("#survey-start").click()  # without consent: refused
            page.locator("#survey-message").get_by_text("consent").wait_for()
            page.get_by_label("I have read this and agree to take part").check()
            page.locator("#survey-start").click()
            total = 2 + N_CATCH
            for i in range(1, total + 1):
                page.locator("#survey-progress").get_by_text(
                    f"Photo pair {i} of {total}"
                ).wait_for()
                img = page.locator("#survey-pair img").first
                assert img.evaluate("e => getComputedStyle(e).visibility") == "visible", i
                page.wait_for_function(
                    "() => getComputedStyle(document.querySelector('#survey-pair img'))"
                    ".visibility === 'hidden'",
                    timeout=5000,
                )
                page.locator("#survey-right").click()
            page.locator("#survey-thanks").get_by_text("Thank you").wait_for()
            browser.close()
        assert len(read_rows(server.votes)) == total
    finally:
        server.stop()


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="needs /usr/bin/chromium")
def test_a_late_page_load_event_does_not_undo_start(tmp_path, monkeypatch):
    """On a busy server the page's load event can land after the participant clicked Start;
    it must not throw them back to the consent screen."""
    import inspect

    import gradio as gr
    import uvicorn
    from playwright.sync_api import sync_playwright

    import survey
    from survey_core import SurveySession, VoteStore

    real_load = gr.Blocks.load

    def late_load(self, fn=None, *args, **kwargs):
        def late(*a, **k):
            time.sleep(3)  # the load event lands well after the Start click
            return fn(*a, **k)

        late.__signature__ = inspect.signature(fn)  # gradio passes gr.Request by signature
        return real_load(self, late, *args, **kwargs)

    monkeypatch.setattr(gr.Blocks, "load", late_load)
    manifest = make_survey(tmp_path)
    store = VoteStore(tmp_path / "votes.csv")
    server = uvicorn.Server(
        uvicorn.Config(
            survey.create_app(SurveySession(manifest, store)),
            host="127.0.0.1",
            port=free_port(),
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]  # fmt: skip
    try:
        while not server.started:
            time.sleep(0.05)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=args)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.config.port}/")
            page.get_by_label("I have read this and agree to take part").check()
            page.locator("#survey-start").click()
            progress = page.locator("#survey-progress")
            progress.get_by_text(f"Photo pair 1 of {N_TRIALS}").wait_for()
            time.sleep(4)  # the late load event has landed by now
            assert progress.is_visible() and page.locator("#survey-left").is_visible()
            assert progress.inner_text() == f"Photo pair 1 of {N_TRIALS}"
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        store.close()


def test_turing_mode_through_a_live_server(tmp_path):
    # Turing mode end to end: every trial puts the real photo beside one system's output; the
    # CSV marks each vote correct when the real photo was picked, and the analysis's fooled
    # rates equal a recount from what the participants saw and the organiser's manifest.
    from gradio_client import Client

    photos = tmp_path / "photos"
    sample_photos(photos, 3, size=48, seed=5)
    out = tmp_path / "sysbeta"
    out.mkdir()
    for p in sorted(photos.iterdir()):
        wrong_colors(Image.open(p).convert("RGB")).save(out / p.name)
    cfg = PrepareConfig(photos, [("sysalpha", "gray"), ("sysbeta", str(out))],
                        tmp_path / "survey", mode="turing", seed=2)  # fmt: skip
    manifest = prepare_survey(cfg)
    assert {t.kind for t in manifest.trials} == {"turing"} and len(manifest.trials) == 6
    system_of = {f"/img/{name}": v["system"] for name, v in manifest.images.items()}
    trials = {t.id: t for t in manifest.trials}

    server = Server(
        tmp_path / "survey", tmp_path / "votes.csv", tmp_path / "server.log", "--simulated"
    ).start()
    try:
        fooled: Counter = Counter()
        seen: list = []
        for who in range(2):
            client = Client(server.url, verbose=False)
            d = client.predict(True, api_name="/start")
            token = d["token"]
            assert "real colour photo" in d["question"]
            while d["status"] == "trial":
                seen.append(d)
                sides = {s: system_of[d[s]] for s in ("left", "right")}
                assert REAL in sides.values()  # each trial shows the real photo once
                fake = next(v for v in sides.values() if v != REAL)
                # person 0 spots every gray photo and is fooled by every wrong-colour one;
                # person 1 always clicks left
                if who == 0:
                    want = REAL if fake == "sysalpha" else fake
                    choice = next(s for s, v in sides.items() if v == want)
                else:
                    choice = "left"
                fooled[fake] += sides[choice] != REAL
                d = client.predict(token, d["trial"], choice, api_name="/vote")
                assert d["recorded"]
            assert d["status"] == "done"
    finally:
        server.stop()
    for i, d in enumerate(seen):
        assert_blind(d, f"turing response {i}")

    rows = read_rows(tmp_path / "votes.csv")
    assert len(rows) == 12 and {r["mode"] for r in rows} == {"turing"}
    for r in rows:  # the stored verdict is the truth of the trial, not the click
        picked = r["left_system"] if r["choice"] == "left" else r["right_system"]
        assert r["correct"] == str(int(picked == REAL))
        assert {r["left_system"], r["right_system"]} == {REAL, trials[r["trial"]].b.system}
    res = analyze_file(tmp_path / "votes.csv", tmp_path / "out",
                       AnalysisConfig(min_response_ms=0, max_catch_failures=0, bootstrap=0))  # fmt: skip
    o = res.overall.set_index("system")
    assert o.loc["sysalpha", "n"] == 6 and o.loc["sysbeta", "n"] == 6
    assert o.loc["sysalpha", "fooled"] == fooled["sysalpha"]
    assert o.loc["sysbeta", "fooled"] == fooled["sysbeta"]
    assert fooled["sysbeta"] >= 3  # person 0 alone is fooled 3 times by it
    assert o.loc["(all)", "fooled"] == fooled["sysalpha"] + fooled["sysbeta"]
    # Started with --simulated: the analysis of these scripted participants says so.
    assert res.markdown.startswith("# SIMULATED votes, not a real survey")
