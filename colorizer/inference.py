"""Inference: a loaded model that colorizes photos of any size, one or a whole folder.

    colorizer = Colorizer("eccv16")                 # a registry name, a checkpoint path or a module
    rgb = colorizer.colorize("photo.jpg")           # PIL RGB, same size as the input
    rgb, u = colorizer.colorize(img, temperature=0.2, return_uncertainty=True)
    rgb = colorizer.colorize(img, hints=[{"x": 120, "y": 48, "rgb": [200, 30, 30]}])
    colorizer.suggest_colors(img, 120, 48)         # the k likeliest distinct colours there
    report = colorize_many(colorizer, ["folder/"], "out/")

The pipeline is Zhang et al.'s: the network sees the photo resized to its ``input_size``
(bicubic on RGB, then L), predicts a*b* at low resolution, and the a*b* are upsampled
(bilinear) to the ORIGINAL size and joined with the original full-resolution L. So the output
keeps every detail of the input's lightness whatever the network's resolution.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from colorizer.atomic import atomic_write, check_output_folder
from colorizer.bins import Decoding, decoding_at, output_to_ab
from colorizer.card import ModelCard
from colorizer.hints import (
    Hint,
    HintError,
    ab_to_rgb,
    grid_index,
    hint_from_dict,
    hint_map,
    is_finite_number,
    no_hints_error,
    recommend_colors,
)
from colorizer.imageio import ImageError, ImageSource, list_images, load_image, to_tensor
from colorizer.lab import recolor_strips, rgb8_with_ab, rgb_to_l

log = logging.getLogger(__name__)

# Full-resolution colour work is done in horizontal strips of about this many pixels: their
# float temporaries (a few MB) stay in cache, where a whole-photo pass would stream hundreds
# of MB through memory. Measured on 12 MP with 2**14 .. 2**17: 2**16 was fastest.
STRIP_PIXELS = 1 << 16
WORKING_REDUCING_GAP = 3.0  # see Colorizer.working_l

GRAY = "gray"  # the built-in floor: a*b* = 0 everywhere
BACKENDS = ("torch", "onnx")  # what runs the network (see Colorizer)


class GrayModel(nn.Module):
    """The "no colour" baseline: predicts a*b* = 0 (the input's own grey) for every pixel.

    A regression model in the project's contract, so evaluation and the CLI treat it like any
    other; it is the floor every trained model has to beat.
    """

    def __init__(self, input_size: tuple[int, int] = (256, 256)) -> None:
        super().__init__()
        self.kind = "regression"
        self.bins = None
        self.input_size = tuple(input_size)
        self.decoding = Decoding()  # unused: a regression model has no distribution to decode
        self.arch_name = GRAY
        self.arch_args: dict[str, Any] = {"input_size": self.input_size}

    def forward(self, L: torch.Tensor) -> torch.Tensor:
        # unit scaling: ab_from_unit(128 / 255) = 0
        return torch.full_like(L, 128.0 / 255.0).expand(-1, 2, -1, -1)


def resize_rows(x: torch.Tensor, r0: int, r1: int, out_h: int) -> torch.Tensor:
    """Rows r0..r1 of a bilinear (align_corners=False) resize of ``x`` (C, h, W) to height out_h.

    Exactly what ``F.interpolate(mode="bilinear")`` computes along the height, for a strip of
    rows only: combined with a width-only interpolate first it lets a 12 MP a*b* map be built
    strip by strip instead of all at once.
    """
    h = x.shape[-2]
    scale = h / out_h
    dst = torch.arange(r0, r1, device=x.device, dtype=torch.float64)
    src = ((dst + 0.5) * scale - 0.5).clamp_min(0.0)
    y0 = src.floor().long().clamp_max(h - 1)
    y1 = (y0 + 1).clamp_max(h - 1)
    lam = (src - y0.double()).to(x.dtype).view(1, -1, 1)
    return torch.lerp(x[:, y0], x[:, y1], lam)  # (C, r1 - r0, W)


@dataclass
class Prediction:
    """What the network said about one photo at its working resolution."""

    ab: torch.Tensor  # (1, 2, h, w) Lab units
    logits: torch.Tensor | None  # (1, Q, h, w) for classification models


class Colorizer:
    """A model loaded once, in eval mode, on the best device, ready to colorize photos.

    Args:
        model: a registry name (its weights are loaded), a checkpoint path, an ``nn.Module``
            following the model contract, or ``"gray"`` (a*b* = 0 baseline).
        device: "cpu", "cuda", ... (default: CUDA when present). CUDA runs under autocast fp16.
        temperature: default decoding temperature for this colorizer (default: the model's).
        weights_dir: where registry weights are looked up (default: weights/ or
            $COLORIZER_WEIGHTS_DIR).
        backend: "torch" (default) or "onnx": the network exported in memory (checked against
            torch) and run by onnxruntime on the CPU, faster there for colornet and effunet
            (benchmarks/bench_inference.py); decoding and colour work stay the same. A
            ``.onnx`` file as ``model`` always runs on onnxruntime.
        keep_encoding: keep the encoder's output for the last photo (models whose hints enter
            after an ``encode``, the default family): an app re-colorizing one photo as its
            user edits hints then runs the decoder alone. Off by default: each photo of a
            folder is seen once, and hashing it would cost for nothing.
    """

    def __init__(
        self,
        model: str | os.PathLike | nn.Module,
        device: str | torch.device | None = None,
        temperature: float | None = None,
        weights_dir: str | os.PathLike | None = None,
        backend: str = "torch",
        keep_encoding: bool = False,
    ) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
        self.model, self.name = load_model(model, weights_dir=weights_dir)
        if backend == "onnx" and getattr(self.model, "backend", "torch") != "onnx":
            from colorizer.onnx import OnnxModel

            self.model = OnnxModel.from_module(self.model)
        self.backend = getattr(self.model, "backend", "torch")
        for attr in ("kind", "input_size"):
            if not hasattr(self.model, attr):
                raise ValueError(f"model {self.name} lacks the '{attr}' attribute of the contract")
        self.model.to(self.device).eval()
        self.keep_encoding = bool(keep_encoding) and self.backend == "torch"
        self._encoder_cache: tuple[Any, Any] | None = None
        # an override of the file's temperature, checked now rather than at the first photo
        self.temperature = (
            None if temperature is None else decoding_at(self.model, temperature).temperature
        )
        log.info(
            "colorizer %s (%s) on %s, %s backend",
            self.name,
            self.model.kind,
            self.device,
            self.backend,
        )

    @property
    def kind(self) -> str:
        return self.model.kind

    @property
    def card(self) -> ModelCard:
        """The network's contract (colorizer.card), the same for either backend, with the
        decoding this colorizer uses."""
        return ModelCard.of(self.model, rebuildable=False).replace(decoding=self.decoding)

    @property
    def decoding(self) -> Decoding:
        """What this colorizer decodes at: the model's setting, at the override if any."""
        return decoding_at(self.model, self.temperature)

    @property
    def default_temperature(self) -> float:
        return self.decoding.temperature

    # ------------------------------------------------------------------ the network
    @property
    def accepts_hints(self) -> bool:
        return bool(getattr(self.model, "accepts_hints", False))

    @torch.inference_mode()
    def predict(
        self, L: torch.Tensor, temperature: float | None = None, hints: torch.Tensor | None = None
    ) -> Prediction:
        """(B, 1, H, W) L at the working size (and a (B, 3, H, W) hint map) -> a*b* (and logits)
        at the network's output size."""
        L = L.to(self.device)
        t = self.temperature if temperature is None else temperature
        extra = ()
        if hints is not None:
            if not self.accepts_hints:
                raise no_hints_error(self.name, self.backend)
            extra = (hints.to(self.device),)
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.device.type == "cuda"):
            if self.keep_encoding and hasattr(self.model, "encode"):
                out = self.model.decode(self._encoded(L), *extra)
            else:
                out = self.model(L, *extra)
        out = out.float()  # decode in float32: softmax over 313 bins at fp16 loses the tails
        ab = output_to_ab(self.model, out, t)
        return Prediction(ab=ab, logits=out if self.model.kind == "classification" else None)

    def _encoded(self, L: torch.Tensor) -> Any:
        """The encoder's output for ``L``, kept for the last photo seen (``keep_encoding``): a
        hint change then re-runs the decoder alone (the encoder is most of the forward;
        benchmarks/bench_hints). One entry, swapped whole, so concurrent requests never see
        half of one; keyed by the L bytes (hashed on the CPU)."""
        digest = hashlib.blake2b(L.detach().cpu().numpy().tobytes(), digest_size=16).digest()
        key = (tuple(L.shape), str(L.dtype), digest)
        cached = self._encoder_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        encoded = self.model.encode(L)
        self._encoder_cache = (key, encoded)
        return encoded

    def forget_encoding(self) -> None:
        """Drop the kept encoder output (after changing the model's weights, or to time a
        cold forward)."""
        self._encoder_cache = None

    def working_l(self, img: Image.Image) -> torch.Tensor:
        """The network's input for a photo: RGB resized (bicubic) to input_size, then L.

        (1, 1, h, w). Resizing RGB and then taking L, as Zhang et al. do, rather than
        resizing L: the two differ where colours meet.

        Large photos are first reduced by an integer factor (PIL's ``reducing_gap``, at the 3
        its documentation recommends): a plain bicubic from 12 MP to 128 px reads every pixel
        through a 60-pixel-wide kernel (130 ms); this takes 25 ms and moves the network's
        input by 0.05-0.15 L units on average (tests/test_inference.py bounds it).
        """
        h, w = self.model.input_size
        small = (
            img
            if img.size == (w, h)
            else img.resize((w, h), Image.Resampling.BICUBIC, reducing_gap=WORKING_REDUCING_GAP)
        )
        rgb = to_tensor(small).unsqueeze(0).to(self.device)  # (1, 3, h, w)
        return rgb_to_l(rgb)

    # ------------------------------------------------------------------ full pipeline
    @torch.inference_mode()
    def colorize(
        self,
        image: ImageSource,
        temperature: float | None = None,
        return_uncertainty: bool = False,
        hints: Sequence[Hint | dict] | None = None,
        hints_size: tuple[int, int] | None = None,
    ) -> Image.Image | tuple[Image.Image, np.ndarray | None]:
        """Colorize one photo of any mode and size; returns an RGB PIL image of the same size.

        With ``return_uncertainty`` also returns (H, W) float32 in [0, 1]: the normalised
        entropy of the predicted colour distribution, upsampled to full size (None for
        regression models, which predict no distribution).

        ``hints``: user colour points (colorizer.hints.Hint, or dicts as in a hints file:
        ``{"x": 120, "y": 48, "rgb": [200, 30, 30]}``) in this photo's pixel coordinates,
        or in those of the same photo at ``hints_size`` (width, height: an app showing a
        preview keeps them in the original's), for a model that takes them; an empty list is
        the automatic colorization.
        """
        img = load_image(image)
        t = None if temperature is None else decoding_at(self.model, temperature).temperature
        pred = self.predict(self.working_l(img), t, self.hint_map(hints, hints_size or img.size))
        out = self.compose(img, pred.ab[0])
        if not return_uncertainty:
            return out
        if pred.logits is None:
            return out, None
        ent = self.model.bins.entropy(pred.logits)  # (1, h, w)
        return out, upsample_map(ent, img.size[1], img.size[0])

    def hint_map(
        self, hints: Sequence[Hint | dict] | None, photo_size: tuple[int, int]
    ) -> torch.Tensor | None:
        """User points on a photo of ``photo_size`` (width, height) -> the model's (1, 3, h, w)
        hint input (None: no hints)."""
        if not hints:
            return None
        if not self.accepts_hints:
            raise no_hints_error(self.name, self.backend)
        parsed = [
            h if isinstance(h, Hint) else hint_from_dict(h, f"hints[{i}]")
            for i, h in enumerate(hints)
        ]
        return hint_map(parsed, photo_size, tuple(self.model.input_size))

    @torch.inference_mode()
    def suggest_colors(
        self,
        image: ImageSource,
        x: float,
        y: float,
        hints: Sequence[Hint | dict] | None = None,
        k: int = 6,
        hints_size: tuple[int, int] | None = None,
    ) -> list[dict[str, Any]]:
        """The ``k`` likeliest distinct colours of the point (x, y) of the photo, given the
        hints so far: [{"ab": (a, b), "rgb": (r, g, b), "p": probability}], the RGB at that
        point's own lightness (what the pixel would look like). The point and the hints are in
        the photo's pixels, or in those of the same photo at ``hints_size``. Classification
        models only: a regression model predicts one colour, no distribution."""
        if self.kind != "classification":
            raise HintError(f"model {self.name} predicts no colour distribution to suggest from")
        img = load_image(image)
        size = hints_size or img.size
        if not (is_finite_number(x) and is_finite_number(y)):
            raise HintError("a point needs two finite coordinates")
        if not (0 <= x < size[0] and 0 <= y < size[1]):
            raise HintError(f"point ({x:g}, {y:g}) is outside the {size[0]}x{size[1]} photo")
        L = self.working_l(img)
        pred = self.predict(L, None, self.hint_map(hints, size))
        i, j = grid_index(x, y, size, tuple(pred.logits.shape[-2:]))
        probs = self.model.bins.probabilities(pred.logits[:, :, i : i + 1, j : j + 1])[0, :, 0, 0]
        li, lj = grid_index(x, y, size, tuple(L.shape[-2:]))
        light = float(L[0, 0, li, lj])
        return [
            {"ab": ab, "rgb": ab_to_rgb(light, ab), "p": p}
            for ab, p in recommend_colors(probs.cpu(), self.model.bins, k)
        ]

    def compose(self, img: Image.Image, ab: torch.Tensor) -> Image.Image:
        """Join the full-resolution L of ``img`` with ``ab`` (2, h, w) upsampled to its size."""
        return compose(img, ab, self.device)


def compose(
    img: Image.Image, ab: torch.Tensor, device: str | torch.device | None = None
) -> Image.Image:
    """THE composition of inference, evaluation and validation during training: the 8-bit RGB
    photo ``img`` keeps its own full-resolution L and takes the a*b* ``ab`` (2, h, w), upsampled
    bilinearly to its size; returns the RGB image (within one 8-bit level of the float64 chain).
    """
    device = torch.device(device) if device is not None else ab.device
    width, height = img.size
    # Width first, once, on the small map: (2, h, w) -> (2, h, W). Rows follow per strip.
    abw = F.interpolate(
        ab[None].float().to(device),
        size=(ab.shape[-2], width),
        mode="bilinear",
        align_corners=False,
    )[0]
    rows = max(1, STRIP_PIXELS // width)

    def strips() -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        for r0 in range(0, height, rows):
            r1 = min(height, r0 + rows)
            # RGBX: PIL's own 4-byte layout, read a strip at a time while it is in cache
            raw = img.crop((0, r0, width, r1)).tobytes("raw", "RGBX")
            words = torch.from_numpy(np.frombuffer(raw, "<i4").astype(np.int32))
            ab_rows = resize_rows(abw, r0, r1, height).reshape(2, -1)  # (2, r * W)
            yield r0 * width, words.to(device), ab_rows

    out = recolor_strips(strips(), width * height, device)
    rgbx = out.cpu().numpy().astype("<i4", copy=False)
    return Image.frombytes("RGB", (width, height), rgbx, "raw", "RGBX")


def compose_batch(rgb8: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """``compose`` for a batch of tensors, byte for byte: 8-bit photos (B, 3, H, W) uint8 keep
    their L and take a*b* (B, 2, h, w), upsampled bilinearly the same way (width, then rows);
    returns (B, 3, H, W) uint8. What validation and calibration score, without a round trip
    through PIL for every photo and setting."""
    if rgb8.dtype != torch.uint8 or rgb8.dim() != 4 or rgb8.shape[1] != 3:
        raise ValueError(f"rgb8 must be uint8 (B, 3, H, W); got {rgb8.dtype} {tuple(rgb8.shape)}")
    if ab.dim() != 4 or ab.shape[:2] != (rgb8.shape[0], 2):
        raise ValueError(
            f"ab must be (B, 2, h, w) for {rgb8.shape[0]} photos; got {tuple(ab.shape)}"
        )
    height, width = rgb8.shape[-2:]
    abw = F.interpolate(
        ab.float(), size=(ab.shape[-2], width), mode="bilinear", align_corners=False
    )
    out = [
        rgb8_with_ab(photo, resize_rows(a, 0, height, height))  # (3, H, W)
        for photo, a in zip(rgb8, abw.to(rgb8.device), strict=True)
    ]
    return torch.stack(out)


def upsample_map(m: torch.Tensor, height: int, width: int) -> np.ndarray:
    """(1, h, w) map -> (height, width) float32 numpy, bilinear, clipped to [0, 1]."""
    mw = F.interpolate(
        m[None].float(), size=(m.shape[-2], width), mode="bilinear", align_corners=False
    )[0]
    out = np.empty((height, width), dtype=np.float32)
    rows = max(1, STRIP_PIXELS // width)
    for r0 in range(0, height, rows):
        r1 = min(height, r0 + rows)
        out[r0:r1] = resize_rows(mw, r0, r1, height)[0].clamp_(0.0, 1.0).cpu().numpy()
    return out


def uncertainty_image(u: np.ndarray, cmap: str = "magma") -> Image.Image:
    """(H, W) uncertainty in [0, 1] -> colour-mapped RGB image (dark = confident)."""
    import matplotlib

    if u.ndim != 2:
        raise ValueError(f"uncertainty map must be (H, W); got {u.shape}")
    lut = (matplotlib.colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3] * 255.0).round()
    idx = (np.clip(np.nan_to_num(u), 0.0, 1.0) * 255.0).round().astype(np.intp)
    return Image.fromarray(lut.astype(np.uint8)[idx], "RGB")


RUN_FILE_STEMS = ("final", "last", "best")  # the files a training run writes in its folder


def checkpoint_label(path: str | os.PathLike) -> str:
    """A checkpoint's display name: runs/landscape/final.pt -> landscape, weights/street.pt ->
    street (a run's generic file names say nothing; its folder names the run)."""
    p = Path(path)
    if p.stem in RUN_FILE_STEMS and p.parent.name:
        return p.parent.name
    return p.stem or os.fspath(path)


def load_model(
    model: str | os.PathLike | nn.Module, weights_dir: str | os.PathLike | None = None
) -> tuple[nn.Module, str]:
    """(module, display name) for a registry name, a checkpoint path, "gray" or a module."""
    if isinstance(model, nn.Module):
        return model, str(getattr(model, "arch_name", type(model).__name__))
    if model == GRAY:
        return GrayModel(), GRAY
    from colorizer.models import ModelError, create_model, list_models

    spec = os.fspath(model)
    if spec in list_models():
        return create_model(spec, pretrained=True, weights_dir=weights_dir), spec
    path = Path(spec)
    if path.suffix == ".onnx":  # a network exported by `python -m colorizer export-onnx`
        from colorizer.onnx import OnnxModel

        if not path.is_file():
            raise FileNotFoundError(f"no such ONNX file: {path}")
        return OnnxModel.from_file(path), checkpoint_label(path)
    if path.is_file() or path.suffix in (".pt", ".pth"):
        from colorizer.models import load_checkpoint

        loaded, _meta = load_checkpoint(path)
        return loaded, checkpoint_label(path)
    raise ModelError(
        f"unknown model {spec!r}: not a registered model ({', '.join(list_models())}, {GRAY}) "
        "nor a checkpoint file"
    )


# ---------------------------------------------------------------------- folders
@dataclass
class ColorizeReport:
    """What colorize_many did: (input, output) pairs written and (input, reason) pairs skipped.

    Reasons for inputs left alone on purpose start with "output " (exists, would overwrite an
    input); every other reason is a bad input (see ``failed``).
    """

    done: list[tuple[Path, Path]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[tuple[Path, str]]:
        """The skipped inputs that are bad input (missing, unreadable), not merely left alone
        because their output exists."""
        return [(p, why) for p, why in self.skipped if not why.startswith("output ")]

    def summary(self) -> str:
        return f"{len(self.done)} colorized, {len(self.skipped)} skipped in {self.seconds:.1f} s"


UNCERTAINTY_SUFFIX = "_uncertainty"  # x.png's entropy map is x_uncertainty.png


def uncertainty_path(output: Path) -> Path:
    """Where the uncertainty map of the colorization written to ``output`` goes."""
    return output.with_name(f"{output.stem}{UNCERTAINTY_SUFFIX}.png")


def plan_outputs(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    recursive: bool = True,
) -> tuple[list[tuple[Path, Path]], list[tuple[Path, str]]]:
    """Expand files and folders into (input, output) pairs; missing inputs come back as skipped.

    A file ``x.jpg`` goes to ``out_dir/x.png``; a photo inside a given folder keeps its path
    relative to that folder (``in/a/x.jpg`` -> ``out_dir/a/x.png``). Each output also reserves
    its uncertainty map's name (``x_uncertainty.png``), whether or not maps are written, so
    the plan is the same either way and no output is ever another's: two inputs that would
    share a name (``x.jpg`` and ``x.png``, or ``x.jpg`` and ``x_uncertainty.jpg``) get ``-2``,
    ``-3``, ... suffixes instead of overwriting each other.
    """
    if isinstance(inputs, str | os.PathLike):
        inputs = [inputs]
    out_root = Path(out_dir)
    pairs: list[tuple[Path, Path]] = []
    skipped: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    taken: set[Path] = set()
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = [
                (f, f.relative_to(p).parent) for f in list_images(p, recursive, exclude=[out_root])
            ]
        elif p.is_file():
            found = [(p, Path())]
        else:
            skipped.append((p, "no such file or folder"))
            continue
        for f, rel in found:
            key = f.resolve()
            if key in seen:
                continue
            seen.add(key)
            target = out_root / rel / f"{f.stem}.png"
            n = 2
            while {target.resolve(), uncertainty_path(target).resolve()} & taken:
                target = out_root / rel / f"{f.stem}-{n}.png"
                n += 1
            taken.update((target.resolve(), uncertainty_path(target).resolve()))
            pairs.append((f, target))
    return pairs, skipped


def _save_atomic(img: Image.Image, path: Path) -> None:
    """Write a PNG atomically, so an interrupted run never leaves half a file."""
    with atomic_write(path) as f:
        img.save(f, format="PNG")


def colorize_many(
    colorizer: Colorizer,
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    temperature: float | None = None,
    uncertainty: bool = False,
    overwrite: bool = False,
    recursive: bool = True,
    progress: bool = True,
    hints: dict[str, list[Hint]] | None = None,
) -> ColorizeReport:
    """Colorize files and folders into ``out_dir`` as ``<stem>.png``.

    Unreadable files are skipped with their reason, never fatal. An input is never
    overwritten; an existing output only with ``overwrite=True`` (otherwise skipped, which
    also makes an interrupted run resumable). With ``uncertainty`` a colour-mapped
    ``<stem>_uncertainty.png`` is written next to each output (classification models).
    ``hints`` maps an input's file name to its colour hints (colorizer.hints.load_hints_file);
    a photo whose hints do not fit it (a point outside it) is skipped with the reason.
    """
    start = time.perf_counter()
    if not isinstance(inputs, str | os.PathLike):
        inputs = list(inputs)
    out_root = check_output_folder(out_dir)
    pairs, skipped = plan_outputs(inputs, out_root, recursive)
    report = ColorizeReport(skipped=skipped)
    input_set = {src.resolve() for src, _ in pairs}
    for src, dst in tqdm(pairs, desc="colorize", unit="img", disable=not progress):
        extra = uncertainty_path(dst)
        if dst.resolve() in input_set or (uncertainty and extra.resolve() in input_set):
            report.skipped.append((src, f"output {dst} would overwrite an input"))
            continue
        if dst.exists() and not overwrite:
            report.skipped.append((src, f"output {dst} exists (pass overwrite to replace it)"))
            continue
        try:
            result = colorizer.colorize(
                src,
                temperature=temperature,
                return_uncertainty=uncertainty,
                hints=(hints or {}).get(src.name),
            )
        except (ImageError, HintError) as e:
            report.skipped.append((src, str(e)))
            log.debug("skipped %s", e)  # the report carries it; callers say it once
            continue
        rgb, u = result if uncertainty else (result, None)
        try:
            _save_atomic(rgb, dst)
            if u is not None:
                _save_atomic(uncertainty_image(u), extra)
        except (FileExistsError, NotADirectoryError) as e:
            # A file where this output's subfolder should be: this photo fails, the rest go on.
            report.skipped.append((src, f"cannot write {dst}: a file is in the way ({e})"))
            log.debug("skipped %s: cannot write %s", src, dst)
            continue
        report.done.append((src, dst))
    report.seconds = time.perf_counter() - start
    log.debug("%s", report.summary())
    return report
