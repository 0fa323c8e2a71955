"""The demo's security issue, tested from outside: a real Gradio server on a free port, spoken
to over HTTP with hand-written payloads (what an attacker sends, not what gradio_client sends).

- Paths: a request may name only files uploaded to the server or the bundled examples; every
  other path gets one and the same answer, which says nothing about the path.
- Upload size: the server refuses an upload bigger than any photo the library would decode.
- Ordinary mistakes: one console line each, no traceback.
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import os
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import demo as demo_module  # noqa: E402
from colorizer.checkpoint import save_checkpoint  # noqa: E402
from colorizer.imageio import MAX_PIXELS  # noqa: E402
from colorizer.models import create_model  # noqa: E402

from conftest import free_port

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "dune.jpg"  # 1024x640
META = {"_type": "gradio.FileData"}  # what marks a payload as a file to Gradio's own checks


def png_bytes(size: tuple[int, int] = (48, 32)) -> bytes:
    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory):
    """Gradio's upload cache for this module's server: a folder of its own, so the tests know
    exactly where uploads land (set for the whole module: Gradio reads it on every request)."""
    folder = tmp_path_factory.mktemp("gradio_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(folder))
        # Only the test's model: a machine with eccv16 in torch hub's cache must not offer it.
        mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
        yield folder


@pytest.fixture(scope="module")
def url(cache: Path, tmp_path_factory: pytest.TempPathFactory):
    models = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    save_checkpoint(models / "colornet_tiny.pt", create_model("colornet_tiny"))
    app = demo_module.build_demo(
        models_dir=models, device="cpu", scratch_dir=tmp_path_factory.mktemp("scratch")
    )
    # Started as `python demo.py` starts it (the upload limit included).
    _, local_url, _ = demo_module.launch(
        app, server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True
    )
    yield local_url
    app.close()


# ----------------------------------------------------------------------------- HTTP helpers


def post_upload(url: str, name: str, chunks: Iterable[bytes], length: int) -> tuple[int, str]:
    """POST one file to /gradio_api/upload, streamed (an over-limit file is never in memory)
    -> (HTTP status, body)."""
    boundary = "demo-security-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    where = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=120)
    try:
        conn.putrequest("POST", "/gradio_api/upload")
        conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
        conn.putheader("Content-Length", str(len(head) + length + len(tail)))
        conn.endheaders()
        for part in (head, *chunks, tail):
            conn.send(part)
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


def upload(url: str, name: str, data: bytes) -> str:
    """-> the server path of a genuine upload (what the page and gradio_client send on)."""
    status, body = post_upload(url, name, [data], len(data))
    assert status == 200, body
    (path,) = json.loads(body)
    return path


def zeros(n: int, chunk: int = 1 << 20) -> Iterable[bytes]:
    block = bytes(chunk)
    while n > 0:
        yield block[: min(n, chunk)]
        n -= chunk


def call(url: str, api: str, data: list[Any]) -> tuple[str, Any, str]:
    """One call of a named endpoint over Gradio's plain HTTP API -> (final event, its data,
    the raw stream). The final event is "complete" (data: the outputs) or "error"."""
    req = urllib.request.Request(
        f"{url}gradio_api/call/{api}",
        json.dumps({"data": data}).encode(),
        {"Content-Type": "application/json"},
    )
    event_id = json.loads(urllib.request.urlopen(req, timeout=30).read())["event_id"]
    raw = urllib.request.urlopen(f"{url}gradio_api/call/{api}/{event_id}", timeout=120).read()
    raw = raw.decode()
    event, payload = None, None
    for block in raw.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if fields.get("event") in ("complete", "error"):
            event, payload = fields["event"], json.loads(fields.get("data", "null"))
    assert event is not None, raw
    return event, payload, raw


def photo_args(api: str, file: Any) -> list[Any]:
    return [file, "colornet_tiny", 0.3] if api == "colorize" else [file]


# ----------------------------------------------------------------------------- 1. paths


@pytest.fixture
def refused_paths(url: str, cache: Path, tmp_path: Path) -> dict[str, str]:
    """Paths a request must not get read, one per way of naming them: a real PNG outside the
    cache (the secret), reached directly, by `..`, by a symlink inside the cache (to the file
    and to its folder) and beside the cache under a name that starts like it; a missing file,
    in the cache and out; a folder."""
    secret = tmp_path / "secret.png"
    secret.write_bytes(png_bytes((64, 40)))
    # A real upload's folder in the cache (Gradio names it by the content: unique content).
    genuine = Path(upload(url, "mine.png", str(tmp_path).encode()))
    assert genuine.is_relative_to(cache)
    (genuine.parent / "link.png").symlink_to(secret)
    (genuine.parent / "linkdir").symlink_to(tmp_path, target_is_directory=True)
    beside = Path(f"{cache}-beside") / tmp_path.name  # "/x/cache-beside" starts like "/x/cache"
    beside.mkdir(parents=True)
    (beside / "secret.png").write_bytes(secret.read_bytes())
    up = os.path.relpath(secret, genuine.parent)
    return {
        "secret": str(secret),
        "dotdot": f"{genuine.parent}/{up}",
        "symlink": str(genuine.parent / "link.png"),
        "symlinked_folder": str(genuine.parent / "linkdir" / "secret.png"),
        "beside_cache": str(beside / "secret.png"),
        "missing": str(tmp_path / "no_such_file.png"),
        "missing_in_cache": str(genuine.parent / "gone.png"),
        "folder": str(tmp_path),
        "relative": os.path.relpath(secret),
    }


@pytest.mark.parametrize("api", ["colorize", "compare"])
def test_paths_outside_the_upload_cache_are_refused_alike(
    url: str, refused_paths: dict[str, str], api: str
) -> None:
    # No `meta` field: Gradio's own check ("not uploaded by a user") is skipped, and before the
    # fix the handler read the file (compare's gallery served it back at full size).
    answers = {}
    for case, path in refused_paths.items():
        event, payload, raw = call(url, api, photo_args(api, {"path": path}))
        assert event == "error", (case, raw)
        assert "/gradio_api/file=" not in raw, (case, raw)  # nothing was served
        answers[case] = payload["error"]
    # One answer for every case: nothing tells a secret file from a missing one or a folder.
    assert set(answers.values()) == {demo_module.UNREADABLE_FILE}, answers
    for word in ("secret", "such file", "folder", "not an image", "/tmp"):
        assert word not in demo_module.UNREADABLE_FILE


def test_batch_serves_no_file_outside_the_upload_cache(
    url: str, refused_paths: dict[str, str]
) -> None:
    # gr.File validates its payload itself (no meta: refused; meta: checked against the cache);
    # whatever gets past it still meets the demo's check.
    for case, path in refused_paths.items():
        for file in ({"path": path}, {"path": path, "meta": META}):
            event, payload, raw = call(url, "batch", [[file], "colornet_tiny", 0.3])
            assert "/gradio_api/file=" not in raw, (case, raw)
            if event == "complete":
                assert payload[0] is None, (case, raw)
                assert {row[2] for row in payload[1]["data"]} == {demo_module.UNREADABLE_FILE}


def test_a_genuine_upload_still_works(url: str) -> None:
    path = upload(url, "mine.png", png_bytes((90, 60)))
    # As the page and gradio_client send it (meta), and as a hand-written call might (none).
    for file in ({"path": path, "meta": META}, {"path": path}):
        event, payload, raw = call(url, "compare", [file])
        assert event == "complete", raw
        original = payload[0][0]["image"]["url"]
        served = urllib.request.urlopen(original, timeout=30).read()
        assert Image.open(io.BytesIO(served)).size == (90, 60)
        event, payload, raw = call(url, "colorize", photo_args("colorize", file))
        assert event == "complete" and "90x60 px" in payload[4], raw


def test_a_bundled_example_still_works(url: str) -> None:
    event, payload, raw = call(url, "colorize", photo_args("colorize", {"path": str(EXAMPLE)}))
    assert event == "complete" and "1024x640 px" in payload[4], raw


# ----------------------------------------------------------------------------- 2. upload size


def test_upload_limit_holds_a_photo_at_the_pixel_limit() -> None:
    # The limit's arithmetic, measured: PNGs of noise (incompressible, a PNG's worst case) in
    # 8-bit RGB and 16-bit grey, scaled to MAX_PIXELS, fit with room for metadata; yet the limit
    # is not far above what such a photo needs.
    rng = np.random.default_rng(0)
    side = 500
    for arr in (
        rng.integers(0, 256, (side, side, 3), dtype=np.uint8),
        rng.integers(0, 65536, (side, side), dtype=np.uint16),
    ):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "PNG")
        at_limit = buf.tell() / side**2 * MAX_PIXELS
        assert at_limit + 8 * 2**20 < demo_module.MAX_UPLOAD_BYTES, (arr.dtype, at_limit)
    assert demo_module.MAX_UPLOAD_BYTES < 1.2 * 3 * MAX_PIXELS


def test_server_refuses_an_upload_over_the_limit(url: str, cache: Path) -> None:
    limit = demo_module.MAX_UPLOAD_BYTES
    status, body = post_upload(url, "huge.png", zeros(limit + 1), limit + 1)
    assert status == 413, body
    # One at the limit (a photo at the pixel limit) is taken; then removed, it is big.
    status, body = post_upload(url, "at_limit.png", zeros(limit), limit)
    assert status == 200, body
    (stored,) = json.loads(body)
    assert Path(stored).stat().st_size == limit
    Path(stored).unlink()
    assert upload(url, "small.png", png_bytes())  # an ordinary photo, of course


# ----------------------------------------------------------------------------- 3. console


def test_user_mistakes_log_one_line_each_and_no_traceback(
    url: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    notes = {"path": upload(url, "notes.jpg", b"shopping list\n" * 20), "meta": META}
    mistakes = {  # (endpoint, inputs) -> what the one console line names
        "No photo": ("colorize", photo_args("colorize", None)),
        "'notes.jpg': not an image": ("colorize", photo_args("colorize", notes)),
        "batch: 'notes.jpg': not an image": ("batch", [[notes], "colornet_tiny", 0.3]),
    }
    capfd.readouterr()
    for api, data in mistakes.values():
        call(url, api, data)
    console = capfd.readouterr()
    # (The model's "loaded ..." line is INFO, and no mistake.)
    records = [r for r in caplog.records if r.name == "demo" and r.levelno >= logging.WARNING]
    assert "Traceback" not in console.err + console.out
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in records), records
    assert len(records) == len(mistakes), [r.getMessage() for r in records]
    for said, record in zip(mistakes, records, strict=True):
        assert said in record.getMessage()
