"""One re-colorization after a hint change, against the automatic forward, side by side.

    python -m benchmarks.bench_hints                 # writes results/hints/bench_hints.csv/.md
    python -m benchmarks.bench_hints --model runs/x.pt --threads 2 --sizes 128 256

What the demo pays when a user adds, moves or removes a hint: the network's forward with the
new hint map, then the decode of its distribution to a*b* (``Colorizer.predict``), at each
working size (issue 23's goal: <= 150 ms at 256 px on 2 CPU threads). Hints enter the decoder
only, so ``Colorizer`` keeps the last photo's encoder output and a hint change re-runs the
decoder alone. The baseline is the same model's automatic forward on a new photo (nothing
kept), measured in the same run; also the whole forward with hints. The three are interleaved
(A, B, C, A, B, C, ...) so a busy machine slows them alike; the ratio is change / automatic.
The hint map itself (``hint_map``, 10 points) is timed apart. Median of --reps after a warm-up.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import time
from pathlib import Path

import torch

from colorizer.atomic import atomic_text, write_text
from colorizer.hints import Hint, hint_map
from colorizer.inference import Colorizer
from colorizer.provenance import invocation, machine_info, utc_now

REPO = Path(__file__).resolve().parents[1]


def timed(fn, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000.0)
    return out


def bench(colorizer: Colorizer, size: int, reps: int, points: int = 10) -> dict[str, float]:
    g = torch.Generator().manual_seed(size)
    L = torch.rand(1, 1, size, size, generator=g) * 100.0

    def some_hints() -> list[Hint]:
        xy = torch.randint(0, size, (points, 2), generator=g).tolist()
        return [Hint(float(x), float(y), (40.0, 20.0), 2.0) for x, y in xy]

    hints = some_hints()
    maps = [hint_map(h, (size, size), (size, size)) for h in (hints, some_hints())]

    def automatic() -> None:  # a new photo: nothing cached
        colorizer.forget_encoding()
        colorizer.predict(L)

    def full_hinted() -> None:  # the same, with hints: the whole forward
        colorizer.forget_encoding()
        colorizer.predict(L, hints=maps[0])

    step = [0]

    def hint_change() -> None:  # the photo's encoder output kept, new hints
        step[0] += 1
        colorizer.predict(L, hints=maps[step[0] % 2])

    runs = {"auto": automatic, "full": full_hinted, "change": hint_change}
    times: dict[str, list[float]] = {k: [] for k in runs}
    for fn in runs.values():
        fn()  # warm-up
    for _ in range(reps):  # interleaved, so a busy machine slows all three alike
        for k, fn in runs.items():
            times[k] += timed(fn, 1)
    build = timed(lambda: hint_map(hints, (size, size), (size, size)), reps)
    a, f, c = (statistics.median(times[k]) for k in ("auto", "full", "change"))
    return {
        "size": size,
        "auto_ms": round(a, 1),
        "full_hinted_ms": round(f, 1),
        "hint_change_ms": round(c, 1),
        "ratio_change_over_auto": round(c / a, 3),
        "hint_map_ms": round(statistics.median(build), 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default", help="a model that takes hints")
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--note", default="", help="what else the machine was running")
    p.add_argument("--out", default=str(REPO / "results" / "hints"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    colorizer = Colorizer(args.model, device="cpu", keep_encoding=True)
    if not colorizer.accepts_hints:
        raise SystemExit(f"error: {args.model} takes no hints")
    rows = [bench(colorizer, s, args.reps) for s in args.sizes]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_text(out / "bench_hints.csv") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = [
        "# Re-colorization after a hint change (network + decode), CPU",
        "",
        f"`{invocation()}` on {utc_now()}; {machine_info()}; {args.threads} threads; "
        f"load average {os.getloadavg()[0]:.2f}; model {args.model}. {args.note}",
        "",
        "| working size | automatic (new photo) ms | 10 hints, whole forward ms "
        "| after a hint change ms | change / automatic | hint map ms |",
        "|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r['size']} | {r['auto_ms']} | {r['full_hinted_ms']} | {r['hint_change_ms']} "
            f"| {r['ratio_change_over_auto']} | {r['hint_map_ms']} |"
            for r in rows
        ),
        "",
        "Network + decode (`Colorizer.predict`), median of the interleaved runs. After a hint "
        "change the photo's encoder output is kept (hints enter the decoder only), so only the "
        "decoder and the decode re-run. Goal: <= 150 ms at 256 px on 2 threads.",
    ]
    write_text(out / "bench_hints.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
