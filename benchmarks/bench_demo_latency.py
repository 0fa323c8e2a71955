"""End-to-end latency of the demo against the same colorization done in-process.

For each model the demo offers (tiny stand-ins when no trained weights are present), one
1024x768 photo is colorized N times three ways, interleaved so that all three see the same load
on a shared machine:

- library:  ``Colorizer.colorize(path, return_uncertainty=True)`` (decode + model + compose);
- handler:  the demo's own handler in-process (adds the grey "before", the uncertainty
            picture and PNG encoding of everything it returns);
- server:   ``gradio_client`` -> a real demo server on localhost -> back (adds upload,
            queueing, Gradio's file cache and downloading every returned file);
- and, for scale, an empty request (``/models``): the HTTP + queue round trip alone.

Prints median / p95 and the overhead ratios server/library and handler/library, and writes
them with the machine and the command to results/demo_latency.csv.

    python -m benchmarks.bench_demo_latency                     # models in weights/
    python -m benchmarks.bench_demo_latency --n 30 --models-dir weights
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REPO = Path(__file__).resolve().parents[1]

import gradio  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402

import demo as demo_module  # noqa: E402
from colorizer.atomic import atomic_text  # noqa: E402
from colorizer.checkpoint import save_checkpoint  # noqa: E402
from colorizer.models import create_model  # noqa: E402
from colorizer.provenance import invocation, machine_string, utc_now  # noqa: E402

log = logging.getLogger("bench_demo_latency")

# A real landscape photo that is exactly 1024x768 (see examples/ATTRIBUTION.md).
PHOTO = REPO / "examples" / "picos_de_europa.jpg"


def tiny_models(folder: Path) -> None:
    """Stand-ins when no trained weights exist: one classification, one regression model."""
    torch.manual_seed(0)
    save_checkpoint(folder / "colornet_tiny.pt", create_model("colornet_tiny"))
    save_checkpoint(folder / "streetside_tiny.pt", create_model("streetside_tiny"))


def stats(seconds: list[float]) -> tuple[float, float]:
    a = np.asarray(seconds)
    return float(np.median(a)), float(np.percentile(a, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, default=REPO / "weights")
    parser.add_argument("--n", type=int, default=20, help="timed requests per model and way")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--photo", type=Path, default=PHOTO)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "demo_latency.csv")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    command = invocation(speed_env=True)

    tmp = Path(tempfile.mkdtemp(prefix="bench-demo-"))
    models_dir = args.models_dir
    probe = demo_module.ColorizeApp(demo_module.DemoConfig(models_dir=models_dir, device="cpu"))
    stand_in = not probe.zoo.names
    if stand_in:
        print(f"no trained weights in {models_dir}: timing tiny stand-in models instead")
        models_dir = tmp / "models"
        models_dir.mkdir()
        tiny_models(models_dir)

    # The in-process side: the same app class the server runs, on its own scratch folder.
    app = demo_module.ColorizeApp(
        demo_module.DemoConfig(models_dir=models_dir, device="cpu", scratch_dir=tmp / "scratch")
    )
    blocks = demo_module.build_demo(models_dir=models_dir, device="cpu", scratch_dir=tmp / "srv")
    blocks.queue()
    _, url, _ = blocks.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    client = Client(url, verbose=False, download_files=str(tmp / "downloads"))
    w, h = Image.open(args.photo).size

    rows = []
    try:
        for label in app.zoo.names:
            loaded = app.zoo.get(label)
            t = loaded.default_temperature
            slider_t = t if t is not None else 0.38  # the regression model ignores it

            def library(loaded=loaded, t=t) -> None:
                loaded.colorizer.colorize(str(args.photo), temperature=t, return_uncertainty=True)

            def handler(label=label, slider_t=slider_t) -> None:
                app.colorize(str(args.photo), label, slider_t)

            def server(label=label, slider_t=slider_t) -> None:
                out = client.predict(
                    handle_file(str(args.photo)), label, slider_t, api_name="/colorize"
                )
                assert Image.open(out[0]).size == (w, h)

            def floor() -> None:  # a request that does no work: HTTP + queue round trip
                client.predict(api_name="/models")

            ways = {"library": library, "handler": handler, "server": server, "floor": floor}
            for _ in range(args.warmup):
                for fn in ways.values():
                    fn()
            times: dict[str, list[float]] = {k: [] for k in ways}
            for _ in tqdm(range(args.n), desc=label, unit="req"):
                for name, fn in ways.items():
                    t0 = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t0)
            lib_med, lib_p95 = stats(times["library"])
            hd_med, hd_p95 = stats(times["handler"])
            srv_med, srv_p95 = stats(times["server"])
            floor_med, _ = stats(times["floor"])
            rows.append(
                {
                    "model": label,
                    "kind": loaded.kind,
                    "stand_in": stand_in,
                    "image": f"{args.photo.name} {w}x{h}",
                    "n": args.n,
                    "library_median_s": round(lib_med, 4),
                    "library_p95_s": round(lib_p95, 4),
                    "handler_median_s": round(hd_med, 4),
                    "handler_p95_s": round(hd_p95, 4),
                    "server_median_s": round(srv_med, 4),
                    "server_p95_s": round(srv_p95, 4),
                    "empty_request_median_s": round(floor_med, 4),
                    "server_over_library": round(srv_med / lib_med, 2),
                    "handler_over_library": round(hd_med / lib_med, 2),
                }
            )
    finally:
        blocks.close()

    # Other work on a shared machine slows every way alike (they are interleaved) but widens
    # p95; the load average at the end says how busy it was.
    machine = f"{machine_string('cpu')}; gradio {gradio.__version__}"
    date = utc_now()
    print(f"\n{machine}\n{command}\n")
    print(
        f"{'model':<18}{'library med/p95 s':>20}{'handler med/p95 s':>20}"
        f"{'server med/p95 s':>20}{'empty req':>11}{'server/lib':>12}{'handler/lib':>12}"
    )
    for r in rows:
        print(
            f"{r['model']:<18}"
            f"{r['library_median_s']:>11.3f} /{r['library_p95_s']:>6.3f}"
            f"{r['handler_median_s']:>13.3f} /{r['handler_p95_s']:>6.3f}"
            f"{r['server_median_s']:>13.3f} /{r['server_p95_s']:>6.3f}"
            f"{r['empty_request_median_s']:>11.3f}"
            f"{r['server_over_library']:>11.2f}x{r['handler_over_library']:>11.2f}x"
        )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_text(args.out) as f:
        writer = csv.DictWriter(f, fieldnames=[*rows[0], "machine", "command", "date"])
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "machine": machine, "command": command, "date": date})
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
