"""Preparing a blinded survey: images under neutral names, a manifest, and trial orders.

A survey is a folder::

    SURVEY/
      manifest.json      maps neutral image names back to (photo, system); never served
      images/<hex>.png   every image a participant can see, named by 16 random hex digits

Two modes:

- ``pairwise``: for every photo and every pair of systems, "which photo looks more realistic?"
  (the first seed's survey: Zhang vs model_1).
- ``turing``: for every photo and every system, the real photo next to the colorization,
  "which photo is the real one?" (Zhang et al.'s colorization Turing test).

Catch trials put the real photo next to an obviously wrong colorization (hue turned half way
round); a participant who picks the wrong one is not paying attention.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import os
import random
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps

from colorizer.atomic import write_text
from colorizer.imageio import list_images, load_image

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
IMAGES_DIR = "images"
FORMAT = "colorizer-survey"
VERSION = 1

# Reserved system names: the ground truth and the deliberately wrong catch image.
REAL = "real"
CATCH_WRONG = "catch_wrong"
RESERVED = (REAL, CATCH_WRONG)

MODES = ("pairwise", "turing")
QUESTIONS = {
    "pairwise": "Which photo looks more realistic?",
    "turing": "One of these photos is a real colour photo. Which one?",
}


class SurveyError(ValueError):
    """Bad survey input (photos, systems, manifest); the message says what to fix."""


# A cell starting with one of these is run as a formula by spreadsheets (CSV injection).
FORMULA_START = ("=", "+", "-", "@")


def name_problem(name: str) -> str | None:
    """Why ``name`` (a photo id or system name) cannot go into a survey, or None if it can.

    Names land in every vote row and in the analysis tables. A line break or other control
    character would break the one-row-per-line votes file (every vote on that photo failed);
    a leading ``= + - @`` makes a spreadsheet opening the CSV run the cell as a formula.
    """
    if not name:
        return "is empty"
    if not name.isprintable():  # newlines, tabs, CR, U+2028 ... (splitlines would split)
        return "contains a line break or another control character"
    if name[0] in FORMULA_START:
        return f"starts with {name[0]!r}, which a spreadsheet runs as a formula"
    return None


@dataclass
class Side:
    system: str
    image: str  # neutral file name under images/


@dataclass
class Trial:
    id: str  # neutral, random: the only trial handle a participant ever sees
    kind: str  # "pair" | "turing" | "catch"
    photo: str  # photo id (file stem)
    a: Side
    b: Side

    @property
    def is_catch(self) -> bool:
        return self.kind == "catch"

    def correct_system(self) -> str | None:
        """The system a careful participant picks: the real photo in catch/turing trials."""
        if self.kind in ("catch", "turing"):
            return REAL
        return None


@dataclass
class Manifest:
    mode: str
    question: str
    seed: int
    secret: str  # signs participant tokens; the manifest is never served
    systems: dict[str, str]  # name -> source (model name, checkpoint or folder)
    photos: list[str]
    images: dict[str, dict[str, str]]  # neutral name -> {"photo", "system"}
    trials: list[Trial]
    created: str = ""
    command: str = ""
    format: str = FORMAT
    version: int = VERSION
    root: Path | None = field(default=None, repr=False, compare=False)

    @property
    def survey_id(self) -> str:
        """Short stable id of the trial set, stored with every vote."""
        h = hashlib.sha256(json.dumps([asdict(t) for t in self.trials]).encode())
        return h.hexdigest()[:12]

    def trial(self, trial_id: str) -> Trial:
        for t in self.trials:
            if t.id == trial_id:
                return t
        raise KeyError(trial_id)

    def image_path(self, name: str) -> Path:
        if self.root is None:
            raise SurveyError("manifest has no folder; load it with Manifest.load(folder)")
        if name not in self.images:
            raise KeyError(name)
        return self.root / IMAGES_DIR / name

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("root")
        return d

    def save(self, folder: Path) -> None:
        write_text(Path(folder) / MANIFEST_NAME, json.dumps(self.to_json(), indent=1))

    @classmethod
    def load(cls, folder: str | Path) -> Manifest:
        folder = Path(folder)
        path = folder / MANIFEST_NAME
        if not path.is_file():
            raise SurveyError(f"{folder} is not a survey: {MANIFEST_NAME} missing (run `prepare`)")
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise SurveyError(f"{path} is not valid JSON: {e}") from e
        if d.get("format") != FORMAT:
            raise SurveyError(f"{path} is not a {FORMAT} manifest")
        if d.get("version") != VERSION:
            raise SurveyError(f"{path} has version {d.get('version')}, expected {VERSION}")
        try:
            trials = [
                Trial(
                    id=t["id"], kind=t["kind"], photo=t["photo"], a=Side(**t["a"]), b=Side(**t["b"])
                )
                for t in d.pop("trials")
            ]
            m = cls(trials=trials, **d)
        except (KeyError, TypeError) as e:
            raise SurveyError(f"{path} is malformed: {e!r}") from e
        for name in {*m.photos, *m.systems, *(v for i in m.images.values() for v in i.values())}:
            problem = name_problem(name)
            if problem:  # prepared before names were checked, or edited by hand
                raise SurveyError(f"{path}: name {name!r} {problem}; prepare the survey again")
        m.root = folder
        missing = [n for n in m.images if not (folder / IMAGES_DIR / n).is_file()]
        if missing:
            raise SurveyError(
                f"{folder}/{IMAGES_DIR} lacks {len(missing)} images, e.g. {missing[0]}"
            )
        return m


# ----------------------------------------------------------------------------- systems


def parse_system(spec: str) -> tuple[str, str]:
    """'NAME=SOURCE' -> (name, source) with a clear error for anything else."""
    if "=" not in spec:
        raise SurveyError(f"--system takes NAME=SOURCE, got {spec!r}")
    name, source = spec.split("=", 1)
    name, source = name.strip(), source.strip()
    if not name or not source:
        raise SurveyError(f"--system takes NAME=SOURCE, got {spec!r}")
    check_system_name(name)
    return name, source


def check_system_name(name: str) -> None:
    """Raise SurveyError unless ``name`` can name a system (it lands in every vote row)."""
    if not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
        raise SurveyError(f"system name {name!r}: use letters, digits, '-', '_', '.'")
    if name in RESERVED:
        raise SurveyError(f"system name {name!r} is reserved ({', '.join(RESERVED)})")
    problem = name_problem(name)
    if problem:
        raise SurveyError(f"system name {name!r} {problem}")


def _list_photos(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise SurveyError(f"--photos {folder}: not a folder")
    photos = list_images(folder)  # the library's lister: one answer to "what is a photo"
    if not photos:
        raise SurveyError(f"--photos {folder}: no images found")
    bad = [f"{p.name!r} {problem}" for p in photos if (problem := name_problem(p.stem))]
    if bad:
        raise SurveyError(f"--photos {folder}: rename these photo files: {'; '.join(bad)}")
    stems = [p.stem for p in photos]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise SurveyError(f"--photos {folder}: several files share the stem(s) {dup}")
    return photos


def _to_pil(x) -> Image.Image:
    """Whatever Colorizer.colorize returns (PIL, uint8/float HWC array, CHW tensor) -> RGB PIL."""
    if isinstance(x, Image.Image):
        return x.convert("RGB")
    if hasattr(x, "detach"):  # torch tensor (3,H,W) in [0,1]
        x = x.detach().cpu().float().numpy()
        if x.ndim == 4:
            x = x[0]
        x = np.moveaxis(x, 0, -1)
    a = np.asarray(x)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(a).convert("RGB")


_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _icc_profile(img: Image.Image) -> ImageCms.ImageCmsProfile | None:
    """The image's embedded ICC profile, or None (also for one Little CMS cannot read)."""
    icc = img.info.get("icc_profile")
    if not icc:
        return None
    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (ImageCms.PyCMSError, OSError, ValueError) as e:
        log.warning("ignoring an unreadable ICC profile (%s); pixels taken as sRGB", e)
        return None


def pixels_only(img: Image.Image) -> Image.Image:
    """``img`` as sRGB RGB pixels and nothing else: what every served image is written from.

    The survey is blind only if no image says where it came from. A photo's ICC profile,
    EXIF, text, gamma or DPI would end up in the PNG of the real photo and not in the
    colorizations (a participant reading the file would know which is real), and a profile
    would make browsers render the two in different colour spaces. So a profile is applied
    (converted to sRGB) and then dropped with every other piece of metadata: the image is
    rebuilt from its raw bytes, so no ``info`` entry survives for the PNG writer to emit.
    """
    img = img if img.mode == "RGB" else img.convert("RGB")
    src = _icc_profile(img)
    if src is not None:
        if src.profile.xcolor_space.strip() == "RGB":
            img = ImageCms.profileToProfile(img, src, _SRGB, outputMode="RGB")
        else:  # a CMYK/grey profile on RGB pixels: load_srgb handles it from the file
            log.warning(
                "ICC profile of colour space %r on RGB pixels: dropped", src.profile.xcolor_space
            )
    return Image.frombytes("RGB", img.size, img.tobytes())


def load_srgb(path: Path, max_side: int | None = None) -> Image.Image:
    """``load_image`` converted to sRGB pixels without metadata (see :func:`pixels_only`).

    A profile of another colour space than RGB (a CMYK JPEG, a grey photo) describes the
    file's own pixels, not the RGB ones ``load_image`` makes of them, so it is applied to
    the decoded file before the conversion to RGB.
    """
    img = load_image(path, max_side=max_side)  # checks the file (size limits, corruption)
    src = _icc_profile(img)
    if src is not None and src.profile.xcolor_space.strip() != "RGB":
        try:
            with Image.open(path) as raw:
                raw = ImageOps.exif_transpose(raw)
                conv = ImageCms.profileToProfile(raw, src, _SRGB, outputMode="RGB")
            img = load_image(conv, max_side=max_side)
        except (ImageCms.PyCMSError, OSError, ValueError) as e:
            log.warning("%s: cannot apply its ICC profile (%s); pixels taken as sRGB", path, e)
        img.info.pop("icc_profile", None)
    return pixels_only(img)


def folder_system(folder: Path) -> Callable[[str, Image.Image], Image.Image]:
    """Ready-made outputs (e.g. made with Zhang's own code) matched to photos by file stem."""
    files: dict[str, Path] = {}
    for p in list_images(folder, recursive=False):
        if p.stem in files:
            raise SurveyError(f"{folder}: several outputs for stem {p.stem!r}")
        files[p.stem] = p

    def run(stem: str, photo: Image.Image) -> Image.Image:
        if stem not in files:
            raise SurveyError(f"{folder}: no output for photo {stem!r} (match by file stem)")
        return load_srgb(files[stem])

    run.stems = set(files)  # type: ignore[attr-defined]
    return run


def model_system(
    source: str, device: str | None = None
) -> Callable[[str, Image.Image], Image.Image]:
    """A registered model name or a checkpoint path, run through the project's Colorizer."""
    try:
        from colorizer.inference import Colorizer
    except ImportError as e:
        raise SurveyError(
            f"system source {source!r} is not a folder, and colorizer.inference is unavailable ({e})"
        ) from e
    try:
        colorizer = Colorizer(source, device=device)
    except Exception as e:  # registry/checkpoint errors carry their own clear messages
        raise SurveyError(f"system source {source!r}: {e}") from e

    def run(stem: str, photo: Image.Image) -> Image.Image:
        return _to_pil(colorizer.colorize(photo))

    return run


def make_system(
    source: str, device: str | None = None
) -> Callable[[str, Image.Image], Image.Image]:
    p = Path(source)
    if p.is_dir():
        return folder_system(p)
    return model_system(source, device=device)


def wrong_colors(img: Image.Image) -> Image.Image:
    """The catch image: hue turned half way round (blue sky -> orange, green grass -> purple)."""
    hsv = np.asarray(img.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + 128) % 256
    # Grey-ish photos would stay grey-ish; push saturation up so the wrongness is visible.
    hsv[..., 1] = np.clip(hsv[..., 1].astype(np.int16) * 2 + 60, 0, 255)
    return Image.fromarray(hsv, "HSV").convert("RGB")


# ----------------------------------------------------------------------------- prepare


@dataclass
class PrepareConfig:
    photos: Path
    systems: list[tuple[str, str]]  # (name, source)
    out: Path
    mode: str = "pairwise"
    catch: int = 0  # number of catch trials
    max_side: int = 512  # longer side of the shown images, 0 = keep
    seed: int | None = None
    force: bool = False
    device: str | None = None
    command: str = ""


def _fit(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    return img if img.size == size else img.resize(size, Image.Resampling.BICUBIC)


def _fresh_name(used: set[str], bits: int, template: str) -> str:
    """A random name from ``template`` that is not in ``used`` yet (and now is).

    Drawn from ``secrets``, never from the survey's seeded generator: a seed can be replayed,
    and names drawn in writing order from it would give that order (hence the system) away.
    """
    while True:
        name = template.format(secrets.randbits(bits))
        if name not in used:
            used.add(name)
            return name


def _publish_images(staging: Path, folder: Path, names: list[str]) -> None:
    """Write the staged images into ``folder`` in random order, all with one mtime.

    A file's metadata must not tell which system made it. Written in the order they were
    made, an image's mtime (the ETag and Last-Modified of any static file server), its inode
    number and its creation time would each give its place in that order, hence its system.
    So every file is rewritten (a new inode, not a rename) in an order drawn from ``secrets``,
    and all get the same whole-second mtime.
    """
    order = names[:]
    secrets.SystemRandom().shuffle(order)
    for name in order:
        (folder / name).write_bytes((staging / name).read_bytes())
        (staging / name).unlink()
    staging.rmdir()
    stamp = int(time.time()) * 1_000_000_000
    for name in order:
        os.utime(folder / name, ns=(stamp, stamp))


def prepare_survey(cfg: PrepareConfig, progress: Callable | None = None) -> Manifest:
    """Colorize every photo with every system and write a blinded survey folder.

    Everything is written to a temporary folder next to ``cfg.out`` and moved into place at
    the end, so a failure (a missing output, a bad checkpoint) leaves nothing half-made.
    """
    if cfg.mode not in MODES:
        raise SurveyError(f"--mode must be one of {MODES}, got {cfg.mode!r}")
    for n, _ in cfg.systems:  # the same rules as --system NAME=SOURCE
        check_system_name(n)
    names = [n for n, _ in cfg.systems]
    if len(set(names)) != len(names):
        raise SurveyError(f"system names must differ, got {names}")
    if cfg.mode == "pairwise" and len(names) < 2:
        raise SurveyError("pairwise mode needs at least two --system")
    if cfg.mode == "turing" and len(names) < 1:
        raise SurveyError("turing mode needs at least one --system")
    if cfg.catch < 0:
        raise SurveyError("--catch must be >= 0")
    out = Path(cfg.out)
    if out.exists() and any(out.iterdir()) and not cfg.force:
        raise SurveyError(f"--out {out} exists and is not empty (pass --force to replace it)")
    photos = _list_photos(Path(cfg.photos))
    systems = {n: make_system(s, cfg.device) for n, s in cfg.systems}
    # Check folder sources cover every photo before any work is done.
    for n, fn in systems.items():
        stems = getattr(fn, "stems", None)
        if stems is not None:
            missing = sorted({p.stem for p in photos} - stems)
            if missing:
                raise SurveyError(
                    f"system {n!r}: folder has no output for {len(missing)} photo(s): {missing[:5]}"
                )

    seed = cfg.seed if cfg.seed is not None else secrets.randbits(32)
    rng = random.Random(seed)
    used: set[str] = set()

    def neutral() -> str:
        # Random, not derived from photo or system, so nothing can be inferred from a name.
        return _fresh_name(used, 64, "{:016x}.png")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".survey-", dir=out.parent))
    # Images are made photo by photo in --system order; they go to a staging folder first
    # and are only written under images/ at the end, in random order (see _publish_images).
    staging = tmp / ".staging"
    try:
        (tmp / IMAGES_DIR).mkdir()
        staging.mkdir()
        images: dict[str, dict[str, str]] = {}
        by_photo: dict[str, dict[str, str]] = {}  # photo -> system -> image name

        def save(img: Image.Image, photo: str, system: str) -> str:
            name = neutral()
            # Pixels only, in sRGB: no ICC profile, EXIF, text or DPI tells the real photo
            # from a colorization (see pixels_only).
            pixels_only(img).save(staging / name, format="PNG")
            images[name] = {"photo": photo, "system": system}
            by_photo.setdefault(photo, {})[system] = name
            return name

        it = photos if progress is None else progress(photos, desc="colorizing", unit="photo")
        for path in it:
            stem = path.stem
            # In sRGB before any system sees it, so they all colorize the pixels shown.
            truth = load_srgb(path, max_side=cfg.max_side or None)
            if cfg.mode == "turing" or cfg.catch:
                save(truth, stem, REAL)
            for n, fn in systems.items():
                try:
                    out_img = _fit(fn(stem, truth), truth.size)
                except SurveyError:
                    raise
                except Exception as e:
                    raise SurveyError(f"system {n!r} failed on {path.name}: {e}") from e
                save(out_img, stem, n)

        trials: list[Trial] = []
        tid: set[str] = set()

        def trial_id() -> str:
            return _fresh_name(tid, 40, "t{:010x}")

        stems = [p.stem for p in photos]
        for stem in stems:
            imgs = by_photo[stem]
            if cfg.mode == "pairwise":
                for x, y in itertools.combinations(names, 2):
                    trials.append(
                        Trial(trial_id(), "pair", stem, Side(x, imgs[x]), Side(y, imgs[y]))
                    )
            else:
                for x in names:
                    trials.append(
                        Trial(trial_id(), "turing", stem, Side(REAL, imgs[REAL]), Side(x, imgs[x]))
                    )
        # Catch trials cycle through a shuffled photo list so they spread over photos.
        order = stems[:]
        rng.shuffle(order)
        for i in range(cfg.catch):
            stem = order[i % len(order)]
            truth_img = Image.open(staging / by_photo[stem][REAL]).convert("RGB")
            wrong = save(wrong_colors(truth_img), stem, CATCH_WRONG)
            trials.append(
                Trial(
                    trial_id(),
                    "catch",
                    stem,
                    Side(REAL, by_photo[stem][REAL]),
                    Side(CATCH_WRONG, wrong),
                )
            )

        _publish_images(staging, tmp / IMAGES_DIR, list(images))
        manifest = Manifest(
            mode=cfg.mode,
            question=QUESTIONS[cfg.mode],
            seed=seed,
            secret=secrets.token_hex(16),
            systems=dict(cfg.systems),
            photos=stems,
            images=images,
            trials=trials,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            command=cfg.command,
        )
        manifest.save(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    manifest.root = out
    log.info(
        "survey %s: %d photos, %d systems, %d trials (%d catch) -> %s",
        cfg.mode,
        len(stems),
        len(names),
        len(trials),
        cfg.catch,
        out,
    )
    return manifest


# ----------------------------------------------------------------------------- orders


@dataclass
class Presented:
    """One trial as a given participant sees it: which side shows which system."""

    trial: Trial
    position: int  # 0-based place in this participant's order
    a_left: bool

    @property
    def left(self) -> Side:
        return self.trial.a if self.a_left else self.trial.b

    @property
    def right(self) -> Side:
        return self.trial.b if self.a_left else self.trial.a


def participant_order(manifest: Manifest, participant: str, max_trials: int = 0) -> list[Presented]:
    """This participant's trials: own random order, left/right random but balanced.

    Deterministic in (survey seed, participant), so a restarted server gives a returning
    participant the same order. Exactly half (rounded at random) of the trials show side
    ``a`` on the left, so each participant and therefore the whole survey is balanced.
    ``max_trials`` > 0 draws that many non-catch trials; catch trials are always kept.
    """
    rng = random.Random(f"{manifest.seed}:{participant}")
    main = [t for t in manifest.trials if not t.is_catch]
    catch = [t for t in manifest.trials if t.is_catch]
    rng.shuffle(main)
    if max_trials > 0:
        main = main[:max_trials]
    trials: list[Trial] = main + catch
    rng.shuffle(trials)
    n = len(trials)
    n_left = n // 2 + (rng.random() < 0.5 if n % 2 else 0)
    sides = [True] * n_left + [False] * (n - n_left)
    rng.shuffle(sides)
    return [Presented(t, i, s) for i, (t, s) in enumerate(zip(trials, sides, strict=True))]
