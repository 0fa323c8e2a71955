"""Model registry: every colorization network the project knows, by name.

    model = create_model("colornet", widths=(24, 48, 96, 192))   # random init, overrides
    model = create_model("eccv16", pretrained=True)              # Zhang et al.'s released weights
    model = create_model("landscape")                            # a shipped checkpoint
    list_models(); model_info("cunet")

A family module registers builders with ``@register_model``. An entry either builds an
architecture (``create_model`` passes its default args merged with the overrides to the
builder) or names a shipped checkpoint (``register_checkpoint``): then the architecture comes
from the file itself and ``create_model`` loads it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from colorizer.bins import ColorBins, Decoding
from colorizer.checkpoint import CheckpointError, load_state, read_checkpoint

log = logging.getLogger(__name__)

# Where shipped checkpoints live: $COLORIZER_WEIGHTS_DIR, else the weights that come with the
# package: colorizer/weights/ once installed (package data), the repository's weights/ in a
# checkout (the same files: pyproject.toml maps one onto the other).
WEIGHTS_ENV = "COLORIZER_WEIGHTS_DIR"
_PACKAGE_WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
_REPO_WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module] | None
    family: str
    weights: str | None  # file name inside the weights dir, or None
    # what the entry's pretrained weights decode at; None: the file says (a checkpoint) or the
    # plain mean (an untrained architecture)
    decoding: Decoding | None
    description: str
    default_args: dict[str, Any] = field(default_factory=dict)
    checkpoint: bool = False  # True: the architecture comes from the weights file
    # What a pretrained model needs beyond its file (as timm's pretrained config): where it can
    # be downloaded (into torch hub's cache, where it is also looked for), the start of its
    # SHA-256 (checked after a download), and a reader for a file that is not a colorizer
    # checkpoint (a release's plain state dict) -> the state dict to load.
    url: str | None = None
    sha256: str | None = None
    read_weights: Callable[[Path], dict[str, torch.Tensor]] | None = None


_REGISTRY: dict[str, ModelEntry] = {}


@dataclass
class ModelArgs:
    """Base of each family's arguments dataclass (ColorNetArgs, ...), whose fields are the
    arch_args a checkpoint stores. Values come from code, TOML, --set and checkpoints alike:
    a tuple field becomes a tuple of its default's element type, a float field a float."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value, default = getattr(self, f.name), f.default
            if isinstance(default, tuple):  # an empty default's elements keep their type
                value = (value,) if isinstance(value, str) else value  # one name, not letters
                kind = type(default[0]) if default else (lambda v: v)
                setattr(self, f.name, tuple(kind(v) for v in value))
            elif isinstance(default, float) and not isinstance(value, bool):
                setattr(self, f.name, float(value))

    def set_contract(self, model: nn.Module, arch_name: str, kind: str) -> None:
        """The attributes every model carries (docs/ARCHITECTURE.md), but its ``bins``."""
        model.kind = kind
        model.input_size = self.input_size  # type: ignore[attr-defined]
        model.decoding = Decoding()  # an untrained net: the plain mean until a file says more
        model.arch_name = arch_name
        model.arch_args = dataclasses.asdict(self)


class ModelError(ValueError):
    """Unknown model name, bad overrides, or missing weights for a model that needs them."""


def register_model(
    name: str,
    *,
    weights: str | None = None,
    decoding: Decoding | None = None,
    family: str | None = None,
    default_args: dict[str, Any] | None = None,
    description: str | None = None,
    url: str | None = None,
    sha256: str | None = None,
    read_weights: Callable[[Path], dict[str, torch.Tensor]] | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering ``builder(**kwargs) -> nn.Module`` under ``name``.

    ``default_args`` are passed to the builder unless overridden in ``create_model``;
    ``family`` defaults to the builder's module name (``colorizer.models.cunet`` -> ``cunet``);
    the description defaults to the first line of the builder's docstring. ``weights``,
    ``url``, ``sha256`` and ``read_weights`` say what ``pretrained=True`` loads (ModelEntry),
    ``decoding`` what those weights decode at.
    """

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is registered twice")
        doc = (builder.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = ModelEntry(
            name=name,
            builder=builder,
            family=family or builder.__module__.rsplit(".", 1)[-1],
            weights=weights,
            decoding=decoding,
            description=description or (doc[0] if doc else ""),
            default_args=dict(default_args or {}),
            url=url,
            sha256=sha256,
            read_weights=read_weights,
        )
        return builder

    return decorate


def register_checkpoint(name: str, *, weights: str, description: str) -> None:
    """Register a shipped checkpoint: ``create_model(name)`` loads ``weights`` from the
    weights dir and rebuilds whatever architecture the file stores."""
    if name in _REGISTRY:
        raise ValueError(f"model name {name!r} is registered twice")
    _REGISTRY[name] = ModelEntry(
        name=name,
        builder=None,
        family="checkpoint",
        weights=weights,
        decoding=None,
        description=description,
        checkpoint=True,
    )


def _entry(name: str) -> ModelEntry:
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ModelError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return _REGISTRY[name]


def list_models() -> list[str]:
    """All registered names, sorted."""
    return sorted(_REGISTRY)


def default_weights_dir() -> Path:
    """$COLORIZER_WEIGHTS_DIR if set, else the shipped ``weights/`` (installed or checkout)."""
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        return Path(env)
    return _PACKAGE_WEIGHTS if _PACKAGE_WEIGHTS.is_dir() else _REPO_WEIGHTS


def expected_weights_path(name: str, weights_dir: str | os.PathLike | None = None) -> Path | None:
    """Where the weights file of ``name`` is expected inside the weights dir (None: no weights)."""
    entry = _entry(name)
    if entry.weights is None:
        return None
    return Path(weights_dir or default_weights_dir()) / entry.weights


def hub_cache_path(name: str) -> Path | None:
    """Where torch hub (and an entry's official code) caches the file of a downloadable entry
    (None: the entry has no URL)."""
    entry = _entry(name)
    if entry.url is None or entry.weights is None:
        return None
    return Path(torch.hub.get_dir()) / "checkpoints" / entry.weights


def find_weights(name: str, weights_dir: str | os.PathLike | None = None) -> Path | None:
    """Path of the weights file of ``name`` if it is present locally, else None.

    A downloadable entry (one with a URL) is also looked up in torch hub's cache, where
    downloads go. Nothing is downloaded here.
    """
    for path in (expected_weights_path(name, weights_dir), hub_cache_path(name)):
        if path is not None and path.is_file():
            return path
    return None


def fetch_weights(
    name: str,
    weights_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    timeout: float = 5.0,
) -> Path:
    """The weights file of ``name``: found locally (find_weights), else, for an entry with a
    URL and when ``download`` allows, downloaded into torch hub's cache and checked against its
    hash. Otherwise ModelError (no URL) or FileNotFoundError, naming where the file may go."""
    path = find_weights(name, weights_dir)
    if path is not None:
        return path
    entry = _entry(name)
    cached = hub_cache_path(name)
    if entry.url is None or cached is None:
        raise _missing_weights_error(entry, weights_dir)
    why = "downloading disabled" if not download else _download(entry, cached, timeout)
    if why is None:
        return cached
    raise FileNotFoundError(
        f"the weights of {name!r} are not on this machine and could not be downloaded ({why}). "
        f"Download {entry.url} and put it at {expected_weights_path(name, weights_dir)} or at "
        f"{cached}."
    )


def _download(entry: ModelEntry, dst: Path, timeout: float) -> str | None:
    """Download the entry's file to ``dst``; None on success, else why it failed."""
    try:
        # A short probe first: download_url_to_file has no timeout of its own, and offline
        # machines should fail in seconds, not minutes.
        request = urllib.request.Request(str(entry.url), method="HEAD")
        urllib.request.urlopen(request, timeout=timeout).close()
    except (urllib.error.URLError, OSError, ValueError) as e:
        return f"{type(e).__name__}: {getattr(e, 'reason', e)}"
    dst.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s -> %s", entry.url, dst)
    try:
        torch.hub.download_url_to_file(str(entry.url), str(dst), hash_prefix=entry.sha256)
    except Exception as e:  # network drop, hash mismatch: report, keep nothing half-written
        dst.unlink(missing_ok=True)
        return f"{type(e).__name__}: {e}"
    return None


def model_info(name: str, weights_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """What a registry entry is: name, family, default_args, weights, decoding (the entry's;
    None for a shipped checkpoint, whose decoding is in its file), description, url, sha256, plus
    weights_path (where found, or where expected) and weights_present."""
    entry = _entry(name)
    found = find_weights(name, weights_dir)
    expected = expected_weights_path(name, weights_dir)
    return {
        "name": entry.name,
        "family": entry.family,
        "default_args": dict(entry.default_args),
        "weights": entry.weights,
        "decoding": entry.decoding,
        "description": entry.description,
        "url": entry.url,
        "sha256": entry.sha256,
        "weights_path": str(found or expected) if (found or expected) else None,
        "weights_present": found is not None,
        "from_checkpoint": entry.checkpoint,
    }


CHECKPOINT_SUFFIXES = (".pt", ".pth")  # the loose files available_models offers


@dataclass(frozen=True)
class Available:
    """A model that can be loaded from a weights folder: ``Colorizer(source)`` loads it."""

    label: str  # a registry name, or a loose file's stem (its name where the stem is taken)
    source: str | Path  # the registry name, or the loose file's path
    path: Path  # the weights file
    description: str


def available_models(weights_dir: str | os.PathLike | None = None) -> list[Available]:
    """What ``weights_dir`` (default: the shipped weights) can serve: registry entries whose
    weights file is there first, in registry order, then every other checkpoint file in it
    (hidden files, such as a half-written ``.name.pt.<pid>.tmp``, are not)."""
    out: list[Available] = []
    claimed: set[Path] = set()
    for name in list_models():
        found = find_weights(name, weights_dir) if _entry(name).weights else None
        if found is not None:
            out.append(Available(name, name, Path(found), _entry(name).description))
            claimed.add(Path(found).resolve())
    folder = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    taken = {a.label for a in out}
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or path.suffix not in CHECKPOINT_SUFFIXES:
                continue
            if not path.is_file() or path.resolve() in claimed:
                continue
            label = path.stem if path.stem not in taken else path.name
            out.append(Available(label, path, path, f"Checkpoint file {path.name}."))
            taken.add(label)
    return out


def build_model(arch: str, **overrides: Any) -> nn.Module:
    """A fresh network of architecture ``arch`` (randomly initialised; no file is read), its
    default args updated by ``overrides``. What ``create_model`` and ``load_checkpoint`` build
    on: a shipped checkpoint's name is no architecture (``load_checkpoint`` reads its file)."""
    entry = _entry(arch)
    if entry.checkpoint:
        raise ModelError(f"{arch!r} is a shipped checkpoint, not an architecture")
    args = {**entry.default_args, **overrides}
    try:
        model = entry.builder(**args)  # type: ignore[misc]
    except TypeError as e:  # an unknown or ill-typed override: say which model and which args
        raise ModelError(f"cannot build {arch!r} with args {args}: {e}") from e
    # Every model sets arch_name/arch_args in __init__; the registry name is more precise and
    # build_model(arch_name, **arch_args) rebuilds the same network either way.
    model.arch_name = arch
    if entry.decoding is not None:  # the family's decode (its file's, once one is loaded)
        model.decoding = entry.decoding
    return model


def create_model(
    name: str,
    *,
    pretrained: bool = False,
    weights_dir: str | os.PathLike | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build model ``name`` with its default args updated by ``overrides``.

    pretrained=True loads the entry's weights file (``fetch_weights``: downloaded when the entry
    has a URL and it is not here; read by the entry's ``read_weights`` or as a checkpoint,
    ``load_checkpoint``) and returns the model in eval mode. Entries that are shipped checkpoints (``landscape``, ``street``) always load
    their file, since their architecture is stored in it.
    """
    entry = _entry(name)
    if entry.checkpoint:
        if overrides:
            raise ModelError(
                f"model {name!r} is a trained checkpoint whose architecture is stored in its "
                f"weights file; it takes no overrides (got {sorted(overrides)})"
            )
        return _load_shipped(entry, weights_dir)
    model = build_model(name, **overrides)

    if pretrained:
        if entry.weights is None:
            raise ModelError(
                f"model {name!r} has no pretrained weights; train one (python -m training) and "
                "load the checkpoint with colorizer.models.load_checkpoint"
            )
        if entry.read_weights is not None:  # a file of its own format (eccv16's release)
            state = entry.read_weights(fetch_weights(name, weights_dir))
            try:  # a wrong file, or overrides that changed the widths
                load_state(model, state, f"the weights file of {name!r}")
            except CheckpointError as e:
                raise ModelError(str(e)) from e
        else:
            model = _load_weights_into(entry, model, weights_dir)
        model.eval()
    return model


def _missing_weights_error(entry: ModelEntry, weights_dir: str | os.PathLike | None) -> ModelError:
    where = expected_weights_path(entry.name, weights_dir)
    return ModelError(
        f"weights file for model {entry.name!r} is missing: expected {where} "
        f"(set ${WEIGHTS_ENV} or pass weights_dir= to look elsewhere). "
        "Train it with `python -m training` or copy the shipped file there."
    )


def _load_shipped(entry: ModelEntry, weights_dir: str | os.PathLike | None) -> nn.Module:
    model, _meta = load_checkpoint(fetch_weights(entry.name, weights_dir))
    return model


def _load_weights_into(
    entry: ModelEntry, model: nn.Module, weights_dir: str | os.PathLike | None
) -> nn.Module:
    path = fetch_weights(entry.name, weights_dir)
    loaded, _meta = load_checkpoint(path)
    if loaded.arch_args != model.arch_args:
        log.warning(
            "%s: checkpoint %s was built with %s, not %s; using the checkpoint's architecture",
            entry.name,
            path,
            loaded.arch_args,
            model.arch_args,
        )
    return loaded


def load_checkpoint(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes, load its weights, put it in eval mode.

    Returns (model, meta): meta is the checkpoint without its state dict, plus ``path``. The
    file is read by ``colorizer.checkpoint.read_checkpoint`` and its weights go in through
    ``load_state``; CheckpointError says what does not fit.
    """
    path = Path(path)
    ckpt = read_checkpoint(path)
    arch, arch_args = ckpt["arch"], ckpt["arch_args"]
    if arch not in list_models() or _entry(arch).checkpoint:
        raise CheckpointError(
            f"{path} was saved from architecture {arch!r}, which this code does not know "
            f"(known: {', '.join(list_models())})"
        )
    try:
        model = build_model(arch, **arch_args)  # never a shipped name: no file reads a file
    except (ModelError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot rebuild {arch!r} from its arch_args: {e}") from e
    load_state(model, ckpt["state_dict"], str(path))
    if ckpt.get("bins") is not None and getattr(model, "bins", None) is not None:
        try:
            bins = ColorBins.from_dict(ckpt["bins"])
        except (KeyError, TypeError, ValueError, RuntimeError) as e:  # e.g. centers of shape (0, 2)
            raise CheckpointError(f"{path}: its colour bins are unusable: {e}") from e
        if bins.num_classes != model.bins.num_classes:
            raise CheckpointError(
                f"{path}: its bins have {bins.num_classes} classes but {arch!r} outputs "
                f"{model.bins.num_classes}"
            )
        model.bins = bins
    if ckpt["decoding"] is not None:  # read_checkpoint checked it (and upgraded version 1)
        model.decoding = Decoding.from_dict(ckpt["decoding"])
    model.to(device).eval()
    meta = {k: v for k, v in ckpt.items() if k != "state_dict"}
    meta["path"] = str(path)
    return model, meta


# Shipped checkpoints trained by `python -m training`; their architecture lives in the file.
DEFAULT_MODEL = "default"  # what the CLI, the demo and the survey use unless told otherwise
register_checkpoint(
    DEFAULT_MODEL,
    weights="default.pt",
    description="The default outdoor model: ImageNet EfficientNet-Lite0 encoder + U-net decoder "
    "and two grey-weather expert decoders mixed in per photo, trained on landscapes, scenes, "
    "streets and weather (weights/default.pt)",
)
register_checkpoint(
    "seed1_cunet",
    weights="seed1_cunet.pt",
    description="The first seed's system: its Cu_net (104 bins + no-class), retrained here "
    "(weights/seed1_cunet.pt)",
)
register_checkpoint(
    "seed2_cnn",
    weights="seed2_cnn.pt",
    description="The second seed's system: its regression CNN, retrained here "
    "(weights/seed2_cnn.pt)",
)
register_checkpoint(
    "landscape",
    weights="landscape.pt",
    description="Our model trained on landscape photos (shipped checkpoint weights/landscape.pt)",
)
register_checkpoint(
    "street",
    weights="street.pt",
    description="Our model trained on street photos (shipped checkpoint weights/street.pt)",
)

# Importing the family modules fills the registry.
from colorizer.models import colornet, cunet, eccv16, effunet, streetside  # noqa: E402, F401

__all__ = [
    "DEFAULT_MODEL",
    "Available",
    "available_models",
    "build_model",
    "ModelArgs",
    "ModelEntry",
    "ModelError",
    "create_model",
    "default_weights_dir",
    "expected_weights_path",
    "fetch_weights",
    "find_weights",
    "hub_cache_path",
    "list_models",
    "load_checkpoint",
    "model_info",
    "register_checkpoint",
    "register_model",
]
