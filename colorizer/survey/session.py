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

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from .design import REAL, Manifest, Presented, participant_order
from .votes import DuplicateVote, VoteStore

log = logging.getLogger(__name__)

APP_VERSION = "colorizer-survey/1.0"
# Appended to app_version of every vote a server started with --simulated stores (benchmarks,
# demos), so any analysis of those votes can say so in its own titles.
SIMULATED = "+simulated"
CHOICES = ("left", "right")
THANKS = "Thank you! Your answers are saved. You can close this page."
# Each wrong admin password costs this long, one failure at a time for the whole server.
ADMIN_FAILURE_DELAY_S = 1.0


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class _Shown:
    trial: str
    mono: float  # time.monotonic() when shown: response times immune to clock changes
    wall: str


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
    ):
        self.manifest = manifest
        self.store = store
        self.admin_password = admin_password or None
        self.exposure_ms = max(0, int(exposure_ms))
        self.max_trials = max(0, int(max_trials))
        self.image_url = image_url
        self.app_version = app_version + (SIMULATED if simulated else "")
        self._secret = manifest.secret.encode()
        self._lock = threading.Lock()  # guards the dicts below, never held during I/O
        self._plocks: dict[str, threading.Lock] = {}
        self._orders: dict[str, list[Presented]] = {}
        self._shown: dict[str, _Shown] = {}
        self._survey_id = manifest.survey_id
        self.admin_failure_delay_s = max(0.0, float(admin_failure_delay_s))
        self._admin_failures = threading.Lock()

    # ------------------------------------------------------------------ tokens

    def _sign(self, pid: str) -> str:
        return hmac.new(self._secret, pid.encode(), hashlib.sha256).hexdigest()[:20]

    def new_token(self) -> str:
        pid = secrets.token_hex(8)
        return f"{pid}.{self._sign(pid)}"

    def participant_of(self, token: str | None) -> str | None:
        """The participant id of a valid token, else None."""
        if not isinstance(token, str) or token.count(".") != 1:
            return None
        pid, sig = token.strip().split(".")
        if not pid or not hmac.compare_digest(sig, self._sign(pid)):
            return None
        return pid

    # ------------------------------------------------------------------ helpers

    def _plock(self, pid: str) -> threading.Lock:
        with self._lock:
            return self._plocks.setdefault(pid, threading.Lock())

    def _order(self, pid: str) -> list[Presented]:
        with self._lock:
            order = self._orders.get(pid)
        if order is None:
            order = participant_order(self.manifest, pid, self.max_trials)
            with self._lock:
                self._orders[pid] = order
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

    def _present(self, token: str, pid: str, reset: bool, **extra) -> dict:
        """Show (and remember showing) the participant's next trial. Caller holds the plock."""
        order = self._order(pid)
        upcoming = self._upcoming(pid, 2)
        p = upcoming[0] if upcoming else None
        base = {"token": token, "total": len(order), "question": self.manifest.question}
        base.update({"recorded": False, "message": ""})
        base.update(extra)
        if p is None:
            with self._lock:
                self._shown.pop(pid, None)
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
        with self._lock:
            cur = self._shown.get(pid)
            if reset or cur is None or cur.trial != p.trial.id:
                self._shown[pid] = _Shown(p.trial.id, time.monotonic(), _now_iso())
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
        with self._plock(pid):
            return self._present(token, pid, reset=True)

    def resume(self, token: str) -> dict:
        """A returning participant (reload, back later): their current trial, shown anew."""
        pid = self.participant_of(token)
        if pid is None:
            return self._error("Unknown participant link; please start the survey again.")
        with self._plock(pid):
            return self._present(token, pid, reset=True)

    def vote(self, token: str, trial: str, choice: str) -> dict:
        """Record ``choice`` ('left'/'right') for ``trial``; return the next trial."""
        pid = self.participant_of(token)
        if pid is None:
            return self._error("Unknown participant link; please start the survey again.")
        if choice not in CHOICES:
            return self._error(f"choice must be one of {CHOICES}", token)
        with self._plock(pid):
            if self.store.has(pid, trial):
                # Double click or a retry after a lost reply: the vote is already safe.
                return self._present(token, pid, reset=False, message="Already recorded.")
            with self._lock:
                shown = self._shown.get(pid)
            if shown is None or shown.trial != trial:
                # Not the trial the server is showing (stale page, restarted server, forged
                # id): nothing is recorded; the participant gets their current trial again.
                return self._present(
                    token,
                    pid,
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
                return self._present(token, pid, reset=False, message="Already recorded.")
            with self._lock:
                self._shown.pop(pid, None)
            return self._present(token, pid, reset=True, recorded=True)

    def admin(self, password: str) -> dict:
        """Live counts for the organiser; refused without the right password."""
        if self.admin_password is None:
            return {
                "ok": False,
                "message": "The admin view is disabled (start with --admin-password).",
            }
        if not isinstance(password, str) or not hmac.compare_digest(
            password.encode(), self.admin_password.encode()
        ):
            # Slow guessing down: every failure waits its turn on one lock and then sleeps, so
            # the password can be tried at most 1/delay times a second in all, however many
            # requests arrive at once (no per-client count: the server keeps no addresses).
            with self._admin_failures:
                time.sleep(self.admin_failure_delay_s)
            log.warning("admin: wrong password")
            return {"ok": False, "message": "Wrong password."}
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
        }
