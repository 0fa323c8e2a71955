"""Survey server under load: votes per second and vote latency, against a bare-endpoint floor.

    python -m benchmarks.bench_survey [--participants 40] [--rounds 3] [--photos 5] [--catch 2]
        [--out results/survey_bench.csv] [--votes-out results/survey/demo_votes.csv]

Three processes: a real `survey.py serve --simulated` on a free port; a bare Starlette app
(uvicorn, same settings) answering the same two routes with canned trials, the floor that
any web framework costs; and a client process (this file with --client) that drives one of
them with N threads, one keep-alive `http.client` connection each (a light client: no
gradio_client, whose own cost hid the server's). Per vote the client does what Gradio's HTTP
API asks: POST /gradio_api/call/vote -> event id, GET /gradio_api/call/vote/<id> -> the
result as a server-sent event. Latency is measured around that pair; votes/s over the whole
run of N participants voting at once with no think time (the worst case).

Rows, side by side in one run, the floor and the survey alternating, `--rounds` times:

- store:  VoteStore.append alone in this process (write + fsync), the floor under a vote;
- floor:  the bare endpoint, 1 and N participants;
- survey: the survey server's HTTP API, 1 and N participants;
- page:   the same server, voting as the participant page does (the Left/Right buttons'
          Gradio events, one POST /gradio_api/run/predict per vote), 1 and N.

The summary compares the medians over rounds: survey votes/s as a share of the floor's at
N participants, and the survey's p95. Simulated participants pick with Bradley-Terry
probabilities from hidden qualities, so the votes file doubles as a demo for `survey.py
analyze` (see results/survey/); the server runs with --simulated, so every analysis of it
says so in its titles.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import math
import os
import random
import re
import shutil
import socket
import statistics
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

from colorizer.atomic import atomic_text, write_text
from colorizer.provenance import invocation, machine_string, utc_now
from survey_core import Manifest, PrepareConfig, VoteStore, prepare_survey
from survey_core.design import wrong_colors

ROOT = Path(__file__).resolve().parents[1]

# Hidden qualities of the simulated systems (BT log-strengths); "real" and "catch_wrong" make
# attentive participants pass catch trials with probability sigmoid(6) = 99.8 %.
QUALITY = {"zhang": 0.8, "ours": 0.5, "gray": -0.5, "real": 3.0, "catch_wrong": -3.0}
API = "/gradio_api/call"


@dataclass
class BenchConfig:
    participants: int = 40
    photos: int = 5
    catch: int = 2
    rounds: int = 3
    store_appends: int = 300
    seed: int = 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_survey(folder: Path, cfg: BenchConfig) -> Manifest:
    """The bundled example photos (shown at 64 px: image size does not change a vote's cost)
    against three made-up systems."""
    photos = folder / "photos"
    photos.mkdir(parents=True)
    examples = sorted((ROOT / "examples").glob("*.jpg"))[: cfg.photos]
    if len(examples) < cfg.photos:
        raise SystemExit(f"--photos {cfg.photos}: only {len(examples)} example photos")
    for p in examples:
        Image.open(p).convert("RGB").resize((64, 64)).save(photos / f"{p.stem}.png")
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
    from survey_core import VOTE_FIELDS

    lat = []
    with VoteStore(folder / "store_only.csv") as store:
        t0 = time.perf_counter()
        for i in range(n):
            row = {f: "x" for f in VOTE_FIELDS} | {"participant": "p", "trial": f"t{i}"}
            t = time.perf_counter()
            store.append(row)
            lat.append(time.perf_counter() - t)
        wall = time.perf_counter() - t0
    return summarize("store", 1, 0, lat, wall)


def summarize(setting: str, participants: int, rnd: int, lat: list[float], wall: float) -> dict:
    ms = np.array(lat) * 1000
    return {
        "setting": setting,
        "participants": participants,
        "round": rnd,
        "votes": len(lat),
        "wall_s": round(wall, 3),
        "votes_per_s": round(len(lat) / wall, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "max_ms": round(float(ms.max()), 1),
    }


# ----------------------------------------------------------------------------- the floor


def floor_app(trials: int):
    """A bare Starlette app with the survey API's two routes and canned trial replies.

    The least any server answering this client pattern must do: parse the POST, hand out an
    event id, send one server-sent event back. It counts votes per token so its
    participants finish after as many trials as the survey's.
    """
    import secrets

    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    results: dict[str, list] = {}
    counts: dict[str, int] = {}

    def trial(token: str, n: int) -> dict:
        status = "trial" if n < trials else "done"
        return {"status": status, "token": token, "trial": f"t{n}", "recorded": n > 0,
                "left": "/img/a.png", "right": "/img/b.png", "index": n + 1, "total": trials}  # fmt: skip

    async def call(request):
        name = request.path_params["name"]
        data = (await request.json())["data"]
        if name == "start":
            token = secrets.token_hex(8)
            counts[token] = 0
        else:
            token = data[0]
            counts[token] += 1
        event_id = secrets.token_hex(16)
        results[event_id] = [trial(token, counts[token])]
        return JSONResponse({"event_id": event_id})

    async def result(request):
        # One complete event in a plain response, as survey.py answers: the least it takes.
        data = results.pop(request.path_params["event_id"])
        return Response(f"event: complete\ndata: {json.dumps(data)}\n\n",
                        media_type="text/event-stream")  # fmt: skip

    return Starlette(
        routes=[
            Route(API + "/{name}", call, methods=["POST"]),
            Route(API + "/{name}/{event_id}", result, methods=["GET"]),
        ]
    )


# ----------------------------------------------------------------------------- the client


class Api:
    """One participant's keep-alive connection, speaking Gradio's POST-then-GET HTTP API."""

    def __init__(self, host: str, port: int):
        self.conn = http.client.HTTPConnection(host, port, timeout=120)

    def call(self, name: str, *args) -> dict:
        body = json.dumps({"data": list(args)})
        self.conn.request(
            "POST", f"{API}/{name}", body=body, headers={"Content-Type": "application/json"}
        )
        r = self.conn.getresponse()
        payload = r.read()
        if r.status != 200:
            raise RuntimeError(f"POST {name}: {r.status} {payload[:200]!r}")
        event_id = json.loads(payload)["event_id"]
        self.conn.request("GET", f"{API}/{name}/{event_id}")
        r = self.conn.getresponse()
        text = r.read().decode()
        for block in text.split("\n\n"):
            lines = dict(ln.split(": ", 1) for ln in block.splitlines() if ": " in ln)
            if lines.get("event") == "complete":
                return json.loads(lines["data"])[0]
            if lines.get("event") == "error":
                raise RuntimeError(f"{name}: {lines.get('data')}")
        raise RuntimeError(f"{name}: no result in {text[:300]!r}")


class Page:
    """One browser tab's votes, as the page sends them: the Gradio event of the Start, Left
    and Right buttons, one POST /gradio_api/run/predict each (the page's events skip the
    queue), answered with the page's new values; turned into the API's dict."""

    def __init__(self, host: str, port: int, events: dict[str, tuple[int, int]]):
        import secrets

        self.conn = http.client.HTTPConnection(host, port, timeout=120)
        self.session = secrets.token_hex(6)
        self.events = events  # button -> (fn_index, trigger id)

    @staticmethod
    def find_events(url: str) -> dict[str, tuple[int, int]]:
        cfg = json.loads(urllib.request.urlopen(url + "/config").read())
        ids = {c.get("props", {}).get("elem_id"): c["id"] for c in cfg["components"]}
        out = {}
        for i, dep in enumerate(cfg["dependencies"]):
            for name in ("start", "left", "right"):
                if dep.get("backend_fn") and [ids[f"survey-{name}"], "click"] in dep["targets"]:
                    out[name] = (dep.get("id", i), ids[f"survey-{name}"])
        return out

    def call(self, name: str, *args) -> dict:
        button, data = ("start", list(args)) if name == "start" else (args[2], list(args[:2]))
        fn, trigger = self.events[button]
        body = json.dumps({"data": data, "event_data": None, "fn_index": fn,
                           "trigger_id": trigger, "session_hash": self.session})  # fmt: skip
        self.conn.request("POST", "/gradio_api/run/predict", body=body,
                          headers={"Content-Type": "application/json"})  # fmt: skip
        r = self.conn.getresponse()
        payload = r.read()
        if r.status != 200:
            raise RuntimeError(f"{button}: {r.status} {payload[:200]!r}")
        out = json.loads(payload)["data"]
        token, trial, pair, message = out[0], out[1], out[7], out[9]
        srcs = re.findall(r'src="(/img/[^"]+)"', pair)
        return {"status": "trial" if trial else "done", "token": token, "trial": trial,
                "left": srcs[0] if trial else "", "right": srcs[1] if trial else "",
                "recorded": name == "vote" and not message}  # fmt: skip


def run_client(url: str, n: int, seed: int, survey: str | None, page: bool = False) -> dict:
    """N participants at once: each starts, waits for all, then votes to the end."""
    host, port = url.split("//", 1)[1].split(":")
    events = Page.find_events(url) if page else {}
    system_of = {}
    if survey:  # the simulator peeks at the manifest to choose; the server does not know
        m = Manifest.load(survey)
        system_of = {f"/img/{k}": v["system"] for k, v in m.images.items()}
    started = threading.Barrier(n + 1)
    go = threading.Event()
    lat: list[list[float]] = [[] for _ in range(n)]
    errors: list[BaseException] = []

    def participant(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        api = Page(host, int(port), events) if page else Api(host, int(port))
        try:
            d = api.call("start", True)
        except BaseException as e:
            errors.append(e)
            d = {"status": "error"}
        started.wait()
        go.wait()
        try:
            while d["status"] == "trial":
                if system_of:
                    q = QUALITY[system_of[d["left"]]] - QUALITY[system_of[d["right"]]]
                    choice = "left" if rng.random() < 1 / (1 + math.exp(-q)) else "right"
                else:
                    choice = rng.choice(["left", "right"])
                t = time.perf_counter()
                nxt = api.call("vote", d["token"], d["trial"], choice)
                lat[i].append(time.perf_counter() - t)
                if not nxt["recorded"]:
                    raise RuntimeError(f"vote not recorded: {nxt}")
                d = nxt
        except BaseException as e:  # reported after the join
            errors.append(e)

    threads = [threading.Thread(target=participant, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    started.wait()  # everyone has their first trial: the clock measures votes only
    t0 = time.perf_counter()
    go.set()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} participants failed, first: {errors[0]!r}")
    return {"lat": [x for xs in lat for x in xs], "wall": wall}


def client_process(
    url: str, n: int, seed: int, survey: str | None, page: bool = False
) -> tuple[list[float], float]:
    """run_client in a process of its own, so the client's Python is not the server's."""
    cmd = [sys.executable, "-m", "benchmarks.bench_survey", "--client", url, "--participants", str(n),
           "--seed", str(seed)] + (["--survey", survey] if survey else []) + (["--page"] if page else [])  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"client failed:\n{out.stderr[-3000:]}")
    d = json.loads(out.stdout.strip().splitlines()[-1])
    return d["lat"], d["wall"]


# ----------------------------------------------------------------------------- servers


def wait_until_up(url: str, proc: subprocess.Popen, log: Path, path: str) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise RuntimeError(log.read_text())
        try:
            urllib.request.urlopen(url + path, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not start:\n{log.read_text()}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--participants", type=int, default=40)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--photos", type=int, default=5)
    p.add_argument("--catch", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/survey_bench.csv")
    p.add_argument("--votes-out", default="", help="keep the survey server's votes CSV here")
    p.add_argument("--note", default="", help="recorded with the figures (e.g. other load)")
    # Internal: the client and the floor run as processes of their own.
    p.add_argument("--client", default="", help=argparse.SUPPRESS)
    p.add_argument("--survey", default="", help=argparse.SUPPRESS)
    p.add_argument("--page", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--floor-port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--floor-trials", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.client:
        d = run_client(args.client, args.participants, args.seed, args.survey or None, args.page)
        print(json.dumps(d))
        return
    if args.floor_port:
        import uvicorn

        uvicorn.run(floor_app(args.floor_trials), host="127.0.0.1", port=args.floor_port,
                    log_level="warning")  # fmt: skip
        return

    cfg = BenchConfig(args.participants, args.photos, args.catch, args.rounds, seed=args.seed)
    command = invocation(speed_env=True)
    info = machine_string()  # before the run, so the load average is the others' load

    tmp = Path(tempfile.mkdtemp(prefix="bench-survey-"))
    procs: list[subprocess.Popen] = []
    try:
        manifest = make_survey(tmp, cfg)
        n_trials = len(manifest.trials)
        rows = [bench_store(tmp, cfg.store_appends)]
        env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
        survey_port, floor_port = free_port(), free_port()
        log = tmp / "server.log"
        with open(log, "w") as logf:
            procs.append(subprocess.Popen(
                [sys.executable, str(ROOT / "survey.py"), "serve", "--survey", str(tmp / "survey"),
                 "--votes", str(tmp / "votes.csv"), "--port", str(survey_port), "--simulated"],
                cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT, env=env,
            ))  # fmt: skip
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "benchmarks.bench_survey", "--floor-port", str(floor_port),
                 "--floor-trials", str(n_trials)],
                cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT, env=env,
            ))  # fmt: skip
        survey_url = f"http://127.0.0.1:{survey_port}"
        floor_url = f"http://127.0.0.1:{floor_port}"
        wait_until_up(survey_url, procs[0], log, "/config")
        wait_until_up(floor_url, procs[1], log, API + "/start/x")
        targets = {
            "floor": (floor_url, None, False),
            "survey": (survey_url, str(tmp / "survey"), False),
            "page": (survey_url, str(tmp / "survey"), True),
        }
        seed = cfg.seed
        for rnd in range(1, cfg.rounds + 1):
            for n in (1, cfg.participants):
                for setting, (url, survey, page) in targets.items():
                    seed += 1
                    lat, wall = client_process(url, n, seed, survey, page)
                    rows.append(summarize(setting, n, rnd, lat, wall))
                    print(" ".join(f"{k}={v}" for k, v in rows[-1].items()), flush=True)
        if args.votes_out:
            Path(args.votes_out).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tmp / "votes.csv", args.votes_out)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)

    def median(setting: str, n: int, key: str) -> float:
        return statistics.median(
            r[key] for r in rows if r["setting"] == setting and r["participants"] == n
        )

    n = cfg.participants
    for setting in targets:
        for k in (1, n):
            rows.append(
                {"setting": setting, "participants": k, "round": "median",
                 **{c: median(setting, k, c) for c in ("votes_per_s", "p50_ms", "p95_ms", "max_ms")}}
            )  # fmt: skip
    share = median("survey", n, "votes_per_s") / median("floor", n, "votes_per_s")
    p95 = median("survey", n, "p95_ms")
    verdict = (
        f"survey (HTTP API) at {n} participants: {share:.0%} of the floor's votes/s (target "
        f">= 50 %), p95 {p95:.0f} ms (target < 250 ms): "
        + ("target met" if share >= 0.5 and p95 < 250 else "target NOT met")
        + f"; the page's own vote event: {median('page', n, 'votes_per_s'):.0f} votes/s, "
        f"p95 {median('page', n, 'p95_ms'):.0f} ms"
    )
    when = utc_now()
    note = args.note
    for r in rows:
        r.update(trials_per_participant=n_trials, machine=info, note=note, command=command,
                 date=when)  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_text(out) as f:
        w = csv.DictWriter(f, fields)
        w.writeheader()
        w.writerows(rows)
    cols = ["setting", "participants", "round", "votes_per_s", "p50_ms", "p95_ms", "max_ms"]
    table = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    table += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    md = out.with_suffix(".md")
    write_text(
        md,
        "# Survey server under load (bench_survey.py)\n\n"
        f"**{verdict}**\n\nCommand: `{command}`\n\nMachine: {info}\n\n"
        + (f"Note: {note}\n\n" if note else "")
        + f"{n_trials} trials per participant; latency = one vote (POST + GET), client-side.\n\n"
        + "\n".join(table)
        + "\n",
    )
    print("\n".join(table))
    print(f"{verdict}\nmachine: {info}\nnote: {note}\nwritten: {out}, {md}")


if __name__ == "__main__":
    main()
