"""Security fixes of the survey server, each checked from outside against a live server:
served images carry no metadata, no uploads or large bodies, bad tokens and deep JSON are
clean 4xx, participant state is bounded, the admin throttle spares the right password, and
Gradio's advertised v2 API works."""

from __future__ import annotations

import http.client
import io
import json
import socket
import struct
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image, ImageCms, PngImagePlugin
from test_survey_server import Server

from survey_core import PrepareConfig, prepare_survey
from survey_core.design import wrong_colors

from conftest import sample_photos

CRITICAL = {b"IHDR", b"PLTE", b"IDAT", b"IEND"}
CAP, TTL_S = 8, 5.0  # the server's participant bounds, small so the tests can pass them


def with_metadata(img: Image.Image, path: Path, fmt: str) -> None:
    """Save ``img`` with an ICC profile, EXIF, DPI (pHYs) and, for PNG, text chunks."""
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    exif[0x0131] = "PhotoApp 1.0"  # Software
    extra: dict = {"icc_profile": icc, "exif": exif.tobytes(), "dpi": (300, 300)}
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", "the real photo")
        info.add_itxt("Description", "a real photo, \u00e9", zip=True)
        extra["pnginfo"] = info
    img.save(path, format=fmt, **extra)


def make_meta_survey(folder: Path) -> Path:
    """Photos carrying an ICC profile and EXIF/text/pHYs; one system's outputs carry some too."""
    raw = folder / "raw"
    sample_photos(raw, 4, size=48, seed=11)
    photos, sysa, sysb = folder / "photos", folder / "sysalpha", folder / "sysbeta"
    for d in (photos, sysa, sysb):
        d.mkdir()
    for i, p in enumerate(sorted(raw.iterdir())):
        img = Image.open(p).convert("RGB")
        fmt = "JPEG" if i == 0 else "PNG"  # a JPEG too: its ICC/EXIF come another way
        with_metadata(img, photos / f"{p.stem}.{fmt.lower()}", fmt)
        img.convert("L").convert("RGB").save(sysa / f"{p.stem}.png")  # plain
        with_metadata(wrong_colors(img), sysb / f"{p.stem}.png", "PNG")  # metadata too
    cfg = PrepareConfig(
        photos,
        [("sysalpha", str(sysa)), ("sysbeta", str(sysb))],
        folder / "survey",
        catch=2,
        seed=1,
    )
    prepare_survey(cfg)
    return folder / "survey"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("security")
    srv = Server(make_meta_survey(folder), folder / "votes.csv", folder / "server.log",
                 "--max-live-participants", str(CAP), "--participant-ttl-s", str(TTL_S))  # fmt: skip
    srv.start()
    yield srv
    srv.stop()


def png_chunks(data: bytes) -> list[bytes]:
    """The chunk types of a PNG file, in order, parsed by hand (not by Pillow)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
    types, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        types.append(data[pos + 4 : pos + 8])
        pos += 12 + length  # length, type, data, CRC
    assert pos == len(data) and types[-1] == b"IEND"
    return types


def post(port: int, path: str, body: bytes, headers: dict | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=body,
                     headers={"Content-Type": "application/json", **(headers or {})})  # fmt: skip
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def call(port: int, name: str, *data, v2: dict | None = None) -> dict:
    """The documented plain HTTP API: POST, then GET the event's result."""
    path = f"/gradio_api/call/v2/{name}" if v2 is not None else f"/gradio_api/call/{name}"
    body = v2 if v2 is not None else {"data": list(data)}
    status, answer = post(port, path, json.dumps(body).encode())
    assert status == 200, (status, answer)
    event_id = json.loads(answer)["event_id"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/gradio_api/call/{name}/{event_id}") as r:
        event, data_line = r.read().decode().strip().split("\n")
    assert event == "event: complete", event
    return json.loads(data_line.removeprefix("data: "))[0]


def raw_request(port: int, head: bytes, chunks: list[bytes], timeout: float = 10) -> bytes:
    """Send ``head`` and then ``chunks`` on a bare socket; return what the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head)
        try:
            for c in chunks:
                s.sendall(c)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the body was all sent
        reply = b""
        try:
            while b"\r\n\r\n" not in reply:
                got = s.recv(65536)
                if not got:
                    break
                reply += got
        except ConnectionResetError:
            pass
    return reply


def test_served_images_are_pixels_only_for_every_system(server):
    """Every served PNG, fetched over HTTP, has the same chunk types whatever made it, and
    only critical ones: the real photo's ICC profile, EXIF, text and DPI are gone."""
    manifest = json.loads((server.survey / "manifest.json").read_text())
    by_system: dict[str, set[tuple[bytes, ...]]] = {}
    for name, where in manifest["images"].items():
        with urllib.request.urlopen(f"{server.url}/img/{name}") as r:
            data = r.read()
        chunks = png_chunks(data)
        assert set(chunks) <= CRITICAL, (where["system"], chunks)
        by_system.setdefault(where["system"], set()).add(tuple(sorted(set(chunks))))
        assert Image.open(io.BytesIO(data)).mode == "RGB"
    assert set(by_system) == {"real", "sysalpha", "sysbeta", "catch_wrong"}
    kinds = set().union(*by_system.values())
    assert len(kinds) == 1, by_system  # one chunk set for all systems


def test_uploads_are_refused(server):
    boundary = "survey-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; "
            f"filename=\"x.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            ).encode() + b"x" * 1000 + f"\r\n--{boundary}--\r\n".encode()  # fmt: skip
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    for path in ("/gradio_api/upload", "/gradio_api/upload/", "/admin/gradio_api/upload"):
        status, answer = post(server.port, path, body, headers)
        assert 400 <= status < 500, (path, status, answer)


def test_oversize_bodies_get_413_quickly_and_votes_still_work(server):
    # Declared too large: refused from the headers, without waiting for the body.
    head = (f"POST /gradio_api/call/vote HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            f"\r\nContent-Length: {200 * 1024 * 1024}\r\n\r\n").encode()  # fmt: skip
    t0 = time.monotonic()
    reply = raw_request(server.port, head, [b"x" * 1024])
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert time.monotonic() - t0 < 5
    # Chunked, no Content-Length: refused once the bytes received pass the limit.
    for path in ("/gradio_api/call/vote", "/gradio_api/queue/join"):
        head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\n\r\n").encode()  # fmt: skip
        chunk = b"%x\r\n%s\r\n" % (16 * 1024, b" " * 16 * 1024)
        t0 = time.monotonic()
        reply = raw_request(server.port, head, [chunk] * 8)  # 128 KB, never terminated
        assert reply.startswith(b"HTTP/1.1 413"), (path, reply[:200])
        assert time.monotonic() - t0 < 5
    # An ordinary participant is not affected.
    d = call(server.port, "start", True)
    nxt = call(server.port, "vote", d["token"], d["trial"], "left")
    assert nxt["recorded"] and nxt["index"] == 2


def test_non_ascii_token_and_deep_json_are_clean_4xx(server):
    from gradio_client import Client

    for token in ("\u00e9t\u00e9.abc", "x.\u00e9", "\ud800.x"):
        body = json.dumps({"data": [token]}).encode()  # ASCII JSON with \\u escapes
        status, answer = post(server.port, "/gradio_api/call/resume", body)
        assert status == 422, (token, status, answer)
        status, answer = post(server.port, "/gradio_api/call/vote",
                              json.dumps({"data": [token, "t1", "left"]}).encode())  # fmt: skip
        assert status == 422, (token, status, answer)
    # Through Gradio's queue (gradio_client): an error answer, not an exception.
    d = Client(server.url, verbose=False).predict("\u00e9t\u00e9.abc", api_name="/resume")
    assert d["status"] == "error" and not d["token"]
    # Nested too deep for the JSON parser, but under the size limit: 422, not 500.
    deep = b"[" * 30_000 + b"]" * 30_000
    for path in ("/gradio_api/call/vote", "/gradio_api/call/v2/vote", "/gradio_api/queue/join"):
        status, answer = post(server.port, path, deep)
        assert 400 <= status < 500, (path, status, answer[:200])
    status, _ = post(server.port, "/gradio_api/call/vote", b"[" * 100_000 + b"]" * 100_000)
    assert status == 413


def test_participant_state_is_bounded_and_participants_continue(server):
    from gradio_client import Client

    admin = Client(server.url, verbose=False)
    first = call(server.port, "start", True)
    recent = [call(server.port, "start", True) for _ in range(3 * CAP)]
    live = admin.predict("pw", api_name="/admin")["live_participants"]
    assert live <= CAP, live  # 3 * CAP + 1 started, at most CAP remembered
    # The most recent ones continue as if nothing happened...
    d = recent[-1]
    assert call(server.port, "vote", d["token"], d["trial"], "left")["recorded"]
    # ...and a forgotten one continues like after a restart: the same trial shown again,
    # then their vote counts. Nothing else is lost (order and votes are not in memory).
    again = call(server.port, "vote", first["token"], first["trial"], "left")
    assert not again["recorded"] and again["trial"] == first["trial"]
    done = call(server.port, "vote", first["token"], first["trial"], "left")
    assert done["recorded"] and done["index"] == 2
    # Within the TTL a participant who paused continues directly; past it they are forgotten.
    time.sleep(1.0)
    assert call(server.port, "vote", done["token"], done["trial"], "right")["recorded"]
    time.sleep(TTL_S + 0.5)
    call(server.port, "start", True)  # any request forgets the expired ones
    assert admin.predict("pw", api_name="/admin")["live_participants"] == 1


def test_right_admin_password_is_not_delayed_by_waiting_guesses(server):
    from gradio_client import Client

    client = Client(server.url, verbose=False)
    n = 6
    t0 = time.monotonic()
    jobs = [client.submit(f"guess{i}", api_name="/admin") for i in range(n)]
    time.sleep(0.5)  # the guesses are in and waiting
    t1 = time.monotonic()
    assert client.predict("pw", api_name="/admin")["ok"]
    assert time.monotonic() - t1 < 1.0  # not behind the n waiting guesses (was n seconds)
    assert sum(j.done() for j in jobs) < n  # the guesses were indeed still waiting
    answers = [j.result(timeout=60) for j in jobs]
    assert all(a == {"ok": False, "message": "Wrong password."} for a in answers)
    assert time.monotonic() - t0 >= n * 0.95  # still at most one wrong answer a second


def test_gradio_v2_api_and_documented_api_agree(server):
    """Gradio advertises POST /gradio_api/call/v2/NAME (values by name) and the GET at
    /gradio_api/call/NAME/ID; both that and the documented {"data": [...]} form work."""
    with urllib.request.urlopen(server.url + "/gradio_api/info") as r:
        info = json.loads(r.read())["named_endpoints"]
    names = {k: [p["parameter_name"] for p in v["parameters"]] for k, v in info.items()}
    assert names["/start"] == ["consent"] and names["/resume"] == ["token"]
    assert names["/vote"] == ["token", "trial", "choice"]
    d = call(server.port, "start", v2={"consent": True})
    assert d["status"] == "trial" and d["index"] == 1
    assert call(server.port, "resume", v2={"token": d["token"]})["trial"] == d["trial"]
    # The v2 GET form finds the event too.
    status, answer = post(server.port, "/gradio_api/call/v2/vote",
                          json.dumps({"token": d["token"], "trial": d["trial"],
                                      "choice": "right"}).encode())  # fmt: skip
    assert status == 200, answer
    event_id = json.loads(answer)["event_id"]
    with urllib.request.urlopen(f"{server.url}/gradio_api/call/v2/vote/{event_id}") as r:
        nxt = json.loads(r.read().decode().strip().split("\n")[1].removeprefix("data: "))[0]
    assert nxt["recorded"] and nxt["index"] == 2
    assert call(server.port, "vote", d["token"], nxt["trial"], "left")["recorded"]
    status, _ = post(server.port, "/gradio_api/call/v2/vote", json.dumps({"token": "x"}).encode())
    assert status == 422
