"""The demo's Hints tab attacked from outside: a real Gradio server on a free port, spoken to
over Gradio's queue protocol (POST /gradio_api/queue/join, then the answer from
/gradio_api/queue/data as server-sent events) with hand-written payloads. The tab's events are
registered with api_visibility="private", which only hides them from the API docs: anyone can
still call them by fn_index, as these tests do.

- Paths: the hints file (`hint-load`) and the photo of every Hints event may name only files
  uploaded to this server; anything else is refused with one answer that says nothing about
  the path (whether it exists, what it is).
- Clicks: a select event on `#hint-canvas` with a malformed `event_data.index` gets one clear
  message; the server keeps answering and a genuine click still works.
- Hints files: one over the size limit, nested too deeply or with a 5000-digit number gets one
  clear message, and the hints already placed stay as they were.
- Console: none of it logs a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import re
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from test_demo_security import META, png_bytes, upload

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import demo as demo_module  # noqa: E402
from colorizer.bins import Decoding  # noqa: E402
from colorizer.checkpoint import save_checkpoint  # noqa: E402
from colorizer.models import create_model  # noqa: E402

from conftest import free_port

UNREADABLE = demo_module.UNREADABLE_FILE
PHOTO_SIZE = (90, 60)
GOOD_HINTS = b'{"hints": [{"x": 5, "y": 6, "rgb": [200, 30, 30]}]}'
# A hints file the server must never read: were it read, its unknown key would be named in the
# answer ("unknown keys [...]"), and its point shown in the hint table.
SECRET_HINTS = b'{"hints": [{"x": 7, "y": 8, "rgb": [1, 2, 3], "LEAKED-SECRET": 1}]}'
# The Hints tab's events: (elem_id of the component, event) -> a short name.
EVENTS = {
    ("hint-photo", "change"): "photo",
    ("hint-model", "change"): "model",
    ("hint-canvas", "select"): "click",
    ("hint-swatches", "input"): "swatch",
    ("hint-apply", "click"): "apply",
    ("hint-move", "click"): "move",
    ("hint-remove", "click"): "remove",
    ("hint-undo", "click"): "undo",
    ("hint-clear", "click"): "clear",
    ("hint-load", "upload"): "load",
    ("hint-full", "click"): "full",
}
# What Gradio itself answers when it refuses a file payload before the demo sees it: a FileData
# with `meta` naming a file not in its upload folder, one without `meta` where gr.UploadButton
# requires it, a name without the .json the button accepts, a path with a NUL byte. None says
# more than the request did.
GRADIO_REFUSALS = (
    re.compile(
        r"Cannot move .* to the gradio cache dir because it was not uploaded by a user\.", re.S
    ),
    re.compile(r".*The 'meta' field must be explicitly provided in the input data.*", re.S),
    re.compile(r"Invalid file type\. Please upload a file that is one of these formats: .*", re.S),
    re.compile(r"embedded null byte"),  # its check of a path with a NUL in it
)


# ----------------------------------------------------------------------------- the server


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory):
    """Gradio's upload folder for this module's server, of its own (so the tests know where
    uploads land); TORCH_HOME empty so that only the test's model is offered."""
    folder = tmp_path_factory.mktemp("gradio_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(folder))
        mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
        yield folder


@dataclass
class Server:
    url: str
    fn: dict[str, int]  # event name -> fn_index
    trigger: dict[str, int]  # event name -> the id of the component that fires it


@pytest.fixture(scope="module")
def server(cache: Path, tmp_path_factory: pytest.TempPathFactory):
    models = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    m = create_model("effunet_tiny", hints=True)
    for b in m.hint_branches.values():  # random hint branches: hints change the picture
        torch.nn.init.normal_(b.out.weight, std=0.5)
    save_checkpoint(models / "default.pt", m, decoding=Decoding(0.4))
    app = demo_module.build_demo(
        models_dir=models, device="cpu", scratch_dir=tmp_path_factory.mktemp("scratch")
    )
    _, url, _ = demo_module.launch(
        app, server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True
    )
    # The fn_index of each Hints event, found as an attacker finds it: in the page's config.
    config = json.loads(urllib.request.urlopen(f"{url}config", timeout=30).read())
    elem = {c["id"]: c.get("props", {}).get("elem_id") for c in config["components"]}
    fn, trigger = {}, {}
    for dep in config["dependencies"]:
        for target, event in dep["targets"]:
            name = EVENTS.get((elem.get(target), event))
            if name:
                fn[name], trigger[name] = dep["id"], target
    assert set(fn) == set(EVENTS.values()), fn
    yield Server(url, fn, trigger)
    app.close()


# ----------------------------------------------------------------------------- the protocol


@dataclass
class Answer:
    ok: bool
    error: str | None  # the message shown on the page, when not ok
    data: Any  # the outputs, when ok
    raw: str  # the whole event stream


class Page:
    """One browser tab's session (its gr.State: the hint board), spoken to by hand."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.session = uuid.uuid4().hex
        self.swatches: list[str] = []  # the colours the last genuine click offered

    def send(self, event: str, data: list[Any], event_data: str | None = None) -> Answer:
        """Fire ``event`` with ``data``; ``event_data`` is raw JSON text (NaN, 1e400 and all:
        Starlette's JSON reader takes them), sent as written."""
        body = json.dumps(
            {
                "data": data,
                "fn_index": self.server.fn[event],
                "trigger_id": self.server.trigger[event],
                "session_hash": self.session,
            }
        )
        if event_data is not None:
            body = f'{body[:-1]}, "event_data": {event_data}}}'
        req = urllib.request.Request(
            f"{self.server.url}gradio_api/queue/join",
            body.encode(),
            {"Content-Type": "application/json"},
        )
        assert "event_id" in json.loads(urllib.request.urlopen(req, timeout=30).read())
        raw = urllib.request.urlopen(
            f"{self.server.url}gradio_api/queue/data?session_hash={self.session}", timeout=120
        ).read()
        raw = raw.decode()
        for block in raw.split("\n\n"):
            if not block.startswith("data: "):
                continue
            msg = json.loads(block.removeprefix("data: "))
            if msg.get("msg") == "process_completed":
                out = msg["output"]
                return Answer(msg["success"], out.get("error"), out.get("data"), raw)
        raise AssertionError(f"no answer: {raw}")

    # -- what the page sends

    def photo(self, file: Any) -> Answer:
        return self.send("photo", [file, "default"])

    def click(self, file: Any, event_data: str) -> Answer:
        answer = self.send("click", [file, "default", None], event_data)
        if answer.ok:  # the swatch list takes only what it offers
            self.swatches = [value for _, value in answer.data[5]["choices"]]
        return answer

    def apply(self, file: Any, colour: str = "#ff0000") -> Answer:
        return self.send("apply", [file, "default", None, colour])

    def load(self, hints: Any, file: Any) -> Answer:
        return self.send("load", [hints, file, "default", None])

    def rows(self, file: Any) -> list[list[Any]]:
        """The hint table as the page shows it now (the model's change event re-renders)."""
        answer = self.send("model", [file, "default", None])
        assert answer.ok, answer.raw
        return answer.data[1]["data"]


def genuine_click(x: int = 10, y: int = 20) -> str:
    return json.dumps({"index": [x, y], "value": None})


def file_data(path: str, meta: bool = True) -> dict[str, Any]:
    return {"path": path, "meta": META} if meta else {"path": path}


@pytest.fixture
def photo(server: Server) -> dict[str, Any]:
    """A genuine upload, as the page sends it."""
    return file_data(upload(server.url, "photo.png", png_bytes(PHOTO_SIZE)))


def new_page(server: Server, photo: Any) -> Page:
    """A session with the photo shown, clicked at (10, 20) and given one red hint there."""
    p = Page(server)
    for answer in (p.photo(photo), p.click(photo, genuine_click()), p.apply(photo)):
        assert answer.ok, answer.raw
    assert p.rows(photo) == [[1, 10, 20, "#ff0000"]]
    return p


@pytest.fixture
def page(server: Server, photo: dict[str, Any]) -> Page:
    return new_page(server, photo)


@pytest.fixture
def console(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]):
    """-> a function giving (the demo's log records since, the console's text since)."""
    caplog.set_level(logging.INFO)
    capfd.readouterr()
    start = len(caplog.records)

    def read() -> tuple[list[logging.LogRecord], str]:
        out = capfd.readouterr()
        return [r for r in caplog.records[start:] if r.name == "demo"], out.out + out.err

    return read


def assert_quiet(console) -> None:
    """No traceback on the console; each of the demo's warnings one line, without one."""
    records, text = console()
    assert "Traceback" not in text, text[-3000:]
    for r in records:
        assert r.exc_info is None and "\n" not in r.getMessage(), r.getMessage()[:500]


# ----------------------------------------------------------------------------- 1. hints file


@pytest.fixture
def outside(tmp_path: Path) -> dict[str, Path]:
    """Files outside Gradio's upload folder: a hints file and a PNG (the secrets)."""
    hints, png = tmp_path / "secret.json", tmp_path / "secret.png"
    hints.write_bytes(SECRET_HINTS)
    png.write_bytes(png_bytes((64, 40)))
    return {"json": hints, "png": png, "dir": tmp_path}


def refused_paths(
    server: Server, cache: Path, outside: dict[str, Path], suffix: str
) -> tuple[dict[str, str], set[str]]:
    """Every way of naming a file a request must not get read (``suffix``: .json for the hints
    file, .png for a photo) -> ({case: path}, the cases inside the upload folder: those that
    get past Gradio's own check to the demo's)."""
    secret, folder = outside[suffix.removeprefix(".")], outside["dir"]
    genuine = Path(upload(server.url, f"mine{suffix}", uuid.uuid4().hex.encode())).parent
    assert genuine.is_relative_to(cache)
    (genuine / f"link{suffix}").symlink_to(secret)
    (genuine / "linkdir").symlink_to(folder, target_is_directory=True)
    (genuine / f"folder{suffix}").mkdir()
    os.mkfifo(genuine / f"fifo{suffix}")
    beside = Path(f"{cache}-beside") / folder.name  # "/x/cache-beside" starts like "/x/cache"
    beside.mkdir(parents=True)
    (beside / secret.name).write_bytes(secret.read_bytes())
    paths = {
        "etc_passwd": "/etc/passwd",
        "secret": str(secret),
        "dotdot": f"{genuine}/{os.path.relpath(secret, genuine)}",
        "relative": os.path.relpath(secret),
        "symlink": str(genuine / f"link{suffix}"),
        "symlinked_folder": str(genuine / "linkdir" / secret.name),
        "beside_cache": str(beside / secret.name),
        "missing": str(folder / f"no_such_file{suffix}"),
        "nul_byte": f"{secret}\x00{suffix}",
        "folder": str(folder),
        "missing_in_cache": str(genuine / f"gone{suffix}"),
        "folder_in_cache": str(genuine / f"folder{suffix}"),
        "fifo_in_cache": str(genuine / f"fifo{suffix}"),
    }
    return paths, {"missing_in_cache", "folder_in_cache", "fifo_in_cache"}


def assert_refused(answer: Answer, case: str, *, demo_only: bool) -> None:
    """Refused, nothing of the file in the answer; in the demo's words when it got that far."""
    assert not answer.ok, (case, answer.raw[:2000])
    for leak in ("LEAKED-SECRET", "root:", "/gradio_api/file="):
        assert leak not in answer.raw, (case, answer.raw[:2000])
    message = answer.error or ""
    if demo_only:
        assert message == UNREADABLE, (case, message)
    else:
        assert message == UNREADABLE or any(p.fullmatch(message) for p in GRADIO_REFUSALS), (
            case,
            message,
        )


@pytest.mark.parametrize("meta", [True, False], ids=["with_meta", "without_meta"])
def test_a_hints_file_outside_the_uploads_is_never_read(
    server: Server, cache: Path, outside: dict[str, Path], page: Page, photo: Any, meta: bool
) -> None:
    paths, in_cache = refused_paths(server, cache, outside, ".json")
    for case, path in paths.items():
        answer = page.load(file_data(path, meta), photo)
        # gr.UploadButton takes only FileData with `meta`, checked against the upload folder:
        # a path that passes that check meets the demo's.
        assert_refused(answer, case, demo_only=meta and case in in_cache)
    # The secret's hint never reached the board; the genuine one is still there.
    assert page.rows(photo) == [[1, 10, 20, "#ff0000"]]
    # And a genuine hints file still loads.
    answer = page.load(file_data(upload(server.url, "hints.json", GOOD_HINTS)), photo)
    assert answer.ok, answer.raw
    assert page.rows(photo) == [[1, 5, 6, "#c81e1e"]]


def test_a_hints_file_refusal_does_not_tell_whether_the_path_exists(
    server: Server, cache: Path, outside: dict[str, Path], page: Page, photo: Any
) -> None:
    secret = outside["json"]
    genuine = Path(upload(server.url, "mine.json", uuid.uuid4().hex.encode())).parent
    link = genuine / "link.json"
    link.symlink_to(secret)
    sent = [file_data(p, meta) for p in (str(secret), str(link)) for meta in (True, False)]
    before = [page.load(f, photo) for f in sent]
    secret.unlink()  # the same paths, now naming nothing (the link dangles)
    after = [page.load(f, photo) for f in sent]
    for f, a, b in zip(sent, before, after, strict=True):
        assert not a.ok and not b.ok, f
        assert a.error == b.error, (f, a.error, b.error)
    # And the same for a system file and its missing namesake (the message echoes only the
    # path the request sent).
    passwd, other = (page.load(file_data(p), photo) for p in ("/etc/passwd", "/etc/passwX"))
    assert passwd.error.replace("/etc/passwd", "P") == other.error.replace("/etc/passwX", "P")


# ----------------------------------------------------------------------------- 2. photos


def every_event(page: Page, file: Any, hints: Any) -> dict[str, Answer]:
    """Each Hints event with ``file`` as the photo; the order keeps each one able to reach the
    photo (a hint to move and remove, a point to colour)."""
    data = [file, "default", None]
    return {
        "model": page.send("model", data),
        "click": page.click(file, genuine_click(3, 4)),
        "swatch": page.send("swatch", [*data, page.swatches[-1]]),
        "apply": page.send("apply", [*data, "#0000ff"]),
        "move": page.send("move", [*data, 1]),
        "remove": page.send("remove", [*data, 1]),
        "undo": page.send("undo", data),
        "clear": page.send("clear", data),
        "load": page.load(hints, file),
        "full": page.send("full", data),
        "photo": page.photo(file),
    }


def test_every_hints_event_refuses_a_photo_outside_the_uploads(
    server: Server, cache: Path, outside: dict[str, Path], photo: Any, console
) -> None:
    paths, _ = refused_paths(server, cache, outside, ".png")
    hints = file_data(upload(server.url, "hints.json", GOOD_HINTS))
    for case, path in paths.items():
        page = new_page(server, photo)  # a hint and a point: every event gets to the photo
        # No `meta`: Gradio's own check is skipped, the demo's must hold.
        for event, answer in every_event(page, file_data(path, meta=False), hints).items():
            assert_refused(answer, f"{event}: {case}", demo_only=True)
        # With `meta` Gradio refuses first (one event is enough to see it).
        assert_refused(
            page.send("model", [file_data(path), "default", None]), case, demo_only=False
        )
    # The demo's refusals: no traceback, one line each (Gradio's own refusals of `meta`
    # payloads print its traceback, which is Gradio's and outside the demo's reach).
    records, _ = console()
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in records)
    assert sum("refused to read" in r.getMessage() for r in records) >= 11 * len(paths)


def test_a_photo_refusal_does_not_tell_whether_the_path_exists(
    server: Server, outside: dict[str, Path], photo: Any, console
) -> None:
    secret = outside["png"]
    link = Path(photo["path"]).parent / "link.png"
    link.symlink_to(secret)
    sent = [file_data(str(p), meta=False) for p in (secret, link)]
    hints = file_data(upload(server.url, "hints.json", GOOD_HINTS))
    before = [every_event(new_page(server, photo), f, hints) for f in sent]
    secret.unlink()
    after = [every_event(new_page(server, photo), f, hints) for f in sent]
    for a, b in zip(before, after, strict=True):
        assert {e: x.error for e, x in a.items()} == {e: x.error for e, x in b.items()}
        assert {x.error for x in a.values()} == {UNREADABLE}
    assert_quiet(console)


def test_a_genuine_photo_works_in_every_hints_event(server: Server, photo: Any) -> None:
    hints = file_data(upload(server.url, "hints.json", GOOD_HINTS))
    answers = every_event(new_page(server, photo), photo, hints)
    assert all(a.ok for a in answers.values()), {e: a.error for e, a in answers.items()}


# ----------------------------------------------------------------------------- 3. clicks

CLICK_MESSAGES = {
    "A click needs two pixel coordinates.",
    "A click needs two finite pixel coordinates.",
}


@pytest.mark.parametrize(
    "index",
    [
        "[NaN, 0]",
        "[0, NaN]",
        "[1e400, 0]",
        "[0, -1e400]",
        "[Infinity, 0]",
        "[1" + "0" * 400 + ", 0]",  # an int too big for a float
        '["a", "b"]',
        '["10", "20"]',
        "[true, false]",
        "[null, null]",
        "[[1], [2]]",
        "5",
        "[1]",
        "[1, 2, 3]",
        "[]",
        "null",
        '"10,20"',
        '{"x": 1, "y": 2}',
    ],
)
def test_a_malformed_click_gets_a_clear_message(
    page: Page, photo: Any, index: str, console
) -> None:
    answer = page.click(photo, f'{{"index": {index}, "value": null}}')
    assert not answer.ok and answer.error in CLICK_MESSAGES, answer.raw[:2000]
    assert page.rows(photo) == [[1, 10, 20, "#ff0000"]]  # the board is as it was
    # The server still answers, and a genuine click still works (in this very session).
    answer = page.click(photo, genuine_click(30, 40))
    assert answer.ok, answer.raw[:2000]
    assert answer.data[2].startswith("Point (30, 40) chosen"), answer.data[2]
    assert_quiet(console)


# (An index without a "value" is a click like any other: the handler reads the index alone.)
@pytest.mark.parametrize("event_data", ['{"value": null}', "{}", "null", "[10, 20]", '"x"'])
def test_a_click_without_an_index_gets_a_clear_message(
    page: Page, photo: Any, event_data: str, console
) -> None:
    answer = page.click(photo, event_data)
    # (Whatever the answer, the server keeps serving.)
    assert page.click(photo, genuine_click(30, 40)).ok
    assert not answer.ok and answer.error in CLICK_MESSAGES, answer.error
    assert_quiet(console)


# ----------------------------------------------------------------------------- 4. hints files


def padded(size: int) -> bytes:
    """GOOD_HINTS padded with spaces to ``size`` bytes (still valid JSON)."""
    return GOOD_HINTS + b" " * (size - len(GOOD_HINTS))


HOSTILE_FILES = {
    "over_the_limit": (
        lambda: padded(demo_module.MAX_HINTS_FILE_BYTES + 1),
        f"The hints file is larger than {demo_module.MAX_HINTS_FILE_BYTES // 1024} KB.",
    ),
    "far_over_the_limit": (
        lambda: padded(8 * demo_module.MAX_HINTS_FILE_BYTES),
        f"The hints file is larger than {demo_module.MAX_HINTS_FILE_BYTES // 1024} KB.",
    ),
    "nested_100000_deep": (
        lambda: b"[" * 100_000,
        "hints file: not valid JSON (nested too deeply)",
    ),
    "nested_and_closed": (
        lambda: b"[" * 100_000 + b"]" * 100_000,
        "hints file: not valid JSON (nested too deeply)",
    ),
    "nested_in_a_hint": (
        lambda: b'{"hints": [{"x": 1, "y": 1, "rgb": ' + b"[" * 50_000 + b"]" * 50_000 + b"}]}",
        "hints file: not valid JSON (nested too deeply)",
    ),
    "a_5000_digit_number": (
        lambda: b'{"hints": [{"x": ' + b"9" * 5000 + b', "y": 1, "rgb": [1, 2, 3]}]}',
        "hints file: not valid JSON (Exceeds the limit",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE_FILES))
def test_a_hostile_hints_file_is_refused_with_one_clear_message(
    server: Server, page: Page, photo: Any, case: str, console
) -> None:
    make, said = HOSTILE_FILES[case]
    answer = page.load(file_data(upload(server.url, "hints.json", make())), photo)
    assert not answer.ok, answer.raw[:2000]
    assert answer.error.startswith(said) and "\n" not in answer.error, answer.error[:2000]
    assert len(answer.error) < 300, answer.error[:2000]
    # Refused whole: the board keeps its hint; the server goes on.
    assert page.rows(photo) == [[1, 10, 20, "#ff0000"]]
    assert page.click(photo, genuine_click(30, 40)).ok
    records, _ = console()
    assert [r.getMessage() for r in records if r.levelno >= logging.WARNING] == [
        f"load_hints: {answer.error}"
    ]
    assert_quiet(console)


def test_a_hints_file_at_the_limit_is_taken(server: Server, page: Page, photo: Any) -> None:
    answer = page.load(
        file_data(upload(server.url, "h.json", padded(demo_module.MAX_HINTS_FILE_BYTES))), photo
    )
    assert answer.ok, answer.raw[:2000]
    assert page.rows(photo) == [[1, 5, 6, "#c81e1e"]]


LONG_FILES = {
    "a_long_string_for_a_hint": {"hints": ["a" * 200_000]},
    "a_long_string_for_rgb": {"hints": [{"x": 1, "y": 1, "rgb": "r" * 200_000}]},
    "a_long_photo_name": {"k" * 200_000: []},
    "many_unknown_keys": {"hints": [{f"k{i}": 1 for i in range(20_000)}]},
    "a_deep_list_for_rgb": {"hints": [{"x": 1, "y": 1, "rgb": json.loads("[" * 800 + "]" * 800)}]},
}


@pytest.mark.parametrize("case", list(LONG_FILES))
def test_a_hints_file_refusal_is_one_short_line(
    server: Server, page: Page, photo: Any, case: str
) -> None:
    data = json.dumps(LONG_FILES[case]).encode()
    assert len(data) <= demo_module.MAX_HINTS_FILE_BYTES
    answer = page.load(file_data(upload(server.url, "hints.json", data)), photo)
    assert not answer.ok and answer.error.startswith("hints file"), answer.error[:500]
    assert page.rows(photo) == [[1, 10, 20, "#ff0000"]]
    assert len(answer.error) < 300, f"{len(answer.error)} characters: {answer.error[:300]}..."


# ----------------------------------------------------------------------------- 5. console


def test_the_attacks_log_one_line_each_and_no_traceback(
    server: Server, cache: Path, outside: dict[str, Path], page: Page, photo: Any, console
) -> None:
    """A mix of the above in one session, then the console: one warning line per refusal."""
    gone = str(Path(photo["path"]).parent / "gone.json")
    attacks = [
        page.load(file_data(gone), photo),
        page.load(file_data(upload(server.url, "h.json", b"[" * 100_000)), photo),
        page.load(file_data(upload(server.url, "h.json", b"9" * 5000)), photo),
        page.load(file_data(upload(server.url, "h.json", padded(300_000))), photo),
        page.click(photo, '{"index": [NaN, 0], "value": null}'),
        page.click(photo, '{"index": [1e400, 0], "value": null}'),
        page.click(photo, '{"index": ["a", "b"], "value": null}'),
        page.click(photo, '{"index": 5, "value": null}'),
        page.click(photo, '{"index": [1], "value": null}'),
        page.click(file_data("/etc/passwd", meta=False), genuine_click()),
        page.send("full", [file_data(str(outside["png"]), meta=False), "default", None]),
    ]
    assert not any(a.ok for a in attacks)
    records, text = console()
    assert "Traceback" not in text, text[-3000:]
    warnings = [r for r in records if r.levelno >= logging.WARNING]
    assert len(warnings) == len(attacks), [r.getMessage()[:200] for r in warnings]
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in warnings)
