"""Server-side survey state: who is shown what, and which votes count.

The web app (survey.py) is a thin layer over :class:`SurveySession`; every rule lives here so
it is the same for the browser UI and for API clients:

- a participant is identified by a token the server issues (``<id>.<hmac>``), signed with the
  manifest's secret: a restarted server recognises returning participants without any
  extra state file, and nobody can forge another participant's token;
- a participant's order is a function of (survey seed, id), and their next trial is the
  first one in that order without a stored vote: reloading or coming back shows the same
  trial, never skips or repeats one;
- a vote counts only for the trial the server is currently showing that participant, and
  only once; a repeated vote (double click, retry after a lost reply) is acknowledged as
  already recorded and returns the next trial, so nothing is lost or doubled;
- no response names a system: trials are handed out as a neutral trial id and two image
  URLs with neutral names.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .design import REAL, Manifest, Presented, participant_order
from .votes import DuplicateVote, VoteNotSaved, VoteStore

log = logging.getLogger(__name__)

APP_VERSION = "colorizer-survey/1.0"
# Appended to app_version of every vote a server started with --simulated stores (benchmarks,
# demos), so any analysis of those votes can say so in its own titles.
SIMULATED = "+simulated"
CHOICES = ("left", "right")
THANKS = "Thank you! Your answers are saved. You can close this page."
NOT_SAVED = (
    "Your answer could not be saved just now (a problem on our side) and was not recorded. "
    "Please choose again in a moment."
)
# Each wrong admin password costs this long, and the server answers at most one wrong
# password per this long in all (failures queue for their turn, holding no lock or thread).
ADMIN_FAILURE_DELAY_S = 1.0
# What the server remembers of a participant between requests (the trial it is showing and
# since when) is kept for this many participants at most, and forgotten after this long
# unused. Anyone can /start, so without a bound every start was kept for good (1.85 KB each
# when the order was cached with it). Forgetting costs the participant nothing but one
# click: their order and votes do not depend on it (order from the seed, votes on disk), so
# a forgotten participant continues like after a server restart (their current trial shown
# again, a vote from the old page not counted). About 0.5 KB each: 50,000 is some 25 MB.
MAX_LIVE_PARTICIPANTS = 50_000
PARTICIPANT_TTL_S = 6 * 3600.0
# Orders are recomputed from (seed, participant) when not cached; the cache only saves time.
ORDER_CACHE = 1024


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class _Shown:
    trial: str
    mono: float  # time.monotonic() when shown: response times immune to clock changes
    wall: str


@dataclass
class _Live:
    """What the server remembers of one participant between requests."""

    lock: threading.Lock = field(default_factory=threading.Lock)  # one request at a time
    shown: _Shown | None = None  # the trial shown now; only a vote for it counts
    users: int = 0  # requests using this entry now: it is never forgotten while > 0
    seen: float = 0.0  # time.monotonic() of the last use


class SurveySession:
    """All participant-facing operations of a running survey; thread-safe."""

    def __init__(
        self,
        manifest: Manifest,
        store: VoteStore,
        admin_password: str | None = None,
        exposure_ms: int = 0,
        max_trials: int = 0,
        image_url: Callable[[str], str] = lambda name: f"/img/{name}",
        app_version: str = APP_VERSION,
        admin_failure_delay_s: float = ADMIN_FAILURE_DELAY_S,
        simulated: bool = False,
        max_live_participants: int = MAX_LIVE_PARTICIPANTS,
        participant_ttl_s: float = PARTICIPANT_TTL_S,
    ):
        self.manifest = manifest
        self.store = store
        self.admin_password = admin_password or None
        self.exposure_ms = max(0, int(exposure_ms))
        self.max_trials = max(0, int(max_trials))
        self.image_url = image_url
        self.app_version = app_version + (SIMULATED if simulated else "")
        self._secret = manifest.secret.encode()
        self._lock = threading.Lock()  # guards the state below; never held during I/O or a wait
        self._live: OrderedDict[str, _Live] = OrderedDict()  # least recently used first
        self._orders: OrderedDict[str, list[Presented]] = OrderedDict()
        self.max_live_participants = max(1, int(max_live_participants))
        self.participant_ttl_s = float(participant_ttl_s)
        self._survey_id = manifest.survey_id
        self.admin_failure_delay_s = max(0.0, float(admin_failure_delay_s))
        self._admin_next_failure = 0.0  # monotonic time the next wrong password may be answered

    # ------------------------------------------------------------------ tokens

    def _sign(self, pid: str) -> str:
        return hmac.new(self._secret, pid.encode(), hashlib.sha256).hexdigest()[:20]

    def new_token(self) -> str:
        pid = secrets.token_hex(8)
        return f"{pid}.{self._sign(pid)}"

    def participant_of(self, token: str | None) -> str | None:
        """The participant id of a valid token, else None (never an exception)."""
        # Tokens are ASCII; anything else is no token. hmac.compare_digest refuses non-ASCII
        # str (TypeError, an HTTP 500), and str.encode refuses lone surrogates, which JSON
        # can carry, so both are ruled out before any comparison, and bytes are compared.
        if not isinstance(token, str) or not token.isascii() or token.count(".") != 1:
            return None
        pid, sig = token.strip().split(".")
        if not pid or not hmac.compare_digest(sig.encode(), self._sign(pid).encode()):
            return None
        return pid

    # ------------------------------------------------------------------ helpers

    @contextmanager
    def _participant(self, pid: str) -> Iterator[_Live]:
        """The participant's live state, with their lock held (one request at a time each)."""
        now = time.monotonic()
        with self._lock:
            live = self._live.get(pid)
            if live is None:
                live = self._live[pid] = _Live()
            else:
                self._live.move_to_end(pid)
            live.users += 1  # counted before the lock is taken, so never forgotten meanwhile
            live.seen = now
            self._forget_stale(now)
        try:
            with live.lock:
                yield live
        finally:
            with self._lock:
                live.users -= 1
                live.seen = time.monotonic()

    def _forget_stale(self, now: float) -> None:
        """Forget the least recently used participants past the cap or the TTL. Holds _lock."""
        for _ in range(len(self._live)):  # bounded: entries in use are moved, not dropped
            pid, live = next(iter(self._live.items()))
            over = len(self._live) > self.max_live_participants
            if not over and now - live.seen <= self.participant_ttl_s:
                return
            if live.users:  # a request holds it (or waits for its lock): keep it
                self._live.move_to_end(pid)
                continue
            del self._live[pid]

    @property
    def live_participants(self) -> int:
        """How many participants the server remembers now (bounded, see MAX_LIVE_PARTICIPANTS)."""
        with self._lock:
            return len(self._live)

    def _order(self, pid: str) -> list[Presented]:
        with self._lock:
            order = self._orders.get(pid)
            if order is not None:
                self._orders.move_to_end(pid)
                return order
        order = participant_order(self.manifest, pid, self.max_trials)
        with self._lock:
            self._orders[pid] = order
            while len(self._orders) > ORDER_CACHE:
                self._orders.popitem(last=False)
        return order

    def _upcoming(self, pid: str, n: int) -> list[Presented]:
        """The participant's next ``n`` trials without a stored vote, in their order."""
        done = self.store.voted_trials(pid)
        out: list[Presented] = []
        for p in self._order(pid):
            if p.trial.id not in done:
                out.append(p)
                if len(out) == n:
                    break
        return out

    def _next(self, pid: str) -> Presented | None:
        nxt = self._upcoming(pid, 1)
        return nxt[0] if nxt else None

    def _present(self, token: str, pid: str, live: _Live, reset: bool, **extra) -> dict:
        """Show (and remember showing) the participant's next trial. Caller holds live.lock."""
        order = self._order(pid)
        upcoming = self._upcoming(pid, 2)
        p = upcoming[0] if upcoming else None
        base = {"token": token, "total": len(order), "question": self.manifest.question}
        base.update({"recorded": False, "message": ""})
        base.update(extra)
        if p is None:
            live.shown = None
            return {
                **base,
                "status": "done",
                "index": len(order),
                "trial": "",
                "left": "",
                "right": "",
                "preload": [],
                "exposure_ms": 0,
                "message": extra.get("message") or THANKS,
            }
        cur = live.shown
        if reset or cur is None or cur.trial != p.trial.id:
            live.shown = _Shown(p.trial.id, time.monotonic(), _now_iso())
        return {
            **base,
            "status": "trial",
            "index": p.position + 1,
            "trial": p.trial.id,
            "left": self.image_url(p.left.image),
            "right": self.image_url(p.right.image),
            # The pair after this one, for the page to fetch now so it appears at once. In the
            # order it will be shown; neutral names like the rest.
            "preload": [self.image_url(x.image) for q in upcoming[1:] for x in (q.left, q.right)],
            "exposure_ms": self.exposure_ms,
        }

    @staticmethod
    def _error(message: str, token: str = "") -> dict:
        return {
            "status": "error",
            "token": token,
            "message": message,
            "recorded": False,
            "trial": "",
            "left": "",
            "right": "",
            "preload": [],
            "index": 0,
            "total": 0,
            "question": "",
            "exposure_ms": 0,
        }

    # ------------------------------------------------------------------ API

    def start(self, consent: bool) -> dict:
        """Consent given -> a new participant token and their first trial."""
        if consent is not True:
            return self._error("Please read the information and tick the consent box to take part.")
        token = self.new_token()
        pid = self.participant_of(token)
        assert pid is not None
        log.info("participant %s started", pid)
        with self._participant(pid) as live:
            return self._present(token, pid, live, reset=True)

    def resume(self, token: str) -> dict:
        """A returning participant (reload, back later): their current trial, shown anew."""
        pid = self.participant_of(token)
        if pid is None:
            return self._error("Unknown participant link; please start the survey again.")
        with self._participant(pid) as live:
            return self._present(token, pid, live, reset=True)

    def vote(self, token: str, trial: str, choice: str) -> dict:
        """Record ``choice`` ('left'/'right') for ``trial``; return the next trial."""
        pid = self.participant_of(token)
        if pid is None:
            return self._error("Unknown participant link; please start the survey again.")
        if choice not in CHOICES:
            return self._error(f"choice must be one of {CHOICES}", token)
        with self._participant(pid) as live:
            if self.store.has(pid, trial):
                # Double click or a retry after a lost reply: the vote is already safe.
                return self._present(token, pid, live, reset=False, message="Already recorded.")
            shown = live.shown
            if shown is None or shown.trial != trial:
                # Not the trial the server is showing (stale page, restarted server, forged
                # id): nothing is recorded; the participant gets their current trial again.
                return self._present(
                    token,
                    pid,
                    live,
                    reset=True,
                    message="That photo pair is not current; here it is again.",
                )
            p = next(x for x in self._order(pid) if x.trial.id == trial)
            rt_ms = (time.monotonic() - shown.mono) * 1000.0
            chosen = p.left if choice == "left" else p.right
            correct = p.trial.correct_system()
            row = {
                "vote_id": f"{pid}:{trial}",
                "survey": self._survey_id,
                "mode": self.manifest.mode,
                "participant": pid,
                "trial": trial,
                "kind": p.trial.kind,
                "photo": p.trial.photo,
                "position": p.position,
                "left_system": p.left.system,
                "right_system": p.right.system,
                "choice": choice,
                "chosen_system": chosen.system,
                "response_ms": f"{rt_ms:.1f}",
                "is_catch": int(p.trial.is_catch),
                "correct": "" if correct is None else int(chosen.system == REAL),
                "shown_at": shown.wall,
                "voted_at": _now_iso(),
                "app_version": self.app_version,
            }
            try:
                self.store.append(row)  # returns only after fsync
            except DuplicateVote:
                return self._present(token, pid, live, reset=False, message="Already recorded.")
            except VoteNotSaved:  # nothing written (a full disk?); the same vote may be resent
                return self._present(token, pid, live, reset=False, retry=True, message=NOT_SAVED)
            live.shown = None
            return self._present(token, pid, live, reset=True, recorded=True)

    # ------------------------------------------------------------------ admin

    def _admin_wait(self, password: object) -> float | None:
        """None for the right password; for a wrong one, how long its answer must wait.

        Failures are answered one per ``admin_failure_delay_s`` at most for the whole server
        (no per-client count: the server keeps no addresses): each books the next free slot
        and waits for it. Only the booking takes the lock, never the wait, so the right
        password is answered at once however many wrong ones are waiting.
        """
        if isinstance(password, str) and hmac.compare_digest(
            password.encode("utf-8", "surrogatepass"),
            (self.admin_password or "").encode("utf-8", "surrogatepass"),
        ):
            return None
        now = time.monotonic()
        with self._lock:
            slot = max(now, self._admin_next_failure) + self.admin_failure_delay_s
            self._admin_next_failure = slot
        log.warning("admin: wrong password")
        return slot - now

    def admin(self, password: str) -> dict:
        """Live counts for the organiser; refused without the right password.

        A wrong password waits its turn in the calling thread (see ``_admin_wait``); servers
        use :meth:`admin_async`, whose waits hold no thread.
        """
        if self.admin_password is None:
            return self._admin_disabled()
        wait = self._admin_wait(password)
        if wait is not None:
            time.sleep(wait)
            return {"ok": False, "message": "Wrong password."}
        return self._admin_counts()

    async def admin_async(self, password: str) -> dict:
        """:meth:`admin` for an event loop: a wrong password's wait is an asyncio sleep, so
        guesses sent at once hold neither a thread nor a place in front of the organiser."""
        if self.admin_password is None:
            return self._admin_disabled()
        wait = self._admin_wait(password)
        if wait is not None:
            await asyncio.sleep(wait)
            return {"ok": False, "message": "Wrong password."}
        return await asyncio.to_thread(self._admin_counts)  # reads every vote: off the loop

    @staticmethod
    def _admin_disabled() -> dict:
        return {"ok": False, "message": "The admin view is disabled (start with --admin-password)."}

    def _admin_counts(self) -> dict:
        rows = self.store.rows()
        main = [r for r in rows if r["is_catch"] != "1"]
        catch = [r for r in rows if r["is_catch"] == "1"]
        per_photo: dict[str, Counter] = {}
        for r in main:
            per_photo.setdefault(r["photo"], Counter())[r["chosen_system"]] += 1
        return {
            "ok": True,
            "message": "",
            "votes": len(rows),
            "participants": len({r["participant"] for r in rows}),
            "finished": sum(
                1 for pid in {r["participant"] for r in rows} if self._next(pid) is None
            ),
            "wins": dict(Counter(r["chosen_system"] for r in main)),
            "catch_votes": len(catch),
            "catch_passed": sum(r["correct"] == "1" for r in catch),
            "per_photo": {k: dict(v) for k, v in sorted(per_photo.items())},
            "live_participants": self.live_participants,
        }
