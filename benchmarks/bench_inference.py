"""Inference speed of cunet, eccv16 and streetside side by side, and our Lab vs skimage's.

    python -m benchmarks.bench_inference                    # writes results/bench_inference.csv
    python -m benchmarks.bench_inference --batch 8 --reps 5 --devices cpu cuda

Measures, on CPU (and CUDA when present), in ONE run so the numbers share a machine state:

1. batch throughput at 256x256: forward + decode (predict_ab) of a batch, images/s;
2. one 12-megapixel photo (4000x3000) end to end through Colorizer.colorize: resize, Lab,
   forward, decode, a*b* upsampling, full-resolution Lab -> RGB;
3. our rgb_to_lab + lab_to_rgb against skimage.color.rgb2lab + lab2rgb on the same 12 MP photo.

Random weights: speed does not depend on them. Each figure is the median of --reps timed runs
after one warm-up, the contenders interleaved (A, B, C, A, B, C, ...). Ratios are printed against a baseline measured in the same run (eccv16 for
the models, skimage for Lab). The CSV records the command, machine and load average.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from colorizer.inference import STRIP_PIXELS, Colorizer, predict_ab
from colorizer.lab import lab_to_rgb, rgb_to_lab
from colorizer.models import create_model
from colorizer.provenance import invocation, machine_info, utc_now

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


def make_photo(w: int, h: int) -> np.ndarray:
    """A deterministic 'photo': smooth colour gradients plus noise, (h, w, 3) uint8."""
    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    img = np.empty((h, w, 3), np.uint8)
    img[..., 0] = (255 * (0.2 + 0.6 * x * (1 - y))).astype(np.uint8)
    img[..., 1] = (255 * (0.3 + 0.5 * y)).astype(np.uint8)
    img[..., 2] = (255 * (0.6 - 0.4 * x * y)).astype(np.uint8)
    img ^= rng.integers(0, 8, (h, w, 3), dtype=np.uint8)  # texture, so nothing is constant
    return img


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
                return predict_ab(model, L)

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


def bench_lab(cfg: BenchConfig, device: str, photo: np.ndarray) -> list[dict]:
    rgb8 = (
        torch.from_numpy(photo).to(device).permute(2, 0, 1)
    )  # (3, H, W) uint8, as inference has it
    mp = photo.shape[0] * photo.shape[1] / 1e6
    bench = f"lab_roundtrip_{photo.shape[1]}x{photo.shape[0]}"
    # The same conversion in horizontal strips of ~STRIP_PIXELS, as Colorizer.compose does it:
    # the working set stays in cache instead of streaming 144 MB temporaries through memory.
    rows_per = max(1, STRIP_PIXELS // photo.shape[1])

    def ours_strips() -> None:
        for r0 in range(0, photo.shape[0], rows_per):
            lab_to_rgb(rgb_to_lab(rgb8[:, r0 : r0 + rows_per]))

    # Each thread count as its own group with its own skimage run: on a busy machine torch's
    # threads wait on each other at every op, skimage (numpy) runs on one thread anyway, and
    # switching torch's thread count between calls would itself cost more than the work.
    default_threads = torch.get_num_threads()
    thread_counts = sorted({1, default_threads}) if device == "cpu" else [default_threads]
    rows = []
    for n in thread_counts:
        torch.set_num_threads(n)
        fns: dict[str, Callable[[], object]] = {
            "ours": lambda: lab_to_rgb(rgb_to_lab(rgb8)),
            "ours strips": ours_strips,
        }
        if cfg.skimage and device == "cpu":
            from skimage.color import lab2rgb, rgb2lab

            fns["skimage"] = lambda: lab2rgb(rgb2lab(photo))
        try:
            timed = interleaved_times(fns, cfg.reps, device)
        finally:
            torch.set_num_threads(default_threads)
        for name, times in timed.items():
            rows.append(row(f"{bench}_{n}thread", name, device, 1, times, mp, "MP/s"))
            rows[-1]["threads"] = "1" if name == "skimage" else str(n)
            if "strips" in name:
                rows[-1]["note"] = f"{rows_per}-row strips as in Colorizer.compose"
            log.info(
                "lab round trip, %s, torch %d thread(s): %.3f s", name, n, rows[-1]["median_s"]
            )
    if cfg.skimage and device == "cpu":
        # Same answer as skimage, or the timing means nothing.
        from skimage.color import lab2rgb, rgb2lab

        ours = lab_to_rgb(rgb_to_lab(rgb8[:, :200, :200])).permute(1, 2, 0).cpu().numpy()
        err = float(np.abs(lab2rgb(rgb2lab(photo[:200, :200])) - ours).max())
        rows[-1]["note"] = f"max abs diff vs ours {err:.1e}"
        log.info("max |ours - skimage| on the round trip: %.2e", err)
    return rows


def add_ratios(rows: list[dict], baseline: str) -> None:
    """speedup = how many times faster than the baseline measured in this run (>1 = faster)."""
    for r in rows:
        base_name = "skimage" if r["benchmark"].startswith("lab") else baseline
        base = next(
            (
                b
                for b in rows
                if b["benchmark"] == r["benchmark"]
                and b["model"] == base_name
                and (b["device"] == r["device"] or base_name == "skimage")
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

    photo = make_photo(cfg.photo_w, cfg.photo_h)
    rows: list[dict] = []
    start = time.perf_counter()
    for device in devices:
        rows += bench_models(cfg, device, photo)
        rows += bench_lab(cfg, device, photo)
    add_ratios(rows, cfg.baseline)
    elapsed = time.perf_counter() - start

    command = invocation()
    stamp = utc_now()
    load_after = os.getloadavg()[0]
    for r in rows:
        r.update(
            host=info["host"],
            cpu=info["cpu"],
            cpu_count=info["cpu_count"],
            threads=r.get("threads", "1" if r["model"] == "skimage" else info["torch_threads"]),
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
        "date",
        "command",
    ]
    with open(out, "w", newline="") as f:
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

    print(
        f"\n{'benchmark':<32}{'model':<17}{'device':<7}{'median s':>10}{'throughput':>16}{'speedup':>9}  vs"
    )
    for r in rows:
        thr = f"{r['throughput']:.2f} {r['unit']}"
        print(
            f"{r['benchmark']:<32}{r['model']:<17}{r['device']:<7}{r['median_s']:>10.3f}{thr:>16}"
            f"{r['speedup_vs_baseline']:>8.2f}x  {r['baseline']}"
        )
    for device in devices:
        for bench in {r["benchmark"] for r in rows if not r["benchmark"].startswith("lab")}:
            by = {r["model"]: r for r in rows if r["benchmark"] == bench and r["device"] == device}
            if "cunet" in by and "eccv16" in by:
                ratio = by["eccv16"]["median_s"] / by["cunet"]["median_s"]
                print(
                    f"cunet/eccv16 speed ratio, {bench} on {device}: {ratio:.2f}x "
                    f"({'cunet faster' if ratio > 1 else 'eccv16 faster'})"
                )
    for r in rows:
        if r["benchmark"].startswith("lab") and r["model"] != "skimage" and r["device"] == "cpu":
            ratio = r["speedup_vs_baseline"]
            verdict = "ours beats skimage" if ratio > 1 else "OURS IS SLOWER THAN SKIMAGE"
            print(
                f"Lab round trip {r['benchmark'].split('_', 2)[2]}: {r['model']} {r['median_s']:.3f} s "
                f"-> {ratio:.2f}x skimage's speed ({verdict})"
            )
    print(f"\nwrote {out} in {elapsed:.0f} s (load average {load_before:.2f} -> {load_after:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
