"""THE model contract as one record: what using a network needs besides its weights.

A ``ModelCard`` says how to rebuild the network (``arch``, ``arch_args``), what it outputs
(``kind``: logits over ``bins``, or regression a*b*), the working size it takes
(``input_size``) and what its output decodes at (``decoding``). Every model carries these as
attributes (docs/ARCHITECTURE.md); ``ModelCard.of(model)`` reads and checks them, and
``card.apply(module)`` puts them on one (an ONNX network, a rebuilt checkpoint). A checkpoint
stores a card's ``arch``, ``arch_args``, ``bins`` and ``decoding`` fields
(``colorizer.checkpoint``); an ONNX export stores the whole card as JSON (``colorizer.onnx``):
the same record, written one way.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from colorizer.bins import ColorBins, Decoding

KINDS = ("classification", "regression")


@dataclass(frozen=True)
class ModelCard:
    arch: str  # registry name: create_model(arch, **arch_args) rebuilds the network
    arch_args: dict[str, Any]
    kind: str  # "classification" (logits over bins) or "regression" (unit-scaled a*b*)
    input_size: tuple[int, int]  # (H, W) inference resizes the photo's L to
    bins: ColorBins | None  # None for regression models
    decoding: Decoding

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"model kind must be one of {KINDS}; got {self.kind!r}")
        if (self.bins is None) != (self.kind == "regression"):
            raise ValueError(f"a {self.kind} model {'has no' if self.bins is None else 'has'} bins")
        object.__setattr__(self, "input_size", tuple(int(s) for s in self.input_size))
        object.__setattr__(self, "arch_args", dict(self.arch_args))

    @classmethod
    def of(cls, model: nn.Module, rebuildable: bool = True) -> ModelCard:
        """The card a model carries; TypeError naming the first contract attribute it lacks.
        ``rebuildable=False`` (an ONNX export, which carries its own graph) lets a hand-made
        module without ``arch_name``/``arch_args`` go under its class name."""
        needed = ("arch_name", "arch_args", "kind") if rebuildable else ("kind",)
        for attr in needed:
            if not hasattr(model, attr):
                raise TypeError(
                    f"model has no {attr!r}: only models from colorizer.models.create_model can "
                    "be checkpointed (the file must say how to rebuild the network)"
                )
        return cls(
            arch=str(getattr(model, "arch_name", type(model).__name__)),
            arch_args=dict(getattr(model, "arch_args", {})),
            kind=model.kind,
            input_size=tuple(getattr(model, "input_size", (256, 256))),
            bins=getattr(model, "bins", None),
            decoding=getattr(model, "decoding", None) or Decoding(),
        )

    def apply(self, model: nn.Module) -> nn.Module:
        """Put the card's attributes on ``model`` (the contract's), returning it."""
        model.arch_name, model.arch_args = self.arch, dict(self.arch_args)
        model.kind, model.input_size = self.kind, self.input_size
        model.bins, model.decoding = self.bins, self.decoding
        return model

    def to_dict(self, json: bool = False) -> dict[str, Any]:
        """The card's fields; ``json``: lists instead of tensors, for an ONNX file's metadata."""
        bins = None if self.bins is None else self.bins.to_dict()
        d = {
            "arch": self.arch,
            "arch_args": dict(self.arch_args),
            "kind": self.kind,
            "input_size": list(self.input_size),
            "bins": bins,
            "decoding": self.decoding.to_dict(),
        }
        return _jsonable(d) if json else d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelCard:
        return cls(
            arch=d["arch"],
            arch_args=d.get("arch_args", {}),
            kind=d["kind"],
            input_size=d["input_size"],
            bins=None if d.get("bins") is None else ColorBins.from_dict(d["bins"]),
            decoding=Decoding.from_dict(d["decoding"]) if d.get("decoding") else Decoding(),
        )

    def replace(self, **changes: Any) -> ModelCard:
        return dataclasses.replace(self, **changes)


def _jsonable(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.tolist()
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    return x
