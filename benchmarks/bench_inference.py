"""Inference speed side by side: full-resolution colorization against skimage, folders
against the seeds' per-photo pipeline, onnxruntime against torch, and the models.

    python -m benchmarks.bench_inference                    # writes results/bench_inference.csv
    python -m benchmarks.bench_inference --reps 5 --devices cpu cuda --note "training on 1 core"

Measures, on CPU (and CUDA when present), in ONE run so the numbers share a machine state:

1. a 12-megapixel photo (4000x3000, a real landscape upscaled, with 8-bit grain) through
   ``Colorizer.colorize`` with the shipped model, from a JPEG file and from an array, against
   skimage's Lab round trip (rgb2lab + lab2rgb) of the same photo, the general
   rgb_to_l + lab_to_rgb chain the pipeline used before (same strips), and our float Lab round
   trip; plus the error of the result against the exact (float64) conversion, in 8-bit levels;
2. a folder of photos (examples/) through ``colorize_many`` against the seeds' per-photo
   pipeline (skimage rgb2lab / lab2rgb per photo at full resolution, float64) with the same
   model, resize and upsampling: photos per second, PNGs written by both;
3. the network alone, torch against onnxruntime (``--backend onnx``) at each model's
   input_size, batch 1, same thread count;
4. batch throughput at 256x256 of cunet, eccv16 and streetside (random weights), and a 12 MP
   photo end to end through each.

Each figure is the median of --reps timed runs after one warm-up, the contenders interleaved
(A, B, C, A, B, C, ...) so that a busy machine slows all of them alike. Ratios are printed
against a baseline measured in the same run. The CSV records the command, machine, load
average and --note (say there what else the machine was running).
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from colorizer.atomic import atomic_text
from colorizer.imageio import list_images
from colorizer.inference import (
    STRIP_PIXELS,
    Colorizer,
    colorize_many,
    output_to_ab,
    resize_rows,
)
from colorizer.lab import lab_to_rgb, rgb_to_l, rgb_to_lab
from colorizer.models import create_model, find_weights
from colorizer.provenance import invocation, machine_info, utc_now

REPO = Path(__file__).resolve().parents[1]

log = logging.getLogger("bench_inference")


@dataclass
class BenchConfig:
    models: tuple[str, ...] = ("cunet", "eccv16", "streetside")
    baseline: str = "eccv16"
    devices: tuple[str, ...] = ("cpu", "cuda")
    size: int = 256
    batch_cpu: int = 2
    batch_cuda: int = 32
    photo_w: int = 4000
    photo_h: int = 3000
    reps: int = 3
    skimage: bool = True
    out: str = "results/bench_inference.csv"
    photo_source: str = "examples/forest_stream.jpg"
    shipped: str = ""  # the model of parts 1-2: 'default' when its weights are here, else landscape
    folder: str = "examples"
    onnx_models: tuple[str, ...] = ("landscape", "effunet", "streetside", "eccv16")
    note: str = ""


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def interleaved_times(
    fns: dict[str, Callable[[], object]], reps: int, device: str
) -> dict[str, list[float]]:
    """Wall times of each function, ``reps`` rounds of A, B, C, A, B, C, ... after one untimed
    warm-up each. Interleaving gives every contender the same share of whatever else the
    machine is doing, so their ratio holds even when the absolute times drift."""
    for fn in fns.values():
        fn()
        sync(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return times


def real_photo(source: Path, w: int, h: int) -> np.ndarray:
    """A real landscape at w x h (bicubic), with 8-bit grain so neighbouring pixels differ as in
    a camera's photo: (h, w, 3) uint8. Its colours leave the gamut where a photo's do."""
    img = Image.open(source).convert("RGB").resize((w, h), Image.Resampling.BICUBIC)
    arr = np.array(img)
    arr ^= np.random.default_rng(0).integers(0, 8, arr.shape, dtype=np.uint8)
    return arr


def row(
    bench: str, model: str, device: str, batch: int, times: list[float], work: float, unit: str
) -> dict:
    med = statistics.median(times)
    return dict(
        benchmark=bench,
        model=model,
        device=device,
        batch=batch,
        reps=len(times),
        median_s=med,
        min_s=min(times),
        throughput=work / med,
        unit=unit,
    )


def bench_models(cfg: BenchConfig, device: str, photo: np.ndarray) -> list[dict]:
    batch = cfg.batch_cuda if device.startswith("cuda") else cfg.batch_cpu
    torch.manual_seed(0)
    L = torch.rand(batch, 1, cfg.size, cfg.size, device=device) * 100.0
    forwards: dict[str, Callable[[], object]] = {}
    photos: dict[str, Callable[[], object]] = {}
    for name in cfg.models:
        model = create_model(name).to(device).eval()
        colorizer = Colorizer(model, device=device)

        def forward(model: torch.nn.Module = model) -> torch.Tensor:
            with (
                torch.inference_mode(),
                torch.autocast("cuda", torch.float16, enabled=device.startswith("cuda")),
            ):
                return output_to_ab(model, model(L))

        forwards[name] = forward
        photos[name] = lambda c=colorizer: c.colorize(photo)

    rows = []
    for name, times in interleaved_times(forwards, cfg.reps, device).items():
        rows.append(row(f"batch_{cfg.size}", name, device, batch, times, batch, "img/s"))
        log.info(
            "%-10s %-4s %d^2 batch %d: %.3f s", name, device, cfg.size, batch, rows[-1]["median_s"]
        )
    mp = photo.shape[0] * photo.shape[1] / 1e6
    bench = f"photo_{photo.shape[1]}x{photo.shape[0]}"
    for name, times in interleaved_times(photos, cfg.reps, device).items():
        rows.append(row(bench, name, device, 1, times, mp, "MP/s"))
        log.info(
            "%-10s %-4s %.0f MP photo end to end: %.3f s", name, device, mp, rows[-1]["median_s"]
        )
    return rows


def general_compose(c: Colorizer, img: Image.Image, ab: torch.Tensor) -> Image.Image:
    """Colorizer.compose as it was before the 8-bit tables: rgb_to_l and lab_to_rgb (the
    general float chain) per strip, same strips and upsampling, for the side-by-side."""
    width, height = img.size
    abw = F.interpolate(ab[None].float().cpu(), size=(ab.shape[-2], width), mode="bilinear")[0]
    src = np.array(img, dtype=np.uint8)
    out = np.empty_like(src)
    rows = max(1, STRIP_PIXELS // width)
    for r0 in range(0, height, rows):
        r1 = min(height, r0 + rows)
        rgb = torch.from_numpy(src[r0:r1]).permute(2, 0, 1)
        lab = torch.cat([rgb_to_l(rgb), resize_rows(abw, r0, r1, height)])
        out[r0:r1] = (lab_to_rgb(lab) * 255.0).round_().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(out, "RGB")


def exact_error(c: Colorizer, photo: np.ndarray, got: Image.Image) -> tuple[int, float]:
    """(max, share > 0) of |result - exact| in 8-bit levels over the whole photo, the exact
    result being the float64 chain: the photo's L joined with the same a*b*, lab_to_rgb."""
    img = Image.fromarray(photo)
    ab = c.predict(c.working_l(img)).ab.double().cpu()
    ab = F.interpolate(ab, size=photo.shape[:2], mode="bilinear", align_corners=False)[0]
    L = rgb_to_l(torch.from_numpy(photo).permute(2, 0, 1).double() / 255.0)
    exact = (lab_to_rgb(torch.cat([L, ab])) * 255.0).round_().to(torch.uint8)
    diff = (torch.from_numpy(np.asarray(got)).permute(2, 0, 1).int() - exact.int()).abs()
    return int(diff.max()), float((diff > 0).float().mean())


def bench_photo(cfg: BenchConfig, device: str, photo: np.ndarray, tmp: Path) -> list[dict]:
    """Part 1: a 12 MP photo end to end against skimage's Lab round trip, in one group."""
    from skimage.color import lab2rgb, rgb2lab

    c = Colorizer(cfg.shipped, device=device)
    jpeg = tmp / "photo.jpg"
    Image.fromarray(photo).save(jpeg, quality=92)
    img = Image.fromarray(photo)
    ab = c.predict(c.working_l(img)).ab[0]
    rgb8 = torch.from_numpy(photo).permute(2, 0, 1).to(device)
    rows_per = max(1, STRIP_PIXELS // photo.shape[1])

    def our_lab_strips() -> None:
        for r0 in range(0, photo.shape[0], rows_per):
            lab_to_rgb(rgb_to_lab(rgb8[:, r0 : r0 + rows_per]))

    fns: dict[str, Callable[[], object]] = {
        "colorize(jpeg path)": lambda: c.colorize(jpeg),
        "colorize(array)": lambda: c.colorize(photo),
        "compose, general Lab chain": lambda: general_compose(c, img, ab),
        "compose, 8-bit tables": lambda: c.compose(img, ab),
        "ours rgb_to_lab+lab_to_rgb": our_lab_strips,
    }
    if device == "cpu":
        onnx_c = Colorizer(cfg.shipped, device=device, backend="onnx")
        fns["colorize(array), onnx"] = lambda: onnx_c.colorize(photo)
        if cfg.skimage:
            fns["skimage rgb2lab+lab2rgb"] = lambda: lab2rgb(rgb2lab(photo))
    mp = photo.shape[0] * photo.shape[1] / 1e6
    bench = f"photo_{photo.shape[1]}x{photo.shape[0]}_{cfg.shipped}"
    base = (
        "skimage rgb2lab+lab2rgb"
        if "skimage rgb2lab+lab2rgb" in fns
        else "compose, general Lab chain"
    )
    rows = []
    for name, times in interleaved_times(fns, cfg.reps, device).items():
        rows.append(row(bench, name, device, 1, times, mp, "MP/s"))
        rows[-1]["base"] = base
        log.info("%s %s: %.3f s", bench, name, rows[-1]["median_s"])
    worst, share = exact_error(c, photo, c.colorize(photo))
    general_worst, general_share = exact_error(c, photo, general_compose(c, img, ab))
    for r in rows:
        if r["model"] == "colorize(array)":
            r["note"] = (
                f"vs exact float64 conversion: max {worst} level(s), {share:.2%} of values off"
            )
        if r["model"] == "compose, general Lab chain":
            r["note"] = f"vs exact: max {general_worst}, {general_share:.2%} off"
    log.info(
        "12 MP result vs the exact conversion: max %d level(s), %.3f%% off", worst, 100 * share
    )
    return rows


def seeds_colorize_file(model: torch.nn.Module, src: Path, dst: Path) -> None:
    """The seeds' way, per photo: skimage rgb2lab of the whole photo (float64), its L resized
    to the network's size, the network, a*b* upsampled, skimage lab2rgb, PNG. Same model,
    resize and upsampling as ours, so only the pipeline differs."""
    from skimage.color import lab2rgb, rgb2lab

    rgb = np.asarray(Image.open(src).convert("RGB"))
    lab = rgb2lab(rgb)
    L = torch.from_numpy(lab[..., 0].astype(np.float32))[None, None]
    small = F.interpolate(L, size=tuple(model.input_size), mode="bilinear", align_corners=False)
    with torch.inference_mode():
        ab = output_to_ab(model, model(small))
    ab = F.interpolate(ab, size=rgb.shape[:2], mode="bilinear", align_corners=False)[0]
    lab[..., 1:] = ab.permute(1, 2, 0).double().numpy()
    out = (lab2rgb(lab) * 255.0).round().astype(np.uint8)
    Image.fromarray(out).save(dst)


def bench_folder(cfg: BenchConfig, device: str, tmp: Path) -> list[dict]:
    """Part 2: a folder through colorize_many against the seeds' per-photo pipeline."""
    folder = REPO / cfg.folder
    photos = list_images(folder, recursive=False)
    c = Colorizer(cfg.shipped, device=device)
    fns: dict[str, Callable[[], object]] = {
        "colorize_many": lambda: colorize_many(
            c, folder, tmp / "ours", overwrite=True, recursive=False, progress=False
        ),
    }
    if device == "cpu":
        onnx_c = Colorizer(cfg.shipped, device=device, backend="onnx")
        fns["colorize_many, onnx"] = lambda: colorize_many(
            onnx_c, folder, tmp / "onnx", overwrite=True, recursive=False, progress=False
        )
        if cfg.skimage:
            (tmp / "seeds").mkdir(exist_ok=True)
            fns["seeds' per-photo (skimage)"] = lambda: [
                seeds_colorize_file(c.model, p, tmp / "seeds" / f"{p.stem}.png") for p in photos
            ]
    mp = sum(np.prod(Image.open(p).size) for p in photos) / 1e6
    bench = f"folder_{len(photos)}x{mp / len(photos):.1f}MP_{cfg.shipped}"
    base = "seeds' per-photo (skimage)" if "seeds' per-photo (skimage)" in fns else "colorize_many"
    rows = []
    for name, times in interleaved_times(fns, cfg.reps, device).items():
        rows.append(row(bench, name, device, len(photos), times, len(photos), "photos/s"))
        rows[-1]["base"] = base
        log.info("%s %s: %.3f s", bench, name, rows[-1]["median_s"])
    return rows


def bench_onnx(cfg: BenchConfig) -> list[dict]:
    """Part 3: the network alone, torch against onnxruntime, CPU, batch 1 at input_size."""
    from colorizer.onnx import OnnxModel

    fns: dict[str, Callable[[], object]] = {}
    rows = []
    for name in cfg.onnx_models:
        torch.manual_seed(0)  # registry architectures at random init: speed needs no weights
        model = create_model(name).eval()
        t0 = time.perf_counter()
        onnx_model = OnnxModel.from_module(model)
        export_s = time.perf_counter() - t0
        L = torch.rand(1, 1, *model.input_size) * 100.0

        def run_torch(m: torch.nn.Module = model, x: torch.Tensor = L) -> None:
            with torch.inference_mode():
                m(x)

        fns = {"torch": run_torch, "onnxruntime": lambda o=onnx_model, x=L: o(x)}
        bench = f"network_{name}_{model.input_size[0]}x{model.input_size[1]}"
        for backend, times in interleaved_times(fns, cfg.reps, "cpu").items():
            rows.append(row(bench, backend, "cpu", 1, times, 1, "img/s"))
            rows[-1]["base"] = "torch"
            if backend == "onnxruntime":
                rows[-1]["note"] = f"export + check {export_s:.1f} s, once per process"
            log.info("%s %s: %.4f s", bench, backend, rows[-1]["median_s"])
    return rows


def add_ratios(rows: list[dict], baseline: str) -> None:
    """speedup = how many times faster than the baseline measured in this run (>1 = faster):
    a row's own ``base`` contender in its benchmark, else ``baseline`` (the model rows)."""
    for r in rows:
        base_name = r.get("base", baseline)
        base = next(
            (
                b
                for b in rows
                if b["benchmark"] == r["benchmark"]
                and b["model"] == base_name
                and b["device"] == r["device"]
            ),
            None,
        )
        r["baseline"] = base_name
        r["speedup_vs_baseline"] = base["median_s"] / r["median_s"] if base else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(BenchConfig.models))
    p.add_argument("--devices", nargs="+", default=list(BenchConfig.devices))
    p.add_argument("--batch", type=int, help="batch size (default: 2 on CPU, 32 on CUDA)")
    p.add_argument("--reps", type=int, default=BenchConfig.reps)
    p.add_argument("--photo", default="4000x3000", help="WxH of the end-to-end photo")
    p.add_argument("--no-skimage", action="store_true")
    p.add_argument("--out", default=BenchConfig.out)
    p.add_argument("--photo-source", default=BenchConfig.photo_source, help="photo to upscale")
    p.add_argument(
        "--shipped", help="model of the photo and folder parts (default: 'default', else landscape)"
    )
    p.add_argument("--folder", default=BenchConfig.folder, help="photos for the folder part")
    p.add_argument("--onnx-models", nargs="*", default=list(BenchConfig.onnx_models))
    p.add_argument("--skip", nargs="*", default=[], choices=["photo", "folder", "onnx", "models"])
    p.add_argument("--note", default="", help="what else the machine was doing (recorded)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    w, h = (int(v) for v in a.photo.lower().split("x"))
    cfg = BenchConfig(
        models=tuple(a.models),
        devices=tuple(a.devices),
        reps=a.reps,
        photo_w=w,
        photo_h=h,
        skimage=not a.no_skimage,
        out=a.out,
        photo_source=a.photo_source,
        shipped=a.shipped or ("default" if find_weights("default") else "landscape"),
        folder=a.folder,
        onnx_models=tuple(a.onnx_models),
        note=a.note,
    )
    if a.batch:
        cfg.batch_cpu = cfg.batch_cuda = a.batch
    devices = [d for d in cfg.devices if d == "cpu" or torch.cuda.is_available()]
    info = machine_info()
    load_before = os.getloadavg()[0]
    log.info(
        "machine: %s; load average %.2f",
        ", ".join(f"{k} {v}" for k, v in info.items()),
        load_before,
    )

    photo = real_photo(REPO / cfg.photo_source, cfg.photo_w, cfg.photo_h)
    rows: list[dict] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for device in devices:
            if "photo" not in a.skip:
                rows += bench_photo(cfg, device, photo, Path(tmp))
            if "folder" not in a.skip:
                rows += bench_folder(cfg, device, Path(tmp))
            if "models" not in a.skip:
                rows += bench_models(cfg, device, photo)
        if "onnx" not in a.skip and cfg.onnx_models:
            rows += bench_onnx(cfg)
    add_ratios(rows, cfg.baseline)
    elapsed = time.perf_counter() - start

    command = invocation(speed_env=True)
    stamp = utc_now()
    load_after = os.getloadavg()[0]
    for r in rows:
        r.update(
            host=info["host"],
            cpu=info["cpu"],
            cpu_count=info["cpu_count"],
            threads=r.get("threads", "1" if "skimage" in r["model"] else info["torch_threads"]),
            machine_note=cfg.note,
            torch=info["torch"],
            gpu=info.get("gpu", ""),
            loadavg=f"{load_before:.2f}/{load_after:.2f}",
            date=stamp,
            command=command,
        )
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fields = [
        "benchmark",
        "model",
        "device",
        "batch",
        "reps",
        "median_s",
        "min_s",
        "throughput",
        "unit",
        "baseline",
        "speedup_vs_baseline",
        "note",
        "host",
        "cpu",
        "cpu_count",
        "threads",
        "torch",
        "gpu",
        "loadavg",
        "machine_note",
        "date",
        "command",
    ]
    with atomic_text(out) as f:
        wr = csv.DictWriter(f, fieldnames=fields)
        wr.writeheader()
        for r in rows:
            wr.writerow(
                {
                    k: (f"{v:.4g}" if isinstance(v, float) else v)
                    for k, v in r.items()
                    if k in fields
                }
            )

    print(f"\n{'benchmark':<36}{'contender':<28}{'device':<7}{'median s':>10}{'throughput':>16}")
    for r in rows:
        thr = f"{r['throughput']:.2f} {r['unit']}"
        print(
            f"{r['benchmark']:<36}{r['model']:<28}{r['device']:<7}{r['median_s']:>10.3f}{thr:>16}"
            f"{r['speedup_vs_baseline']:>8.2f}x vs {r['baseline']}  {r.get('note', '')}"
        )
    for device in devices:
        for bench in sorted({r["benchmark"] for r in rows}):
            by = {r["model"]: r for r in rows if r["benchmark"] == bench and r["device"] == device}
            if "cunet" in by and "eccv16" in by:
                ratio = by["eccv16"]["median_s"] / by["cunet"]["median_s"]
                print(
                    f"cunet/eccv16 speed ratio, {bench} on {device}: {ratio:.2f}x "
                    f"({'cunet faster' if ratio > 1 else 'eccv16 faster'})"
                )
    if cfg.note:
        print(f"note: {cfg.note}")
    print(f"\nwrote {out} in {elapsed:.0f} s (load average {load_before:.2f} -> {load_after:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
