"""The vote store on a full disk, and its start-up repair: no acknowledged vote is ever lost.

The full-disk test runs on a real 64 KB tmpfs where root may mount one (as on CI); the
short-write test injects the kernel's partial write, so the cut-back is tested everywhere.
"""

import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from test_survey_store import make_outputs, row

from survey_core import (
    VOTE_FIELDS,
    PrepareConfig,
    SurveySession,
    VoteNotSaved,
    VoteStore,
    prepare_survey,
)
from survey_core.session import NOT_SAVED
from survey_core.votes import _format_row

VERSION = "colorizer-survey/1.0"


def vote(i: int) -> dict:
    """A vote row about as long as a real one (~300 bytes)."""
    return row(
        f"p{i:05d}{'x' * 24}",
        f"t{i:010d}",
        survey="s" * 16,
        mode="pairwise",
        kind="pair",
        photo=f"photo_{i:04d}",
        position=i % 20,
        left_system="default",
        right_system="eccv16",
        choice="left",
        chosen_system="default",
        response_ms="1234.5",
        is_catch=0,
        correct="",
        shown_at="2026-12-03T09:00:00.000000+00:00",
        voted_at="2026-12-03T09:00:01.000000+00:00",
        app_version=VERSION,
    )


def read_votes(path: Path) -> pd.DataFrame:
    """What an analysis reads: pandas must parse it, every row with every field."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(df.columns) == VOTE_FIELDS
    return df


def mounted_tmpfs(folder: Path, options: str, what: str):
    """A real tmpfs mounted on ``folder`` (skips where root may not mount), unmounted after."""
    folder.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                       capture_output=True, check=False)  # fmt: skip
    if r.returncode != 0 or not os.path.ismount(folder):
        pytest.skip(f"cannot mount {what} here ({r.stderr.decode().strip()})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def small_disk(tmp_path):
    yield from mounted_tmpfs(tmp_path / "disk", "size=64k", "a tmpfs")


def test_a_full_disk_refuses_the_vote_cleanly_and_loses_no_acknowledged_one(small_disk, tmp_path):
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * 16384)  # freed later: the disk gets space back
    votes = small_disk / "votes.csv"
    photos, a, b = make_outputs(tmp_path, n=2)
    m = prepare_survey(PrepareConfig(photos, [("x", str(a)), ("y", str(b))], tmp_path / "s"))
    store = VoteStore(votes)
    acked = []
    with pytest.raises(VoteNotSaved, match="nothing recorded"):
        for i in range(10_000):
            store.append(vote(i))  # returned: acknowledged
            acked.append(vote(i)["vote_id"])
    assert len(acked) > 20, len(acked)  # the disk really filled up part-way
    refused = vote(len(acked))
    # The file holds exactly the acknowledged votes, no partial row, and stays readable.
    assert votes.read_bytes().endswith(b"\n")
    assert list(read_votes(votes)["vote_id"]) == acked
    assert not store.has(refused["participant"], refused["trial"])
    # A participant voting now is told to retry, and their trial stays shown.
    session = SurveySession(m, store)
    d = session.start(True)
    tok, trial = d["token"], d["trial"]
    answer = session.vote(tok, trial, "left")
    assert answer["retry"] and not answer["recorded"] and answer["message"] == NOT_SAVED
    assert answer["status"] == "trial" and answer["trial"] == trial
    assert list(read_votes(votes)["vote_id"]) == acked  # still clean after a second refusal
    # Space comes back: the same votes, sent again, are taken, each once.
    filler.unlink()
    store.append(refused)
    again = session.vote(tok, trial, "left")
    assert again["recorded"] and again["trial"] != trial
    store.close()
    with VoteStore(votes) as restarted:  # the server restarts on the file as it is
        assert restarted.repair.torn_bytes == 0
        assert len(restarted) == len(acked) + 2
    df = read_votes(votes)
    assert list(df["vote_id"][: len(acked) + 1]) == [*acked, refused["vote_id"]]
    assert df["vote_id"].iloc[-1].endswith(f":{trial}")


class ShortWrites:
    """A raw file whose writes take only the first half of what they are given, as the
    kernel may on a nearly full disk, until ``full`` is set False."""

    def __init__(self, f):
        self._f, self.full = f, True

    def write(self, data: bytes) -> int:
        if not self.full:
            return self._f.write(data)
        return self._f.write(data[: len(data) // 2])  # a short write: no error, fewer bytes

    def __getattr__(self, name):
        return getattr(self._f, name)


def test_a_short_write_is_cut_back_and_the_vote_can_be_sent_again(tmp_path):
    p = tmp_path / "votes.csv"
    store = VoteStore(p)
    store.append(vote(0))
    good = p.read_bytes()
    store._f = ShortWrites(store._f)
    for _ in range(3):  # each refused attempt leaves the file as it was
        with pytest.raises(VoteNotSaved):
            store.append(vote(1))
        assert p.read_bytes() == good
    store._f.full = False
    store.append(vote(1))
    store.append(vote(2))
    store.close()
    assert list(read_votes(p)["vote_id"]) == [vote(i)["vote_id"] for i in range(3)]


def test_start_up_keeps_a_whole_last_row_that_only_lacks_its_newline(tmp_path):
    p = tmp_path / "votes.csv"
    with VoteStore(p) as s:
        for i in range(3):
            s.append(vote(i))
    whole = p.read_bytes()
    p.write_bytes(whole[:-1])  # an editor dropped the final newline
    with VoteStore(p) as s:
        assert len(s) == 3 and s.has(vote(2)["participant"], vote(2)["trial"])
        assert s.repair.torn_bytes == 0
    assert p.read_bytes() == whole


@pytest.mark.parametrize(
    "cut",
    [
        len("+simulated"),  # every field there, the last one cut short: still torn
        40,  # cut inside an earlier field
    ],
)
def test_start_up_still_cuts_a_torn_last_row(tmp_path, cut):
    p = tmp_path / "votes.csv"
    with VoteStore(p) as s:
        for i in range(2):
            s.append({**vote(i), "app_version": VERSION + "+simulated"})
    good = p.read_bytes()
    with open(p, "ab") as f:
        f.write(_format_row({**vote(2), "app_version": VERSION + "+simulated"})[: -(cut + 1)])
    with VoteStore(p) as s:
        assert len(s) == 2 and s.repair.torn_bytes > 0
    assert p.read_bytes() == good


def test_a_live_server_on_a_full_disk_says_retry_and_keeps_every_acknowledged_vote(
    small_disk, tmp_path
):
    """From outside: participants vote over HTTP while the votes file's disk fills up."""
    from test_survey_security import call
    from test_survey_server import Server

    photos, a, b = make_outputs(tmp_path, n=2)
    prepare_survey(PrepareConfig(photos, [("x", str(a)), ("y", str(b))], tmp_path / "s"))
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (56 * 1024))  # tmpfs counts 4 KB pages: ~8 KB left for votes
    votes = small_disk / "votes.csv"
    srv = Server(tmp_path / "s", votes, tmp_path / "server.log").start()
    try:
        acked, refused = [], None
        for _ in range(200):
            d = call(srv.port, "start", True)
            answer = call(srv.port, "vote", d["token"], d["trial"], "left")
            if not answer["recorded"]:
                refused = (d["token"], d["trial"], answer)
                break
            acked.append(d["token"].split(".")[0])
        assert refused is not None and len(acked) > 5, len(acked)
        token, trial, answer = refused
        assert answer.get("retry") and answer["trial"] == trial, answer
        assert list(read_votes(votes)["participant"]) == acked  # no partial row
        filler.unlink()  # space is back: the same click is taken
        assert call(srv.port, "vote", token, trial, "left")["recorded"]
    finally:
        srv.stop()
    srv = Server(tmp_path / "s", votes, tmp_path / "server.log").start()  # restarts cleanly
    srv.stop()
    assert list(read_votes(votes)["participant"]) == [*acked, token.split(".")[0]]


@pytest.fixture
def read_only(tmp_path):
    yield from mounted_tmpfs(tmp_path / "ro", "ro,size=16k", "a read-only tmpfs")


def test_survey_cli_path_and_file_errors_are_one_error_line_with_exit_2(tmp_path, read_only):
    import sys

    root = Path(__file__).resolve().parents[1]
    photos, a, b = make_outputs(tmp_path, n=2)
    prepare_survey(PrepareConfig(photos, [("x", str(a)), ("y", str(b))], tmp_path / "s"))
    good = tmp_path / "good.csv"
    with VoteStore(good) as s:
        s.append(vote(0))
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(good.read_bytes() + "caf\xe9\n".encode("latin-1"))
    edited = tmp_path / "edited.csv"
    edited.write_bytes(good.read_bytes() + _format_row({**vote(1), "vote_id": vote(0)["vote_id"]}))
    systems = ["--system", f"x={a}", "--system", f"y={b}"]
    cases = {
        "cannot write to output folder": ["prepare", "--photos", str(photos), *systems,
                                          "--out", str(read_only / "s")],
        "Read-only file system": ["serve", "--survey", str(tmp_path / "s"),
                                  "--votes", str(read_only / "v.csv")],
        "Is a directory": ["serve", "--survey", str(tmp_path / "s"), "--votes", str(tmp_path)],
        "not UTF-8 text": ["serve", "--survey", str(tmp_path / "s"), "--votes", str(latin1)],
        "latin1.csv: not a votes file (not UTF-8": ["analyze", str(latin1), "--out",
                                                    str(tmp_path / "o")],
        "is not participant:trial": ["analyze", str(edited), "--out", str(tmp_path / "o")],
        "cannot write to output folder ": ["analyze", str(good), "--out", str(read_only / "o")],
    }  # fmt: skip
    for expected, argv in cases.items():
        r = subprocess.run([sys.executable, str(root / "survey.py"), *argv],
                           capture_output=True, text=True, cwd=tmp_path, timeout=120)  # fmt: skip
        errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
        assert r.returncode == 2 and len(errors) == 1, (expected, r.stderr)
        said = r.stderr[r.stderr.index("error: ") :]  # a list of bad rows follows its line
        assert expected in said and "Traceback" not in r.stderr, (expected, r.stderr)
    assert not (tmp_path / "o").exists()
