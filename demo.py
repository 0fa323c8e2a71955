"""Live colorization app: a thin Gradio front end over the ``colorizer`` library.

    python demo.py                                  # http://127.0.0.1:7860
    python demo.py --models-dir weights --device cuda --port 7861

Three tabs, each also a named API endpoint for ``gradio_client``:

- colorize (``/colorize``): one photo, one model, a colour strength (the decode temperature)
  -> the colorized photo at full resolution, a before/after slider, the uncertainty map and a
  PNG to download;
- compare (``/compare``): the same photo through every available model, side by side, plus a
  note naming any model that could not be loaded (it is skipped, the rest still run);
- batch (``/batch``): several photos -> a zip of colorized PNGs plus a per-file report.

Decoding, colour maths and models all live in the library; the handlers here only move files
and turn library errors into messages on the page. Models are loaded once and cached. Answers
name files relative to the models folder, never by their absolute path on the server; the
files the app writes are removed when it shuts down. The handlers read only files uploaded to
this server (Gradio's upload cache) or the bundled examples (``readable_upload``), and uploads
larger than any photo the library would decode are refused (``MAX_UPLOAD_BYTES``).
"""

from __future__ import annotations

import argparse
import atexit
import functools
import logging
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import torch
from gradio.utils import get_upload_folder
from PIL import Image

from colorizer.checkpoint import CheckpointError, read_checkpoint
from colorizer.hints import (
    HintBoard,
    HintError,
    check_inside,
    hex_to_rgb,
    hints_for,
    hints_to_json,
    is_finite_number,
    mark_hints,
    parse_hints_text,
    rgb_to_hex,
)
from colorizer.imageio import MAX_PIXELS, ImageError, list_images, load_image
from colorizer.inference import Colorizer, uncertainty_image
from colorizer.models import (
    DEFAULT_MODEL,
    ModelError,
    available_models,
    default_weights_dir,
    list_models,
    model_info,
)

# Nothing may reach the network at run time: no Gradio usage analytics or version checks.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

log = logging.getLogger("demo")

REPO = Path(__file__).resolve().parent
EXAMPLES_DIR = REPO / "examples"
# Slider range for the annealed-mean temperature T (Zhang's sense: T -> 0 picks the most likely
# colour, T = 1 is the plain mean). A checkpoint's default outside it widens the range.
T_MIN, T_MAX, T_STEP = 0.01, 1.5, 0.01

# The knob is the annealed-mean temperature (the API keeps that name); on the page it is named
# for what a person sees it do.
TEMPERATURE_LABEL = "Colour strength / vividness: lower = more vivid"
TEMPERATURE_HELP = (
    "Lower: bolder, more saturated colours (very low can look blotchy). Higher: safer, greyer "
    "or sepia colours. Each model starts where it was tuned."
)
NO_TEMPERATURE_HELP = "This model paints colours directly: colour strength does not apply to it."
MODEL_HELP = "Which trained model paints the colours."
UNCERTAINTY_LABEL = "Where the model was unsure"
UNCERTAINTY_LEGEND = "dark: confident · bright: uncertain"
UNCERTAINTY_HELP = (
    "The normalised entropy of the model's colour distribution at each pixel, from 0 (sure of "
    "one colour) to 1 (every colour equally likely). It is computed at the model's own small "
    "size, hence soft. Models that predict colours directly (regression) have none, and this "
    "map is hidden for them."
)
HINT_VIEW_SIDE = 1024  # px: hints are placed and re-colorized live on a preview this big
MAX_HINTS_FILE_BYTES = 256 * 1024  # a hints file of MAX_HINTS points is ~100 KB
UNCERTAINTY_HEIGHT = 300  # px: fits beside the page's other content on a 900 px high screen

# Largest upload the server accepts (Gradio answers 413 past it). Anything bigger cannot be a
# photo the library would decode (it refuses more than MAX_PIXELS, 80 MP), so it would only fill
# the disk. A photo at the limit fits even stored without any compression: 3 bytes a pixel is
# 8-bit RGB raw (a PNG of camera noise, an uncompressed TIFF or BMP; a PNG adds one filter byte
# a row and ~0.03% of zlib framing), and 16-bit greyscale (2 bytes a pixel) fits too; 16 MiB
# more covers EXIF, ICC profiles and embedded previews. 80 MP -> 256.8 MB. Only a 16-bit *colour*
# scan can exceed it uncompressed (6 bytes a pixel: up to ~42 MP fits), and this app discards
# colour anyway. Gradio counts the bytes as they stream in, so a bigger upload costs no more
# disk than this.
MAX_UPLOAD_BYTES = MAX_PIXELS * 3 + 16 * 2**20

# The one answer to a request naming a file the demo may not read (outside the upload cache and
# the examples, a folder, a path that does not exist...): the same words in every case, so the
# answer tells nothing about what is on the server.
UNREADABLE_FILE = (
    "This file cannot be read: upload the photo again (only photos uploaded to this page, or "
    "its examples, can be colorized)."
)


class DemoError(ValueError):
    """A request the demo cannot serve (no photo, unknown model, unloadable weights).

    ``for_log`` is what the server's console says instead of the message, when the console may
    be told more than the page (the path a refused request named).
    """

    def __init__(self, message: str, *, for_log: str | None = None) -> None:
        super().__init__(message)
        self.for_log = for_log or message


def _one_line(text: str) -> str:
    """A message as one console line (compare's notes span several)."""
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())


def readable_upload(path: str, roots: Sequence[Path]) -> str:
    """``path`` with its symlinks resolved, when that is a file inside one of ``roots``.

    API callers name the file they send by a path on the server, and photo_input and
    _file_path hand it on: Gradio checks that path only when the payload carries a FileData
    ``meta`` field, so without one any server file could be read (and shown back full size).
    Resolving first means that ``..`` and symlinks are judged by where they lead. Anything
    refused gets UNREADABLE_FILE, whatever the reason, so no answer tells whether a path exists
    or what it is; the console gets the path.
    """
    refused = DemoError(UNREADABLE_FILE, for_log=f"refused to read {path!r}: not an upload")
    try:
        real = Path(path).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):  # missing, a symlink loop, a NUL byte...
        raise refused from None
    inside = any(real.is_relative_to(root.resolve()) for root in roots)
    if not inside or not real.is_file():  # a folder, a FIFO or a device is no photo either
        raise refused
    return str(real)


def photo_input(**kwargs: Any) -> gr.Image:
    """An image input that shows the photo, but hands the library the uploaded file itself.

    gr.Image's own preprocessing opens the upload with PIL first (a file PIL cannot read then
    fails inside Gradio with no useful message) and, given an image_mode, converts it (16-bit
    and CMYK photos lose what makes them so). The library reads every mode itself, so the
    uploaded path goes to it untouched and its errors name the file. (An instance override,
    not a subclass: Gradio writes a .pyi stub beside any module that subclasses a component.)
    """
    kwargs.setdefault("sources", ["upload", "clipboard"])
    image = gr.Image(type="filepath", image_mode=None, **kwargs)
    preprocess = image.preprocess

    def uploaded_path(payload: Any) -> str | None:
        path = getattr(payload, "path", None)
        url = getattr(payload, "url", None) or ""
        if path and not url.startswith("data:"):
            return str(path)
        return preprocess(payload)  # a pasted image arrives as a data: URL

    image.preprocess = uploaded_path
    return image


@dataclass
class ModelOption:
    """One entry of the model dropdown."""

    label: str  # the dropdown's value: what API callers pass
    source: str | Path  # registry name or checkpoint path, as Colorizer takes it
    path: Path  # the weights file
    description: str = ""
    stamp: tuple[int, int] = (0, 0)  # (size, mtime_ns) at the scan: a replaced file reloads

    @property
    def title(self) -> str:
        """What the dropdown shows: a registry model's description in plain words, then its
        name ("The first seed's system (seed1_cunet)"); a loose file says it is one."""
        if isinstance(self.source, Path):
            return f"{self.label} (a checkpoint file)"
        return f"{plain_title(self.description) or self.label} ({self.label})"


def plain_title(description: str) -> str:
    """The plain-words head of a registry description: before its first colon, without the
    trailing "(weights/x.pt)" or "(32.2M params, ...)" detail."""
    head = re.sub(r"\s*\([^()]*\)\s*\.?$", "", description.split(": ", 1)[0]).strip()
    return head.rstrip(".")


@dataclass
class LoadedModel:
    colorizer: Colorizer
    kind: str  # "classification" or "regression"
    default_temperature: float | None  # None where temperature does not apply (regression)


@dataclass
class ModelZoo:
    """The models available in ``models_dir`` (``colorizer.models.available_models``: registry
    entries whose weights file is there, then any other checkpoint file, so a freshly trained
    model shows up without registering it), loaded lazily, each exactly once."""

    models_dir: Path
    device: str | None = None
    options: dict[str, ModelOption] = field(default_factory=dict)
    missing: dict[str, dict[str, Any]] = field(default_factory=dict)  # registry name -> info
    _cache: dict[str, LoadedModel] = field(default_factory=dict)
    _takes_hints: dict[tuple[Path, tuple[int, int]], bool] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.models_dir = Path(self.models_dir)
        self.scan()

    def scan(self) -> None:
        """(Re)read the models folder. Models whose file is gone or was replaced since they were
        loaded are dropped from the cache, so the next request loads the new weights."""
        options = {
            a.label: ModelOption(a.label, a.source, a.path, a.description)
            for a in available_models(self.models_dir)
        }
        missing = {  # registry entries with a weights file that is not here (eccv16's release)
            name: info
            for name in list_models()
            if (info := model_info(name, weights_dir=self.models_dir))["weights"]
            and not info["weights_present"]
        }
        for option in options.values():
            try:
                st = option.path.stat()
                option.stamp = (st.st_size, st.st_mtime_ns)
            except OSError:
                pass  # vanished meanwhile: loading it will say so

        def same_file(a: ModelOption | None, b: ModelOption | None) -> bool:
            return a is not None and b is not None and (a.path, a.stamp) == (b.path, b.stamp)

        with self._lock:
            for label in list(self._cache):
                if not same_file(options.get(label), self.options.get(label)):
                    del self._cache[label]
            self.options = options
            self.missing = missing
        log.info(
            "models in %s: %s", self.models_dir, ", ".join(options) or "none (no weights found)"
        )

    @property
    def names(self) -> list[str]:
        return list(self.options)

    @property
    def preferred(self) -> str | None:
        """The model a new page starts with: the registry's default when its weights are here,
        else the first one found."""
        if DEFAULT_MODEL in self.options:
            return DEFAULT_MODEL
        return self.names[0] if self.options else None

    def choices(self) -> list[tuple[str, str]]:
        """(shown title, value) pairs for a dropdown."""
        return [(o.title, o.label) for o in self.options.values()]

    def shown(self, path: str | os.PathLike) -> str:
        """A path as answers show it: relative to the models folder, prefixed by the folder's
        own name ("weights/street.pt"); a file elsewhere by its name alone. Answers never
        reveal where the server keeps things."""
        p = Path(path)
        try:
            rel = p.resolve().relative_to(self.models_dir.resolve())
        except (ValueError, OSError):
            return p.name
        return (Path(self.models_dir.name) / rel).as_posix()

    def scrub(self, message: str) -> str:
        """A library message with the models folder's absolute path replaced by its name."""
        for root in sorted({str(self.models_dir.resolve()), str(self.models_dir)}, key=len)[::-1]:
            if os.path.isabs(root):
                message = message.replace(root, self.models_dir.name)
        return message

    def takes_hints(self, label: str) -> bool:
        """Whether ``label``'s file describes a model that takes colour hints, from the
        architecture it stores (without building the model; False for a file that is no
        colorizer checkpoint: it says why when used)."""
        option = self.options.get(label)
        if option is None:
            return False
        key = (option.path, option.stamp)
        if key not in self._takes_hints:
            try:
                args = read_checkpoint(option.path)["arch_args"]
                self._takes_hints[key] = bool(args.get("hints", False))
            except (CheckpointError, OSError, KeyError, TypeError):
                self._takes_hints[key] = False
        return self._takes_hints[key]

    def get(self, label: str) -> LoadedModel:
        """The loaded model for ``label``; loads it on first use (under a lock: two requests
        arriving together must not load the same weights twice)."""
        if label not in self.options:
            known = ", ".join(self.options) or "none"
            raise DemoError(f"Unknown model {label!r}. Available models: {known}.")
        with self._lock:
            if label not in self._cache:
                option = self.options[label]
                where = self.shown(option.path)
                t0 = time.perf_counter()
                try:
                    # the Hints tab re-colorizes one photo per edit: keep its encoder output
                    colorizer = Colorizer(
                        option.source,
                        device=self.device,
                        weights_dir=self.models_dir,
                        keep_encoding=True,
                    )
                except (CheckpointError, ModelError) as e:
                    raise DemoError(
                        f"Cannot load model {label!r} from {where}: {self.scrub(str(e))}"
                    ) from e
                except Exception as e:  # noqa: BLE001
                    # load_checkpoint wraps the torch.load failures it knows in CheckpointError;
                    # whatever else a foreign file provokes must not take the demo down either.
                    log.exception("loading %s failed", option.path)
                    raise DemoError(
                        f"Cannot load model {label!r} from {where}: not a readable "
                        f"checkpoint ({type(e).__name__}: {self.scrub(str(e))})"
                    ) from e
                kind = colorizer.kind
                default_t = colorizer.default_temperature if kind == "classification" else None
                self._cache[label] = LoadedModel(colorizer, kind, default_t)
                log.info(
                    "loaded %s (%s, T=%s) on %s in %.1f s",
                    label,
                    kind,
                    default_t,
                    colorizer.device,
                    time.perf_counter() - t0,
                )
            return self._cache[label]


# ----------------------------------------------------------------------------- output files


class Scratch:
    """Folder for the files the app hands back; files older than ``max_age_s`` are pruned on
    every request so a long-running demo does not fill the disk, and ``cleanup`` removes
    everything this process wrote (the folder itself too when it made it)."""

    def __init__(self, root: str | os.PathLike | None = None, max_age_s: float = 3600.0):
        self.owns_root = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="colorizer-demo-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_age_s = max_age_s
        self._made: set[Path] = set()

    def new_dir(self) -> Path:
        self.prune()
        d = Path(tempfile.mkdtemp(dir=self.root))
        self._made.add(d)
        return d

    def cleanup(self) -> None:
        """Remove what this process wrote: the whole folder when it made it, else the
        sub-folders it made (a folder the caller gave may hold other things)."""
        for d in [self.root] if self.owns_root else sorted(self._made):
            shutil.rmtree(d, ignore_errors=True)
        self._made.clear()

    def prune(self) -> None:
        cutoff = time.time() - self.max_age_s
        for d in self.root.iterdir():
            try:
                if d.stat().st_mtime < cutoff:
                    for f in d.iterdir():
                        f.unlink(missing_ok=True)
                    d.rmdir()
            except OSError:  # another request pruning the same folder: harmless
                pass


def save_png(img: Image.Image, path: Path) -> None:
    """Lossless PNG at zlib level 1: on photos it is ~3x faster than PIL's default level 6 and
    the file is no bigger (measured on a 1024x768 example: 0.11 s / 1.26 MB vs 0.38 s / 1.32 MB)."""
    img.save(path, format="PNG", compress_level=1)


def save_preview(img: Image.Image, path: Path) -> None:
    """The decoded input for display only (the "before" side): JPEG q95, so that any input
    format a browser cannot show (TIFF, 16-bit, CMYK...) still shows, at little cost."""
    img.save(path, format="JPEG", quality=95)


def _safe_stem(name: str) -> str:
    """A file name stem that is safe in a zip and on any file system."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem).strip("._")
    return stem or "photo"


# ----------------------------------------------------------------------------- the app


def _clean_message(message: str, path: str | None) -> str:
    """Library messages name the upload's temp path; users know it by its file name."""
    if path:
        message = message.replace(f"'{path}'", f"'{Path(path).name}'").replace(
            path, Path(path).name
        )
    return message


def _file_path(file: Any) -> str | None:
    """gr.File hands over a path string (type="filepath"); API callers may send a dict."""
    if file is None:
        return None
    if isinstance(file, dict):
        file = file.get("path") or file.get("name")
    return str(file) if file else None


@dataclass
class DemoConfig:
    models_dir: Path = field(default_factory=default_weights_dir)
    device: str | None = None  # None: CUDA when present, else CPU
    examples_dir: Path = EXAMPLES_DIR
    scratch_dir: Path | None = None
    concurrency: int = 1  # model runs at a time across all tabs (CPU and memory bound)
    # Folders whose files a request may name (readable_upload). None: any path, for Python
    # callers of ColorizeApp, who can read the files anyway; build_demo always sets it.
    readable_roots: tuple[Path, ...] | None = None


class ColorizeApp:
    """The request handlers, free of any Gradio layout so that they can be tested directly."""

    def __init__(self, config: DemoConfig):
        self.config = config
        self.zoo = ModelZoo(config.models_dir, device=config.device)
        self.scratch = Scratch(config.scratch_dir)
        self._views: dict[tuple, ColorizeApp.View] = {}
        self._view_lock = threading.Lock()

    def close(self) -> None:
        """Remove the files this app wrote (idempotent; also registered to run at exit)."""
        self.scratch.cleanup()

    # -- helpers

    def _model(self, label: str | None) -> LoadedModel:
        """The model a request asked for; a request that names none is told so (and, when
        there is nothing to choose from, why)."""
        if not label:
            if not self.zoo.names:
                raise DemoError(self.no_models_message())
            raise DemoError(
                "No model selected: choose one in the Model list "
                f"(available: {', '.join(self.zoo.names)})."
            )
        return self.zoo.get(label)

    def _load(self, path: str | None) -> Image.Image:
        if not path:
            raise DemoError("No photo: upload one (or pick an example) first.")
        if self.config.readable_roots is not None:
            path = readable_upload(path, self.config.readable_roots)
        try:
            return load_image(path)
        except ImageError as e:
            raise DemoError(_clean_message(str(e), path)) from e

    def _temperature(self, loaded: LoadedModel, temperature: float | None) -> float | None:
        if loaded.kind != "classification":
            return None
        if temperature is None:
            return loaded.default_temperature
        try:  # the library's one check of a temperature
            return loaded.colorizer.decoding.at(float(temperature)).temperature
        except (TypeError, ValueError):  # float() or DecodingError
            raise DemoError(
                f"Colour strength (temperature) must be a positive number, got {temperature!r}."
            ) from None

    def _run(
        self, loaded: LoadedModel, img: Image.Image, temperature: float | None
    ) -> tuple[Image.Image, Image.Image | None]:
        """-> (colorized RGB at the photo's size, colour-mapped uncertainty or None)."""
        try:
            color, u = loaded.colorizer.colorize(
                img, temperature=temperature, return_uncertainty=True
            )
        except (torch.cuda.OutOfMemoryError, MemoryError) as e:
            w, h = img.size
            raise DemoError(
                f"Out of memory colorizing a {w}x{h} photo on {loaded.colorizer.device}; "
                "try a smaller photo."
            ) from e
        return color, (uncertainty_image(u) if u is not None else None)

    # -- endpoints

    def model_defaults(self, label: str) -> tuple[float | None, str, str]:
        """(default temperature or None, kind, description) of a model; loads it."""
        loaded = self.zoo.get(label)
        return loaded.default_temperature, loaded.kind, self.zoo.options[label].description

    def colorize(
        self,
        file: Any,
        label: str | None,
        temperature: float | None,
        progress: Any = None,
    ) -> tuple[str, tuple[str, str], str | None, str, str]:
        """-> (colorized PNG, (input, colorized PNG), uncertainty PNG or None, download
        PNG, a line of text saying what was done).

        ``progress`` (a gr.Progress, or None) is told each stage: on a 12-megapixel photo the
        run and the PNG encoding take seconds each.
        """
        step = progress if progress is not None else _no_progress
        step(0.0, desc="Reading the photo")
        path = _file_path(file)
        img = self._load(path)
        w, h = img.size
        step(0.1, desc="Loading the model")
        loaded = self._model(label)
        t = self._temperature(loaded, temperature)
        step(0.2, desc=f"Colorizing {w}x{h} px")
        t0 = time.perf_counter()
        color, uncertainty = self._run(loaded, img, t)
        seconds = time.perf_counter() - t0
        step(0.75, desc="Saving the full-resolution PNG")

        out_dir = self.scratch.new_dir()
        stem = _safe_stem(Path(path).name)
        tag = f"_T{t:.2f}" if t is not None else ""
        color_path = out_dir / f"{stem}_{_safe_stem(label)}{tag}.png"
        before_path = out_dir / f"{stem}_input.jpg"
        save_png(color, color_path)
        save_preview(img, before_path)
        unc_path = None
        if uncertainty is not None:
            unc_path = out_dir / f"{stem}_uncertainty.png"
            save_png(uncertainty, unc_path)
        t_text = (
            f"colour strength: temperature {t:.2f}"
            if t is not None
            else "no temperature (regression model)"
        )
        info = f"{w}x{h} px, model **{label}**, {t_text}, {seconds:.2f} s on {loaded.colorizer.device}."
        return (
            str(color_path),
            (str(before_path), str(color_path)),
            str(unc_path) if unc_path else None,
            str(color_path),
            info,
        )

    def compare(self, file: Any, progress: Any = None) -> tuple[list[tuple[str, str]], str]:
        """Every available model on the same photo, each at its own default temperature.

        -> (gallery of (image, caption), a note). A model that cannot be loaded or run (an
        unreadable checkpoint in the folder) is skipped and named in the note; the others
        still run. Only when none works is it an error.
        """
        path = _file_path(file)
        img = self._load(path)
        if not self.zoo.names:
            raise DemoError(self.no_models_message())
        out_dir = self.scratch.new_dir()
        stem = _safe_stem(Path(path).name)
        original = out_dir / f"{stem}_original.jpg"
        save_preview(img, original)
        gallery = [(str(original), "original")]
        skipped: list[str] = []
        labels = self.zoo.names
        iterator = progress.tqdm(labels, desc="Colorizing with each model") if progress else labels
        for label in iterator:
            try:
                loaded = self.zoo.get(label)
                t = loaded.default_temperature
                color, _ = self._run(loaded, img, t)
            except DemoError as e:
                skipped.append(str(e))
                continue
            except Exception as e:  # noqa: BLE001 - one odd model must not sink the comparison
                log.exception("compare: %s failed", label)
                skipped.append(
                    f"Model {label!r} failed: {type(e).__name__}: {self.zoo.scrub(str(e))}"
                )
                continue
            out = out_dir / f"{stem}_{_safe_stem(label)}.png"
            save_png(color, out)
            gallery.append((str(out), f"{label}" + (f" (T={t:.2f})" if t is not None else "")))
        if len(gallery) == 1:
            raise DemoError("No model could colorize this photo:\n" + "\n".join(skipped))
        n_ok = len(gallery) - 1
        note = f"{n_ok} model{'s' if n_ok != 1 else ''} compared."
        if skipped:
            note += f" Skipped {len(skipped)}:\n" + "\n".join(f"- {m}" for m in skipped)
        return gallery, note

    def batch(
        self, files: Any, label: str, temperature: float | None, progress: Any = None
    ) -> tuple[str | None, list[list[str]]]:
        """-> (zip of colorized PNGs or None when nothing worked, rows [file, status, detail])."""
        paths = [p for p in (_file_path(f) for f in (files or [])) if p]
        if not paths:
            raise DemoError("No photos: upload one or more files first.")
        loaded = self._model(label)
        t = self._temperature(loaded, temperature)
        out_dir = self.scratch.new_dir()
        zip_path = out_dir / f"colorized_{_safe_stem(label)}.zip"
        rows: list[list[str]] = []
        used: set[str] = set()
        n_ok = 0
        iterator = progress.tqdm(paths, desc="Colorizing") if progress is not None else paths
        # PNGs are already compressed: store them, do not deflate again.
        with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_STORED) as zf:
            for path in iterator:
                name = Path(path).name
                try:
                    img = self._load(path)
                    color, _ = self._run(loaded, img, t)
                except DemoError as e:  # a bad file is reported, the batch goes on
                    log.warning("batch: %s", _one_line(e.for_log))
                    rows.append([name, "error", str(e)])
                    continue
                arcname = f"{_safe_stem(name)}_color.png"
                k = 2
                while arcname in used:  # two uploads with the same name must not collide
                    arcname = f"{_safe_stem(name)}_{k}_color.png"
                    k += 1
                used.add(arcname)
                png = out_dir / arcname
                save_png(color, png)
                zf.write(png, arcname)
                png.unlink()
                rows.append([name, "ok", f"{arcname} ({img.size[0]}x{img.size[1]})"])
                n_ok += 1
        if n_ok == 0:
            zip_path.unlink()
            return None, rows
        return str(zip_path), rows

    # -- page text

    def no_models_message(self) -> str:
        return (
            f"No trained weights found in `{self.zoo.shown(self.zoo.models_dir)}/`: nothing to "
            "colorize with. " + self.weights_help()
        )

    def weights_help(self) -> str:
        lines = []
        for name, info in self.zoo.missing.items():
            if info["url"]:  # the registry entry says where its file comes from
                lines.append(
                    f"- **{name}** ({info['description'].rstrip('.')}): download "
                    f"[{info['weights']}]({info['url']}) and save it as "
                    f"`{self.zoo.shown(info['weights_path'])}`, then press *Rescan models "
                    "folder*."
                )
            else:
                lines.append(
                    f"- **{name}**: `{self.zoo.shown(info['weights_path'])}` is missing; train "
                    f"it (`python -m training ...`) or copy the shipped file there."
                )
        return ("Not available:\n" + "\n".join(lines)) if lines else ""

    def status_markdown(self) -> str:
        """One line: which models the folder holds (what is missing goes in missing_markdown)."""
        folder = f"`{self.zoo.shown(self.zoo.models_dir)}/`"
        if not self.zoo.names:
            return f"**No trained weights found** in {folder} (see the bottom of the page)."
        return f"Models found in {folder}: " + ", ".join(f"**{n}**" for n in self.zoo.names)

    def missing_markdown(self) -> str:
        return self.weights_help() or "Every registered model's weights are here."

    def rescan(self) -> list[str]:
        """Read the models folder again (weights added, removed or replaced while the demo
        runs); returns the model names now offered."""
        self.zoo.scan()
        return self.zoo.names

    # -- hints: the user's colour points on one photo (colorizer.hints.HintBoard)

    def _hint_model(self, label: str | None) -> LoadedModel:
        loaded = self._model(label)
        if not loaded.colorizer.accepts_hints:
            takers = ", ".join(self.hint_models()) or "none here"
            raise DemoError(f"Model {label!r} takes no colour hints (models that do: {takers}).")
        return loaded

    def hint_models(self) -> list[str]:
        """The models that take hints, read from their files' architecture (none is loaded)."""
        return [n for n in self.zoo.names if self.zoo.takes_hints(n)]

    @dataclass(frozen=True)
    class View:
        """A photo as the Hints tab shows it: a preview of at most HINT_VIEW_SIDE px, and the
        original's size, whose pixels the hints are kept in."""

        image: Image.Image
        size: tuple[int, int]  # the original's (width, height)

    def _view(self, file: Any) -> ColorizeApp.View:
        """The photo's View; the last few are kept, since each click would otherwise decode
        the whole photo again."""
        path = _file_path(file)
        if not path:
            raise DemoError("No photo: upload one (or pick an example) first.")
        if self.config.readable_roots is not None:
            path = readable_upload(path, self.config.readable_roots)
        st = os.stat(path)
        key = (path, st.st_mtime_ns, st.st_size)
        with self._view_lock:
            if key in self._views:
                return self._views[key]
        img = self._load(path)
        size = img.size
        scale = HINT_VIEW_SIDE / max(size)
        if scale < 1.0:
            shown = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
            img = img.resize(shown, Image.Resampling.LANCZOS)
        view = ColorizeApp.View(img, size)
        with self._view_lock:
            self._views[key] = view
            while len(self._views) > 4:
                self._views.pop(next(iter(self._views)))
        return view

    def hint_click(
        self, file: Any, label: str | None, board: HintBoard, x: Any, y: Any
    ) -> tuple[list[tuple[str, str]], str]:
        """A click at (x, y) of the shown preview: remember the point in the original photo's
        pixels and suggest colours for it -> ([(hex, caption)], info line)."""
        if not (is_finite_number(x) and is_finite_number(y)):
            raise DemoError("A click needs two finite pixel coordinates.")
        loaded = self._hint_model(label)
        view = self._view(file)
        (W, H), (w, h) = view.size, view.image.size
        ox = min(max((float(x) + 0.5) * W / w - 0.5, 0.0), W - 1.0)
        oy = min(max((float(y) + 0.5) * H / h - 0.5, 0.0), H - 1.0)
        try:
            board.click(ox, oy)
            picks = loaded.colorizer.suggest_colors(
                view.image, ox, oy, board.hints, k=6, hints_size=view.size
            )
        except HintError as e:
            raise DemoError(str(e)) from e
        swatches = [(rgb_to_hex(p["rgb"]), f"{p['p']:.0%}") for p in picks]
        return (
            swatches,
            f"Point ({ox:.0f}, {oy:.0f}) chosen: pick one of its likely colours or any colour.",
        )

    def hint_render(
        self, file: Any, label: str | None, board: HintBoard
    ) -> tuple[str, list[list[Any]], str]:
        """The preview re-colorized with the board's hints, the hints drawn on it -> (PNG
        path, table rows, info line)."""
        loaded = self._hint_model(label)
        view = self._view(file)
        t0 = time.perf_counter()
        try:
            color = loaded.colorizer.colorize(view.image, hints=board.hints, hints_size=view.size)
        except HintError as e:
            raise DemoError(str(e)) from e
        ms = (time.perf_counter() - t0) * 1000
        out = self.scratch.new_dir() / "hinted.png"
        save_png(mark_hints(color, board.hints, view.size, board.point), out)
        rows = [
            [n, round(h.x), round(h.y), rgb_to_hex(h.shown_rgb())]
            for n, h in enumerate(board.hints, 1)
        ]
        n = len(board.hints)
        info = f"{n} hint{'s' if n != 1 else ''}, re-colorized in {ms:.0f} ms."
        return str(out), rows, info

    def hint_full(self, file: Any, label: str | None, board: HintBoard) -> str:
        """The photo at full resolution with the board's hints (no marks) -> PNG path."""
        loaded = self._hint_model(label)
        path = _file_path(file)
        img = self._load(path)
        try:
            color = loaded.colorizer.colorize(img, hints=board.hints)
        except HintError as e:
            raise DemoError(str(e)) from e
        out = self.scratch.new_dir() / f"{_safe_stem(Path(path).name)}_hinted.png"
        save_png(color, out)
        return str(out)

    def hints_download(self, board: HintBoard) -> str:
        out = self.scratch.new_dir() / "hints.json"
        out.write_text(hints_to_json(board.hints), encoding="utf-8")
        return str(out)

    def hints_upload(self, file: Any, photo: Any, board: HintBoard) -> None:
        """Hints from an uploaded JSON file (docs/hints.md: one list, or lists by photo file
        name) onto the board, checked against the photo; refused whole, with the reason, if
        any hint does not fit."""
        path = _file_path(file)
        if not path:
            raise DemoError("No hints file: choose a .json file saved from this page.")
        if self.config.readable_roots is not None:
            path = readable_upload(path, self.config.readable_roots)
        if os.path.getsize(path) > MAX_HINTS_FILE_BYTES:
            raise DemoError(f"The hints file is larger than {MAX_HINTS_FILE_BYTES // 1024} KB.")
        view = self._view(photo)
        name = Path(_file_path(photo) or "photo").name
        try:
            text = Path(path).read_text(encoding="utf-8")
            hints = hints_for(parse_hints_text(text, "hints file"), [name], "hints file")[name]
            check_inside(hints, *view.size, "hints file")
        except UnicodeDecodeError as e:
            raise DemoError("The hints file is not UTF-8 JSON text.") from e
        except HintError as e:
            raise DemoError(str(e)) from e
        board.load(hints)

    def examples(self) -> list[str]:
        d = self.config.examples_dir
        if not d.is_dir():
            return []
        return [str(p) for p in list_images(d, recursive=False)]


def swatch_html(swatches: list[tuple[str, str]]) -> str:
    """The suggested colours as swatches, in the order of the radio buttons above them."""
    cells = "".join(
        f'<span class="hint-swatch" title="{hexa}" style="display:inline-block;width:2.2em;'
        f'height:2.2em;margin:2px;border:1px solid #000;border-radius:4px;background:{hexa}">'
        "</span>"
        for hexa, _ in swatches
    )
    return f'<div aria-label="suggested colours">{cells}</div>'


def _no_progress(*_args: Any, **_kwargs: Any) -> None:
    """Stands in for gr.Progress when the handlers are called from Python."""


def _about(description: str, temperature: float | None) -> str:
    t = (
        f"Tuned colour strength (temperature): {temperature:.2f}."
        if temperature is not None
        else ""
    )
    return f"{description}\n\n{t}".strip()


def _temperature_slider(t_max: float, value: float | None, **kwargs: Any) -> gr.Slider:
    """The colour-strength control, the same on every tab (0.38, Zhang's T, until a model
    says)."""
    return gr.Slider(
        T_MIN,
        t_max,
        value=value if value is not None else 0.38,
        step=T_STEP,
        label=TEMPERATURE_LABEL,
        info=TEMPERATURE_HELP,
        **kwargs,
    )


def uncertainty_legend_html(stops: int = 9) -> str:
    """The uncertainty map's legend: a colour bar from 0 to 1 painted by the library's own
    ``uncertainty_image`` (so it matches the map whatever colour map the library uses), its
    ends named, and what the numbers mean."""
    bar = np.asarray(uncertainty_image(np.linspace(0.0, 1.0, stops)[None, :]))[0]
    gradient = ", ".join(f"rgb({r}, {g}, {b})" for r, g, b in bar.tolist())
    return (
        f'<div class="uncertainty-legend" style="font-size: var(--text-sm)">'
        f'<div style="font-weight: 600">{UNCERTAINTY_LEGEND}</div>'
        f'<div style="height: 12px; border-radius: 3px; margin: 4px 0 2px; '
        f'background: linear-gradient(to right, {gradient})"></div>'
        f'<div style="display: flex; justify-content: space-between">'
        f"<span>0 confident</span><span>0.5</span><span>1 uncertain</span></div>"
        f'<div style="opacity: 0.8; margin-top: 4px">{UNCERTAINTY_HELP}</div></div>'
    )


def scroll_into_view_js(elem_id: str) -> str:
    """Browser code that scrolls the page until the element ``elem_id`` is on screen (its top
    16 px below the window's top), and leaves the page alone when it already is.

    Gradio's own ``scroll_to_output=True`` has no effect with the installed Gradio (6.31: in
    Chromium the page never scrolls), so on a phone the result arrived below the fold unseen.
    Run as a ``js=`` step after the event succeeds.
    """
    return f"""() => {{
        const el = document.getElementById({elem_id!r});
        if (!el) return [];
        const box = el.getBoundingClientRect();
        if (box.top < 0 || box.bottom > window.innerHeight) {{
            window.scrollTo({{ top: box.top + window.scrollY - 16, behavior: "smooth" }});
        }}
        return [];
    }}"""


def _to_gradio(fn):
    """Run a handler; its DemoError becomes a gr.Error the page shows (the server keeps going).

    A DemoError is a user's mistake (no photo, not an image) or a refusal, not a bug: the
    console gets one line saying what, not Gradio's traceback of the gr.Error.
    """

    # functools.wraps keeps the signature visible: Gradio finds the `progress=gr.Progress()`
    # parameter through it and wires the progress bar.
    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DemoError as e:
            log.warning("%s: %s", fn.__name__.removeprefix("on_"), _one_line(e.for_log))
            raise gr.Error(str(e), print_exception=False) from e

    return wrapped


def build_demo(
    models_dir: str | os.PathLike | None = None,
    device: str | None = None,
    examples_dir: str | os.PathLike | None = None,
    scratch_dir: str | os.PathLike | None = None,
    concurrency: int = 1,
) -> gr.Blocks:
    """The Gradio app over the models in ``models_dir`` (default: the weights dir).

    ``device`` is passed to the library ("cpu", "cuda", None for CUDA when present).
    """
    examples_dir = Path(examples_dir) if examples_dir else EXAMPLES_DIR
    config = DemoConfig(
        models_dir=Path(models_dir) if models_dir else default_weights_dir(),
        device=device,
        examples_dir=examples_dir,
        scratch_dir=Path(scratch_dir) if scratch_dir else None,
        concurrency=concurrency,
        # Gradio's upload cache as its own check sees it (GRADIO_TEMP_DIR, else the system
        # temp's gradio/): uploads land there, and so do its copies of the examples.
        readable_roots=(Path(get_upload_folder()), examples_dir),
    )
    app = ColorizeApp(config)
    atexit.register(app.close)  # the scratch files go when the process ends, however it ends
    names = app.zoo.names
    first = app.zoo.preferred
    first_t, first_kind = None, None
    if first is not None:
        try:
            first_t, first_kind, _ = app.model_defaults(first)
        except DemoError as e:  # a broken file must not stop the page; it says so on use
            log.warning("%s", e)
    t_max = max(T_MAX, first_t or 0.0)
    examples = app.examples()
    hint_names = app.hint_models()
    hint_first = first if first in hint_names else (hint_names[0] if hint_names else None)

    def on_model_change(label: str | None) -> tuple[Any, Any]:
        if not label:
            return gr.update(), gr.update()
        t, kind, description = app.model_defaults(label)
        if kind != "classification":
            return gr.update(interactive=False, info=NO_TEMPERATURE_HELP), description
        return gr.update(value=t, maximum=max(T_MAX, t), interactive=True, info=TEMPERATURE_HELP), (
            _about(description, t)
        )

    def has_uncertainty(label: str | None) -> Any:
        """Show the uncertainty map only for a model that predicts a colour distribution (the
        library's classification models); a regression model has none."""
        if not label:
            return gr.update()
        try:
            kind = app.model_defaults(label)[1]
        except DemoError:  # on_model_change, fired by the same change, shows the message
            return gr.update()
        return gr.update(visible=kind == "classification")

    def on_colorize(
        file: Any, label: str | None, temperature: float | None, progress=gr.Progress()
    ):
        return app.colorize(file, label, temperature, progress=progress)

    def on_compare(file: Any, progress=gr.Progress()):
        gallery, note = app.compare(file, progress=progress)
        if "Skipped" in note:
            gr.Warning(note.split(":", 1)[0] + ": see the note under the pictures.")
        return gallery, note

    def on_batch(files: Any, label: str | None, temperature: float | None, progress=gr.Progress()):
        zip_path, rows = app.batch(files, label, temperature, progress=progress)
        bad = [r for r in rows if r[1] != "ok"]
        if bad:
            gr.Warning(f"{len(bad)} of {len(rows)} files could not be colorized; see the report.")
        return zip_path, rows

    def on_models() -> dict[str, Any]:
        """The models this server offers and the ones it lacks (with where to put them), as
        paths inside the models folder."""
        return {
            "models_dir": app.zoo.shown(app.zoo.models_dir),
            "default": app.zoo.preferred,
            "available": [
                {
                    "name": o.label,
                    "title": o.title,
                    "weights": app.zoo.shown(o.path),
                    "description": o.description,
                }
                for o in app.zoo.options.values()
            ],
            "missing": {n: app.zoo.shown(i["weights_path"]) for n, i in app.zoo.missing.items()},
        }

    limit = {"concurrency_id": "model", "concurrency_limit": max(1, concurrency)}
    example_label = "Or try an example (see examples/ATTRIBUTION.md)"
    # delete_cache: Gradio copies every returned file into its cache; drop them after an hour
    # (and all of them when the server shuts down).
    with gr.Blocks(title="Colorizer", delete_cache=(1800, 3600)) as demo:
        gr.Markdown(
            "# Colorizer\nColourise black-and-white landscape and street photographs. "
            "Colour photos work too: the model only sees their lightness."
        )
        with gr.Row(equal_height=False):
            status = gr.Markdown(app.status_markdown(), elem_id="model-status")
            rescan_btn = gr.Button(
                "Rescan models folder", size="sm", elem_id="rescan", scale=0, min_width=180
            )
        with gr.Tab("Colorize"):
            # Two columns that wrap into one on a phone: the photo and the knobs, then the
            # result beside its before/after slider (side by side on a wide screen).
            with gr.Row(equal_height=False):
                with gr.Column(scale=1, min_width=300):
                    file_in = photo_input(
                        label="Your photo (any image file)", elem_id="photo", height=300
                    )
                    model_in = gr.Dropdown(
                        choices=app.zoo.choices(),
                        value=first,
                        label="Model",
                        elem_id="model",
                        info=MODEL_HELP,
                    )
                    temp_in = _temperature_slider(
                        t_max,
                        first_t,
                        interactive=first_kind != "regression",
                        elem_id="temperature",
                    )
                    go = gr.Button("Colorize", variant="primary", elem_id="colorize-btn")
                    if examples:
                        gr.Examples(
                            examples=[[p] for p in examples],
                            inputs=[file_in],
                            label=example_label,
                            examples_per_page=12,
                            elem_id="examples",
                        )
                with gr.Column(scale=2, min_width=300):
                    with gr.Row(equal_height=True):
                        out_img = gr.Image(
                            label="Colorized (full resolution)",
                            type="filepath",
                            format="png",
                            elem_id="colorized",
                            height=380,
                            min_width=260,
                        )
                        out_slider = gr.ImageSlider(
                            label="Before / after: drag the handle",
                            type="filepath",
                            format="png",
                            elem_id="before-after",
                            height=380,
                            min_width=260,
                        )
                    out_info = gr.Markdown(elem_id="info")
                    out_file = gr.DownloadButton(
                        "Download full-resolution PNG", elem_id="download", variant="secondary"
                    )
                    model_about = gr.Markdown(
                        _about(app.zoo.options[first].description, first_t) if first else "",
                        elem_id="model-about",
                    )
                    # Below the result, at a height that fits a screen, with its legend; hidden
                    # for models that predict no colour distribution (regression).
                    with gr.Column(
                        visible=first_kind != "regression", elem_id="uncertainty-box"
                    ) as unc_box:
                        out_unc = gr.Image(
                            label=f"{UNCERTAINTY_LABEL} ({UNCERTAINTY_LEGEND})",
                            type="filepath",
                            format="png",
                            elem_id="uncertainty",
                            height=UNCERTAINTY_HEIGHT,
                            interactive=False,
                        )
                        gr.HTML(uncertainty_legend_html(), elem_id="uncertainty-legend")
            model_in.change(
                _to_gradio(on_model_change),
                model_in,
                [temp_in, model_about],
                api_name="model_defaults",
            )
            model_in.change(has_uncertainty, model_in, unc_box, api_visibility="private")
            go.click(
                _to_gradio(on_colorize),
                [file_in, model_in, temp_in],
                [out_img, out_slider, out_unc, out_file, out_info],
                api_name="colorize",
                **limit,
            ).success(None, js=scroll_into_view_js("colorized"))  # on a phone: below the knobs

        with gr.Tab("Compare"):
            gr.Markdown(
                "The same photo through every available model, each at its own tuned colour "
                "strength. A model whose file cannot be read is skipped and named below."
            )
            with gr.Row(equal_height=False):
                with gr.Column(scale=1, min_width=300):
                    cmp_file = photo_input(label="Your photo", elem_id="compare-photo", height=300)
                    cmp_go = gr.Button("Compare all models", variant="primary")
                    if examples:
                        gr.Examples(
                            examples=[[p] for p in examples],
                            inputs=[cmp_file],
                            label=example_label,
                            examples_per_page=12,
                        )
                with gr.Column(scale=2, min_width=300):
                    # Every model's result and caption on the page, none hidden in a box to
                    # scroll: Gradio 6 caps height="auto" (or None) at 55% of the window
                    # (its "fixed-height" class), a CSS height of the content is not capped.
                    cmp_out = gr.Gallery(
                        label="Side by side",
                        columns=3,
                        height="fit-content",
                        format="png",
                        elem_id="compare-gallery",
                    )
                    cmp_note = gr.Markdown(elem_id="compare-note")
            cmp_go.click(
                _to_gradio(on_compare),
                cmp_file,
                [cmp_out, cmp_note],
                api_name="compare",
                **limit,
            ).success(None, js=scroll_into_view_js("compare-gallery"))

        with gr.Tab("Hints"):
            gr.Markdown(
                "Tell the model a colour it cannot know: **click the photo**, then pick one of "
                "the colours it finds likely there, or any colour. The model spreads each hint "
                "over what belongs with it and re-colorizes at once."
            )
            board = gr.State(HintBoard.empty)
            with gr.Row(equal_height=False):
                with gr.Column(scale=1, min_width=300):
                    h_photo = photo_input(label="Your photo", elem_id="hint-photo", height=260)
                    h_model = gr.Dropdown(
                        choices=[(app.zoo.options[n].title, n) for n in hint_names],
                        value=hint_first,
                        label="Model (those that take hints)",
                        elem_id="hint-model",
                    )
                    h_swatches = gr.Radio(
                        choices=[],
                        label="Likely colours at the point (most likely first)",
                        elem_id="hint-swatches",
                    )
                    h_swatch_view = gr.HTML(elem_id="hint-swatch-view")
                    with gr.Row():
                        h_picker = gr.ColorPicker(
                            value="#2e7d32", label="Or any colour", elem_id="hint-picker"
                        )
                        h_apply = gr.Button("Use this colour", elem_id="hint-apply")
                    h_table = gr.Dataframe(
                        headers=["#", "x", "y", "colour"],
                        label="Hints (in the photo's pixels)",
                        interactive=False,
                        elem_id="hint-table",
                    )
                    with gr.Row():
                        h_which = gr.Number(
                            value=1, precision=0, minimum=1, label="Hint #", elem_id="hint-which"
                        )
                        h_move = gr.Button("Move to the point", size="sm", elem_id="hint-move")
                        h_remove = gr.Button("Remove", size="sm", elem_id="hint-remove")
                    with gr.Row():
                        h_undo = gr.Button("Undo", size="sm", elem_id="hint-undo")
                        h_clear = gr.Button("Clear all", size="sm", elem_id="hint-clear")
                    with gr.Row():
                        h_save = gr.DownloadButton(
                            "Download hints (JSON)", size="sm", elem_id="hint-save"
                        )
                        h_load = gr.UploadButton(
                            "Load hints (JSON)",
                            file_types=[".json"],
                            size="sm",
                            elem_id="hint-load",
                        )
                with gr.Column(scale=2, min_width=300):
                    h_canvas = gr.Image(
                        label="Click where a colour should go",
                        type="filepath",
                        format="png",
                        interactive=False,
                        elem_id="hint-canvas",
                        height=480,
                    )
                    h_info = gr.Markdown(elem_id="hint-info")
                    h_full = gr.Button("Full-resolution PNG with these hints", elem_id="hint-full")
                    h_full_file = gr.File(label="Full resolution", elem_id="hint-full-file")

            rendered = [h_canvas, h_table, h_info, h_save, board]

            def render(file: Any, label: str | None, b: HintBoard) -> tuple[Any, ...]:
                if not _file_path(file):
                    return None, [], "Upload a photo, then click it to place a hint.", None, b
                path, rows, info = app.hint_render(file, label, b)
                return path, rows, info, app.hints_download(b), b

            def on_photo(file: Any, label: str | None) -> tuple[Any, ...]:
                return (
                    *render(file, label, HintBoard.empty()),
                    gr.update(choices=[], value=None),
                    "",
                )

            def on_click(file: Any, label: str | None, b: HintBoard, evt: gr.EventData):
                # EventData, not SelectData: SelectData reads its fields before this runs, and a
                # request without them would fail there with a traceback
                data = getattr(evt, "_data", None)
                index = data.get("index") if isinstance(data, dict) else None
                if not isinstance(index, list | tuple) or len(index) != 2:
                    raise DemoError("A click needs two pixel coordinates.")
                x, y = index
                swatches, note = app.hint_click(file, label, b, x, y)
                path, rows, _, saved, b = render(file, label, b)
                html = swatch_html(swatches)
                choices = [(f"{hexa} ({share})", hexa) for hexa, share in swatches]
                return path, rows, note, saved, b, gr.update(choices=choices, value=None), html

            def coloured(hexa: str | None) -> tuple[int, int, int]:
                try:
                    return hex_to_rgb(hexa or "")
                except HintError as e:
                    raise DemoError(str(e)) from e

            def edit(fn):
                """A handler that edits the board (HintError -> a message), then re-renders."""

                def handler(file: Any, label: str | None, b: HintBoard, *args: Any):
                    try:
                        fn(b, *args)
                    except HintError as e:
                        raise DemoError(str(e)) from e
                    return render(file, label, b)

                return _to_gradio(handler)

            base = [h_photo, h_model, board]
            h_photo.change(
                _to_gradio(on_photo),
                [h_photo, h_model],
                [*rendered, h_swatches, h_swatch_view],
                api_visibility="private",
                **limit,
            )
            h_model.change(_to_gradio(render), base, rendered, api_visibility="private", **limit)
            h_canvas.select(
                _to_gradio(on_click),
                base,
                [*rendered, h_swatches, h_swatch_view],
                api_visibility="private",
                **limit,
            )
            h_swatches.input(
                edit(lambda b, hexa: b.colour(coloured(hexa))),
                [*base, h_swatches],
                rendered,
                api_visibility="private",
                **limit,
            )
            h_apply.click(
                edit(lambda b, hexa: b.colour(coloured(hexa))),
                [*base, h_picker],
                rendered,
                api_visibility="private",
                **limit,
            )
            h_move.click(
                edit(lambda b, n: b.move(int(n or 0) - 1)),
                [*base, h_which],
                rendered,
                api_visibility="private",
                **limit,
            )
            h_remove.click(
                edit(lambda b, n: b.remove(int(n or 0) - 1)),
                [*base, h_which],
                rendered,
                api_visibility="private",
                **limit,
            )
            h_undo.click(edit(HintBoard.undo), base, rendered, api_visibility="private", **limit)
            h_clear.click(edit(HintBoard.clear), base, rendered, api_visibility="private", **limit)

            def on_load_hints(file: Any, photo: Any, label: str | None, b: HintBoard):
                app.hints_upload(file, photo, b)
                return render(photo, label, b)

            h_load.upload(
                _to_gradio(on_load_hints),
                [h_load, h_photo, h_model, board],
                rendered,
                api_visibility="private",
                **limit,
            )
            h_full.click(
                _to_gradio(app.hint_full), base, h_full_file, api_visibility="private", **limit
            )

        with gr.Tab("Batch"):
            gr.Markdown(
                "Several photos in, a zip of colorized PNGs out. Files that cannot be "
                "read are listed in the report and skipped."
            )
            b_files = gr.File(
                label="Photos", file_count="multiple", type="filepath", elem_id="batch-photos"
            )
            with gr.Row():
                b_model = gr.Dropdown(
                    choices=app.zoo.choices(), value=first, label="Model", info=MODEL_HELP
                )
                b_temp = _temperature_slider(t_max, first_t)
            b_go = gr.Button("Colorize all", variant="primary")
            b_zip = gr.File(label="Colorized photos (zip)", elem_id="batch-zip")
            b_report = gr.Dataframe(
                headers=["file", "status", "detail"],
                label="Report",
                interactive=False,
                elem_id="batch-report",
            )
            b_model.change(
                _to_gradio(lambda label: on_model_change(label)[0]),
                b_model,
                b_temp,
                api_visibility="private",
            )
            b_go.click(
                _to_gradio(on_batch),
                [b_files, b_model, b_temp],
                [b_zip, b_report],
                api_name="batch",
                **limit,
            )

        # For whoever runs the demo, not for its users: below the tabs (open when empty).
        with gr.Accordion("Missing models and where their weights go", open=not names):
            missing = gr.Markdown(app.missing_markdown(), elem_id="model-missing")

        def model_lists(current: str | None, current_b: str | None) -> tuple[Any, ...]:
            """Status text and both dropdowns as the zoo has them now (a chosen model stays
            chosen while it exists)."""
            names_now = app.zoo.names

            def keep(v: str | None) -> Any:
                return gr.update(
                    choices=app.zoo.choices(), value=v if v in names_now else app.zoo.preferred
                )

            return app.status_markdown(), app.missing_markdown(), keep(current), keep(current_b)

        def on_rescan(current: str | None, current_b: str | None) -> tuple[Any, ...]:
            app.rescan()
            return model_lists(current, current_b)

        # The page's load event and a rescan write the same four outputs: one queue, in order,
        # so a load answered late (a busy server) cannot overwrite a newer rescan's list.
        lists = {"concurrency_id": "model_lists", "concurrency_limit": 1}
        rescan_btn.click(
            _to_gradio(on_rescan),
            [model_in, b_model],
            [status, missing, model_in, b_model],
            api_name="rescan",
            **lists,
        )

        def on_load() -> tuple[Any, ...]:
            # A page opened after a rescan must list the models as they are now, not as they
            # were when the page was built, starting on the preferred one; nothing is
            # rescanned on load.
            return model_lists(None, None)

        demo.load(
            _to_gradio(on_load),
            None,
            [status, missing, model_in, b_model],
            api_visibility="private",
            **lists,
        )
        gr.api(on_models, api_name="models")
    return demo


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _private_gradio_cache() -> Path:
    """Point Gradio's cache at a folder of this process's own (inside $GRADIO_TEMP_DIR when
    set, else the system's temp folder) and remove it at exit. Gradio's shutdown deletes the
    uploads and results it tracks but keeps the copies of the example photos it made at start
    (and every folder); a private folder lets all of it go."""
    parent = os.environ.get("GRADIO_TEMP_DIR") or None
    if parent:
        Path(parent).mkdir(parents=True, exist_ok=True)
    cache = Path(tempfile.mkdtemp(prefix="colorizer-demo-gradio-", dir=parent))
    os.environ["GRADIO_TEMP_DIR"] = str(cache)
    atexit.register(shutil.rmtree, cache, True)
    return cache


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        help="folder with the weights files (default: weights/ or $COLORIZER_WEIGHTS_DIR)",
    )
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument(
        "--max-file-size",
        default=MAX_UPLOAD_BYTES,
        help=f"largest upload accepted, in bytes or e.g. 100mb (default {MAX_UPLOAD_BYTES}: "
        f"room for a {MAX_PIXELS / 1e6:.0f} MP photo, the most the app decodes)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=1, help="model runs at a time across all tabs"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU is visible to torch here; use --device cpu")
    device = None if args.device == "auto" else args.device
    _private_gradio_cache()  # before the Blocks exist: each reads the folder when created
    demo = build_demo(models_dir=args.models_dir, device=device, concurrency=args.concurrency)
    # `kill` (SIGTERM, what service managers send) would end the process on the spot, leaving
    # every temporary file behind. As an interrupt, Gradio closes its server (which deletes
    # its cached copies of uploads and results) and the atexit hook removes the app's own.
    signal.signal(signal.SIGTERM, _interrupt)
    launch(demo, server_name=args.host, server_port=args.port, max_file_size=args.max_file_size)


def launch(
    demo: gr.Blocks, max_file_size: int | str = MAX_UPLOAD_BYTES, **kwargs: Any
) -> tuple[Any, str, str | None]:
    """Serve ``demo`` as ``python demo.py`` does (test_demo_security starts its server here): queued,
    uploads capped at ``max_file_size``, no share link; ``kwargs`` go to Blocks.launch.
    -> what Blocks.launch returns (app, local URL, share URL)."""
    return demo.queue().launch(
        max_file_size=max_file_size,
        share=False,  # a share link downloads Gradio's tunnel binary: nothing downloads here
        show_error=True,
        **kwargs,
    )


if __name__ == "__main__":
    main()
