"""Vote store and survey preparation, without a server."""

import json
import time
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from survey_core import (
    REAL,
    VOTE_FIELDS,
    DuplicateVote,
    Manifest,
    PrepareConfig,
    SurveyError,
    SurveySession,
    VoteStore,
    VoteStoreError,
    participant_order,
    prepare_survey,
)
from survey_core.design import parse_system, wrong_colors

from conftest import sample_photos


def row(participant: str, trial: str, **kw) -> dict:
    r = {f: "" for f in VOTE_FIELDS}
    r.update(participant=participant, trial=trial, vote_id=f"{participant}:{trial}", **kw)
    return r


def test_store_appends_refuses_duplicates_and_reloads(tmp_path):
    p = tmp_path / "votes.csv"
    with VoteStore(p) as s:
        s.append(row("a", "t1", choice="left"))
        s.append(row("a", "t2"))
        s.append(row("b", "t1"))
        with pytest.raises(DuplicateVote):
            s.append(row("a", "t1", choice="right"))
        # Only one writer per file: a second server on it fails clearly.
        with pytest.raises(VoteStoreError, match="in use"):
            VoteStore(p)
    with VoteStore(p) as s:
        assert len(s) == 3 and s.voted_trials("a") == {"t1", "t2"}
        with pytest.raises(DuplicateVote):
            s.append(row("b", "t1"))
    lines = p.read_text().splitlines()
    assert lines[0] == ",".join(VOTE_FIELDS) and len(lines) == 4


def test_concurrent_appends_share_fsyncs_and_each_returns_after_one(tmp_path, monkeypatch):
    # Group commit: 40 votes at once need far fewer than 40 fsyncs, and no append returns
    # before an fsync that began after its row was written.
    import os
    import threading

    p = tmp_path / "votes.csv"
    store = VoteStore(p)
    real_fsync, log, written = os.fsync, [], {}

    def fsync(fd):  # the real fsync, slowed like a busy disk, and recorded
        start = len(store._rows)
        time.sleep(0.01)
        real_fsync(fd)
        log.append(start)

    monkeypatch.setattr(os, "fsync", fsync)
    go = threading.Barrier(40)

    def vote(i: int) -> None:
        go.wait()
        store.append(row(f"p{i}", "t1"))
        written[i] = max(log)  # rows known written when the latest fsync began

    threads = [threading.Thread(target=vote, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()
    assert len(written) == 40 and len(log) < 20, len(log)
    lines = p.read_text().splitlines()[1:]
    assert len(lines) == 40  # none torn, lost or doubled
    for i in range(40):  # row k (1-based) durable: a finished fsync began with >= k rows
        k = 1 + next(n for n, ln in enumerate(lines) if ln.startswith(f"p{i}:"))
        assert written[i] >= k, (i, k, written[i])


def test_a_failed_fsync_stops_the_store(tmp_path, monkeypatch):
    # After a failed fsync Linux may have dropped the pages: nothing may be acknowledged
    # afterwards, not even "already recorded" for the vote that was in flight.
    import errno
    import os

    store = VoteStore(tmp_path / "votes.csv")
    store.append(row("a", "t1"))

    def broken(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(VoteStoreError, match="fsync failed"):
        store.append(row("a", "t2"))
    monkeypatch.undo()
    for call in (lambda: store.append(row("b", "t1")), lambda: store.has("a", "t2"),
                 lambda: store.voted_trials("a")):  # fmt: skip
        with pytest.raises(VoteStoreError, match="restart the server"):
            call()
    store.close()
    with VoteStore(tmp_path / "votes.csv") as again:  # a restart reloads what reached the file
        assert again.has("a", "t1")


def test_store_repairs_torn_last_line(tmp_path, caplog):
    p = tmp_path / "votes.csv"
    with VoteStore(p) as s:
        s.append(row("a", "t1"))
        s.append(row("a", "t2"))
    good = p.read_bytes()
    p.write_bytes(good + b"a:t3,s1,pairwise,a,t3,pa")  # killed mid-write
    with caplog.at_level("WARNING"), VoteStore(p) as s:
        assert s.repair.torn_bytes == len(b"a:t3,s1,pairwise,a,t3,pa")
        assert len(s) == 2 and not s.has("a", "t3")
        s.append(row("a", "t3"))  # the torn vote can be cast again
    assert "torn" in caplog.text
    assert p.read_bytes().startswith(good) and p.read_bytes().count(b"\n") == 4


def test_store_refuses_foreign_or_corrupt_files(tmp_path):
    p = tmp_path / "other.csv"
    p.write_text("name,age\nx,1\n")
    with pytest.raises(VoteStoreError, match="header"):
        VoteStore(p)
    assert p.read_text() == "name,age\nx,1\n"  # untouched
    q = tmp_path / "votes.csv"
    with VoteStore(q) as s:
        s.append(row("a", "t1"))
    q.write_text(q.read_text() + "broken,row\n")
    with pytest.raises(VoteStoreError, match=":3:"):
        VoteStore(q)
    with pytest.raises(ValueError, match="newline"):
        with VoteStore(tmp_path / "v2.csv") as s:
            s.append(row("a", "t\n1"))


def make_outputs(tmp_path: Path, n: int = 4) -> tuple[Path, Path, Path]:
    photos = tmp_path / "photos"
    sample_photos(photos, n, size=64)
    a, b = tmp_path / "out_a", tmp_path / "out_b"
    for folder, fn in ((a, lambda im: im.convert("L").convert("RGB")), (b, wrong_colors)):
        folder.mkdir()
        for ph in sorted(photos.iterdir()):
            # A different size on purpose: prepare resizes outputs to the photo.
            fn(Image.open(ph).convert("RGB")).resize((32, 32)).save(folder / (ph.stem + ".jpg"))
    return photos, a, b


def test_prepare_from_folders_is_blinded(tmp_path):
    photos, a, b = make_outputs(tmp_path)
    cfg = PrepareConfig(
        photos, [("sysalpha", str(a)), ("sysbeta", str(b))], tmp_path / "s", catch=3, seed=1
    )
    m = prepare_survey(cfg)
    files = sorted((tmp_path / "s" / "images").iterdir())
    assert len(files) == 4 * 3 + 3  # truth + 2 systems per photo, 3 catch images
    for f in files:
        assert len(f.stem) == 16 and all(c in "0123456789abcdef" for c in f.stem)
        assert Image.open(f).size == (64, 64)
    kinds = Counter(t.kind for t in m.trials)
    assert kinds == {"pair": 4, "catch": 3}
    assert {t.id for t in m.trials} == {t.id for t in Manifest.load(tmp_path / "s").trials}
    m2 = Manifest.load(tmp_path / "s")
    assert m2.images == m.images and m2.survey_id == m.survey_id
    # Catch image really differs from the truth.
    c = next(t for t in m.trials if t.kind == "catch")
    t_img = Image.open(m2.image_path(c.a.image)).convert("HSV")
    w_img = Image.open(m2.image_path(c.b.image)).convert("HSV")
    assert t_img.tobytes() != w_img.tobytes()


def test_prepare_shows_photos_downscaled_by_the_library_loader(tmp_path):
    from colorizer.imageio import load_image

    photos, a, b = make_outputs(tmp_path, n=2)
    cfg = PrepareConfig(photos, [("sysalpha", str(a)), ("sysbeta", str(b))], tmp_path / "s",
                        catch=1, seed=1, max_side=40)  # fmt: skip
    m = prepare_survey(cfg)
    for name, what in m.images.items():
        shown = Image.open(m.image_path(name))
        assert shown.size == (40, 40)  # outputs are fitted to the downscaled photo
        if what["system"] == REAL:
            want = load_image(photos / f"{what['photo']}.png", max_side=40)
            assert shown.tobytes() == want.tobytes()


def test_prepare_leaves_no_trace_of_which_system_made_an_image(tmp_path):
    # Made photo by photo in --system order; written in random order with one mtime, under
    # names that a replayed seed does not reproduce.
    photos, a, b = make_outputs(tmp_path, n=6)
    systems = [("sysalpha", str(a)), ("sysbeta", str(b))]
    m = prepare_survey(PrepareConfig(photos, systems, tmp_path / "s", catch=3, seed=1))
    files = list((tmp_path / "s" / "images").iterdir())
    assert len({f.stat().st_mtime_ns for f in files}) == 1
    made = list(m.images)  # the manifest keeps them in the order they were made
    by_ctime = [f.name for f in sorted(files, key=lambda f: (f.stat().st_ctime_ns, f.name))]
    by_inode = [f.name for f in sorted(files, key=lambda f: f.stat().st_ino)]
    assert by_ctime != made and by_inode != made  # 21 images: 1 in 21! by chance
    again = prepare_survey(PrepareConfig(photos, systems, tmp_path / "s2", catch=3, seed=1))
    assert not set(again.images) & set(m.images)
    assert not {t.id for t in again.trials} & {t.id for t in m.trials}


def test_prepare_errors_leave_nothing(tmp_path):
    photos, a, b = make_outputs(tmp_path)
    next(b.iterdir()).unlink()
    out = tmp_path / "s"
    cfg = PrepareConfig(photos, [("x", str(a)), ("y", str(b))], out)
    with pytest.raises(SurveyError, match="no output"):
        prepare_survey(cfg)
    assert not out.exists() and not list(tmp_path.glob(".survey-*"))
    with pytest.raises(SurveyError, match="two"):
        prepare_survey(PrepareConfig(photos, [("x", str(a))], out))
    with pytest.raises(SurveyError, match="reserved"):
        parse_system("real=foo")
    with pytest.raises(SurveyError, match="NAME=SOURCE"):
        parse_system("foo")
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(SurveyError, match="not empty"):
        prepare_survey(PrepareConfig(photos, [("x", str(a)), ("z", str(a))], out))
    assert (out / "keep.txt").read_text() == "mine"
    with pytest.raises(SurveyError, match="not a survey"):
        Manifest.load(tmp_path)


@pytest.mark.parametrize("stem", ["two\nlines", "tab\there", "para\u2028sep", "=HYPERLINK(1)",
                                  "+1", "-2+3", "@SUM(A1)"])  # fmt: skip
def test_prepare_refuses_photo_names_that_break_the_votes_csv(tmp_path, stem):
    # A newline in a photo name made every vote on it fail (the row would span two lines);
    # a leading = + - @ would run as a formula where the CSV is opened in a spreadsheet.
    photos, a, b = make_outputs(tmp_path, n=2)
    for folder, ext in ((photos, ".png"), (a, ".jpg"), (b, ".jpg")):
        (folder / f"photo_000{ext}").rename(folder / f"{stem}{ext}")
    out = tmp_path / "s"
    with pytest.raises(SurveyError, match="rename these photo files") as e:
        prepare_survey(PrepareConfig(photos, [("x", str(a)), ("y", str(b))], out))
    assert repr(f"{stem}.png") in str(e.value)
    assert not out.exists() and not list(tmp_path.glob(".survey-*"))
    assert (photos / f"{stem}.png").exists()  # nothing of the user's is touched
    with pytest.raises(SurveyError, match="system name"):
        prepare_survey(PrepareConfig(photos, [(stem, str(a)), ("y", str(b))], out))


def test_a_manifest_with_an_unsafe_name_is_refused(tmp_path):
    photos, a, b = make_outputs(tmp_path, n=2)
    prepare_survey(PrepareConfig(photos, [("x", str(a)), ("y", str(b))], tmp_path / "s"))
    path = tmp_path / "s" / "manifest.json"
    d = json.loads(path.read_text())
    d["photos"][0] = "=cmd|' /C calc'!A0"  # edited by hand, or written before the check
    path.write_text(json.dumps(d))
    with pytest.raises(SurveyError, match="formula; prepare the survey again"):
        Manifest.load(tmp_path / "s")


def test_prepare_with_a_model_checkpoint_in_turing_mode(tmp_path):
    from colorizer.checkpoint import save_checkpoint
    from colorizer.models import create_model

    photos = tmp_path / "photos"
    sample_photos(photos, 2, size=48)
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(ckpt, create_model("colornet_tiny"))
    m = prepare_survey(
        PrepareConfig(
            photos, [("ours", str(ckpt)), ("gray", "gray")], tmp_path / "s", mode="turing"
        )
    )
    assert Counter(t.kind for t in m.trials) == {"turing": 4}
    assert all(t.a.system == "real" for t in m.trials)
    assert {v["system"] for v in m.images.values()} == {"real", "ours", "gray"}
    with pytest.raises(SurveyError, match="nosuchmodel"):
        prepare_survey(
            PrepareConfig(photos, [("x", "nosuchmodel")], tmp_path / "s2", mode="turing")
        )


def test_participant_order_is_balanced_and_stable(tmp_path):
    photos, a, b = make_outputs(tmp_path, n=5)
    m = prepare_survey(
        PrepareConfig(photos, [("x", str(a)), ("y", str(b))], tmp_path / "s", catch=2)
    )
    o1 = participant_order(m, "p1")
    assert [(p.trial.id, p.a_left) for p in o1] == [
        (p.trial.id, p.a_left) for p in participant_order(m, "p1")
    ]
    assert sorted(p.trial.id for p in o1) == sorted(t.id for t in m.trials)
    orders = [participant_order(m, f"p{i}") for i in range(40)]
    assert len({tuple(p.trial.id for p in o) for o in orders}) > 30  # own random order
    for o in orders:  # 7 trials: 3 or 4 with side a on the left
        assert sum(p.a_left for p in o) in (3, 4)
    sub = participant_order(m, "p1", max_trials=2)
    assert Counter(p.trial.kind for p in sub) == {"pair": 2, "catch": 2}


def test_session_rules_without_a_server(tmp_path):
    photos, a, b = make_outputs(tmp_path, n=2)
    m = prepare_survey(PrepareConfig(photos, [("x", str(a)), ("y", str(b))], tmp_path / "s"))
    with VoteStore(tmp_path / "v.csv") as store:
        s = SurveySession(m, store, admin_password="pw")
        assert s.start(False)["status"] == "error"
        d = s.start(True)
        tok, t1 = d["token"], d["trial"]
        assert s.vote(tok + "x", t1, "left")["status"] == "error"  # forged token
        assert s.vote(tok, t1, "up")["status"] == "error"
        other = next(t.id for t in m.trials if t.id != t1)
        stale = s.vote(tok, other, "left")  # not the shown trial: nothing recorded
        assert not stale["recorded"] and stale["trial"] == t1 and len(store) == 0
        d2 = s.vote(tok, t1, "left")
        assert d2["recorded"] and d2["trial"] == other and len(store) == 1
        again = s.vote(tok, t1, "right")  # double click
        assert not again["recorded"] and again["trial"] == other and len(store) == 1
        assert s.resume(tok)["trial"] == other
        # A restarted server (new session object) continues the same participant.
        s2 = SurveySession(m, store, admin_password="pw")
        assert s2.resume(tok)["trial"] == other
        assert s2.vote(tok, other, "right")["status"] == "done"
        assert s2.admin("nope")["ok"] is False
        adm = s2.admin("pw")
        assert adm["votes"] == 2 and adm["finished"] == 1 and sum(adm["wins"].values()) == 2
        assert json.dumps(s2.start(True)).find('"x"') == -1


def test_cli_errors_are_one_line_with_exit_2(tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]

    def run(*args):
        return subprocess.run(
            [sys.executable, str(root / "survey.py"), *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )

    r = run("prepare", "--photos", "nowhere", "--system", "a=x", "--system", "b=y", "--out", "s")
    assert r.returncode == 2 and "--photos nowhere: not a folder" in r.stderr
    r = run("serve", "--survey", "nowhere", "--votes", "v.csv")
    assert r.returncode == 2 and "not a survey" in r.stderr
    bad = tmp_path / "v.csv"
    bad.write_text(",".join(VOTE_FIELDS) + "\n" + "x,y\n")
    r = run("analyze", str(bad), "--out", "o")
    assert r.returncode == 2 and "v.csv:2: 2 fields" in r.stderr
    assert not (tmp_path / "o").exists()
