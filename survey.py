"""Blinded realism survey: prepare it, host it, analyse the votes.

    python survey.py prepare --photos DIR --system ours=weights/colornet.pt \\
        --system zhang=zhang_outputs/ --out surveys/s1 [--catch 4] [--mode pairwise|turing]
    python survey.py serve --survey surveys/s1 --votes results/votes.csv \\
        [--host 0.0.0.0 --port 7861 --admin-password X --exposure-ms 0 --max-trials 0]
    python survey.py analyze results/votes.csv --out results/survey/

The rules (tokens, which vote counts, durability) live in survey_core; this file only
builds the web app over them. See docs/survey.md.
"""

import argparse
import gc
import html
import json
import logging
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from colorizer.atomic import check_writable_folder

log = logging.getLogger("survey")

CSS = """
@keyframes survey-hide-0 { to { visibility: hidden; } }
@keyframes survey-hide-1 { to { visibility: hidden; } }
.survey-pair { display: flex; gap: 12px; justify-content: center; }
.survey-pair figure { margin: 0; flex: 1 1 0; min-width: 0; text-align: center; }
.survey-pair img { display: block; margin: 0 auto; max-width: 100%; max-height: 70vh;
                   border-radius: 4px; }
/* The next pair, fetched while this one is shown; kept off screen, never displayed. */
.survey-preload { position: absolute; width: 1px; height: 1px; overflow: hidden;
                  opacity: 0; pointer-events: none; }
.survey-progress-text { font-weight: 600; }
.survey-progress-bar { width: 100%; height: 8px; margin-top: 4px; accent-color: #2563eb; }
.survey-keys { color: #6b7280; font-size: 0.9em; text-align: center; }
#survey-buttons { flex-wrap: nowrap; gap: 8px; }
#survey-buttons > * { min-width: 0; flex: 1 1 0; }
/* A phone: the two photos stay side by side (the answer is "left" or "right") and, with
   the buttons, fit on one screen without scrolling. */
@media (max-width: 640px) {
  .survey-pair { gap: 6px; }
  .survey-pair img { max-height: 46vh; }
  .survey-keys { display: none; }
}
"""

# Left/right arrow keys press the Left/Right photo buttons, while a pair is on screen.
KEYS_JS = """
() => {
  document.addEventListener("keydown", (e) => {
    if (e.repeat || e.altKey || e.ctrlKey || e.metaKey || e.shiftKey) return;
    const id = {ArrowLeft: "survey-left", ArrowRight: "survey-right"}[e.key];
    const tag = e.target && e.target.tagName;
    if (!id || tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") return;
    const button = document.getElementById(id);
    if (!button || button.offsetParent === null || button.disabled) return;  // not shown
    e.preventDefault();
    button.click();
  });
}
"""

# The heading is the survey's own question (the manifest's, the one every trial asks and
# the analysis reports), so the consent screen and the trials say the same thing.
CONSENT = """
## {question}

You will see pairs of colour photographs, one pair at a time, and answer one question about
each pair by clicking the button under the photo you pick. There are no right or wrong
answers for most pairs; go with your first impression. It takes a few minutes.

**What is stored:** your clicks, which pair you saw, on which side, and how long you took,
under a random participant number. Nothing else about you (no name, no e-mail, no IP address)
is stored. You can stop at any time; the answers given so far are kept. To continue later,
keep the page address (it carries your participant number).
"""

# After start/resume, put the token in the page address so a reload or a later visit
# continues the same participant.
TOKEN_TO_URL_JS = """
(token) => {
  if (token) {
    const u = new URL(window.location.href);
    u.searchParams.set("t", token);
    window.history.replaceState(null, "", u.toString());
  }
}
"""


def pair_html(d: dict) -> str:
    """The two photos of a trial; the exposure limit is a CSS animation so no JS is needed."""
    if d.get("status") != "trial":
        return ""
    hide = ""
    if d.get("exposure_ms"):
        # Gradio patches the existing <img> elements instead of making new ones, so a running
        # animation would not restart; alternating its name between trials restarts it.
        name = f"survey-hide-{d['index'] % 2}"
        hide = f' style="animation: {name} 0s linear {int(d["exposure_ms"])}ms forwards"'
    # The next pair's images are fetched now (the server lets the browser keep them), so
    # they appear as soon as this vote is answered.
    preload = "".join(f'<img src="{u}" alt="">' for u in d.get("preload", []))
    return (
        f'<div class="survey-pair" data-trial="{d["trial"]}">'
        f'<figure><img src="{d["left"]}" alt="left photo"{hide}></figure>'
        f'<figure><img src="{d["right"]}" alt="right photo"{hide}></figure></div>'
        f'<div class="survey-preload" aria-hidden="true">{preload}</div>'
    )


def progress_html(d: dict) -> str:
    """'Photo pair k of N' and a bar of the pairs already answered."""
    if d.get("status") != "trial":
        return ""
    k, n = int(d["index"]), int(d["total"])
    return (
        f'<div class="survey-progress-text">Photo pair {k} of {n}</div>'
        f'<progress class="survey-progress-bar" max="{n}" value="{k - 1}" '
        f'aria-label="{k - 1} of {n} answered"></progress>'
    )


def build_blocks(session):
    """The participant app: consent -> trials -> thanks, plus named API endpoints."""
    import gradio as gr

    with gr.Blocks(title="Photo survey") as blocks:
        token = gr.Textbox(visible="hidden", elem_id="survey-token")
        trial = gr.Textbox(visible="hidden", elem_id="survey-trial")
        with gr.Column(visible=True) as consent_col:
            gr.Markdown(CONSENT.format(question=session.manifest.question))
            agree = gr.Checkbox(label="I have read this and agree to take part", value=False)
            start = gr.Button("Start", variant="primary", elem_id="survey-start")
        with gr.Column(visible=False) as trial_col:
            progress = gr.HTML(elem_id="survey-progress")
            question = gr.Markdown(elem_id="survey-question")
            pair = gr.HTML(elem_id="survey-pair")
            with gr.Row(elem_id="survey-buttons"):
                left = gr.Button("Left photo", variant="primary", elem_id="survey-left")
                right = gr.Button("Right photo", variant="primary", elem_id="survey-right")
            gr.Markdown("Keys: &larr; left photo, &rarr; right photo", elem_classes="survey-keys")
        with gr.Column(visible=False) as done_col:
            thanks = gr.Markdown(elem_id="survey-thanks")
        message = gr.Markdown(elem_id="survey-message")

        outputs = [
            token,
            trial,
            consent_col,
            trial_col,
            done_col,
            progress,
            question,
            pair,
            thanks,
            message,
        ]

        def render(d: dict):
            # Every output, every time: measured, skipping the unchanged ones (gr.skip())
            # cost the server more per vote (6.6 ms against 5.5 ms of CPU), not less.
            status = d["status"]
            show_consent = status == "error" and not d.get("token")
            return (
                d.get("token", ""),
                d.get("trial", ""),
                gr.update(visible=show_consent),
                gr.update(visible=status == "trial"),
                gr.update(visible=status == "done"),
                progress_html(d),
                f"### {d['question']}" if status == "trial" else "",
                pair_html(d),
                d.get("message", "") if status == "done" else "",
                d.get("message", "") if status != "done" else "",
            )

        def on_load(request: gr.Request):
            t = request.query_params.get("t") if request is not None else None
            if t:
                return render(session.resume(t))
            # A new visitor already sees the consent screen as built. Rendering it again here
            # would undo a Start clicked before this load event landed (seen on a busy box).
            return tuple(gr.skip() for _ in outputs)

        def on_start(consent: bool):
            return render(session.start(consent))

        def on_left(tok: str, tr: str):
            return render(session.vote(tok, tr, "left"))

        def on_right(tok: str, tr: str):
            return render(session.vote(tok, tr, "right"))

        # queue=False: one POST per click instead of Gradio's queue and its event stream;
        # measured, the server's CPU per page vote fell from 7.7-8.7 to 4.5-5.8 ms.
        private = {"api_visibility": "private", "show_progress": "hidden", "queue": False}
        blocks.load(on_load, None, outputs, **private)
        start.click(on_start, agree, outputs, trigger_mode="once", **private).then(
            None, token, None, js=TOKEN_TO_URL_JS, api_visibility="private"
        )
        # trigger_mode="once" drops clicks while a vote is in flight; the server ignores
        # any repeat anyway (same trial, same participant).
        left.click(on_left, [token, trial], outputs, trigger_mode="once", **private)
        right.click(on_right, [token, trial], outputs, trigger_mode="once", **private)

        # Named API endpoints for gradio_client; each returns a dict with neutral fields only.
        def api_start(consent: bool) -> dict:
            """Give consent; returns a participant token and the first trial."""
            return session.start(consent)

        def api_resume(token: str) -> dict:
            """Current trial of a participant (after a reload or a later visit)."""
            return session.resume(token)

        def api_vote(token: str, trial: str, choice: str) -> dict:
            """Vote 'left' or 'right' on the trial shown; returns the next trial."""
            return session.vote(token, trial, choice)

        async def api_admin(password: str) -> dict:
            """Live counts for the organiser (needs --admin-password)."""
            return await session.admin_async(password)

        gr.api(api_start, api_name="start")
        gr.api(api_resume, api_name="resume")
        gr.api(api_vote, api_name="vote")
        # No concurrency limit: a wrong password waits for its turn in an asyncio sleep (see
        # SurveySession.admin_async), holding no worker thread; a limit would put the right
        # password behind every waiting guess (20 guesses: 19.7 s).
        gr.api(api_admin, api_name="admin", concurrency_limit=None)
    return blocks


def _md_cell(value: object) -> str:
    """Text for one cell of a Markdown table, shown as written: photo and system names may
    hold ``|``, ``*``, ``<`` and the like (prepare refuses only control characters and
    formula starts)."""
    text = "".join("\\" + c if c in "\\`*_[]~#|" else c for c in str(value))
    return html.escape(text, quote=False)


def _md_table(header: list[str], rows: list[list[object]], right: int = 1) -> list[str]:
    """A Markdown table; the columns from ``right`` on are numbers, right-aligned."""
    align = ["---" if i < right else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(map(_md_cell, header)) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(map(_md_cell, r)) + " |" for r in rows]
    return lines


def _pct(k: int, n: int) -> str:
    return f"{100 * k / n:.1f} %" if n else "n/a"


def admin_markdown(d: dict, systems: Sequence[str] = (), photos: Sequence[str] = ()) -> str:
    """The admin page: ``SurveySession.admin_async``'s dict as Markdown tables.

    Formatting only; every count comes from the session (catch trials are not in the
    per-system and per-photo tables, as there). ``systems`` and ``photos`` (the manifest's)
    get a row even before their first vote, with 0."""
    if not d.get("ok"):
        return f"**{_md_cell(d.get('message') or 'Refused.')}**"
    wins: dict = d.get("wins", {})
    per_photo: dict = {p: {} for p in photos} | d.get("per_photo", {})
    per_photo = dict(sorted(per_photo.items()))
    systems = sorted(set(systems).union(wins, *(set(v) for v in per_photo.values())))
    counted = sum(wins.values())
    catch, passed = int(d.get("catch_votes", 0)), int(d.get("catch_passed", 0))
    out = [
        f"Votes stored: **{d.get('votes', 0)}** ({counted} counted, {catch} on catch trials).",
        "",
        "### Participants",
        "",
        *_md_table(
            ["started", "finished", "live (in server memory)"],
            [[d.get("participants", 0), d.get("finished", 0), d.get("live_participants", 0)]],
            right=0,
        ),
        "",
        "### Votes per system (times chosen, catch trials not counted)",
        "",
        *_md_table(
            ["system", "wins", "share of counted votes"],
            [[s, wins.get(s, 0), _pct(wins.get(s, 0), counted)] for s in systems]
            + [["(all)", counted, _pct(counted, counted)]],
        ),
        "",
        "### Catch trials",
        "",
        *_md_table(
            ["catch votes", "passed", "pass rate"], [[catch, passed, _pct(passed, catch)]], right=0
        ),
        "",
        "### Votes per photo (wins of each system)",
        "",
    ]
    if counted:
        rows = [
            [photo, *(c.get(s, 0) for s in systems), sum(c.values())]
            for photo, c in per_photo.items()
        ]
        out += _md_table(["photo", *systems, "votes"], rows)
    else:
        out.append("No counted votes yet.")
    return "\n".join(out) + "\n"


def build_admin_blocks(session):
    """Password-protected live counts, mounted at /admin; participants never reach it.

    The password box submits on Enter, as the button does; the counts are Markdown tables
    (:func:`admin_markdown`). A wrong password waits in ``session.admin_async``."""
    import gradio as gr

    from survey_core import REAL

    with gr.Blocks(title="Survey admin") as blocks:
        gr.Markdown("## Survey admin: live counts")
        pw = gr.Textbox(label="Admin password", type="password", elem_id="admin-password")
        show = gr.Button("Show counts", elem_id="admin-show")
        out = gr.Markdown(elem_id="admin-counts")

        m = session.manifest
        # Every system gets a row (0 before its first win); in Turing mode the real photo too.
        systems = [*m.systems, *([REAL] if m.mode == "turing" else [])]

        async def on_show(password: str) -> str:
            return admin_markdown(await session.admin_async(password), systems, m.photos)

        # No limit, as for the admin API: guesses wait without a thread or a queue place.
        gr.on(
            [pw.submit, show.click],
            on_show,
            pw,
            out,
            api_visibility="private",
            concurrency_limit=None,
        )
    return blocks


# The participant endpoints of Gradio's plain HTTP API, served by routes of our own: each
# endpoint's parameters (names as Gradio's /gradio_api/info gives them) and their types.
HTTP_API: dict[str, tuple[tuple[str, type], ...]] = {
    "start": (("consent", object),),
    "resume": (("token", str),),
    "vote": (("token", str), ("trial", str), ("choice", str)),
}
PENDING_MAX = 10_000  # results whose GET never came are dropped past this many
# Tokens are 37 characters, trial ids 11, choices 5; a longer string is no valid value.
MAX_VALUE_CHARS = 100
# Request bodies larger than this are refused (413) on every route. The survey's largest
# request, a page event, is well under 2 KB; 64 KB leaves room for Gradio's own requests.
MAX_BODY_BYTES = 64 * 1024


async def _plain_reply(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    # The body is not read to the end: the connection cannot be reused, so say so.
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    """ASGI middleware over the whole survey app: no uploads, no large request bodies.

    The survey has no file input, yet Gradio's /gradio_api/upload stored anything anyone
    sent (50 MB tried), and every route accepted bodies of any size (200 MB tried). Uploads
    are refused on every mounted app (403). A body is refused with 413 before it is read
    when its Content-Length is over the limit, and, for a chunked body (no Content-Length),
    as soon as the bytes received pass it; the app then sees the client gone.
    """

    def __init__(self, app, max_body_bytes: int = MAX_BODY_BYTES):
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":  # lifespan (Gradio's start-up), websockets
            await self.app(scope, receive, send)
            return
        # scope["path"] is already percent-decoded; any mount (/ or /admin) and a slash.
        if scope["path"].rstrip("/").endswith("/gradio_api/upload"):
            await _plain_reply(send, 403, "this survey takes no file uploads")
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await _plain_reply(send, 400, "bad Content-Length")
                return
            if int(length) > self.max_body_bytes:
                await _plain_reply(send, 413, f"request body over {self.max_body_bytes} bytes")
                return
        received = 0
        refused = False  # the 413 went out: the app's own reply is dropped
        started = False

        async def limited_receive():
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    refused = True
                    if not started:
                        await _plain_reply(
                            send, 413, f"request body over {self.max_body_bytes} bytes"
                        )
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not refused:  # the app gave up on the cut body: answered with 413 already
                raise


def add_http_api(app, session) -> None:
    """POST /gradio_api/call/NAME {"data": [...]} -> {"event_id"}; GET .../NAME/ID -> the result.

    Gradio's own protocol for scripts (the same requests, the same server-sent event back),
    for start, resume and vote, answered by plain Starlette routes registered ahead of
    Gradio's. Measured (py-spy, 40 participants voting at once through this API): Gradio's
    queue spent most of each vote on its own bookkeeping (a new session state built from
    every component's config per call, the event queue, a pandas summary per event), and
    votes ran at 6 % of what a bare endpoint serves. The rules stay in SurveySession, as for
    the page; the vote is stored (fsync) before the POST answers, so a GET that never comes
    loses nothing. gradio_client speaks the queue's protocol and still goes through Gradio.

    Gradio also advertises POST /gradio_api/call/v2/NAME with the values by name
    ({"token": ..., "trial": ..., "choice": ...}) and the GET at /gradio_api/call/NAME/ID,
    which is ours: so the v2 POST is answered here too, and both GET forms find the event.
    """
    import secrets
    from collections import OrderedDict

    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse, Response

    from survey_core import VoteStoreError

    pending: OrderedDict[str, dict] = OrderedDict()
    ops = {"start": session.start, "resume": session.resume, "vote": session.vote}

    def bad(message: str) -> JSONResponse:
        return JSONResponse({"error": message}, 422)

    def route(name: str):
        params = HTTP_API[name]
        names = [n for n, _ in params]

        async def body(request):
            try:
                return await request.json()
            except (ValueError, RecursionError):  # not JSON, or nested too deep to parse
                return None

        async def run(data: list):
            if not all(isinstance(v, t) for v, (_, t) in zip(data, params, strict=True)):
                return bad(f"{name}: wrong types {data!r}"[:300])
            # Tokens, trial ids and choices are short ASCII; anything else is no valid value
            # (and a non-ASCII token once reached hmac.compare_digest: HTTP 500).
            if any(
                isinstance(v, str) and (len(v) > MAX_VALUE_CHARS or not v.isascii()) for v in data
            ):
                return bad(f"{name}: values are ASCII, at most {MAX_VALUE_CHARS} characters")
            try:
                result = await run_in_threadpool(ops[name], *data)  # may fsync: off the loop
            except VoteStoreError as e:  # the store stopped (a failed fsync): say so, no 500
                log.error("%s: %s", name, e)
                return JSONResponse({"error": "the survey cannot save votes now; try later"}, 503)
            event_id = secrets.token_hex(16)
            pending[event_id] = result
            while len(pending) > PENDING_MAX:
                pending.popitem(last=False)
            return JSONResponse({"event_id": event_id})

        async def call(request):
            d = await body(request)
            data = d.get("data") if isinstance(d, dict) else None
            if not isinstance(data, list):
                return bad('body must be {"data": [...]}')
            if len(data) != len(params):
                return bad(f"{name} takes {len(params)} values")
            return await run(data)

        async def call_v2(request):
            d = await body(request)
            if not isinstance(d, dict) or set(d) != set(names):
                return bad(f"body must be a JSON object with exactly {names}")
            return await run([d[n] for n in names])

        async def result(request):
            d = pending.pop(request.path_params["event_id"], None)
            if d is None:
                return JSONResponse({"error": "unknown or already fetched event"}, 404)
            body = f"event: complete\ndata: {json.dumps([d])}\n\n"
            return Response(body, media_type="text/event-stream")

        return call, call_v2, result

    for name in HTTP_API:
        call, call_v2, result = route(name)
        for slash in ("", "/"):
            app.router.add_route(f"/gradio_api/call/{name}{slash}", call, methods=["POST"])
            app.router.add_route(f"/gradio_api/call/v2/{name}{slash}", call_v2, methods=["POST"])
        for prefix in ("", "/v2"):
            app.router.add_route(
                f"/gradio_api/call{prefix}/{name}/{{event_id}}", result, methods=["GET"]
            )


def create_app(session):
    """The ASGI app: /img/<neutral name> for the photos, the survey at /, admin at /admin,
    behind RequestLimits (no uploads, small bodies)."""
    # Measured (py-spy, 40 participants voting): after every event Gradio's queue copies its
    # last 10,000 event records and summarises them in pandas, for a monitoring page this
    # app does not serve: 13 % of the server's time. Keep one record, summarise never. Read
    # when the queue is made, so before the Blocks are built.
    os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", str(2**62))
    import gradio as gr
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import Response

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    manifest = session.manifest

    @app.get("/img/{name}")
    def image(name: str):
        # Only manifest images, by their neutral name; the folder path never appears in a URL.
        if name not in manifest.images:
            raise HTTPException(status_code=404)
        # Bytes, not FileResponse: its ETag and Last-Modified come from each file's mtime, so
        # they would tell a participant which image was written first, hence which system
        # made it. No validator at all (a content hash would differ per image too); the
        # browser keeps the image for the day instead of revalidating it.
        return Response(
            manifest.image_path(name).read_bytes(),
            media_type="image/png",
            headers={"Cache-Control": "private, max-age=86400"},
        )

    add_http_api(app, session)
    blocks = build_blocks(session)
    blocks.queue(default_concurrency_limit=16)
    admin = build_admin_blocks(session)
    app = gr.mount_gradio_app(app, admin, path="/admin", footer_links=[])
    app = gr.mount_gradio_app(app, blocks, path="/", css=CSS, js=KEYS_JS, footer_links=[])
    return RequestLimits(app)


# ----------------------------------------------------------------------------- CLI


def cmd_prepare(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from survey_core.design import PrepareConfig, parse_system, prepare_survey

    cfg = PrepareConfig(
        photos=Path(args.photos),
        systems=[parse_system(s) for s in args.system],
        out=Path(args.out),
        mode=args.mode,
        catch=args.catch,
        max_side=args.max_side,
        seed=args.seed,
        force=args.force,
        device=args.device,
        command=shlex.join(sys.argv),
    )
    check_writable_folder(args.out)  # before any system colorizes a photo
    m = prepare_survey(cfg, progress=tqdm)
    print(f"{len(m.trials)} trials over {len(m.photos)} photos written to {args.out}")


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from survey_core import Manifest, SurveySession, VoteStore

    manifest = Manifest.load(args.survey)
    store = VoteStore(args.votes)
    if store.repair.torn_bytes:
        log.warning(
            "repaired %s: cut a torn last line of %d bytes", args.votes, store.repair.torn_bytes
        )
    other = {r["survey"] for r in store.rows()} - {manifest.survey_id}
    if other:
        # Votes of another trial set: their participants cannot continue here, and pooling
        # them in one analysis would mix surveys. Allowed, but said loudly.
        log.warning(
            "%s holds votes of other survey(s) %s; use a new --votes file", args.votes, other
        )
    session = SurveySession(
        manifest,
        store,
        admin_password=args.admin_password,
        exposure_ms=args.exposure_ms,
        max_trials=args.max_trials,
        simulated=args.simulated,
        max_live_participants=args.max_live_participants,
        participant_ttl_s=args.participant_ttl_s,
    )
    app = create_app(session)
    log.info(
        "survey %s (%d trials, %d votes so far) at http://%s:%d/",
        args.survey,
        len(manifest.trials),
        len(store),
        args.host,
        args.port,
    )
    # Measured: under load the first full garbage collection stalled every vote for 0.4-0.6 s
    # (365,000 objects from start-up: Gradio, pandas, torch). They live as long as the
    # server, so move them out of the collector's sight; it then scans only new objects.
    # Gradio sets matplotlib's backend around every event and so imports matplotlib.pyplot
    # on the first one (12 % of a profiled 40-participant run, seen by the first voters).
    import matplotlib

    matplotlib.get_backend()
    gc.collect()
    gc.freeze()
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        store.close()


def cmd_analyze(args: argparse.Namespace) -> None:
    from survey_core.analysis import AnalysisConfig, analyze_file

    cfg = AnalysisConfig(
        min_response_ms=args.min_response_ms,
        max_catch_failures=args.max_catch_failures,
        bootstrap=args.bootstrap,
        seed=args.seed,
        drop_malformed=args.drop_malformed,
        focus=args.focus,
    )
    check_writable_folder(args.out)
    result = analyze_file(args.votes, args.out, cfg, command=shlex.join(sys.argv))
    print(result.markdown)


def main(argv: list[str] | None = None) -> int:
    from survey_core.session import MAX_LIVE_PARTICIPANTS, PARTICIPANT_TTL_S

    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="cmd", required=True)

    a = sub.add_parser("prepare", help="colorize photos with each system into a blinded survey")
    a.add_argument("--photos", required=True, help="folder of ground-truth colour photos")
    a.add_argument(
        "--system",
        action="append",
        required=True,
        metavar="NAME=SOURCE",
        help="model name, checkpoint path, or folder of ready-made outputs (by stem)",
    )
    a.add_argument("--out", required=True, help="survey folder to write")
    a.add_argument("--mode", choices=["pairwise", "turing"], default="pairwise")
    a.add_argument("--catch", type=int, default=0, help="number of catch trials")
    a.add_argument("--max-side", type=int, default=512, help="downscale shown photos (0 = keep)")
    a.add_argument(
        "--seed",
        type=int,
        default=None,
        help="fixes participants' orders; image names and trial ids are always random",
    )
    a.add_argument("--device", default=None)
    a.add_argument("--force", action="store_true", help="replace an existing --out")
    a.set_defaults(fn=cmd_prepare)

    s = sub.add_parser("serve", help="host the survey")
    s.add_argument("--survey", required=True)
    s.add_argument("--votes", default="results/votes.csv")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=7861)
    s.add_argument("--admin-password", default=None)
    s.add_argument("--exposure-ms", type=int, default=0, help="hide photos after N ms (0 = never)")
    s.add_argument(
        "--max-trials",
        type=int,
        default=0,
        help="non-catch trials per participant, drawn at random (0 = all)",
    )
    s.add_argument(
        "--simulated",
        action="store_true",
        help="for benchmarks and demos: mark every vote simulated (analyses say so in titles)",
    )
    s.add_argument(
        "--max-live-participants",
        type=int,
        default=MAX_LIVE_PARTICIPANTS,
        help="participants whose shown trial the server remembers (least recently seen forgotten)",
    )
    s.add_argument(
        "--participant-ttl-s",
        type=float,
        default=PARTICIPANT_TTL_S,
        help="forget a participant's shown trial after this many idle seconds",
    )
    s.set_defaults(fn=cmd_serve)

    z = sub.add_parser("analyze", help="analyse votes CSVs (one per server instance, merged)")
    z.add_argument(
        "votes",
        nargs="+",
        help="votes files; several are merged, a vote found twice stops the analysis",
    )
    z.add_argument("--out", default="results/survey")
    z.add_argument(
        "--min-response-ms",
        type=float,
        default=300.0,
        help="exclude votes answered faster than this",
    )
    z.add_argument(
        "--max-catch-failures",
        type=int,
        default=0,
        help="exclude participants failing more catch trials than this",
    )
    z.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for BT scores")
    z.add_argument("--seed", type=int, default=0)
    z.add_argument("--focus", default=None, help="system whose share sorts the per-photo table")
    z.add_argument(
        "--drop-malformed",
        action="store_true",
        help="report and skip malformed rows instead of stopping",
    )
    z.set_defaults(fn=cmd_analyze)

    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from survey_core import SurveyError, VoteStoreError

    errors: tuple[type[Exception], ...] = (SurveyError, VoteStoreError, OSError)
    if args.cmd == "analyze":
        from survey_core.analysis import AnalysisError

        errors += (AnalysisError,)
    try:
        args.fn(args)
    except errors as e:
        # The user's to fix (a missing or unwritable path, a bad file): one line, no
        # traceback, as docs/cli.md promises. A multi-line message keeps its lines.
        print(f"error: {str(e).strip() or type(e).__name__}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
