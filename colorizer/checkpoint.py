"""Checkpoints: one self-describing file per trained model.

A checkpoint is a dict of tensors and primitives, so it loads with
``torch.load(weights_only=True)`` (no arbitrary code runs when opening a file)::

    format="colorizer-checkpoint", version=3,
    arch, arch_args            # create_model(arch, **arch_args) rebuilds the network
    bins                       # ColorBins.to_dict() or None (regression)
    decoding                   # bins.Decoding.to_dict(): THE decode setting (temperature and
                               # confidence calibration), or None (the architecture's own)
    state_dict, half           # weights (fp16 when half=True; loading casts back to fp32)
    train, metrics             # how it was trained (data, command, config, ...) and its scores
    ...extra                   # resume files add optimizer, scheduler, epoch, step, rng

Version 1 files (every checkpoint written before 2026-12-03, the shipped ones among them) had
``default_temperature`` and ``calibration`` at the top and often a second temperature inside
``arch_args``; ``read_checkpoint`` upgrades them to version 2 as it reads them, the top-level
temperature winning as it did when those files were loaded, so they decode exactly as before.
Version 2 files held at most one expert decoder (``expert``, ``expert_encoder`` in arch_args,
its weights under ``expert.``); version 3 holds a list (``experts``, under ``experts.<i>.``),
and the upgrade renames the one to the first of the list, its weights unchanged.

``save_checkpoint`` writes atomically: a temp file in the same folder, fsync, os.replace, so a
crash mid-write never leaves a half file under the real name. ``read_checkpoint`` is the one
validated reader (every file a model, a resumed run or a fine-tuning starts from) and
``load_state`` the one way its weights reach a module; both raise ``CheckpointError`` with a
message that says what is wrong with the file. This module knows the file format only:
rebuilding the model a file describes is the registry's ``colorizer.models.load_checkpoint``
(so the registry imports this module, never the other way round).
"""

from __future__ import annotations

import logging
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from colorizer.atomic import atomic_write
from colorizer.bins import Decoding, DecodingError
from colorizer.card import ModelCard

log = logging.getLogger(__name__)

FORMAT = "colorizer-checkpoint"
VERSION = 3
_RESERVED = {
    "format",
    "version",
    "arch",
    "arch_args",
    "bins",
    "decoding",
    "state_dict",
    "half",
    "train",
    "metrics",
}
_PRIMITIVES = (str, int, float, bool, type(None), torch.Tensor, torch.dtype, torch.Size)


class CheckpointError(Exception):
    """A checkpoint file is missing, unreadable, foreign or does not fit its architecture."""


# ---------------------------------------------------------------------- saving
def _check_safe(obj: Any, where: str) -> None:
    """Refuse at save time what weights_only=True would refuse at load time."""
    if isinstance(obj, _PRIMITIVES):
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str | int):
                raise TypeError(f"{where}: key {k!r} is a {type(k).__name__}; use str or int keys")
            _check_safe(v, f"{where}[{k!r}]")
        return
    if isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            _check_safe(v, f"{where}[{i}]")
        return
    hint = " (use str(path))" if isinstance(obj, os.PathLike) else ""
    raise TypeError(
        f"{where} is a {type(obj).__name__}, which torch.load(weights_only=True) cannot read; "
        f"store tensors, numbers, strings, lists and dicts only{hint}"
    )


def checkpoint_dict(
    model: nn.Module,
    *,
    decoding: Decoding | None = None,
    train: dict | None = None,
    metrics: dict | None = None,
    extra: dict | None = None,
    half: bool = False,
) -> dict[str, Any]:
    """The dict ``save_checkpoint`` writes (tensors copied to CPU); ``decoding`` defaults to
    the model's own."""
    card = ModelCard.of(model)  # THE contract: TypeError for a module without it
    if decoding is not None:
        card = card.replace(decoding=decoding)
    state = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        if half and v.dtype == torch.float32:
            v = v.half()  # ships at half the size; loading casts back to fp32
        state[k] = v.clone()
    fields = card.to_dict()
    ckpt: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        **{k: fields[k] for k in ("arch", "arch_args", "bins", "decoding")},
        "state_dict": state,
        "half": bool(half),
        "train": dict(train or {}),
        "metrics": dict(metrics or {}),
    }
    clash = _RESERVED & set(extra or {})
    if clash:
        raise ValueError(f"extra may not override checkpoint fields {sorted(clash)}")
    ckpt.update(extra or {})
    for key, value in ckpt.items():
        if key != "state_dict":
            _check_safe(value, key)
    return ckpt


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    decoding: Decoding | None = None,
    train: dict | None = None,
    metrics: dict | None = None,
    extra: dict | None = None,
    half: bool = False,
) -> Path:
    """Write ``model`` and its metadata to ``path`` atomically; returns the path."""
    path = Path(path)
    ckpt = checkpoint_dict(
        model,
        decoding=decoding,
        train=train,
        metrics=metrics,
        extra=extra,
        half=half,
    )
    with atomic_write(path) as f:
        torch.save(ckpt, f)
    log.info("saved checkpoint %s (%s, %.1f MB)", path, ckpt["arch"], path.stat().st_size / 1e6)
    return path


# ---------------------------------------------------------------------- loading
def _describe_bytes(path: Path) -> str:
    """A short guess at what a file that torch cannot read is."""
    head = path.read_bytes()[:512]
    if not head:
        return "it is empty (0 bytes)"
    if head.startswith(b"PK\x03\x04"):
        return "it is a zip archive (the torch format) but unreadable: truncated or corrupt"
    if head[:1] == b"\x80":
        return "it is a plain Python pickle, not a torch file"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return f"it is unrecognised binary data (starts with {head[:8].hex(' ')})"
    first = text.strip().splitlines()[0][:60] if text.strip() else ""
    return f"it is a text file (starts with {first!r})"


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load and validate a checkpoint dict (also resume files) without building a model."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint file not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint path is not a file: {path}")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of foreign files
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        # weights_only refused something: a pickle of arbitrary Python objects.
        detail = next((ln.strip() for ln in str(e).splitlines() if "Unsupported" in ln), "")
        detail = detail.split(" was not an allowed")[0].removeprefix("WeightsUnpickler error: ")
        what = _describe_bytes(path)
        if "zip archive" in what:
            what = "it is a torch file holding Python objects other than tensors"
        raise CheckpointError(
            f"{path} is not a colorizer checkpoint: {what}"
            + (f" ({detail})" if detail else "")
            + "; refusing to unpickle it"
        ) from e
    except Exception as e:  # garbage makes torch's reader fail in many ways (IndexError, ...)
        raise CheckpointError(
            f"cannot read checkpoint {path}: {_describe_bytes(path)} ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:120] if str(e) else 'no detail'})"
        ) from e
    _check_format(obj, path)
    return obj


def _upgrade_v1(obj: dict) -> None:
    """A version-1 dict -> version 2, in place: its one or two temperatures and calibration
    become one ``decoding``. Loading a v1 file built the model from arch_args (their
    default_temperature, if any) and then set the top-level one where it was not None: the
    same order decides here."""
    args = obj.get("arch_args")
    in_args = args.pop("default_temperature", None) if isinstance(args, dict) else None
    top, cal = obj.pop("default_temperature", None), obj.pop("calibration", None)
    t = top if top is not None else in_args
    if t is None and cal is None:
        obj["decoding"] = None
    else:
        obj["decoding"] = {"temperature": 1.0 if t is None else t, "calibration": cal}
    obj["version"] = 2


def _upgrade_v2(obj: dict) -> None:
    """A version-2 dict -> version 3, in place: an effunet's one expert decoder becomes the
    first of its list (``experts``), its keys (``expert.`` -> ``experts.0.``) and its weights
    as they were."""
    args, state = obj.get("arch_args"), obj.get("state_dict")
    if isinstance(args, dict) and {"expert", "expert_encoder"} & set(args):
        had, own = args.pop("expert", False), args.pop("expert_encoder", False)
        args["experts"] = ("own" if own else "shared",) if had else ()
        if had and isinstance(state, dict):
            obj["state_dict"] = {
                "experts.0." + k[7:] if isinstance(k, str) and k.startswith("expert.") else k: v
                for k, v in state.items()
            }
    obj["version"] = 3


def _check_format(obj: Any, path: Path) -> None:
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"{path} is not a colorizer checkpoint: it holds a {type(obj).__name__}, not a dict"
        )
    if obj.get("format") == FORMAT:
        version = obj.get("version")
        if not isinstance(version, int) or version > VERSION:
            raise CheckpointError(
                f"{path} is a colorizer checkpoint of version {version!r}; this code reads "
                f"versions up to {VERSION}: update the project"
            )
        if version < 2:
            _upgrade_v1(obj)
        if version < 3:
            _upgrade_v2(obj)
        for key in ("arch", "arch_args", "state_dict"):
            if key not in obj:
                raise CheckpointError(f"{path} is a colorizer checkpoint without {key!r}")
        _check_contents(obj, path)
        return
    keys = list(obj)
    if keys and all(isinstance(v, torch.Tensor) for v in obj.values()):
        hint = ""
        if "model_out.weight" in obj and "model1.0.weight" in obj:
            hint = (
                ": it looks like Zhang et al.'s official eccv16 weights; load them with "
                "colorizer.models.eccv16.load_eccv16_weights(path) or create_model('eccv16', "
                "pretrained=True) after putting the file in weights/"
            )
        raise CheckpointError(
            f"{path} is a plain state dict of {len(keys)} tensors (keys like "
            f"{', '.join(map(str, keys[:3]))}), not a colorizer checkpoint: it does not say "
            f"which architecture it belongs to{hint}"
        )
    raise CheckpointError(
        f"{path} is not a colorizer checkpoint: a dict without format={FORMAT!r} (keys: "
        f"{', '.join(map(str, keys[:8]))}{', ...' if len(keys) > 8 else ''})"
    )


def _check_contents(obj: dict, path: Path) -> None:
    """The fields of a colorizer checkpoint have the types save_checkpoint writes. A hand-made
    or hand-edited file may not; each oddity is named here rather than surfacing later as a
    TypeError inside torch or, for a NaN temperature, as a refusal at the first photo."""

    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{path} is a damaged colorizer checkpoint: {what}")

    if not isinstance(obj["arch"], str) or not obj["arch"]:
        raise bad(f"'arch' must be a model name, got {type(obj['arch']).__name__} {obj['arch']!r}")
    if not isinstance(obj["arch_args"], dict):
        raise bad(f"'arch_args' must be a dict, got a {type(obj['arch_args']).__name__}")
    state = obj["state_dict"]
    if not isinstance(state, dict):
        n = f" of {len(state)} items" if isinstance(state, list | tuple) else ""
        raise bad(
            f"'state_dict' must be a dict of named tensors, got a {type(state).__name__}{n} "
            "(the names say which layer each tensor belongs to)"
        )
    odd = [str(k) for k, v in state.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if odd:
        raise bad(
            f"'state_dict' entries must be name -> tensor; not so for {', '.join(odd[:3])}"
            + (f", ... ({len(odd)} in all)" if len(odd) > 3 else "")
        )
    if obj.get("decoding") is not None:
        try:
            Decoding.from_dict(obj["decoding"])
        except DecodingError as e:
            raise bad(f"its 'decoding' is unusable: {e}") from e
    bins = obj.get("bins")
    if bins is not None:
        if not isinstance(bins, dict):
            raise bad(
                f"'bins' must be None (regression) or the dict ColorBins.to_dict() writes, got "
                f"a {type(bins).__name__}"
            )
        if not bins:
            raise bad("'bins' is an empty dict: no colour bins to decode with (None means none)")
        if "centers" not in bins:
            raise bad(f"'bins' has no 'centers' (keys: {', '.join(map(str, bins))})")


def state_dict_mismatch(
    model: nn.Module, state: dict[str, torch.Tensor], new: tuple[str, ...] = ()
) -> str | None:
    """A readable list of missing/unexpected keys and shape mismatches, or None if it fits.
    Keys starting with one of ``new`` may be missing (modules the file predates)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.startswith(new)]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if not (missing or unexpected or shapes):
        return None

    def few(items: list[str]) -> str:
        return ", ".join(items[:6]) + (f", ... ({len(items)} in all)" if len(items) > 6 else "")

    parts = []
    if missing:
        parts.append(f"missing keys: {few(missing)}")
    if unexpected:
        parts.append(f"unexpected keys: {few(unexpected)}")
    if shapes:
        parts.append(f"shape mismatches: {few(shapes)}")
    return "; ".join(parts)


def load_state(
    model: nn.Module, state: dict[str, torch.Tensor], source: str, new: tuple[str, ...] = ()
) -> None:
    """THE way weights reach a model (loading, resuming, fine-tuning, pretrained files): every
    key and shape must fit, else CheckpointError names the missing, unexpected and misshapen
    tensors of ``source``; fp16 weights are cast back to the model's fp32. Only keys under
    the prefixes ``new`` (modules added for fine-tuning) may be missing: they keep their init."""
    problem = state_dict_mismatch(model, state, new)
    if problem:
        raise CheckpointError(
            f"{source} does not fit architecture {getattr(model, 'arch_name', type(model).__name__)!r} "
            f"{getattr(model, 'arch_args', '')}: {problem}"
        )
    if new:
        own = model.state_dict()
        for prefix in new:  # a new module comes whole from the file, or not at all
            keys = [k for k in own if k.startswith(prefix)]
            given = [k for k in keys if k in state]
            if given and len(given) < len(keys):
                missing = [k for k in keys if k not in state]
                raise CheckpointError(
                    f"{source} holds part of {prefix!r} only: missing {', '.join(missing[:4])}"
                )
        state = {**{k: v for k, v in own.items() if k.startswith(new)}, **state}
    model.load_state_dict(state, strict=True)  # copy_ casts fp16 weights back to fp32
