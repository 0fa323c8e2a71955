"""Live colorization app: a thin Gradio front end over the ``colorizer`` library.

    python demo.py                                  # http://127.0.0.1:7860
    python demo.py --models-dir weights --device cuda --port 7861

Three tabs, each also a named API endpoint for ``gradio_client``:

- colorize (``/colorize``): one photo, one model, a temperature -> the colorized photo at full
  resolution, a before/after slider, the uncertainty map and a PNG to download;
- compare (``/compare``): the same photo through every available model, side by side;
- batch (``/batch``): several photos -> a zip of colorized PNGs plus a per-file report.

Decoding, colour maths and models all live in the library; the handlers here only move files
and turn library errors into messages on the page. Models are loaded once and cached.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import re
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import torch
from PIL import Image

from colorizer.checkpoint import CheckpointError
from colorizer.imageio import ImageError, load_image
from colorizer.inference import Colorizer, uncertainty_image
from colorizer.models import ModelError, default_weights_dir, list_models, model_info
from colorizer.models.eccv16 import ECCV16_URL

# Nothing may reach the network at run time: no Gradio usage analytics or version checks.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

log = logging.getLogger("demo")

REPO = Path(__file__).resolve().parent
EXAMPLES_DIR = REPO / "examples"
EXAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png")
# Loose checkpoints in the models dir (besides the registry's own files) are offered too, so a
# freshly trained model shows up without registering it.
CHECKPOINT_SUFFIXES = (".pt", ".pth")

# Slider range for the annealed-mean temperature T (Zhang's sense: T -> 0 picks the most likely
# colour, T = 1 is the plain mean). A checkpoint's default outside it widens the range.
T_MIN, T_MAX, T_STEP = 0.01, 1.5, 0.01

TEMPERATURE_HELP = (
    "How boldly the model commits to one colour per pixel. Lower = more vivid, saturated "
    "colours (it picks the single most likely colour; very low values can look blotchy). "
    "Higher = safer, greyer or sepia colours (it averages every colour it finds plausible). "
    "Each model starts at the value it was tuned for."
)
UNCERTAINTY_HELP = (
    "Bright where the model hesitated between many colours (the entropy of its colour "
    "distribution), dark where it was sure. Models that predict colours directly have none."
)


class DemoError(ValueError):
    """A request the demo cannot serve (no photo, unknown model, unloadable weights)."""


@dataclass
class ModelOption:
    """One entry of the model dropdown."""

    label: str  # what the dropdown shows and what API callers pass
    source: str | Path  # registry name or checkpoint path, as Colorizer takes it
    path: Path  # the weights file
    description: str = ""
    stamp: tuple[int, int] = (0, 0)  # (size, mtime_ns) at the scan: a replaced file reloads


@dataclass
class LoadedModel:
    colorizer: Colorizer
    kind: str  # "classification" or "regression"
    default_temperature: float | None  # None where temperature does not apply (regression)


@dataclass
class ModelZoo:
    """The models available in ``models_dir``, loaded lazily, each exactly once.

    Registry entries whose weights file is present come first (landscape, street, eccv16 when
    its official file is there), then any other checkpoint file in the folder.
    """

    models_dir: Path
    device: str | None = None
    options: dict[str, ModelOption] = field(default_factory=dict)
    missing: dict[str, dict[str, Any]] = field(default_factory=dict)  # registry name -> info
    _cache: dict[str, LoadedModel] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.models_dir = Path(self.models_dir)
        self.scan()

    def scan(self) -> None:
        """(Re)read the models folder. Models whose file is gone or was replaced since they were
        loaded are dropped from the cache, so the next request loads the new weights."""
        options: dict[str, ModelOption] = {}
        missing: dict[str, dict[str, Any]] = {}
        claimed: set[Path] = set()
        for name in list_models():
            info = model_info(name, weights_dir=self.models_dir)
            if not info["weights"]:
                continue  # an architecture without shipped weights (e.g. *_tiny): not servable
            if info["weights_present"]:
                path = Path(info["weights_path"])
                options[name] = ModelOption(name, name, path, info["description"])
                claimed.add(path.resolve())
            else:
                missing[name] = info
        if self.models_dir.is_dir():
            for path in sorted(self.models_dir.iterdir()):
                # Hidden files include checkpoint.py's half-written ".name.pt.<pid>.tmp".
                if path.name.startswith(".") or path.suffix not in CHECKPOINT_SUFFIXES:
                    continue
                if not path.is_file():
                    continue
                if path.resolve() in claimed:
                    continue
                label = path.stem if path.stem not in options else path.name
                options[label] = ModelOption(label, path, path, f"Checkpoint file {path.name}.")
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

    def get(self, label: str) -> LoadedModel:
        """The loaded model for ``label``; loads it on first use (under a lock: two requests
        arriving together must not load the same weights twice)."""
        if label not in self.options:
            known = ", ".join(self.options) or "none"
            raise DemoError(f"Unknown model {label!r}. Available models: {known}.")
        with self._lock:
            if label not in self._cache:
                option = self.options[label]
                t0 = time.perf_counter()
                try:
                    colorizer = Colorizer(
                        option.source, device=self.device, weights_dir=self.models_dir
                    )
                except (CheckpointError, ModelError) as e:
                    raise DemoError(f"Cannot load model {label!r} from {option.path}: {e}") from e
                except Exception as e:  # noqa: BLE001
                    # load_checkpoint wraps the torch.load failures it knows in CheckpointError;
                    # whatever else a foreign file provokes must not take the demo down either.
                    log.exception("loading %s failed", option.path)
                    raise DemoError(
                        f"Cannot load model {label!r} from {option.path}: not a readable "
                        f"checkpoint ({type(e).__name__}: {e})"
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
    every request so a long-running demo does not fill the disk."""

    def __init__(self, root: str | os.PathLike | None = None, max_age_s: float = 3600.0):
        self.root = Path(root or tempfile.mkdtemp(prefix="colorizer-demo-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_age_s = max_age_s

    def new_dir(self) -> Path:
        self.prune()
        return Path(tempfile.mkdtemp(dir=self.root))

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


class ColorizeApp:
    """The request handlers, free of any Gradio layout so that they can be tested directly."""

    def __init__(self, config: DemoConfig):
        self.config = config
        self.zoo = ModelZoo(config.models_dir, device=config.device)
        self.scratch = Scratch(config.scratch_dir)

    # -- helpers

    def _load(self, path: str | None) -> Image.Image:
        if not path:
            raise DemoError("No photo: upload one (or pick an example) first.")
        try:
            return load_image(path)
        except ImageError as e:
            raise DemoError(_clean_message(str(e), path)) from e

    def _temperature(self, loaded: LoadedModel, temperature: float | None) -> float | None:
        if loaded.kind != "classification":
            return None
        if temperature is None:
            return loaded.default_temperature
        t = float(temperature)
        if not np.isfinite(t) or t <= 0:
            raise DemoError(f"Temperature must be a positive number, got {temperature!r}.")
        return t

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
        self, file: Any, label: str, temperature: float | None
    ) -> tuple[str, tuple[str, str], str | None, str, str]:
        """-> (colorized PNG, (input, colorized PNG), uncertainty PNG or None, download
        PNG, a line of text saying what was done)."""
        path = _file_path(file)
        img = self._load(path)
        loaded = self.zoo.get(label)
        t = self._temperature(loaded, temperature)
        t0 = time.perf_counter()
        color, uncertainty = self._run(loaded, img, t)
        seconds = time.perf_counter() - t0

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
        w, h = img.size
        t_text = f"temperature {t:.2f}" if t is not None else "no temperature (regression model)"
        info = f"{w}x{h} px, model **{label}**, {t_text}, {seconds:.2f} s on {loaded.colorizer.device}."
        return (
            str(color_path),
            (str(before_path), str(color_path)),
            str(unc_path) if unc_path else None,
            str(color_path),
            info,
        )

    def compare(self, file: Any) -> list[tuple[str, str]]:
        """Every available model on the same photo, each at its own default temperature."""
        path = _file_path(file)
        img = self._load(path)
        if not self.zoo.names:
            raise DemoError(self.no_models_message())
        out_dir = self.scratch.new_dir()
        stem = _safe_stem(Path(path).name)
        original = out_dir / f"{stem}_original.jpg"
        save_preview(img, original)
        gallery = [(str(original), "original")]
        for label in self.zoo.names:
            loaded = self.zoo.get(label)
            t = loaded.default_temperature
            color, _ = self._run(loaded, img, t)
            out = out_dir / f"{stem}_{_safe_stem(label)}.png"
            save_png(color, out)
            gallery.append((str(out), f"{label}" + (f" (T={t:.2f})" if t is not None else "")))
        return gallery

    def batch(
        self, files: Any, label: str, temperature: float | None, progress: Any = None
    ) -> tuple[str | None, list[list[str]]]:
        """-> (zip of colorized PNGs or None when nothing worked, rows [file, status, detail])."""
        paths = [p for p in (_file_path(f) for f in (files or [])) if p]
        if not paths:
            raise DemoError("No photos: upload one or more files first.")
        loaded = self.zoo.get(label)
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
            f"No trained weights found in `{self.zoo.models_dir}`: nothing to colorize with. "
            + self.weights_help()
        )

    def weights_help(self) -> str:
        lines = []
        for name, info in self.zoo.missing.items():
            if info["family"] == "eccv16":
                lines.append(
                    f"- **{name}** (Zhang et al. ECCV16): download the official weights "
                    f"[{info['weights']}]({ECCV16_URL}) (123 MB) and save them as "
                    f"`{info['weights_path']}`, then press *Rescan models folder*."
                )
            else:
                lines.append(
                    f"- **{name}**: `{info['weights_path']}` is missing; train it "
                    f"(`python -m training ...`) or copy the shipped file there."
                )
        return ("Not available:\n" + "\n".join(lines)) if lines else ""

    def status_markdown(self) -> str:
        if not self.zoo.names:
            head = f"**No trained weights found** in `{self.zoo.models_dir}`."
        else:
            head = f"Models found in `{self.zoo.models_dir}`: " + ", ".join(
                f"**{n}**" for n in self.zoo.names
            )
        return head + "\n\n" + self.weights_help()

    def rescan(self) -> list[str]:
        """Read the models folder again (weights added, removed or replaced while the demo
        runs); returns the model names now offered."""
        self.zoo.scan()
        return self.zoo.names

    def examples(self) -> list[str]:
        d = self.config.examples_dir
        if not d.is_dir():
            return []
        return [str(p) for p in sorted(d.iterdir()) if p.suffix.lower() in EXAMPLE_SUFFIXES]


def _about(description: str, temperature: float | None) -> str:
    t = f"Default temperature: {temperature:.2f}." if temperature is not None else ""
    return f"{description}\n\n{t}".strip()


def _temperature_slider(t_max: float, value: float | None, **kwargs: Any) -> gr.Slider:
    """The temperature control, the same on every tab (0.38, Zhang's T, until a model says)."""
    return gr.Slider(
        T_MIN,
        t_max,
        value=value if value is not None else 0.38,
        step=T_STEP,
        label="Temperature",
        info=TEMPERATURE_HELP,
        **kwargs,
    )


def _to_gradio(fn):
    """Run a handler; its DemoError becomes a gr.Error the page shows (the server keeps going)."""

    # functools.wraps keeps the signature visible: Gradio finds the `progress=gr.Progress()`
    # parameter through it and wires the progress bar.
    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DemoError as e:
            raise gr.Error(str(e)) from e

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
    config = DemoConfig(
        models_dir=Path(models_dir) if models_dir else default_weights_dir(),
        device=device,
        examples_dir=Path(examples_dir) if examples_dir else EXAMPLES_DIR,
        scratch_dir=Path(scratch_dir) if scratch_dir else None,
        concurrency=concurrency,
    )
    app = ColorizeApp(config)
    names = app.zoo.names
    first = names[0] if names else None
    first_t, first_kind = None, None
    if first is not None:
        try:
            first_t, first_kind, _ = app.model_defaults(first)
        except DemoError as e:  # a broken file must not stop the page; it says so on use
            log.warning("%s", e)
    t_max = max(T_MAX, first_t or 0.0)
    examples = app.examples()

    def on_model_change(label: str | None) -> tuple[Any, Any]:
        if not label:
            return gr.update(), gr.update()
        t, kind, description = app.model_defaults(label)
        if kind != "classification":
            return (
                gr.update(
                    interactive=False,
                    info="This model predicts colours directly: temperature does not apply.",
                ),
                description,
            )
        return gr.update(value=t, maximum=max(T_MAX, t), interactive=True, info=TEMPERATURE_HELP), (
            _about(description, t)
        )

    def on_colorize(file: Any, label: str | None, temperature: float | None):
        if not label:
            raise DemoError(app.no_models_message())
        return app.colorize(file, label, temperature)

    def on_batch(files: Any, label: str | None, temperature: float | None, progress=gr.Progress()):
        if not label:
            raise DemoError(app.no_models_message())
        zip_path, rows = app.batch(files, label, temperature, progress=progress)
        bad = [r for r in rows if r[1] != "ok"]
        if bad:
            gr.Warning(f"{len(bad)} of {len(rows)} files could not be colorized; see the report.")
        return zip_path, rows

    def on_models() -> dict[str, Any]:
        """The models this server offers and the ones it lacks (with where to put them)."""
        return {
            "models_dir": str(app.zoo.models_dir),
            "available": [
                {"name": o.label, "weights": str(o.path), "description": o.description}
                for o in app.zoo.options.values()
            ],
            "missing": {n: i["weights_path"] for n, i in app.zoo.missing.items()},
        }

    limit = {"concurrency_id": "model", "concurrency_limit": max(1, concurrency)}
    # delete_cache: Gradio copies every returned file into its cache; drop them after an hour.
    with gr.Blocks(title="Colorizer", delete_cache=(1800, 3600)) as demo:
        gr.Markdown(
            "# Colorizer\nColourise black-and-white landscape and street photographs. "
            "Colour photos work too: the model only sees their lightness."
        )
        status = gr.Markdown(app.status_markdown(), elem_id="model-status")
        rescan_btn = gr.Button("Rescan models folder", size="sm", elem_id="rescan")
        with gr.Tab("Colorize"):
            with gr.Row():
                with gr.Column(scale=1):
                    file_in = gr.File(
                        label="Photo (any image file)", type="filepath", elem_id="photo"
                    )
                    model_in = gr.Dropdown(
                        choices=names,
                        value=first,
                        label="Model",
                        elem_id="model",
                        info="Every model whose weights are in the models folder.",
                    )
                    model_about = gr.Markdown(
                        _about(app.zoo.options[first].description, first_t) if first else ""
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
                            label="Example photos (see examples/ATTRIBUTION.md)",
                        )
                with gr.Column(scale=2):
                    out_img = gr.Image(
                        label="Colorized (full resolution)",
                        type="filepath",
                        format="png",
                        elem_id="colorized",
                    )
                    out_info = gr.Markdown()
            with gr.Row():
                out_slider = gr.ImageSlider(label="Before / after", type="filepath", format="png")
                out_unc = gr.Image(label="Uncertainty", type="filepath", format="png")
            gr.Markdown(UNCERTAINTY_HELP)
            out_file = gr.File(label="Download the full-resolution PNG")
            model_in.change(
                _to_gradio(on_model_change),
                model_in,
                [temp_in, model_about],
                api_name="model_defaults",
            )
            go.click(
                _to_gradio(on_colorize),
                [file_in, model_in, temp_in],
                [out_img, out_slider, out_unc, out_file, out_info],
                api_name="colorize",
                **limit,
            )

        with gr.Tab("Compare"):
            gr.Markdown(
                "The same photo through every available model, each at its own default temperature."
            )
            cmp_file = gr.File(label="Photo", type="filepath", elem_id="compare-photo")
            cmp_go = gr.Button("Compare all models", variant="primary")
            if examples:
                gr.Examples(examples=[[p] for p in examples], inputs=[cmp_file])
            cmp_out = gr.Gallery(label="Side by side", columns=3, height="auto", format="png")
            cmp_go.click(_to_gradio(app.compare), cmp_file, cmp_out, api_name="compare", **limit)

        with gr.Tab("Batch"):
            gr.Markdown(
                "Several photos in, a zip of colorized PNGs out. Files that cannot be "
                "read are listed in the report and skipped."
            )
            b_files = gr.File(
                label="Photos", file_count="multiple", type="filepath", elem_id="batch-photos"
            )
            with gr.Row():
                b_model = gr.Dropdown(choices=names, value=first, label="Model")
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

        def model_lists(current: str | None, current_b: str | None) -> tuple[Any, Any, Any]:
            """Status text and both dropdowns as the zoo has them now (a chosen model stays
            chosen while it exists)."""
            names_now = app.zoo.names
            fallback = names_now[0] if names_now else None

            def keep(v: str | None) -> Any:
                return gr.update(choices=names_now, value=v if v in names_now else fallback)

            return app.status_markdown(), keep(current), keep(current_b)

        def on_rescan(current: str | None, current_b: str | None) -> tuple[Any, Any, Any]:
            app.rescan()
            return model_lists(current, current_b)

        rescan_btn.click(
            _to_gradio(on_rescan),
            [model_in, b_model],
            [status, model_in, b_model],
            api_name="rescan",
        )
        # A page opened after a rescan must list the models as they are now, not as they were
        # when the page was built; nothing is rescanned on load.
        demo.load(
            _to_gradio(model_lists),
            [model_in, b_model],
            [status, model_in, b_model],
            api_visibility="private",
        )
        gr.api(on_models, api_name="models")
    return demo


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
        default="100mb",
        help="largest upload accepted, e.g. 100mb (Gradio refuses bigger files)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=1, help="model runs at a time across all tabs"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU is visible to torch here; use --device cpu")
    device = None if args.device == "auto" else args.device
    demo = build_demo(models_dir=args.models_dir, device=device, concurrency=args.concurrency)
    demo.queue().launch(
        server_name=args.host,
        server_port=args.port,
        max_file_size=args.max_file_size,
        share=False,  # a share link downloads Gradio's tunnel binary: nothing downloads here
        show_error=True,
    )


if __name__ == "__main__":
    main()
