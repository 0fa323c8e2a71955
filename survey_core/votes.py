"""The vote store: one CSV row per vote, durable before the vote is acknowledged.

Design (why): a survey's votes are the only thing that cannot be recomputed, so

- one writer (this object) holds a process lock and an exclusive ``flock`` on the file, so
  two servers can never interleave rows in one file;
- every row is written with a single ``write`` of a complete line, then ``flush`` and
  ``os.fsync`` BEFORE the caller acknowledges the vote: an acknowledged vote survives a
  killed process (and a power cut, as far as the disk honours fsync). Votes arriving
  together share an fsync (group commit: each waits for one that began after its row was
  written), so a busy or slow disk costs one fsync per batch, not per vote;
- a failed fsync stops the store for good (every later call raises): after one, Linux may
  have dropped the unwritten pages, so a retry that "succeeds" would prove nothing;
- a write that fails or is short (a full disk: ENOSPC, or fewer bytes written than
  asked) is cut back to the end of the last complete row before anything else is written,
  and the vote is refused with ``VoteNotSaved``, which the participant is told to retry:
  so a partial row never stays in the file for the next vote to be glued onto. If even
  the cut fails, the store stops as after a failed fsync;
- a process killed in the middle of a write can leave at most one torn last line (no
  newline yet). On start-up that line is cut off (logged, with its bytes) and the
  complete rows are loaded, so participants continue where they were and a second vote
  for the same (participant, trial) is refused. A last line that is a whole row and only
  lacks its newline (a hand-edited file) is kept and its newline added.
"""

from __future__ import annotations

import csv
import fcntl
import io
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

VOTE_FIELDS = [
    "vote_id",  # participant:trial, unique
    "survey",  # manifest survey_id
    "mode",  # pairwise | turing
    "participant",
    "trial",
    "kind",  # pair | turing | catch
    "photo",
    "position",  # 0-based place in the participant's order
    "left_system",
    "right_system",
    "choice",  # left | right
    "chosen_system",
    "response_ms",  # measured by the server: trial shown -> vote received
    "is_catch",  # 0 | 1
    "correct",  # catch/turing: 1 if the real photo was picked, else 0; pair: empty
    "shown_at",  # ISO-8601 UTC
    "voted_at",  # ISO-8601 UTC
    "app_version",
]


class VoteStoreError(RuntimeError):
    """The votes file cannot be used; the message says why and what to do."""


class DuplicateVote(ValueError):
    """This participant already voted on this trial."""


class VoteNotSaved(VoteStoreError):
    """This vote could not be written (a full disk?) and is not recorded; retrying is safe.

    The file is as it was before the attempt (the partial row was cut off) and the store
    keeps working: the same vote sent again is written once there is space.
    """


@dataclass(frozen=True)
class RepairReport:
    rows: int
    torn_bytes: int  # bytes cut from a torn last line (0 if none)


def _format_row(row: dict) -> bytes:
    missing = [f for f in VOTE_FIELDS if f not in row]
    if missing:
        raise ValueError(f"vote row lacks {missing}")
    extra = sorted(set(row) - set(VOTE_FIELDS))
    if extra:
        raise ValueError(f"vote row has unknown fields {extra}")
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([row[f] for f in VOTE_FIELDS])
    line = buf.getvalue()
    if line.count("\n") != 1:  # a newline inside a field would break torn-line repair
        raise ValueError("vote fields must not contain newlines")
    return line.encode("utf-8")


# A torn row can have every field with its last one cut short ("colorizer-survey/1.0" of
# "colorizer-survey/1.0+simulated"), so a last line without its newline counts as whole only
# if its vote_id matches its keys and its app_version is the row before's (or, as the first
# row, a whole version string).
_WHOLE_VERSION = re.compile(r"[A-Za-z0-9_.-]+/\d+(\.\d+)*(\+simulated)?")


def _parse_row(line: bytes) -> dict | None:
    try:
        rec = next(csv.reader([line.decode("utf-8")]))
    except (UnicodeDecodeError, csv.Error, StopIteration):
        return None
    return dict(zip(VOTE_FIELDS, rec, strict=True)) if len(rec) == len(VOTE_FIELDS) else None


def _is_whole_row(line: bytes, previous: bytes) -> bool:
    """Whether ``line`` (without newline) is a complete vote row, not a torn one."""
    row = _parse_row(line)
    if row is None or row["vote_id"] != f"{row['participant']}:{row['trial']}":
        return False
    before = _parse_row(previous)
    if before is not None and before["vote_id"] != "vote_id":  # a row, not the header
        return row["app_version"] == before["app_version"]
    return _WHOLE_VERSION.fullmatch(row["app_version"]) is not None


def repair_and_read(path: Path) -> tuple[list[dict], RepairReport]:
    """Cut a torn last line off ``path`` (in place) and return its complete rows.

    A last line that is a whole row lacking only its newline gets the newline instead.
    A row in the middle with the wrong number of fields is not a torn write: it is
    reported as an error rather than dropped.
    """
    data = path.read_bytes()
    torn = 0
    cut = data.rfind(b"\n") + 1
    last, previous = data[cut:], data[data.rfind(b"\n", 0, max(cut - 1, 0)) + 1 : cut - 1]
    if last and cut and _is_whole_row(last, previous):
        log.warning("%s: last row lacked its newline; newline added", path)
        with open(path, "ab") as f:
            f.write(b"\n")
            f.flush()
            os.fsync(f.fileno())
        data += b"\n"
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        torn = len(data) - cut
        log.warning(
            "%s: torn last line (%d bytes, killed mid-write?) cut off: %r",
            path,
            torn,
            data[cut:][:200],
        )
        with open(path, "r+b") as f:
            f.truncate(cut)
            f.flush()
            os.fsync(f.fileno())
        data = data[:cut]
    header = (",".join(VOTE_FIELDS) + "\n").encode()
    if not data:
        return [], RepairReport(0, torn)
    if not data.startswith(header):
        first = data.split(b"\n", 1)[0][:200]
        raise VoteStoreError(
            f"{path}: header is not a votes header ({first!r}); use another --votes file"
        )
    rows = []
    try:
        text = data[len(header) :].decode("utf-8")
    except UnicodeDecodeError as e:
        raise VoteStoreError(
            f"{path}: not UTF-8 text at byte {len(header) + e.start}; the file was edited "
            "or corrupted - fix or move it, nothing was changed"
        ) from None
    reader = csv.reader(io.StringIO(text))
    for i, rec in enumerate(reader, start=2):
        if len(rec) != len(VOTE_FIELDS):
            raise VoteStoreError(
                f"{path}:{i}: {len(rec)} fields, expected {len(VOTE_FIELDS)}; the file was edited "
                "or corrupted in the middle - fix or move that line, nothing was changed"
            )
        rows.append(dict(zip(VOTE_FIELDS, rec, strict=True)))
    return rows, RepairReport(len(rows), torn)


class VoteStore:
    """Append-only, fsync'ed CSV of votes; the single writer of its file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # Open (creating if needed) and take the inter-process lock before reading, so a
        # second server on the same file fails here instead of truncating the first's row.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            os.close(fd)
            raise VoteStoreError(f"{self.path} is in use by another survey server") from e
        self._f = os.fdopen(fd, "ab", buffering=0)
        self._sync_lock = threading.Lock()  # one fsync at a time; never held with _lock
        self._written = 0  # rows written by this process (write() returned)
        self._synced = 0  # rows known durable: an fsync began after they were written
        self._failed: OSError | None = None
        try:
            rows, self.repair = repair_and_read(self.path)
            if self.path.stat().st_size == 0:
                self._write((",".join(VOTE_FIELDS) + "\n").encode())
                _fsync_dir(self.path.parent)
            self._end = self.path.stat().st_size  # where the last complete row ends
        except BaseException:
            self._f.close()
            raise
        self._rows = rows
        self._keys = {(r["participant"], r["trial"]) for r in rows}
        self._by_participant: dict[str, set[str]] = {}
        for r in rows:
            self._by_participant.setdefault(r["participant"], set()).add(r["trial"])
        if len(self._keys) != len(rows):
            log.warning("%s: holds duplicate (participant, trial) rows", self.path)
        log.info("votes %s: %d existing votes loaded", self.path, len(rows))

    def _write_raw(self, line: bytes) -> None:
        n = self._f.write(line)
        if n != len(line):  # unbuffered raw write; short writes are rare but possible
            raise OSError(f"short write to {self.path}: {n} of {len(line)} bytes")

    def _write(self, line: bytes) -> None:
        self._write_raw(line)
        os.fsync(self._f.fileno())

    def _write_row(self, line: bytes) -> None:
        """Write one whole row at the end, or leave the file as it was. Caller holds _lock.

        On a full disk the kernel may take part of the row (a short write) and then refuse
        the rest: the part is cut off at once, so the next row starts on a clean line.
        """
        try:
            self._write_raw(line)
        except OSError as e:
            try:
                os.ftruncate(self._f.fileno(), self._end)
            except OSError as cut:  # cannot restore a clean end: stop, as for fsync
                self._failed = cut
                log.error("%s: cannot cut a partial row off (%s); store stopped", self.path, cut)
                raise VoteStoreError(f"{self.path}: write failed ({e}) and repair failed") from e
            log.error("%s: vote not saved, write failed (%s); file left as it was", self.path, e)
            raise VoteNotSaved(f"{self.path}: write failed ({e}); nothing recorded") from e
        self._end += len(line)

    def _check(self) -> None:
        """Raise if the store cannot take or answer for votes. Caller holds _lock."""
        if self._failed is not None:
            raise VoteStoreError(
                f"{self.path}: fsync failed ({self._failed}); votes since the last good fsync "
                "may be lost - restart the server (it reloads what reached the file)"
            )
        if self._f.closed:
            raise VoteStoreError(f"{self.path} is closed")

    def append(self, row: dict) -> None:
        """Write one vote durably; raises DuplicateVote if (participant, trial) exists.

        Returns only after an fsync that began after this row was written.
        """
        line = _format_row(row)
        key = (str(row["participant"]), str(row["trial"]))
        with self._lock:
            self._check()
            if key in self._keys:
                raise DuplicateVote(f"participant {key[0]} already voted on trial {key[1]}")
            self._write_row(line)
            self._written += 1
            mine = self._written
            # Known before it is durable, so that a second vote for the same key (only the
            # same participant can cast it, and the session serialises a participant's
            # votes) is refused; if the fsync below fails the store stops altogether.
            self._keys.add(key)
            self._by_participant.setdefault(key[0], set()).add(key[1])
            self._rows.append({f: str(row[f]) for f in VOTE_FIELDS})
        self._sync(mine)

    def _sync(self, row: int) -> None:
        """Wait until row number ``row`` is durable, doing the fsync if nobody else is."""
        with self._sync_lock:
            if self._synced >= row:  # an fsync that began after our write covered it
                return
            with self._lock:
                self._check()
                upto = self._written  # every row up to here has been written
            try:
                os.fsync(self._f.fileno())
            except OSError as e:
                with self._lock:
                    self._failed = e
                log.error("%s: fsync failed, the store stops taking votes: %s", self.path, e)
                raise VoteStoreError(f"{self.path}: fsync failed: {e}") from e
            self._synced = upto

    def has(self, participant: str, trial: str) -> bool:
        with self._lock:
            self._check()
            return (participant, trial) in self._keys

    def voted_trials(self, participant: str) -> set[str]:
        with self._lock:
            self._check()
            return set(self._by_participant.get(participant, ()))

    def rows(self) -> list[dict]:
        with self._lock:
            return list(self._rows)

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)

    def close(self) -> None:
        with self._lock:
            if not self._f.closed:
                fcntl.flock(self._f.fileno(), fcntl.LOCK_UN)
                self._f.close()

    def __enter__(self) -> VoteStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _fsync_dir(folder: Path) -> None:
    # A new file's directory entry is only durable once the directory is synced.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
