"""Analysis of a votes CSV: shares, intervals, tests, position bias, exclusions, BT scores.

Pairwise mode (the first seed's survey):
- per photo, the share of votes each system won (the seed's table);
- per pair of systems, the overall share with a 95 % Wilson interval and an exact two-sided
  binomial test against 50 % (scipy.stats.binomtest);
- Bradley-Terry scores with participant-bootstrap intervals when there are more than two systems.

Turing mode (Zhang et al.'s colorization Turing test): the fooled rate per system, i.e. the
share of trials where the colorization was taken for the real photo (50 % is the ceiling).

Always: left/right position bias, a participants table, and exclusions: participants who
fail more than ``max_catch_failures`` catch trials and single votes faster than
``min_response_ms``. Catch trials never count towards a system.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from colorizer.atomic import write_text

from .design import QUESTIONS, REAL, name_problem
from .session import SIMULATED
from .votes import VOTE_FIELDS

log = logging.getLogger(__name__)

Z95 = float(stats.norm.ppf(0.975))


class AnalysisError(ValueError):
    """The votes file cannot be analysed as it is; the message lists the problems."""


@dataclass
class AnalysisConfig:
    min_response_ms: float = 300.0  # faster votes are taken as clicks without looking
    max_catch_failures: int = 0  # participants failing more catch trials are excluded
    bootstrap: int = 1000  # participant resamples for the BT intervals
    seed: int = 0
    drop_malformed: bool = False  # report and skip bad rows instead of stopping
    bt_prior: float = 0.5  # pseudo-wins each way per compared pair: keeps BT scores finite
    focus: str | None = None  # system whose share sorts and plots the per-photo table


@dataclass
class AnalysisResult:
    mode: str
    votes: pd.DataFrame  # every valid vote with an "excluded" reason column ("" = counted)
    per_photo: pd.DataFrame
    overall: pd.DataFrame
    position: pd.DataFrame
    participants: pd.DataFrame
    bt: pd.DataFrame | None
    malformed: list[str] = field(default_factory=list)
    markdown: str = ""
    simulated: int = 0  # votes stored by a server started with --simulated

    def title(self, text: str) -> str:
        """``text``, led by a warning when any vote was simulated: every output says so."""
        n = len(self.votes)
        if not self.simulated:
            return text
        if self.simulated == n:
            return f"SIMULATED votes, not a real survey: {text}"
        return f"{self.simulated} of {n} votes SIMULATED: {text}"


# ----------------------------------------------------------------------------- statistics


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (nan, nan for n = 0)."""
    if n <= 0:
        return (math.nan, math.nan)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At k = 0 (k = n) the bound is exactly 0 (1); rounding gave 5.6e-17, above the share,
    # and a plot's error bar went negative.
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return (lo, hi)


def binom_p(k: int, n: int, p: float = 0.5) -> float:
    """Exact two-sided binomial test p-value (nan for n = 0)."""
    if n <= 0:
        return math.nan
    return float(stats.binomtest(int(k), int(n), p, alternative="two-sided").pvalue)


def bradley_terry(
    wins: np.ndarray, prior: float = 0.5, iters: int = 10000, tol: float = 1e-10
) -> np.ndarray:
    """Bradley-Terry log-strengths (mean 0) from wins[i, j] = times i beat j.

    Hunter's (2004) MM iteration. ``prior`` adds that many wins each way to every pair that
    was compared at all, so a system that won (or lost) every vote gets a finite score.
    Pairs never compared stay uninformative; a disconnected comparison graph is an error.
    """
    w = np.asarray(wins, dtype=float).copy()
    s = w.shape[0]
    n_pair = w + w.T
    compared = n_pair > 0
    w = w + prior * compared
    n_pair = w + w.T
    # Connectivity check: BT compares only within a connected component.
    seen, todo = {0}, [0]
    while todo:
        i = todo.pop()
        for j in np.nonzero(compared[i])[0]:
            if j not in seen:
                seen.add(int(j))
                todo.append(int(j))
    if len(seen) != s:
        raise AnalysisError("Bradley-Terry needs every system linked by compared pairs")
    total_wins = w.sum(axis=1)
    p = np.ones(s)
    for _ in range(iters):
        denom = (n_pair / (p[:, None] + p[None, :])).sum(axis=1)
        new = total_wins / denom
        new /= np.exp(np.mean(np.log(new)))  # fix the scale: geometric mean 1
        if np.max(np.abs(new - p)) < tol:
            p = new
            break
        p = new
    return np.log(p)


# ----------------------------------------------------------------------------- loading


def _votes_paths(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """The votes files to merge, each existing and none given twice."""
    if isinstance(paths, str | Path):
        paths = [paths]
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.is_file():
            raise AnalysisError(f"{p}: no such votes file")
        twin = next((q for q in out if q.samefile(p)), None)
        if twin is not None:
            raise AnalysisError(f"{p} is {twin}, given twice: its votes would count twice")
        out.append(p)
    if not out:
        raise AnalysisError("no votes file given")
    return out


def load_votes(
    path: str | Path | Sequence[str | Path], drop_malformed: bool = False
) -> tuple[pd.DataFrame, list[str]]:
    """Read, validate and merge votes CSVs (one per server instance) -> (votes, problems).

    Every row is checked (field count, choice, chosen side, numbers, flags, duplicate
    participant/trial, within a file and across files: a participant who voted on the same
    trial on two instances answered it twice, which the analysis cannot settle). Problems
    are an error unless ``drop_malformed``; then they are returned (and written to the
    report) and those rows skipped (a duplicate keeps its first row). The votes get a
    ``source`` column naming their file.
    """
    problems: list[str] = []
    good: list[dict] = []
    seen: dict[tuple[str, str], str] = {}  # (participant, trial) -> where it was first
    for one in _votes_paths(path):
        _read_votes(one, good, seen, problems)
    if problems and not drop_malformed:
        shown = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise AnalysisError(
            f"{len(problems)} malformed vote row(s) (pass --drop-malformed to skip them):\n  {shown}{more}"
        )
    for p in problems:
        log.warning("skipped: %s", p)
    df = pd.DataFrame(good, columns=[*VOTE_FIELDS, "source"])
    df["position"] = df["position"].astype(int)
    df["response_ms"] = df["response_ms"].astype(float)
    df["is_catch"] = df["is_catch"].astype(int).astype(bool)
    return df, problems


def _read_votes(
    path: Path, good: list[dict], seen: dict[tuple[str, str], str], problems: list[str]
) -> None:
    """Append ``path``'s valid rows to ``good`` and its problems to ``problems``."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise AnalysisError(
            f"{path}: not a votes file (not UTF-8 text at byte {e.start})"
        ) from None
    if text and not text.endswith("\n"):
        problems.append(
            f"{path}: last line is incomplete (torn write); the server cuts it on start"
        )
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header != VOTE_FIELDS:
        raise AnalysisError(f"{path}: header is {header}, expected {VOTE_FIELDS}")
    for lineno, rec in enumerate(reader, start=2):
        where = f"{path}:{lineno}"
        if len(rec) != len(VOTE_FIELDS):
            problems.append(f"{where}: {len(rec)} fields, expected {len(VOTE_FIELDS)}")
            continue
        r = dict(zip(VOTE_FIELDS, rec, strict=True))
        bad = _row_problem(r)
        key = (r["participant"], r["trial"])
        if bad is None and r["vote_id"] != f"{r['participant']}:{r['trial']}":
            # The server writes participant:trial; another vote_id is an edited row, and
            # one vote_id on two rows would be counted as two votes by whoever joins on it.
            bad = f"vote_id {r['vote_id']!r} is not participant:trial ({key[0]}:{key[1]})"
        if bad is None and key in seen:
            bad = (
                f"duplicate vote of participant {r['participant']} on trial {r['trial']} "
                f"(first at {seen[key]})"
            )
        if bad is not None:
            problems.append(f"{where}: {bad}")
            continue
        seen[key] = where
        good.append({**r, "source": str(path)})


# Text fields that reach the output tables; numbers are checked below.
TEXT_FIELDS = ("vote_id", "survey", "participant", "trial", "photo", "left_system",
               "right_system", "chosen_system", "shown_at", "voted_at", "app_version")  # fmt: skip


def _row_problem(r: dict) -> str | None:
    if not r["participant"] or not r["trial"] or not r["photo"]:
        return "empty participant, trial or photo"
    for f in TEXT_FIELDS:
        # The server never writes such a cell (prepare refuses those names); a hand-edited
        # one would reach the output tables and run as a formula in a spreadsheet.
        problem = name_problem(r[f]) if r[f] else None
        if problem:
            return f"{f} {r[f]!r} {problem}"
    if r["choice"] not in ("left", "right"):
        return f"choice {r['choice']!r} is not left/right"
    side = r["left_system"] if r["choice"] == "left" else r["right_system"]
    if r["chosen_system"] != side:
        return f"chosen_system {r['chosen_system']!r} is not the {r['choice']} system {side!r}"
    if r["left_system"] == r["right_system"]:
        return "the same system on both sides"
    try:
        rt = float(r["response_ms"])
        pos = int(r["position"])
    except ValueError:
        return f"response_ms {r['response_ms']!r} or position {r['position']!r} is not a number"
    if not math.isfinite(rt) or rt < 0 or pos < 0:
        return "negative or non-finite response_ms/position"
    if r["is_catch"] not in ("0", "1"):
        return f"is_catch {r['is_catch']!r} is not 0/1"
    if r["kind"] not in ("pair", "turing", "catch") or (r["kind"] == "catch") != (
        r["is_catch"] == "1"
    ):
        return f"kind {r['kind']!r} does not match is_catch {r['is_catch']!r}"
    if r["mode"] not in ("pairwise", "turing"):
        return f"mode {r['mode']!r} is not pairwise/turing"
    if r["kind"] in ("catch", "turing"):
        expect = "1" if r["chosen_system"] == REAL else "0"
        if r["correct"] != expect:
            return f"correct {r['correct']!r} does not match the chosen system"
    return None


# ----------------------------------------------------------------------------- analysis


def _exclusions(df: pd.DataFrame, cfg: AnalysisConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    catch = df[df["is_catch"]]
    failed = (catch["correct"] != "1").groupby(catch["participant"]).sum()
    bad_people = set(failed[failed > cfg.max_catch_failures].index)
    reason = np.where(
        df["participant"].isin(bad_people),
        "failed catch trials",
        np.where(df["response_ms"] < cfg.min_response_ms, "too fast", ""),
    )
    df = df.assign(excluded=reason)
    g = df.groupby("participant")
    people = pd.DataFrame(
        {
            "votes": g.size(),
            "catch_votes": g["is_catch"].sum().astype(int),
            "catch_failed": failed.reindex(g.size().index, fill_value=0).astype(int),
            "too_fast": g["response_ms"].apply(lambda s: int((s < cfg.min_response_ms).sum())),
            "median_response_ms": g["response_ms"].median().round(1),
            "counted_votes": g.apply(
                lambda x: int(((x["excluded"] == "") & ~x["is_catch"]).sum()), include_groups=False
            ),
        }
    )
    people["excluded"] = people.index.isin(bad_people)
    return df, people.reset_index()


def _share_row(label: dict, k: int, n: int) -> dict:
    lo, hi = wilson_interval(k, n)
    return {
        **label,
        "n": n,
        "k": k,
        "share": k / n if n else math.nan,
        "ci95_lo": lo,
        "ci95_hi": hi,
        "binom_p": binom_p(k, n),
    }


def _pairwise(main: pd.DataFrame, cfg: AnalysisConfig):
    systems = sorted(set(main["left_system"]) | set(main["right_system"]))
    # Long form: one row per (vote, system on screen) with a win flag.
    long = pd.concat(
        [
            main.assign(system=main["left_system"], win=main["choice"] == "left"),
            main.assign(system=main["right_system"], win=main["choice"] == "right"),
        ]
    )
    g = long.groupby(["photo", "system"])["win"].agg(["sum", "count"]).unstack("system")
    per_photo = pd.DataFrame(index=g.index)
    per_photo["votes"] = main.groupby("photo").size()
    for s in systems:
        per_photo[f"{s}_wins"] = g["sum"][s].fillna(0).astype(int) if s in g["sum"] else 0
        # n of the share: the votes on this photo that showed the system.
        per_photo[f"{s}_n"] = g["count"][s].fillna(0).astype(int) if s in g["count"] else 0
        per_photo[f"{s}_share_pct"] = (100 * g["sum"][s] / g["count"][s]).round(1)
    focus = cfg.focus or systems[0]
    if focus not in systems:
        raise AnalysisError(f"--focus {focus!r} is not one of the systems {systems}")
    per_photo = per_photo.sort_values(f"{focus}_share_pct", ascending=False).reset_index()
    per_photo.attrs["focus"] = focus

    rows = []
    for x, y in combinations(systems, 2):
        pair = main[main["left_system"].isin([x, y]) & main["right_system"].isin([x, y])]
        rows.append(
            _share_row(
                {"system": x, "versus": y}, int((pair["chosen_system"] == x).sum()), len(pair)
            )
        )
    overall = pd.DataFrame(rows)

    bt = None
    if len(systems) > 2:
        bt = _bt_table(main, systems, cfg)
    return per_photo, overall, bt


def _wins_matrices(main: pd.DataFrame, systems: list[str]) -> tuple[list[str], np.ndarray]:
    """Per-participant wins matrices (P, S, S) so a participant bootstrap is a sum."""
    idx = {s: i for i, s in enumerate(systems)}
    people = sorted(main["participant"].unique())
    pidx = {p: i for i, p in enumerate(people)}
    w = np.zeros((len(people), len(systems), len(systems)))
    loser = np.where(main["choice"] == "left", main["right_system"], main["left_system"])
    for p, win, lose in zip(main["participant"], main["chosen_system"], loser, strict=True):
        w[pidx[p], idx[win], idx[lose]] += 1
    return people, w


def _bt_table(main: pd.DataFrame, systems: list[str], cfg: AnalysisConfig) -> pd.DataFrame:
    people, w = _wins_matrices(main, systems)
    score = bradley_terry(w.sum(axis=0), cfg.bt_prior)
    rng = np.random.default_rng(cfg.seed)
    boots = []
    for _ in range(cfg.bootstrap):
        # Resample participants, not votes: one person's votes are not independent.
        pick = rng.integers(0, len(people), len(people))
        try:
            boots.append(bradley_terry(w[pick].sum(axis=0), cfg.bt_prior))
        except AnalysisError:
            continue  # a resample that lost a link between systems says nothing
    b = np.array(boots) if boots else np.full((1, len(systems)), np.nan)
    table = pd.DataFrame(
        {
            "system": systems,
            "bt_score": score,
            "ci95_lo": np.percentile(b, 2.5, axis=0),
            "ci95_hi": np.percentile(b, 97.5, axis=0),
            # Elo-like scale: 400 points = 10:1 odds, mean 1000.
            "elo": 1000 + 400 * score / math.log(10),
            "wins": [int(w[:, i, :].sum()) for i in range(len(systems))],
            "comparisons": [int(w[:, i, :].sum() + w[:, :, i].sum()) for i in range(len(systems))],
        }
    )
    table.attrs["bootstrap"] = len(boots)
    return table.sort_values("bt_score", ascending=False).reset_index(drop=True)


def _turing(main: pd.DataFrame):
    fake = np.where(main["left_system"] == REAL, main["right_system"], main["left_system"])
    main = main.assign(system=fake, fooled=main["chosen_system"] != REAL)
    rows = [
        _share_row({"system": s}, int(grp["fooled"].sum()), len(grp))
        for s, grp in main.groupby("system")
    ]
    rows.append(_share_row({"system": "(all)"}, int(main["fooled"].sum()), len(main)))
    overall = pd.DataFrame(rows).rename(columns={"k": "fooled", "share": "fooled_rate"})
    per_photo = (
        main.groupby(["photo", "system"])["fooled"]
        .agg(["sum", "count"])
        .reset_index()
        .rename(columns={"sum": "fooled", "count": "votes"})
    )
    per_photo["fooled_pct"] = (100 * per_photo["fooled"] / per_photo["votes"]).round(1)
    return per_photo.sort_values(["system", "fooled_pct"], ascending=[True, False]), overall


def analyze(
    df: pd.DataFrame, cfg: AnalysisConfig | None = None, malformed: list[str] | None = None
) -> AnalysisResult:
    """All tables from validated votes (see :func:`load_votes`)."""
    cfg = cfg or AnalysisConfig()
    if df.empty:
        raise AnalysisError("no votes to analyse")
    modes = sorted(df["mode"].unique())
    if len(modes) != 1:
        raise AnalysisError(f"votes from several modes {modes}; analyse them separately")
    if df["survey"].nunique() != 1:
        log.warning(
            "votes from %d different surveys (trial sets) are pooled", df["survey"].nunique()
        )
    mode = modes[0]
    df, people = _exclusions(df, cfg)
    main = df[(df["excluded"] == "") & ~df["is_catch"]]
    if main.empty:
        raise AnalysisError("every vote is excluded or a catch trial; loosen the thresholds")
    if mode == "pairwise":
        per_photo, overall, bt = _pairwise(main, cfg)
    else:
        per_photo, overall = _turing(main)
        bt = None
    position = pd.DataFrame(
        [_share_row({"side": "left"}, int((main["choice"] == "left").sum()), len(main))]
    )
    res = AnalysisResult(mode, df, per_photo, overall, position, people, bt, list(malformed or []))
    res.simulated = int(df["app_version"].str.endswith(SIMULATED).sum())
    res.markdown = to_markdown(res, cfg)
    return res


# ----------------------------------------------------------------------------- report


def _fmt_p(p: float) -> str:
    return "n/a" if not math.isfinite(p) else (f"{p:.2e}" if p < 1e-3 else f"{p:.3f}")


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{100 * x:.1f} %"


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"
    return str(v)


def _md_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        cells = [_cell(v) for v in r]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def to_markdown(res: AnalysisResult, cfg: AnalysisConfig, command: str = "") -> str:
    df = res.votes
    n_ex_people = int(res.participants["excluded"].sum())
    out = [f"# {res.title(f'Survey analysis ({res.mode})')}", ""]
    if command:
        out += [f"Command: `{command}`", ""]
    if "source" in df and df["source"].nunique() > 1:  # several server instances, merged
        per_file = df.groupby("source", sort=False).size()
        out += ["Votes merged from " + ", ".join(f"`{f}` ({n})" for f, n in per_file.items()), ""]
    # The question as participants read it (the consent heading and every trial).
    out += [f'Question asked: "{QUESTIONS[res.mode]}"', ""]
    out += [
        f"- votes: {len(df)} valid rows from {df['participant'].nunique()} participants "
        f"({int(df['is_catch'].sum())} catch-trial votes)",
        f"- excluded: {n_ex_people} participant(s) failing more than {cfg.max_catch_failures} "
        f"catch trial(s) ({int((df['excluded'] == 'failed catch trials').sum())} votes); "
        f"{int((df['excluded'] == 'too fast').sum())} vote(s) faster than {cfg.min_response_ms:g} ms",
        f"- counted: {int(((df['excluded'] == '') & ~df['is_catch']).sum())} votes",
    ]
    if res.malformed:
        out.append(f"- malformed rows skipped: {len(res.malformed)}")
        out += [f"  - {m}" for m in res.malformed[:20]]
    out.append("")
    pos = res.position.iloc[0]
    out += [
        "## Position bias",
        "",
        f"Left photo chosen in {_pct(pos['share'])} of {pos['n']} counted votes "
        f"(95 % Wilson {_pct(pos['ci95_lo'])} to {_pct(pos['ci95_hi'])}, "
        f"exact binomial p = {_fmt_p(pos['binom_p'])} against 50 %).",
        "",
    ]
    if res.mode == "pairwise":
        out += ["## Overall share", ""]
        for _, r in res.overall.iterrows():
            out.append(
                f"- **{r['system']}** preferred over {r['versus']} in {r['k']} of {r['n']} votes = "
                f"{_pct(r['share'])} (95 % Wilson {_pct(r['ci95_lo'])} to {_pct(r['ci95_hi'])}; "
                f"exact binomial p = {_fmt_p(r['binom_p'])} against 50 %)"
            )
        out += ["", _md_table(res.overall), ""]
        if res.bt is not None:
            out += [
                "## Bradley-Terry scores",
                "",
                f"Log-strength (mean 0), 95 % interval from {res.bt.attrs.get('bootstrap', 0)} "
                "participant bootstrap resamples; elo = 1000 + 400 log10(strength).",
                "",
                _md_table(res.bt),
                "",
            ]
        out += ["## Per photo (share of votes, %)", "", _md_table(res.per_photo), ""]
    else:
        out += ["## Fooled rate (colorization taken for the real photo; 50 % is the ceiling)", ""]
        out += [_md_table(res.overall), "", "## Per photo", "", _md_table(res.per_photo), ""]
    out += ["## Participants", "", _md_table(res.participants), ""]
    return "\n".join(out)


# ----------------------------------------------------------------------------- plots
#
# Each plot reads without the tables: every share with its 95 % interval and its n, the
# 50 % line (no preference; in Turing mode the ceiling) and both axes labelled. A share of
# 0 % still shows: every share is a marker, drawn over the axis (not clipped), and its value
# is written beside it.

SHARE_COLOR = "#2563eb"
REFERENCE = {"color": "#6b7280", "lw": 1.0, "ls": "--", "zorder": 1}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _title(res: AnalysisResult, ax, title: str) -> None:
    ax.set_title(
        res.title(title), fontsize=9, color="#b91c1c" if res.simulated else "black", wrap=True
    )


def _unclipped(container) -> None:
    """Markers and interval lines of an errorbar drawn over the axes edge (a 0 % share)."""
    for artist in container.lines:
        for a in artist if isinstance(artist, tuple) else (artist,):
            if a is not None:
                a.set_clip_on(False)


def _intervals(k: Sequence[int], n: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shares and 95 % Wilson bounds in %, nan where n = 0."""
    ci = np.array([wilson_interval(int(a), int(b)) for a, b in zip(k, n, strict=True)])
    share = np.array([100 * a / b if b else math.nan for a, b in zip(k, n, strict=True)])
    return share, 100 * ci[:, 0], 100 * ci[:, 1]


def plot_per_photo(res: AnalysisResult):
    """Per photo: the focus system's share of the votes it appeared in (pairwise) or the
    fooled rate per photo and system (Turing), as bars with interval, marker and n."""
    plt = _pyplot()
    pp = res.per_photo
    if res.mode == "pairwise":
        focus = pp.attrs.get("focus") or next(
            c.removesuffix("_share_pct") for c in pp.columns if c.endswith("_share_pct")
        )
        labels = pp["photo"].astype(str).tolist()
        k, n = pp[f"{focus}_wins"].astype(int), pp[f"{focus}_n"].astype(int)
        ylabel = f"{focus} chosen (% of its votes)"
        xlabel = "photo"
        ref = "50 %: no preference"
        what = f"{focus} share of votes"
    else:
        labels = (pp["photo"].astype(str) + "\n" + pp["system"].astype(str)).tolist()
        k, n = pp["fooled"].astype(int), pp["votes"].astype(int)
        ylabel = "fooled: taken for the real photo (% of votes)"
        xlabel = "photo / system"
        ref = "50 %: ceiling"
        what = "fooled rate"
    share, lo, hi = _intervals(k, n)
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(4.5, 0.55 * len(labels) + 2), 4.2))
    ax.bar(
        x,
        np.nan_to_num(share),
        width=0.7,
        color=SHARE_COLOR,
        alpha=0.35,
        edgecolor=SHARE_COLOR,
        linewidth=1.0,
        zorder=2,
    )
    eb = ax.errorbar(
        x,
        share,
        yerr=[share - lo, hi - share],
        fmt="o",
        color=SHARE_COLOR,
        ecolor="black",
        elinewidth=1.0,
        capsize=3,
        markersize=5,
        zorder=3,
        label="share, 95 % Wilson interval",
    )
    _unclipped(eb)
    ax.axhline(50, label=ref, **REFERENCE)
    for xi, s_, h, ni in zip(x, share, hi, n, strict=True):
        value = "no votes" if ni == 0 else f"{s_:.0f} %"
        top = 0.0 if not math.isfinite(h) else h
        ax.text(xi, top + 2, f"{value}\nn={ni}", ha="center", va="bottom", fontsize=6.5, zorder=4)
    ax.set_ylim(0, 140)  # room above 100 % for the n labels and the legend
    ax.set_yticks(range(0, 101, 25))
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_xticks(x, labels)
    ax.tick_params(axis="x", labelrotation=90, labelsize=7)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.legend(loc="upper center", ncols=2, fontsize=6.5, framealpha=0.9)
    _title(res, ax, f"Per photo: {what}")
    fig.tight_layout()
    return fig


def plot_overall(res: AnalysisResult):
    """Per pair of systems (pairwise) or per system (Turing): share, interval, n."""
    plt = _pyplot()
    o = res.overall
    pairwise = res.mode == "pairwise"
    names = (o["system"] + " vs " + o["versus"]) if pairwise else o["system"]
    k = o["k"] if pairwise else o["fooled"]
    share, lo, hi = _intervals(k, o["n"])
    y = np.arange(len(o))
    fig, ax = plt.subplots(figsize=(6, 0.6 * len(o) + 2.0))
    eb = ax.errorbar(
        share,
        y,
        xerr=[share - lo, hi - share],
        fmt="o",
        color=SHARE_COLOR,
        ecolor="black",
        capsize=4,
        zorder=3,
        label="share, 95 % Wilson interval",
    )
    _unclipped(eb)
    for yi, s_, ki, ni in zip(y, share, k, o["n"], strict=True):
        at = s_ if math.isfinite(s_) else 0.0
        right = at > 60  # the label goes to the side with room, never over the axis
        ax.annotate(
            f"{at:.1f} % ({ki} of n={ni})",
            (at, yi),
            xytext=(-4 if right else 4, 7),
            textcoords="offset points",
            ha="right" if right else "left",
            fontsize=7,
        )
    ax.axvline(50, label="50 %: no preference" if pairwise else "50 %: ceiling", **REFERENCE)
    ax.set_yticks(y, [f"{a}\n(n={b})" for a, b in zip(names, o["n"], strict=True)], fontsize=8)
    ax.set_ylim(len(o) - 0.4, -1.4)  # first row on top, room above it for the legend
    ax.set_xlim(0, 100)
    if pairwise:
        ax.set_xlabel("votes for the first system of the pair (%)", fontsize=8)
        ax.set_ylabel("pair of systems", fontsize=8)
    else:
        ax.set_xlabel("fooled: colorization taken for the real photo (%)", fontsize=8)
        ax.set_ylabel("system", fontsize=8)
    ax.legend(loc="upper center", ncols=2, fontsize=6.5, framealpha=0.9)
    what = "Share of votes" if pairwise else "Fooled rate"
    _title(res, ax, f"{what}, 95 % Wilson intervals")
    fig.tight_layout()
    return fig


def plot_bradley_terry(res: AnalysisResult):
    """BT log-strengths with bootstrap intervals and each system's comparisons (n)."""
    plt = _pyplot()
    b = res.bt
    y = np.arange(len(b))
    fig, ax = plt.subplots(figsize=(6, 0.6 * len(b) + 2.0))
    eb = ax.errorbar(
        b["bt_score"],
        y,
        xerr=[b["bt_score"] - b["ci95_lo"], b["ci95_hi"] - b["bt_score"]],
        fmt="o",
        color=SHARE_COLOR,
        ecolor="black",
        capsize=4,
        zorder=3,
        label="score, 95 % bootstrap interval",
    )
    _unclipped(eb)
    # Score 0 is the average system; against it, a system is chosen 50 % of the time.
    ax.axvline(0, label="0: average system (50 % against it)", **REFERENCE)
    ticks = [
        f"{a}\n(n={c} comparisons)" for a, c in zip(b["system"], b["comparisons"], strict=True)
    ]
    ax.set_yticks(y, ticks, fontsize=8)
    ax.set_ylim(len(b) - 0.4, -1.4)
    ax.set_xlabel("Bradley-Terry log-strength (95 % participant-bootstrap interval)", fontsize=8)
    ax.set_ylabel("system", fontsize=8)
    ax.legend(loc="upper center", ncols=2, fontsize=6.5, framealpha=0.9)
    _title(res, ax, "Bradley-Terry scores")
    fig.tight_layout()
    return fig


def plots(res: AnalysisResult) -> dict:
    """Every plot of the report, by file name (matplotlib figures; the caller closes them)."""
    figs = {"per_photo.png": plot_per_photo(res), "overall.png": plot_overall(res)}
    if res.bt is not None:
        figs["bradley_terry.png"] = plot_bradley_terry(res)
    return figs


def write_report(
    res: AnalysisResult, out_dir: str | Path, cfg: AnalysisConfig, command: str = ""
) -> list[Path]:
    """Markdown + CSV tables + matplotlib plots under ``out_dir``; returns the files."""
    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = []

    def csv_(name: str, table: pd.DataFrame) -> None:
        files.append(write_text(out / name, table.to_csv(index=False)))

    csv_("per_photo.csv", res.per_photo)
    csv_("overall.csv", res.overall)
    csv_("position.csv", res.position)
    csv_("participants.csv", res.participants)
    if res.bt is not None:
        csv_("bradley_terry.csv", res.bt)
    if res.malformed:
        files.append(write_text(out / "malformed.txt", "\n".join(res.malformed) + "\n"))

    for name, fig in plots(res).items():
        # The title is drawn and kept in the PNG's metadata: a plot of simulated votes says
        # so wherever it is shown, not only in a README beside it.
        fig.savefig(out / name, dpi=120, metadata={"Title": fig.axes[0].get_title()})
        plt.close(fig)
        files.append(out / name)

    files.append(write_text(out / "summary.md", to_markdown(res, cfg, command)))
    return files


def analyze_file(
    votes: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    cfg: AnalysisConfig | None = None,
    command: str = "",
) -> AnalysisResult:
    """load_votes (one file or several, merged) -> analyze -> write_report; the CLI's `analyze`."""
    cfg = cfg or AnalysisConfig()
    df, problems = load_votes(votes, drop_malformed=cfg.drop_malformed)
    res = analyze(df, cfg, problems)
    res.markdown = to_markdown(res, cfg, command)
    write_report(res, out_dir, cfg, command)
    log.info("analysis of %d votes written to %s", len(df), out_dir)
    return res
