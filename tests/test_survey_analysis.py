"""Survey analysis against votes files with hand-computable answers."""

import csv
import math
from pathlib import Path

import pytest

from survey_core import VOTE_FIELDS
from survey_core.analysis import (
    AnalysisConfig,
    AnalysisError,
    analyze,
    analyze_file,
    binom_p,
    bradley_terry,
    load_votes,
    plots,
    wilson_interval,
)

FAST = AnalysisConfig(min_response_ms=300, max_catch_failures=0, bootstrap=200, seed=0)


class VoteWriter:
    """Builds a votes CSV row by row, the way the server writes it."""

    def __init__(self, mode: str = "pairwise"):
        self.mode = mode
        self.rows: list[dict] = []
        self.n = 0

    def add(self, participant, photo, left, right, choice, rt=1000.0, kind=None, trial=None):
        self.n += 1
        kind = kind or ("turing" if self.mode == "turing" else "pair")
        chosen = left if choice == "left" else right
        correct = "" if kind == "pair" else str(int(chosen == "real"))
        trial = trial or f"t{self.n:05d}"
        self.rows.append(
            {
                "vote_id": f"{participant}:{trial}",
                "survey": "s1",
                "mode": self.mode,
                "participant": participant,
                "trial": trial,
                "kind": kind,
                "photo": photo,
                "position": 0,
                "left_system": left,
                "right_system": right,
                "choice": choice,
                "chosen_system": chosen,
                "response_ms": rt,
                "is_catch": int(kind == "catch"),
                "correct": correct,
                "shown_at": "2026-01-01T00:00:00.000+00:00",
                "voted_at": "2026-01-01T00:00:01.000+00:00",
                "app_version": "test",
            }
        )

    def write(self, path: Path) -> Path:
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, VOTE_FIELDS, lineterminator="\n")
            w.writeheader()
            w.writerows(self.rows)
        return path


def test_wilson_and_binomial_known_values():
    # Textbook values: 60/100 -> [0.502, 0.691]; 8/10 -> [0.490, 0.943].
    lo, hi = wilson_interval(60, 100)
    assert lo == pytest.approx(0.50200, abs=1e-4) and hi == pytest.approx(0.69060, abs=1e-4)
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.49016, abs=1e-4) and hi == pytest.approx(0.94332, abs=1e-4)
    # Exact two-sided: P(X<=2 or X>=8 | 10, 1/2) = 2 * (1 + 10 + 45) / 1024.
    assert binom_p(8, 10) == pytest.approx(112 / 1024, rel=1e-12)
    assert binom_p(60, 100) == pytest.approx(0.056888, abs=1e-5)
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    # Exactly 0 and 1 at the ends (rounding gave 5.6e-17 > the share of 0: a negative bar).
    assert wilson_interval(0, 3)[0] == 0.0 and wilson_interval(3, 3)[1] == 1.0


def test_pairwise_share_per_photo_position_and_exclusions(tmp_path):
    w = VoteWriter()
    # 10 participants x 10 photos = 100 votes; on photo i "ours" wins the votes of the
    # first k[i] participants: 60 wins in all.
    expected_wins = {}
    for i in range(10):
        photo = f"p{i}"
        k = [10, 9, 8, 7, 6, 5, 4, 3, 2, 6][i]  # 60 wins in total
        expected_wins[photo] = k
        for j in range(10):
            ours_left = (i + j) % 2 == 0  # exactly half of the votes have "ours" on the left
            left, right = ("ours", "zhang") if ours_left else ("zhang", "ours")
            ours_wins = j < k
            choice = "left" if ours_wins == ours_left else "right"
            w.add(f"u{j}", photo, left, right, choice)
    # Two catch trials each; u_bad fails one -> all of u_bad's votes are excluded.
    for j in range(10):
        w.add(f"u{j}", "p0", "real", "catch_wrong", "left", kind="catch")
    w.add("u_bad", "p0", "real", "catch_wrong", "right", kind="catch")
    for i in range(5):
        w.add("u_bad", f"p{i}", "ours", "zhang", "left")  # would shift "ours" if counted
    # Too-fast votes are dropped one by one.
    w.add("u_fast", "p1", "ours", "zhang", "left", rt=120.0)
    w.add("u_fast", "p2", "zhang", "ours", "right", rt=100.0)

    res = analyze_file(w.write(tmp_path / "votes.csv"), tmp_path / "out", FAST)
    row = res.overall.iloc[0]
    assert (row["system"], row["versus"], row["k"], row["n"]) == ("ours", "zhang", 60, 100)
    assert row["ci95_lo"] == pytest.approx(0.50200, abs=1e-4)
    assert row["binom_p"] == pytest.approx(0.056888, abs=1e-5)
    pp = res.per_photo.set_index("photo")
    for photo, k in expected_wins.items():
        assert pp.loc[photo, "ours_wins"] == k
        assert pp.loc[photo, "ours_share_pct"] == pytest.approx(10 * k)
        assert pp.loc[photo, "zhang_wins"] == 10 - k
    # The seed's table is sorted by share, highest first.
    assert list(pp["ours_share_pct"]) == sorted(pp["ours_share_pct"], reverse=True)
    # Left chosen: ours-left votes ours won + zhang-left votes zhang won.
    left = sum(1 for r in w.rows[:100] if r["choice"] == "left")
    assert res.position.iloc[0]["k"] == left and res.position.iloc[0]["n"] == 100
    people = res.participants.set_index("participant")
    assert bool(people.loc["u_bad", "excluded"]) and people.loc["u_bad", "catch_failed"] == 1
    assert people.loc["u_fast", "too_fast"] == 2 and people.loc["u_fast", "counted_votes"] == 0
    assert not bool(people.loc["u3", "excluded"])
    for name in ["summary.md", "per_photo.csv", "overall.csv", "position.csv", "per_photo.png"]:
        assert (tmp_path / "out" / name).stat().st_size > 0
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "60 of 100" in summary
    # The question in the participants' words (consent heading and trials), nothing else.
    assert 'Question asked: "Which photo looks more realistic?"' in summary
    assert "looks real?" not in summary

    # Loosening the thresholds brings the excluded votes back.
    loose = AnalysisConfig(min_response_ms=0, max_catch_failures=1, bootstrap=0)
    res2 = analyze(load_votes(tmp_path / "votes.csv")[0], loose)
    assert res2.overall.iloc[0]["n"] == 107


def test_bradley_terry_ordering_and_closed_form(tmp_path):
    # Two systems without prior: strength ratio = win ratio.
    s = bradley_terry([[0, 30], [10, 0]], prior=0.0)
    assert s[0] - s[1] == pytest.approx(math.log(3), abs=1e-6)
    w = VoteWriter()
    n = 0
    # A beats B 70/100, B beats C 70/100, A beats C 85/100 -> A > B > C.
    for (x, y), k in {("A", "B"): 70, ("B", "C"): 70, ("A", "C"): 85}.items():
        for j in range(100):
            n += 1
            left, right = (x, y) if j % 2 else (y, x)
            winner = x if j < k else y
            w.add(f"u{j % 20}", f"p{j % 5}", left, right, "left" if winner == left else "right")
    res = analyze_file(w.write(tmp_path / "v.csv"), tmp_path / "o", FAST)
    assert list(res.bt["system"]) == ["A", "B", "C"]
    assert (res.bt["ci95_lo"] <= res.bt["bt_score"]).all()
    assert (res.bt["bt_score"] <= res.bt["ci95_hi"]).all()
    assert res.bt["bt_score"].sum() == pytest.approx(0.0, abs=1e-9)
    assert len(res.overall) == 3  # one row per pair
    assert (tmp_path / "o" / "bradley_terry.png").exists()


def test_turing_fooled_rate(tmp_path):
    w = VoteWriter("turing")
    # ours fools on 3 of 8, zhang on 1 of 8.
    for j in range(8):
        for sysname, k in (("ours", 3), ("zhang", 1)):
            fooled = j < k
            real_left = j % 2 == 0
            left, right = ("real", sysname) if real_left else (sysname, "real")
            choice = "left" if fooled != real_left else "right"
            w.add(f"u{j}", "p0", left, right, choice)
    res = analyze_file(w.write(tmp_path / "v.csv"), tmp_path / "o", FAST)
    o = res.overall.set_index("system")
    assert o.loc["ours", "fooled"] == 3 and o.loc["ours", "n"] == 8
    assert o.loc["zhang", "fooled"] == 1
    assert o.loc["(all)", "fooled_rate"] == pytest.approx(4 / 16)


def test_malformed_rows_are_reported_not_dropped(tmp_path):
    w = VoteWriter()
    for j in range(4):
        w.add(f"u{j}", "p0", "ours", "zhang", "left")
    w.rows[1]["choice"] = "middle"
    w.rows[2]["chosen_system"] = "zhang"  # contradicts choice=left
    path = w.write(tmp_path / "v.csv")
    with open(path, "a") as f:
        f.write("only,three,fields\n")
        f.write(",".join(str(w.rows[0][k]) for k in VOTE_FIELDS) + "\n")  # duplicate vote
    with pytest.raises(AnalysisError) as e:
        load_votes(path)
    msg = str(e.value)
    assert "4 malformed" in msg
    for line in (":3:", ":4:", ":6:", ":7:"):
        assert line in msg
    df, problems = load_votes(path, drop_malformed=True)
    assert len(df) == 2 and len(problems) == 4
    res = analyze_file(path, tmp_path / "o", AnalysisConfig(drop_malformed=True, bootstrap=0))
    assert len(res.malformed) == 4
    assert (tmp_path / "o" / "malformed.txt").read_text().count("\n") == 4


def test_cells_a_spreadsheet_would_run_are_malformed(tmp_path):
    w = VoteWriter()
    w.add("u1", "p0", "ours", "zhang", "left")
    w.add("u1", '=HYPERLINK("http://x")', "ours", "zhang", "left")
    w.add("@u2", "p0", "ours", "zhang", "right")
    with pytest.raises(AnalysisError, match="2 malformed") as e:
        load_votes(w.write(tmp_path / "v.csv"))
    assert ":3: photo" in str(e.value) and ":4: vote_id" in str(e.value)
    assert "formula" in str(e.value)


def test_bad_header_and_empty_file(tmp_path):
    p = tmp_path / "v.csv"
    p.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(AnalysisError, match="header"):
        load_votes(p)
    p.write_text(",".join(VOTE_FIELDS) + "\n")
    with pytest.raises(AnalysisError, match="no votes"):
        analyze(load_votes(p)[0])
    with pytest.raises(AnalysisError, match="no such"):
        load_votes(tmp_path / "missing.csv")


def test_several_votes_files_are_merged_and_duplicates_refused(tmp_path):
    # One file per server instance: merged they give the same analysis as one file.
    w = VoteWriter()
    for j in range(6):
        for i in range(4):
            w.add(f"u{j}", f"p{i}", "ours", "zhang", "left" if (i + j) % 3 else "right")
    one = w.write(tmp_path / "all.csv")
    a, b = VoteWriter(), VoteWriter()
    a.rows, b.rows = w.rows[:10], w.rows[10:]
    files = [a.write(tmp_path / "votes-1.csv"), b.write(tmp_path / "votes-2.csv")]
    merged = analyze_file(files, tmp_path / "m", FAST)
    whole = analyze_file(one, tmp_path / "w", FAST)
    assert merged.overall.equals(whole.overall) and merged.per_photo.equals(whole.per_photo)
    summary = (tmp_path / "m" / "summary.md").read_text()
    assert "votes-1.csv` (10)" in summary and "votes-2.csv` (14)" in summary

    with pytest.raises(AnalysisError, match="given twice"):
        load_votes([files[0], tmp_path / "." / "votes-1.csv"])
    # The same participant and trial in two files: answered twice, refused with both places.
    b.rows.append(dict(a.rows[3], choice="right", chosen_system="zhang"))
    b.write(files[1])
    with pytest.raises(AnalysisError, match="1 malformed") as e:
        load_votes(files)
    assert "votes-2.csv:16: duplicate vote" in str(e.value)
    assert "first at " + str(files[0]) + ":5" in str(e.value)


def test_outputs_of_simulated_votes_say_so_in_their_titles(tmp_path):
    from PIL import Image

    w = VoteWriter()
    for j in range(4):
        for x, y in (("A", "B"), ("B", "C"), ("A", "C")):
            w.add(f"u{j}", "p0", x, y, "left" if j % 3 else "right")
    for r in w.rows:
        r["app_version"] = "colorizer-survey/1.0+simulated"  # `serve --simulated`
    cfg = AnalysisConfig(bootstrap=20, min_response_ms=0)
    analyze_file(w.write(tmp_path / "v.csv"), tmp_path / "sim", cfg)
    pngs = ["per_photo.png", "overall.png", "bradley_terry.png"]
    summary = (tmp_path / "sim" / "summary.md").read_text()
    assert summary.startswith("# SIMULATED votes, not a real survey: Survey analysis")
    for name in pngs:  # drawn as the plot's title and kept in the file's metadata
        assert Image.open(tmp_path / "sim" / name).info["Title"].startswith("SIMULATED votes")
    w.rows[0]["app_version"] = "colorizer-survey/1.0"
    analyze_file(w.write(tmp_path / "v.csv"), tmp_path / "mixed", cfg)
    assert "# 11 of 12 votes SIMULATED" in (tmp_path / "mixed" / "summary.md").read_text()
    for r in w.rows:
        r["app_version"] = "colorizer-survey/1.0"
    analyze_file(w.write(tmp_path / "v.csv"), tmp_path / "real", cfg)
    assert "SIMULATED" not in (tmp_path / "real" / "summary.md").read_text()
    for name in pngs:
        assert not Image.open(tmp_path / "real" / name).info["Title"].startswith("SIMULATED")


def _reference_at(lines, value: float, axis: str) -> bool:
    """A horizontal (axis "y") or vertical ("x") line drawn across the axes at ``value``."""
    get = "get_ydata" if axis == "y" else "get_xdata"
    return any(list(getattr(line, get)()) == [value, value] for line in lines)


def _errorbars(ax, direction: str) -> list:
    from matplotlib.container import ErrorbarContainer

    key = "has_yerr" if direction == "y" else "has_xerr"
    return [c for c in ax.containers if isinstance(c, ErrorbarContainer) and getattr(c, key)]


def test_plots_show_interval_n_reference_line_and_labels(tmp_path):
    import matplotlib.pyplot as plt

    # ours vs zhang on three photos: ours wins 0 of 4 (a 0 % bar), 2 of 6 and 5 of 5.
    w = VoteWriter()
    for photo, k, n in (("p_zero", 0, 4), ("p_some", 2, 6), ("p_all", 5, 5)):
        for j in range(n):
            left, right = ("ours", "zhang") if j % 2 else ("zhang", "ours")
            winner = "ours" if j < k else "zhang"
            w.add(f"u{j}", photo, left, right, "left" if winner == left else "right")
    cfg = AnalysisConfig(bootstrap=0, min_response_ms=0, focus="ours")
    res = analyze_file(w.write(tmp_path / "v.csv"), tmp_path / "o", cfg)
    pp = res.per_photo.set_index("photo")
    assert pp.loc["p_zero", "ours_n"] == 4 and pp.loc["p_some", "ours_n"] == 6  # n per photo

    figs = plots(res)
    try:
        ax = figs["per_photo.png"].axes[0]
        assert "ours" in ax.get_ylabel() and "%" in ax.get_ylabel()
        assert ax.get_xlabel() == "photo"
        assert _reference_at(ax.get_lines(), 50, "y")  # the 50 % line
        texts = [t.get_text() for t in ax.texts]
        for photo, n in (("p_zero", 4), ("p_some", 6), ("p_all", 5)):
            i = [t.get_text() for t in ax.get_xticklabels()].index(photo)
            assert f"n={n}" in texts[i], texts  # n beside each bar
        assert "0 %\nn=4" in texts  # the 0 % photo says so in words too
        (eb,) = _errorbars(ax, "y")
        # The interval of every photo: the 0 % one reaches its Wilson upper bound.
        marker, _, (bars,) = eb.lines
        segments = {round(float(seg[0][0])): seg for seg in bars.get_segments()}
        i_zero = [t.get_text() for t in ax.get_xticklabels()].index("p_zero")
        lo, hi = wilson_interval(0, 4)
        assert segments[i_zero][:, 1] == pytest.approx([100 * lo, 100 * hi])
        # A 0 % share is still drawn: a marker at 0, inside the axes, not clipped away.
        assert marker.get_marker() not in (None, "", "None", " ")
        assert marker.get_ydata()[i_zero] == 0 and not marker.get_clip_on()
        assert ax.get_ylim()[0] <= 0

        ax = figs["overall.png"].axes[0]
        assert ax.get_xlabel() and ax.get_ylabel() == "pair of systems"
        assert _reference_at(ax.get_lines(), 50, "x")
        assert len(_errorbars(ax, "x")) == 1
        labels = [t.get_text() for t in ax.get_yticklabels()] + [t.get_text() for t in ax.texts]
        assert any("n=15" in t for t in labels), labels
    finally:
        for fig in figs.values():
            plt.close(fig)
    for name in ("per_photo.png", "overall.png"):
        assert (tmp_path / "o" / name).stat().st_size > 0

    # Three systems: the Bradley-Terry plot has its interval, n, reference and labels too;
    # Turing mode's per-photo plot its 50 % ceiling and n.
    w3 = VoteWriter()
    for j in range(6):
        for x, y in (("A", "B"), ("B", "C"), ("A", "C")):
            w3.add(f"u{j}", "p0", x, y, "left" if j % 3 else "right")
    loose = AnalysisConfig(bootstrap=20, min_response_ms=0)
    res3 = analyze_file(w3.write(tmp_path / "v3.csv"), tmp_path / "o3", loose)
    t = VoteWriter("turing")
    for j in range(4):
        t.add(f"u{j}", "p0", "real", "ours", "left")  # never fooled: 0 %
    rest = analyze_file(t.write(tmp_path / "t.csv"), tmp_path / "ot", loose)
    figs = {**{f"bt/{k}": v for k, v in plots(res3).items()}, **plots(rest)}
    try:
        ax = figs["bt/bradley_terry.png"].axes[0]
        assert ax.get_xlabel() and ax.get_ylabel() == "system"
        assert _reference_at(ax.get_lines(), 0, "x") and len(_errorbars(ax, "x")) == 1
        assert all("n=" in t.get_text() for t in ax.get_yticklabels())
        ax = figs["per_photo.png"].axes[0]
        assert "fooled" in ax.get_ylabel() and ax.get_xlabel()
        assert _reference_at(ax.get_lines(), 50, "y")
        assert [t.get_text() for t in ax.texts] == ["0 %\nn=4"]
        (eb,) = _errorbars(ax, "y")
        assert eb.lines[0].get_ydata()[0] == 0 and not eb.lines[0].get_clip_on()
    finally:
        for fig in figs.values():
            plt.close(fig)
