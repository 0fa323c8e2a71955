"""ONNX export of a colorization network, and onnxruntime as an inference backend.

    python -m colorizer export-onnx --model landscape landscape.onnx
    Colorizer("landscape", backend="onnx")          # exported in memory, run by onnxruntime
    Colorizer("landscape.onnx")                     # a file written by export-onnx

Only the network goes into the graph: L (B, 1, H, W) in [0, 100] at the model's
``input_size`` -> its raw output (logits over the colour bins, or unit-scaled a*b*). Decoding
(temperature, confidence calibration), upsampling and the colour conversion stay in the
library, so both backends share them. What decoding needs (kind, bins, decoding,
calibration, input size) travels in the file's metadata, so an exported file is a model on its
own.

The spatial size is fixed at ``input_size`` (the batch is free): EffUNet's TensorFlow "SAME"
padding is computed from the input's shape in Python, so a trace bakes in the pads of the
traced size, which are right for that size only. A file therefore refuses other sizes with a
clear error instead of computing wrong pads. Every export is checked against torch by
onnxruntime before it is written.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from colorizer.atomic import atomic_write
from colorizer.bins import Decoding, output_to_ab
from colorizer.card import ModelCard

log = logging.getLogger(__name__)

META_KEY = "colorizer"  # metadata_props key holding the model contract as JSON
OPSET = 17
# Raw outputs may differ by float reordering only; a*b* after decoding by far less than the
# 0.5 Lab unit that could move an 8-bit pixel.
RAW_RTOL = 1e-3
AB_ATOL = 0.05


class OnnxError(ValueError):
    """An ONNX file that is not a colorizer export, or an export that does not match torch."""


def _require_ort():
    try:
        import onnxruntime as ort
    except ImportError as e:  # pragma: no cover - requirements.txt installs it
        raise OnnxError(
            "the onnx backend needs onnxruntime: pip install -r requirements.txt"
        ) from e
    return ort


def contract(model: nn.Module) -> dict[str, Any]:
    """What decoding a network's output needs, as JSON: its ``ModelCard``."""
    return ModelCard.of(model, rebuildable=False).to_dict(json=True)


def card_of_meta(meta: dict[str, Any]) -> ModelCard:
    """An ONNX file's card; files exported before 2026-12-03 named the architecture
    ``arch_name`` and kept a temperature and a calibration side by side."""
    meta = dict(meta)
    args = meta.get("arch_args")
    if isinstance(args, dict) and "default_temperature" in args:  # as checkpoints' upgrade
        meta["arch_args"] = {k: v for k, v in args.items() if k != "default_temperature"}
    if "arch" not in meta:
        meta["arch"] = meta.get("arch_name", "onnx")
    if "decoding" not in meta:
        meta["decoding"] = Decoding(meta["default_temperature"], meta.get("calibration")).to_dict()
    return ModelCard.from_dict(meta)


def _session(data: bytes | str, threads: int | None = None):
    ort = _require_ort()
    opts = ort.SessionOptions()
    # Same thread count as torch, so the two backends are compared (and run) alike.
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


class OnnxModel(nn.Module):
    """A colorization network run by onnxruntime (CPU), following the model contract:
    ``kind``, ``bins``, ``input_size``, ``decoding``, ``forward(L)``."""

    def __init__(self, session, meta: dict[str, Any]) -> None:
        super().__init__()

        self.session = session
        card_of_meta(meta).apply(self)
        self.backend = "onnx"
        self._input = session.get_inputs()[0].name

    @classmethod
    def from_module(cls, model: nn.Module, threads: int | None = None) -> OnnxModel:
        """Export ``model`` in memory (checked against torch) and run it with onnxruntime."""
        data, _report = export_bytes(model)
        return cls(_session(data, threads), contract(model))

    @classmethod
    def from_file(cls, path: str | os.PathLike, threads: int | None = None) -> OnnxModel:
        """Load a file written by :func:`export_onnx`."""
        import onnx

        path = Path(path)
        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as e:  # protobuf raises its own DecodeError
            raise OnnxError(f"{path}: not a readable ONNX file ({e})") from e
        props = {p.key: p.value for p in proto.metadata_props}
        if META_KEY not in props:
            raise OnnxError(
                f"{path}: an ONNX file without colorizer metadata (kind, bins, input size); "
                "export it with `python -m colorizer export-onnx`"
            )
        try:
            meta = json.loads(props[META_KEY])
            model = cls(_session(proto.SerializeToString(), threads), meta)
        except (KeyError, TypeError, ValueError) as e:
            raise OnnxError(f"{path}: malformed colorizer metadata ({e})") from e
        return model

    def forward(self, L: torch.Tensor) -> torch.Tensor:
        if L.dim() != 4 or L.shape[1] != 1 or tuple(L.shape[-2:]) != self.input_size:
            raise ValueError(
                f"this ONNX network takes L of shape (B, 1, {self.input_size[0]}, "
                f"{self.input_size[1]}), its export size; got {tuple(L.shape)}"
            )
        x = L.detach().float().cpu().contiguous().numpy()
        (out,) = self.session.run(None, {self._input: x})
        return torch.from_numpy(out).to(L.device)


@dataclass
class ExportReport:
    arch_name: str
    input_size: tuple[int, int]
    seconds: float
    bytes: int
    max_raw_diff: float  # max |onnxruntime - torch| of the raw output
    max_ab_diff: float  # max |onnxruntime - torch| of the decoded a*b*, Lab units

    def summary(self) -> str:
        return (
            f"{self.arch_name} at {self.input_size[0]}x{self.input_size[1]}: {self.bytes / 1e6:.1f}"
            f" MB in {self.seconds:.1f} s; onnxruntime vs torch: raw {self.max_raw_diff:.2e}, "
            f"a*b* {self.max_ab_diff:.2e} Lab units"
        )


def _probe(model: nn.Module, batch: int = 2) -> torch.Tensor:
    """L inputs to trace and check with: a smooth ramp and noise, so every layer sees
    structure and both ends of the L range."""
    h, w = model.input_size
    g = torch.Generator().manual_seed(0)
    ramp = torch.linspace(0.0, 100.0, w).expand(h, w)
    noise = torch.rand(h, w, generator=g) * 100.0
    return torch.stack([ramp, noise])[:batch, None]


def export_bytes(model: nn.Module, opset: int = OPSET) -> tuple[bytes, ExportReport]:
    """The ONNX bytes of ``model``'s network with its contract in the metadata, checked
    against torch with onnxruntime (raises OnnxError when they disagree)."""
    import onnx

    if isinstance(model, OnnxModel):
        raise OnnxError("the model is already an ONNX network")
    for attr in ("kind", "input_size"):
        if not hasattr(model, attr):
            raise OnnxError(f"model lacks the '{attr}' attribute of the contract")
    model = model.cpu().eval()
    start = time.perf_counter()
    L = _probe(model)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter needs no onnxscript; its deprecation notice is not ours.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (L[:1],),
            buf,
            input_names=["L"],
            output_names=["out"],
            dynamic_axes={"L": {0: "batch"}, "out": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    proto = onnx.load_from_string(buf.getvalue())
    meta = contract(model)
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta)
    proto.producer_name = "colorizer"
    data = proto.SerializeToString()

    with torch.inference_mode():
        ref = model(L).float()
    got = torch.from_numpy(_session(data).run(None, {"L": L.numpy()})[0])
    if got.shape != ref.shape:
        raise OnnxError(f"onnxruntime output {tuple(got.shape)} != torch {tuple(ref.shape)}")
    raw = float((got - ref).abs().max())
    ab_diff = float((output_to_ab(model, got) - output_to_ab(model, ref)).abs().max())
    report = ExportReport(
        meta["arch"],
        tuple(model.input_size),
        time.perf_counter() - start,
        len(data),
        raw,
        ab_diff,
    )
    scale = max(1.0, float(ref.abs().max()))
    if not (raw <= RAW_RTOL * scale and ab_diff <= AB_ATOL):
        raise OnnxError(f"onnxruntime does not reproduce torch: {report.summary()}")
    log.info("exported %s", report.summary())
    return data, report


def export_onnx(module: nn.Module, out: str | os.PathLike, opset: int = OPSET) -> ExportReport:
    """Export a model (``colorizer.inference.load_model`` resolves a name or a checkpoint) to
    ``out``, written atomically: a failed export or check leaves no file behind."""
    out = Path(out)
    if out.suffix != ".onnx":
        raise OnnxError(f"the output file should end in .onnx; got {out}")
    if out.is_dir():
        raise OnnxError(f"{out} is a folder; give a file name ending in .onnx")
    data, report = export_bytes(module, opset)
    with atomic_write(out) as f:
        f.write(data)
    return report
