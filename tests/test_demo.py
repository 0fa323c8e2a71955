"""The live demo, end to end: a real Gradio server on a free port, driven by gradio_client.

Models are tiny ones saved by the test into a temporary models folder (never the shipped
weights), and every image is made here, so the file runs anywhere in a few seconds.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

import demo as demo_module  # noqa: E402
from colorizer.bins import Decoding  # noqa: E402
from colorizer.checkpoint import save_checkpoint  # noqa: E402
from colorizer.models import create_model  # noqa: E402

from conftest import free_port

REPO = Path(__file__).resolve().parents[1]
# The checkpoint's own default temperature, deliberately not the registry's (0.4), so a test can
# tell that the slider's default comes from the file.
CLS_T = 0.27


def photo(path: Path, size: tuple[int, int] = (97, 61), mode: str = "RGB") -> Path:
    """A small structured photo-like picture: gradients plus a bright disc, odd size."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = x / max(w - 1, 1)
    g = y / max(h - 1, 1)
    b = ((x - w / 2) ** 2 + (y - h / 2) ** 2 < (min(w, h) / 3) ** 2).astype(np.float32)
    rgb = (np.stack([r, g, 0.3 + 0.6 * b], -1) * 255).astype(np.uint8)
    Image.fromarray(rgb, "RGB").convert(mode).save(path)
    return path


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)  # the same tiny networks on every run
    cls = create_model("colornet_tiny")
    # A fresh init predicts almost flat colour distributions, where temperature barely matters;
    # a trained model is confident. Sharpen the head to behave like one.
    with torch.no_grad():
        cls.head.weight.normal_(0.0, 10.0)
    save_checkpoint(d / "colornet_tiny.pt", cls, decoding=Decoding(CLS_T))
    save_checkpoint(d / "streetside_tiny.pt", create_model("streetside_tiny"))
    return d


@pytest.fixture(scope="module")
def server(models_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    scratch = tmp_path_factory.mktemp("scratch")
    # eccv16 is also looked up in torch hub's cache: point that at an empty folder so a machine
    # that has the official file cached still sees exactly the test's models.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
        app = demo_module.build_demo(models_dir=models_dir, device="cpu", scratch_dir=scratch)
    app.queue()
    port = free_port()
    _, url, _ = app.launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True
    )
    client = Client(url, verbose=False, download_files=str(tmp_path_factory.mktemp("dl")))
    yield client
    client.close() if hasattr(client, "close") else None
    app.close()


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return photo(tmp_path_factory.mktemp("img") / "scene.png")


def colorize(client: Client, path: Path | None, model: str, temperature: float = CLS_T):
    return client.predict(
        handle_file(str(path)) if path is not None else None,
        model,
        temperature,
        api_name="/colorize",
    )


def assert_still_serving(client: Client, sample: Path) -> None:
    color, *_ = colorize(client, sample, "colornet_tiny")
    assert Image.open(color).size == Image.open(sample).size


def test_models_endpoint_lists_saved_checkpoints(server: Client, models_dir: Path) -> None:
    info = server.predict(api_name="/models")
    names = [m["name"] for m in info["available"]]
    assert names == ["colornet_tiny", "streetside_tiny"]
    # Paths inside the models folder, named by the folder, never where the server keeps it.
    assert info["models_dir"] == models_dir.name
    assert info["available"][0]["weights"] == f"{models_dir.name}/colornet_tiny.pt"
    assert str(models_dir.parent) not in json.dumps(info)
    # No weights/default.pt here: the first model found is the one a page starts with.
    assert info["default"] == "colornet_tiny"
    # eccv16's official file is absent here: the server knows where it should go.
    assert info["missing"]["eccv16"] == f"{models_dir.name}/colorization_release_v2-9b330a0b.pth"


@pytest.mark.parametrize("model", ["colornet_tiny", "streetside_tiny"])
def test_colorize_every_model_full_resolution(server: Client, sample: Path, model: str) -> None:
    color, slider, uncertainty, download, info = colorize(server, sample, model)
    src = Image.open(sample)
    out = Image.open(color)
    assert out.size == src.size and out.mode == "RGB"
    assert Image.open(download).size == src.size
    before, after = slider
    assert Image.open(before).size == src.size and Image.open(after).size == src.size
    # The "before" side is the input as decoded (a JPEG preview of it).
    shown = np.asarray(Image.open(before).convert("RGB"), dtype=np.int16)
    assert np.abs(shown - np.asarray(src.convert("RGB"), dtype=np.int16)).mean() < 3
    if model == "colornet_tiny":  # classification: an entropy map at full size
        assert Image.open(uncertainty).size == src.size
        assert "temperature 0.27" in info
    else:  # regression models have no distribution, hence no uncertainty
        assert uncertainty is None
        assert "regression" in info


def test_temperature_changes_classification_output(server: Client, sample: Path) -> None:
    vivid = np.asarray(Image.open(colorize(server, sample, "colornet_tiny", 0.05)[0]), np.int16)
    mean = np.asarray(Image.open(colorize(server, sample, "colornet_tiny", 1.0)[0]), np.int16)
    assert np.abs(vivid - mean).mean() > 2.0


def test_model_change_sets_checkpoint_default_temperature(server: Client) -> None:
    slider, about = server.predict("colornet_tiny", api_name="/model_defaults")
    assert slider["value"] == pytest.approx(CLS_T) and slider["interactive"] is True
    assert "0.27" in about
    # A regression model has no temperature: the slider is switched off, not moved.
    slider, _ = server.predict("streetside_tiny", api_name="/model_defaults")
    assert slider["interactive"] is False and "value" not in slider


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def bad_inputs(tmp: Path, sample: Path) -> dict[str, tuple[Path | None, str]]:
    png = sample.read_bytes()
    huge = tmp / "huge.png"
    # 10000 x 9000 = 90 MP of 1-bit pixels: a few kB on disk, over the library's 80 MP limit.
    Image.new("1", (10_000, 9_000)).save(huge)
    return {
        "non_image": (write_bytes(tmp / "notes.txt", b"just some text\n" * 20), "not an image"),
        "corrupt": (write_bytes(tmp / "noise.jpg", b"\xff\xd8\xff\xe0" + os.urandom(2000)), ""),
        "truncated": (write_bytes(tmp / "cut.png", png[: len(png) // 2]), "truncated"),
        "huge": (huge, "MP limit"),
        "zero_bytes": (write_bytes(tmp / "empty.jpg", b""), "empty"),
        "no_upload": (None, "No photo"),
    }


@pytest.mark.parametrize(
    "case", ["non_image", "corrupt", "truncated", "huge", "zero_bytes", "no_upload"]
)
def test_bad_input_clear_error_and_server_keeps_serving(
    server: Client, sample: Path, tmp_path: Path, case: str
) -> None:
    path, expected = bad_inputs(tmp_path, sample)[case]
    with pytest.raises(AppError) as err:
        colorize(server, path, "colornet_tiny")
    message = str(err.value)
    assert expected.lower() in message.lower()
    if path is not None:
        # The message names the user's file, not the server's temp path.
        assert path.name in message and "/tmp/gradio" not in message
    assert_still_serving(server, sample)


def test_unknown_model_is_a_clear_error(server: Client, sample: Path) -> None:
    # Gradio's dropdown refuses it before the handler runs, naming the valid choices.
    with pytest.raises(AppError, match="nope is not in the list of choices"):
        colorize(server, sample, "nope")
    assert_still_serving(server, sample)


def test_compare_runs_every_model(server: Client, tmp_path: Path) -> None:
    src = photo(tmp_path / "gray.png", (80, 50), mode="L")  # a real black-and-white input
    gallery, note = server.predict(handle_file(str(src)), api_name="/compare")
    captions = [item["caption"] for item in gallery]
    assert captions == ["original", "colornet_tiny (T=0.27)", "streetside_tiny"]
    assert note == "2 models compared."
    for item in gallery:
        assert Image.open(item["image"]).size == (80, 50)
    # Classification and regression models do not paint the same picture.
    a, b = (np.asarray(Image.open(g["image"]).convert("RGB"), np.int16) for g in gallery[1:])
    assert np.abs(a - b).mean() > 0.5


def test_batch_zip_and_bad_files_reported(server: Client, tmp_path: Path) -> None:
    good = [
        photo(tmp_path / "a.png", (40, 30)),
        photo(tmp_path / "b.jpg", (33, 47)),
        photo(tmp_path / "c.png", (64, 64), mode="LA"),  # grey + alpha: an odd mode
    ]
    (tmp_path / "dup").mkdir()
    good.append(photo(tmp_path / "dup" / "a.png", (20, 20)))  # same name as the first
    bad = write_bytes(tmp_path / "broken.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 50)
    files = [handle_file(str(p)) for p in [*good, bad]]
    zip_path, report = server.predict(files, "colornet_tiny", 0.4, api_name="/batch")
    rows = report["data"]
    status = {r[0]: r[1] for r in rows}
    assert status["broken.png"] == "error"
    assert [r[1] for r in rows].count("ok") == 4
    with zipfile.ZipFile(zip_path) as zf:
        names = sorted(zf.namelist())
        assert names == ["a_2_color.png", "a_color.png", "b_color.png", "c_color.png"]
        sizes = {n: Image.open(io.BytesIO(zf.read(n))).size for n in names}
    assert sizes["a_color.png"] == (40, 30) and sizes["a_2_color.png"] == (20, 20)
    assert sizes["b_color.png"] == (33, 47) and sizes["c_color.png"] == (64, 64)


def test_batch_of_only_bad_files_reports_without_zip(server: Client, tmp_path: Path) -> None:
    bad = write_bytes(tmp_path / "x.jpg", b"nope")
    zip_path, report = server.predict(
        [handle_file(str(bad))], "colornet_tiny", 0.4, api_name="/batch"
    )
    assert zip_path is None
    assert report["data"][0][:2] == ["x.jpg", "error"]


def test_models_load_once_and_hidden_files_are_ignored(
    models_dir: Path, sample: Path, tmp_path: Path
) -> None:
    d = tmp_path / "models"
    d.mkdir()
    for f in models_dir.glob("*.pt"):
        (d / f.name).write_bytes(f.read_bytes())
    (d / ".colornet_tiny.pt.123.tmp").write_bytes(b"half written")
    (d / ".hidden.pt").write_bytes(b"x")
    app = demo_module.ColorizeApp(
        demo_module.DemoConfig(models_dir=d, device="cpu", scratch_dir=tmp_path / "s")
    )
    assert app.zoo.names == ["colornet_tiny", "streetside_tiny"]
    first = app.zoo.get("colornet_tiny")
    app.colorize(str(sample), "colornet_tiny", 0.3)
    app.compare(str(sample))
    assert app.zoo.get("colornet_tiny") is first  # cached, not reloaded


def test_broken_checkpoint_is_a_clear_error_not_a_crash(tmp_path: Path, sample: Path) -> None:
    (tmp_path / "broken.pt").write_bytes(b"this is not a checkpoint")
    app = demo_module.ColorizeApp(
        demo_module.DemoConfig(models_dir=tmp_path, device="cpu", scratch_dir=tmp_path / "s")
    )
    assert app.zoo.names == ["broken"]
    with pytest.raises(demo_module.DemoError, match="Cannot load model 'broken'"):
        app.colorize(str(sample), "broken", None)


def start_demo_process(models: Path, env: dict[str, str] | None = None):
    """`python demo.py` on a free port as a user starts it; -> (process, url) once it serves."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "demo.py"),
            "--port",
            str(port),
            "--models-dir",
            str(models),
            "--device",
            "cpu",
        ],  # fmt: skip
        cwd=REPO,
        env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return proc, url
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise AssertionError(f"demo did not start:\n{proc.stdout.read()}") from None
            time.sleep(0.3)


def test_cli_refuses_cuda_without_gpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(SystemExit) as exc:
        demo_module.main(["--device", "cuda", "--models-dir", str(tmp_path)])
    assert exc.value.code == 2 and "no CUDA GPU" in capsys.readouterr().err


@pytest.mark.cuda
def test_colorize_on_cuda(models_dir: Path, sample: Path, tmp_path: Path) -> None:
    app = demo_module.ColorizeApp(
        demo_module.DemoConfig(models_dir=models_dir, device="cuda", scratch_dir=tmp_path)
    )
    color, *_ = app.colorize(str(sample), "colornet_tiny", 0.3)
    assert str(app.zoo.get("colornet_tiny").colorizer.device).startswith("cuda")
    assert Image.open(color).size == Image.open(sample).size


def test_rescan_picks_up_added_replaced_and_removed_weights(
    models_dir: Path, sample: Path, tmp_path: Path
) -> None:
    # A live server: a checkpoint copied into its folder becomes usable after /rescan, one
    # replaced in place is reloaded (not served from the cache), one deleted disappears.
    d = tmp_path / "models"
    d.mkdir()
    (d / "colornet_tiny.pt").write_bytes((models_dir / "colornet_tiny.pt").read_bytes())
    app = demo_module.build_demo(models_dir=d, device="cpu", scratch_dir=tmp_path / "s")
    app.queue()
    _, url, _ = app.launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True
    )
    try:
        client = Client(url, verbose=False, download_files=str(tmp_path / "dl"))
        names = lambda: [m["name"] for m in client.predict(api_name="/models")["available"]]  # noqa: E731
        assert names() == ["colornet_tiny"]
        before = np.asarray(Image.open(colorize(client, sample, "colornet_tiny")[0]))

        (d / "extra.pt").write_bytes((models_dir / "streetside_tiny.pt").read_bytes())
        torch.manual_seed(123)  # different weights under the same file name
        other = create_model("colornet_tiny")
        with torch.no_grad():
            other.head.weight.normal_(0.0, 10.0)
        save_checkpoint(d / "colornet_tiny.pt", other, decoding=Decoding(CLS_T))
        assert names() == ["colornet_tiny"]  # nothing changes until asked
        text, *_ = client.predict("colornet_tiny", "colornet_tiny", api_name="/rescan")
        assert "**extra**" in text and names() == ["colornet_tiny", "extra"]
        color, *_ = colorize(client, sample, "extra")
        assert Image.open(color).size == Image.open(sample).size
        after = np.asarray(Image.open(colorize(client, sample, "colornet_tiny")[0]))
        assert np.abs(after.astype(int) - before.astype(int)).mean() > 1.0  # the new weights

        (d / "extra.pt").unlink()
        client.predict("extra", "extra", api_name="/rescan")
        assert names() == ["colornet_tiny"]
        with pytest.raises(AppError, match="extra"):  # Gradio's own check or ours
            colorize(client, sample, "extra")
    finally:
        app.close()


# ----------------------------------------------------------------------------- issue 13


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def serve(models: Path, tmp_path: Path):
    """A live demo on ``models`` -> (Blocks, Client); close the Blocks when done."""
    app = demo_module.build_demo(models_dir=models, device="cpu", scratch_dir=tmp_path / "s")
    app.queue()
    _, url, _ = app.launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True
    )
    return app, Client(url, verbose=False, download_files=str(tmp_path / "dl"))


def test_no_model_selected_says_so(server: Client, sample: Path) -> None:
    # Models exist, none was picked: before, the answer claimed no weights were found at all.
    with pytest.raises(AppError, match=r"No model selected: choose one in the Model list"):
        colorize(server, sample, None)
    with pytest.raises(AppError, match="No model selected"):
        server.predict([handle_file(str(sample))], None, 0.4, api_name="/batch")
    assert_still_serving(server, sample)


@pytest.mark.parametrize("mode", ["I;16", "CMYK"])
def test_photo_input_hands_the_library_the_upload_unchanged(
    server: Client, models_dir: Path, tmp_path: Path, mode: str
) -> None:
    # The page's image input shows the photo, but 16-bit and CMYK files must reach the library
    # as uploaded (a plain gr.Image would convert them to 8-bit RGB first, clipping 16-bit
    # values): the server's result equals the library's on the same file.
    base = Image.open(photo(tmp_path / "base.png", (90, 60)))
    if mode == "I;16":
        src = tmp_path / "deep.png"
        deep = np.asarray(base.convert("L"), np.uint16) * 257
        Image.fromarray(deep).save(src)
    else:
        src = tmp_path / "print.jpg"
        base.convert("CMYK").save(src, quality=95)
    assert Image.open(src).mode == mode
    color, *_ = colorize(server, src, "colornet_tiny")
    from colorizer.inference import Colorizer

    expected = Colorizer(models_dir / "colornet_tiny.pt", device="cpu").colorize(
        src, temperature=CLS_T
    )
    np.testing.assert_array_equal(np.asarray(Image.open(color)), np.asarray(expected))


def test_progress_is_reported_stage_by_stage(server: Client, tmp_path: Path) -> None:
    # Big enough that each stage outlasts Gradio's 10 ms progress tick.
    big = photo(tmp_path / "big.png", (1600, 1000))
    job = server.submit(handle_file(str(big)), "colornet_tiny", CLS_T, api_name="/colorize")
    job.result(timeout=120)

    async def updates() -> list:
        return [u async for u in job]

    import asyncio

    seen = [
        (unit.desc, unit.progress)
        for u in asyncio.run(updates())
        for unit in (getattr(u, "progress_data", None) or [])
    ]
    descs = [d for d, _ in seen]
    assert "Colorizing 1600x1000 px" in descs and "Saving the full-resolution PNG" in descs
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions)


def test_compare_skips_an_unreadable_checkpoint_and_says_which(
    models_dir: Path, sample: Path, tmp_path: Path
) -> None:
    d = tmp_path / "models"
    d.mkdir()
    (d / "colornet_tiny.pt").write_bytes((models_dir / "colornet_tiny.pt").read_bytes())
    (d / "broken.pt").write_bytes(b"PK\x03\x04 half of a checkpoint")
    app, client = serve(d, tmp_path)
    try:
        gallery, note = client.predict(handle_file(str(sample)), api_name="/compare")
        assert [g["caption"] for g in gallery] == ["original", "colornet_tiny (T=0.27)"]
        assert Image.open(gallery[1]["image"]).size == Image.open(sample).size
        assert note.startswith("1 model compared. Skipped 1:")
        assert "'broken'" in note and "models/broken.pt" in note and "truncated" in note
        assert str(tmp_path) not in note
        # the broken file alone is still a clear error, not a crash
        with pytest.raises(AppError, match="Cannot load model 'broken' from models/broken.pt"):
            colorize(client, sample, "broken")
        assert_still_serving(client, sample)
    finally:
        app.close()


def test_missing_downloadable_models_are_offered_from_their_registry_entry(
    tmp_path: Path, monkeypatch
) -> None:
    """The page names no family: any entry with a URL (eccv16's, or a made-up colornet's) is
    offered for download from that URL; one without is to be trained or copied."""
    import dataclasses

    import colorizer.models as models

    fake = dataclasses.replace(
        models._REGISTRY["colornet_tiny"], name="hub_tiny", weights="hub_tiny.pth",
        url="https://example.org/hub_tiny.pth", description="A made-up downloadable model",
    )  # fmt: skip
    monkeypatch.setitem(models._REGISTRY, "hub_tiny", fake)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # nothing in a real hub cache
    app = demo_module.ColorizeApp(
        demo_module.DemoConfig(models_dir=tmp_path / "models", device="cpu", scratch_dir=tmp_path)
    )
    help_text = app.missing_markdown()
    assert "[hub_tiny.pth](https://example.org/hub_tiny.pth)" in help_text
    assert f"({models.model_info('eccv16')['url']})" in help_text
    assert "`models/landscape.pt` is missing" in help_text


def test_answers_show_no_absolute_server_paths(tmp_path: Path, sample: Path) -> None:
    d = tmp_path / "models"
    d.mkdir()
    (d / "broken.pt").write_bytes(b"not a checkpoint")
    app = demo_module.ColorizeApp(
        demo_module.DemoConfig(models_dir=d, device="cpu", scratch_dir=tmp_path / "s")
    )
    with pytest.raises(demo_module.DemoError) as err:
        app.colorize(str(sample), "broken", None)
    texts = [str(err.value), app.status_markdown(), app.missing_markdown(), app.no_models_message()]
    assert "models/broken.pt" in texts[0] and "`models/`" in texts[1]
    assert "`models/landscape.pt` is missing" in texts[2]
    for text in texts:
        assert str(tmp_path) not in text, text


def test_page_starts_with_the_default_model_and_names_models_in_plain_words(
    models_dir: Path, tmp_path: Path
) -> None:
    from colorizer.models import DEFAULT_MODEL

    d = tmp_path / "models"
    d.mkdir()
    for name in (DEFAULT_MODEL, "seed1_cunet"):  # registry entries, tiny stand-in weights
        (d / f"{name}.pt").write_bytes((models_dir / "colornet_tiny.pt").read_bytes())
    (d / "mine.pt").write_bytes((models_dir / "streetside_tiny.pt").read_bytes())
    app, client = serve(d, tmp_path)
    try:
        config = json.loads(urllib.request.urlopen(client.src + "config", timeout=10).read())
        dropdown = next(c for c in config["components"] if c["props"].get("elem_id") == "model")
        assert dropdown["props"]["value"] == DEFAULT_MODEL
        assert [tuple(c) for c in dropdown["props"]["choices"]] == [
            ("The default outdoor model (default)", DEFAULT_MODEL),
            ("The first seed's system (seed1_cunet)", "seed1_cunet"),
            ("mine (a checkpoint file)", "mine"),
        ]
        slider = next(c for c in config["components"] if c["props"].get("elem_id") == "temperature")
        assert slider["props"]["label"] == "Colour strength / vividness: lower = more vivid"
        # Without default.pt the first model found is preselected.
        (d / f"{DEFAULT_MODEL}.pt").unlink()
        _, _, chosen, _ = client.predict(DEFAULT_MODEL, DEFAULT_MODEL, api_name="/rescan")
        assert chosen["value"] == "seed1_cunet"
        assert [c[1] for c in chosen["choices"]] == ["seed1_cunet", "mine"]
    finally:
        app.close()


def test_cli_starts_without_weights_and_removes_its_temporary_files_at_shutdown(
    models_dir: Path, sample: Path, tmp_path: Path
) -> None:
    """`python demo.py` with an empty models folder still serves a page that says why; with
    weights added and used, `kill` (SIGTERM, as a service manager stops it) removes the scratch
    files (under TMPDIR) and Gradio's cached uploads, results and examples (GRADIO_TEMP_DIR).
    One process for both: starting one costs most of the test's time."""
    models = tmp_path / "models"
    models.mkdir()
    scratch, cache = tmp_path / "tmp", tmp_path / "gradio"
    scratch.mkdir()
    cache.mkdir()
    proc, url = start_demo_process(
        models, env={"TMPDIR": str(scratch), "GRADIO_TEMP_DIR": str(cache)}
    )
    try:
        client = Client(url, verbose=False, download_files=str(tmp_path / "dl"))
        info = client.predict(api_name="/models")
        assert info["available"] == []
        with pytest.raises(AppError, match="No trained weights found"):
            colorize(client, sample, None)
        config = urllib.request.urlopen(url + "config", timeout=5).read().decode()
        assert "No trained weights found" in config

        (models / "colornet_tiny.pt").write_bytes((models_dir / "colornet_tiny.pt").read_bytes())
        client.predict(None, None, api_name="/rescan")
        colorize(client, sample, "colornet_tiny")
        client.predict(handle_file(str(sample)), api_name="/compare")
        assert files_under(scratch) and files_under(cache)  # it did write temporary files
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert files_under(scratch) == [] and files_under(cache) == [], out


def test_importing_the_demo_writes_nothing_beside_it() -> None:
    # Gradio writes a .pyi stub next to any module that subclasses one of its components.
    assert demo_module.__file__ and not (REPO / "demo.pyi").exists()
