"""Survey server under load: votes per second and vote latency with concurrent participants.

    python -m benchmarks.bench_survey [--participants 50] [--photos 5] [--catch 2]
        [--out results/survey_bench.csv] [--votes-out results/survey/demo_votes.csv]

A real `survey.py serve` subprocess on a free port, driven by one gradio_client per simulated
participant (threads), as in the tests. Rows, side by side:

- store:    VoteStore.append alone in this process (write + fsync), the floor under every vote;
- baseline: one participant voting alone through the server;
- loaded:   N participants voting at once (no think time: the worst case for the server).

Latency is measured by the client around each /vote call (request -> next trial back).
Simulated participants pick with Bradley-Terry probabilities from hidden qualities, so the
votes file doubles as a demo for `survey.py analyze` (see results/survey/).
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from colorizer.provenance import invocation, machine_string, utc_now
from colorizer.survey import PrepareConfig, VoteStore, prepare_survey
from colorizer.survey.design import sample_photos, wrong_colors

ROOT = Path(__file__).resolve().parents[1]

# Hidden qualities of the simulated systems (BT log-strengths); "real" and "catch_wrong" make
# attentive participants pass catch trials with probability sigmoid(6) = 99.8 %.
QUALITY = {"zhang": 0.8, "ours": 0.5, "gray": -0.5, "real": 3.0, "catch_wrong": -3.0}


@dataclass
class BenchConfig:
    participants: int = 50
    photos: int = 5
    catch: int = 2
    store_appends: int = 300
    seed: int = 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_survey(folder: Path, cfg: BenchConfig):
    photos = folder / "photos"
    sample_photos(photos, cfg.photos, size=64, seed=cfg.seed)
    makers = {
        "ours": lambda im: im,
        "zhang": lambda im: im.convert("L").convert("RGB"),
        "gray": wrong_colors,
    }
    for name, fn in makers.items():
        (folder / name).mkdir()
        for p in sorted(photos.iterdir()):
            fn(Image.open(p).convert("RGB")).save(folder / name / p.name)
    return prepare_survey(
        PrepareConfig(
            photos,
            [(n, str(folder / n)) for n in makers],
            folder / "survey",
            catch=cfg.catch,
            seed=cfg.seed,
        )
    )


def bench_store(folder: Path, n: int) -> dict:
    from colorizer.survey import VOTE_FIELDS

    lat = []
    with VoteStore(folder / "store_only.csv") as store:
        t0 = time.perf_counter()
        for i in range(n):
            row = {f: "x" for f in VOTE_FIELDS} | {"participant": "p", "trial": f"t{i}"}
            t = time.perf_counter()
            store.append(row)
            lat.append(time.perf_counter() - t)
        wall = time.perf_counter() - t0
    return summarize("store", 1, lat, wall)


def summarize(setting: str, participants: int, lat: list[float], wall: float) -> dict:
    ms = np.array(lat) * 1000
    return {
        "setting": setting,
        "participants": participants,
        "votes": len(lat),
        "wall_s": round(wall, 3),
        "votes_per_s": round(len(lat) / wall, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "max_ms": round(float(ms.max()), 1),
    }


def run_participants(url: str, manifest, n: int, seed: int) -> tuple[list[float], float]:
    from gradio_client import Client

    system_of = {f"/img/{k}": v["system"] for k, v in manifest.images.items()}
    # Clients are made before the clock starts: their set-up is not a vote.
    clients = [Client(url, verbose=False) for _ in range(n)]
    barrier = threading.Barrier(n)
    lat: list[list[float]] = [[] for _ in range(n)]
    errors: list[BaseException] = []

    def participant(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        c = clients[i]
        try:
            barrier.wait()
            d = c.predict(True, api_name="/start")
            while d["status"] == "trial":
                # The simulator peeks at the manifest to decide; the server does not know.
                q = QUALITY[system_of[d["left"]]] - QUALITY[system_of[d["right"]]]
                choice = "left" if rng.random() < 1 / (1 + math.exp(-q)) else "right"
                t = time.perf_counter()
                nxt = c.predict(d["token"], d["trial"], choice, api_name="/vote")
                lat[i].append(time.perf_counter() - t)
                if not nxt["recorded"]:
                    raise RuntimeError(f"vote not recorded: {nxt}")
                d = nxt
        except BaseException as e:  # reported after the join
            errors.append(e)

    threads = [threading.Thread(target=participant, args=(i,)) for i in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} participants failed, first: {errors[0]!r}")
    return [x for xs in lat for x in xs], wall


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--participants", type=int, default=50)
    p.add_argument("--photos", type=int, default=5)
    p.add_argument("--catch", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/survey_bench.csv")
    p.add_argument("--votes-out", default="", help="keep the loaded run's votes CSV here")
    args = p.parse_args(argv)
    cfg = BenchConfig(args.participants, args.photos, args.catch, seed=args.seed)
    command = invocation()
    info = machine_string()  # before the run, so the load average is the others' load

    tmp = Path(tempfile.mkdtemp(prefix="bench-survey-"))
    server = None
    try:
        manifest = make_survey(tmp, cfg)
        rows = [bench_store(tmp, cfg.store_appends)]
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = open(tmp / "server.log", "w")
        server = subprocess.Popen(
            [sys.executable, str(ROOT / "survey.py"), "serve", "--survey", str(tmp / "survey"),
             "--votes", str(tmp / "votes.csv"), "--port", str(port)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/config", timeout=2)
                break
            except OSError:
                if server.poll() is not None:
                    raise RuntimeError((tmp / "server.log").read_text()) from None
                time.sleep(0.3)
        lat, wall = run_participants(url, manifest, 1, cfg.seed)
        rows.append(summarize("baseline", 1, lat, wall))
        lat, wall = run_participants(url, manifest, cfg.participants, cfg.seed + 1)
        rows.append(summarize("loaded", cfg.participants, lat, wall))
        if args.votes_out:
            Path(args.votes_out).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tmp / "votes.csv", args.votes_out)
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)

    base = rows[1]
    when = utc_now()
    for r in rows:
        r["votes_per_s_vs_baseline"] = round(r["votes_per_s"] / base["votes_per_s"], 2)
        r["p95_vs_baseline"] = round(r["p95_ms"] / base["p95_ms"], 2)
        r.update(
            trials_per_participant=len(manifest.trials), machine=info, command=command, date=when
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    cols = ["setting", "participants", "votes", "votes_per_s", "p50_ms", "p95_ms", "max_ms",
            "votes_per_s_vs_baseline", "p95_vs_baseline"]  # fmt: skip
    print(" | ".join(f"{c:>10}" for c in cols))
    for r in rows:
        print(" | ".join(f"{r[c]!s:>10}" for c in cols))
    print(f"machine: {info}\nwritten: {out}")


if __name__ == "__main__":
    main()
