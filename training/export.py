"""Ship a trained checkpoint: fp16 weights + provenance + test-split metrics, atomically.

    python -m training export --ckpt runs/landscape/final.pt --out weights/landscape.pt \
        --metrics results/training/landscape/summary.json --label landscape
    python -m training graft --base weights/default.pt --hints runs/hints_all_levels/final.pt \
        --out weights/default.pt       # add trained hint branches to the model they steer
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from colorizer.checkpoint import load_state, save_checkpoint
from colorizer.models import create_model, load_checkpoint
from colorizer.models.effunet import EXPERTS_PREFIX, TILT_PREFIX, expert_prefix, gate_prefix

log = logging.getLogger(__name__)


def export_checkpoint(
    ckpt: str,
    out: str,
    metrics_json: str | None = None,
    label: str | None = None,
    half: bool = True,
    temperature: float | None = None,
    temperature_note: str = "",
) -> Path:
    """Re-save `ckpt` (a final.pt) for shipping; adds the evaluation of `label` in
    `metrics_json` (a summary.json of `python -m training evaluate`) as metrics["test"].
    `temperature` replaces the tuned default (say why in `temperature_note`)."""
    model, meta = load_checkpoint(ckpt)
    metrics = dict(meta.get("metrics", {}))
    if temperature is not None:  # Decoding refuses a non-positive one (DecodingError)
        tuned, model.decoding = model.decoding.temperature, model.decoding.at(temperature)
        metrics["temperature_override"] = dict(
            tuned=tuned, shipped=model.decoding.temperature, why=temperature_note
        )
    if metrics_json:
        summary = json.loads(Path(metrics_json).read_text())
        models = summary.get("models", {})
        if label not in models:
            raise ValueError(f"{metrics_json} has no model {label!r} (has {sorted(models)})")
        test = {k: v for k, v in models[label].items() if isinstance(v, dict)}
        metrics["test"] = dict(
            split=summary.get("split"),
            photos=summary.get("photos"),
            data=summary.get("data"),
            **test,
        )
        if "gray" in models:
            metrics["test_gray_floor"] = {
                k: v for k, v in models["gray"].items() if isinstance(v, dict)
            }
    path = save_checkpoint(
        out,
        model,
        train=meta.get("train", {}),
        metrics=metrics,
        half=half,
    )
    log.info("exported %s -> %s (%.1f MB)", ckpt, path, path.stat().st_size / 1e6)
    return path


HINT_PREFIX = "hint_branches."


def record_key(what: str, i: int) -> str:
    """Where a checkpoint's train and metrics keep expert ``i``'s records: "expert" and "gate"
    for the first (as files with one expert always had), "expert1", "gate1", ... after it."""
    return what if i == 0 else f"{what}{i}"


def add_expert(
    base: str,
    expert: str,
    out: str,
    replace: bool = False,
    own_encoder: bool = False,
    at: int | None = None,
) -> Path:
    """A model with one more decoder (``effunet.Expert``): ``base`` as it is (weights,
    decoding, calibration, tilt, metrics, its experts and their gates) plus the decoder of
    ``expert``, a run that trained that decoder on ``base``'s encoder, frozen, appended to its
    experts with its gate shut, so the new file colorizes exactly as ``base`` until ``python -m
    training fit-gate`` opens it (stored as ``base`` is: fp16 for a shipped file). With
    ``replace`` the base's experts and gates are dropped first. Refused when the two encoders
    differ (the expert learnt to read that encoder's features, not another's) unless
    ``own_encoder``: then the expert keeps its run's encoder beside its decoder (a second
    encoder pass where its gate opens); refused too when the decoders are not built alike.
    (Encoders are compared at fp16, the precision a shipped file keeps.) With ``at`` the
    decoder takes the place of expert ``at``'s, which keeps its kind and its fitted gate: an
    expert trained on from ``expert_alone``'s copy goes back where it was, the file's other
    fits untouched (refit them when it moved far)."""
    base_model, base_meta = load_checkpoint(base)
    expert_model, expert_meta = load_checkpoint(expert)
    if "experts" not in base_model.arch_args:
        raise ValueError(f"{base}: an expert joins an effunet-family model")
    if expert_model.arch_name != base_model.arch_name:
        raise ValueError(
            f"{expert} holds a {expert_model.arch_name!r}, not {base}'s {base_model.arch_name!r}"
        )
    shaping = ("decoder", "bins", "encoder", "hints", "hint_levels", "hint_sees_image")
    for k in shaping:
        if expert_model.arch_args.get(k) != base_model.arch_args.get(k):
            raise ValueError(
                f"{expert}: its {k} is not {base}'s ({expert_model.arch_args.get(k)!r})"
            )
    kept = () if replace else tuple(base_model.arch_args["experts"])
    if at is not None:
        if replace:
            raise ValueError("--replace drops every expert: --at puts one back in its place")
        if not -len(kept) <= at < len(kept):
            raise ValueError(f"{base} has no expert {at} to replace (it has {len(kept)})")
        at %= len(kept)
        if own_encoder and kept[at] != "own":
            raise ValueError(f"{base}'s expert {at} reads the base's encoder: drop --own-encoder")
        own_encoder = kept[at] == "own"
    own = {
        k: v
        for k, v in base_model.state_dict().items()
        if not (replace and k.startswith(EXPERTS_PREFIX))
        and not (at is not None and _in_decoder_of(k, at))
    }
    theirs = expert_model.state_dict()
    if not own_encoder:  # an expert on its own encoder reads no other's
        for k, v in own.items():
            if k.startswith("encoder.") and not torch.equal(v.half(), theirs[k].half()):
                raise ValueError(
                    f"{expert} was not trained on {base}'s encoder: {k!r} differs (train the "
                    "expert with init_from = the base and freeze_encoder = true, or give it "
                    "its own encoder: add-expert --own-encoder)"
                )
    i = len(kept) if at is None else at  # the new expert's index
    skip = (TILT_PREFIX, EXPERTS_PREFIX) + (() if own_encoder else ("encoder.",))
    decoder = {expert_prefix(i) + k: v for k, v in theirs.items() if not k.startswith(skip)}
    kinds = kept if at is not None else (*kept, "own" if own_encoder else "shared")
    args = {**base_model.arch_args, "experts": kinds}
    model = create_model(base_model.arch_name, **args)
    new_gate = () if at is not None else (gate_prefix(i),)
    load_state(model, {**own, **decoder}, f"{base} + {expert}", new=new_gate)
    model.bins, model.decoding = base_model.bins, base_model.decoding
    records = ("expert", "gate")

    def dropped(key: str) -> bool:  # the replaced experts' records (a kept gate keeps its)
        return replace and key.rstrip("0123456789") in records

    def record(book: dict, theirs: dict) -> dict:
        """The new decoder's record; one put in place keeps the one it replaces under
        "previous" (its lineage: the run it was trained on from)."""
        key = record_key("expert", i)
        return {**theirs, "previous": book[key]} if at is not None and key in book else theirs

    base_train, base_metrics = base_meta.get("train", {}), base_meta.get("metrics", {})
    train = {k: v for k, v in base_train.items() if not dropped(k)}
    train[record_key("expert", i)] = record(base_train, expert_meta.get("train", {}))
    metrics = {k: v for k, v in base_metrics.items() if not dropped(k)}
    metrics[record_key("expert", i)] = record(base_metrics, expert_meta.get("metrics", {}))
    half = bool(base_meta.get("half"))  # stored as the base is: its output stays bit for bit
    path = save_checkpoint(out, model, train=train, metrics=metrics, half=half)
    gate = "its gate kept" if at is not None else "gate shut"
    log.info("put the decoder of %s in %s as its expert %d (%s) -> %s", expert, base, i, gate, path)
    return path


def _in_decoder_of(key: str, i: int) -> bool:
    """Whether a state-dict key is expert ``i``'s decoder (or own encoder), not its gate."""
    return key.startswith(expert_prefix(i)) and not key.startswith(gate_prefix(i))


def expert_alone(ckpt: str, i: int, out: str) -> Path:
    """Expert ``i`` of a model as a model of its own: the base's encoder (or the expert's
    own) under the expert's decoder and hint branches, no gates, no tilt, the base's
    decoding. Something to train on (``init_from``, the encoder frozen) and put back where
    it was with ``add_expert(..., at=i)``; its records are the expert's."""
    model, meta = load_checkpoint(ckpt)
    kinds = tuple(model.arch_args.get("experts", ()))
    if not -len(kinds) <= i < len(kinds):
        raise ValueError(f"{ckpt} has no expert {i} (it has {len(kinds)})")
    i %= len(kinds)
    prefix = expert_prefix(i)
    state = model.state_dict()
    base = {k: v for k, v in state.items() if not k.startswith((EXPERTS_PREFIX, TILT_PREFIX))}
    decoder = {k[len(prefix) :]: v for k, v in state.items() if _in_decoder_of(k, i)}
    args = {**model.arch_args, "experts": (), "gray_tilt": False}
    alone = create_model(model.arch_name, **args)
    load_state(alone, {**base, **decoder}, f"{ckpt}'s expert {i}")
    alone.bins, alone.decoding = model.bins, model.decoding
    key = record_key("expert", i)
    path = save_checkpoint(
        out,
        alone,
        train=meta.get("train", {}).get(key, {}),
        metrics=meta.get("metrics", {}).get(key, {}),
        half=False,
    )
    log.info("expert %d of %s alone -> %s", i, ckpt, path)
    return path


def graft_hints(base: str, hints: str, out: str, half: bool = True) -> Path:
    """Ship hint branches trained on a frozen ``base`` (a run with ``freeze_base``): the
    base checkpoint as it is (weights, decoding temperature, calibration, metrics,
    provenance) plus the branches of ``hints``, its architecture now taking hints. So the new
    file colorizes exactly as ``base`` without hints (tests/test_hints.py checks it bit for
    bit). Refused when the hint run's frozen weights are not ``base``'s: its branches learnt
    to steer that decoder, not another."""
    base_model, base_meta = load_checkpoint(base)
    hint_model, hint_meta = load_checkpoint(hints)
    if not getattr(hint_model, "accepts_hints", False):
        raise ValueError(f"{hints} has no hint branches (a model trained with hints=True)")
    if getattr(base_model, "accepts_hints", False):
        raise ValueError(f"{base} takes hints already: graft onto the model without them")
    own = base_model.state_dict()
    for k, v in hint_model.state_dict().items():
        if k.startswith(HINT_PREFIX):
            continue
        if k not in own or own[k].shape != v.shape or not torch.equal(own[k].half(), v.half()):
            raise ValueError(
                f"{hints} was not trained on {base}: its frozen weight {k!r} differs "
                "(train the hint branches with init_from = the base and freeze_base = true)"
            )
    args = dict(base_model.arch_args)
    # every argument that shapes the hint branches, as the hint run built them
    args.update({k: v for k, v in hint_model.arch_args.items() if k.startswith("hint")})
    model = create_model(base_model.arch_name, **args)
    load_state(model, {**own, **hint_model.state_dict()}, f"{base} + {hints}")
    model.bins, model.decoding = base_model.bins, base_model.decoding
    train = dict(base_meta.get("train", {}))
    train["hints"] = hint_meta.get("train", {})
    metrics = dict(base_meta.get("metrics", {}))
    metrics["hints"] = hint_meta.get("metrics", {})
    path = save_checkpoint(
        out,
        model,
        train=train,
        metrics=metrics,
        half=half,
    )
    log.info("grafted the hint branches of %s onto %s -> %s", hints, base, path)
    return path
