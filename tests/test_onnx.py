"""ONNX export: onnxruntime reproduces torch, files carry their contract, the CLI and the
onnx backend work end to end. Real exports and real onnxruntime sessions throughout."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from colorizer.__main__ import main
from colorizer.bins import Decoding
from colorizer.checkpoint import save_checkpoint
from colorizer.imageio import load_image
from colorizer.inference import Colorizer, load_model, output_to_ab
from colorizer.models import create_model, find_weights
from colorizer.onnx import OnnxError, OnnxModel, export_bytes, export_onnx

EXAMPLE = "examples/dune.jpg"


def scrambled(name: str, **kw) -> nn.Module:
    """A tiny model with every weight and BatchNorm statistic drawn at random: zero-initialised
    heads and unit BN would let a wrong graph pass for a right one."""
    torch.manual_seed(1)
    m = create_model(name, **kw)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0.0, 0.3)
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.normal_(0.0, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
    return m.eval()


def photo_l(c: Colorizer) -> torch.Tensor:
    return c.working_l(load_image(EXAMPLE))


def check_file(model: nn.Module, path) -> None:
    """The exported file, loaded on its own, gives torch's raw output and a*b* on a real photo."""
    onnx_model = OnnxModel.from_file(path)
    assert onnx_model.kind == model.kind and onnx_model.input_size == tuple(model.input_size)
    L = photo_l(Colorizer(model, device="cpu"))
    L2 = torch.cat([L, 100.0 - L])  # a batch of two: the batch axis is free
    with torch.inference_mode():
        ref = model(L2).float()
    got = onnx_model(L2)
    assert got.shape == ref.shape
    assert (got - ref).abs().max() <= 1e-3 * max(1.0, float(ref.abs().max()))
    assert onnx_model.decoding == model.decoding  # the metadata carries the setting
    ab_ref, ab_got = output_to_ab(model, ref), output_to_ab(onnx_model, got)
    assert (ab_ref - ab_got).abs().max() < 0.05


@pytest.fixture(scope="module")
def effunet_file(tmp_path_factory):
    """EffUNet (its encoder is the whole Lite0 at any decoder width) is the slow export: once;
    with an active gray tilt of two heads (a scrambled one is all zero after its relu) and an
    expert decoder half mixed in, which the graph must carry like the rest."""
    model = scrambled("effunet_tiny", gray_tilt=2, experts=("shared",))
    expert = model.experts[0]
    with torch.no_grad():
        model.gray_tilt.strength.weight.mul_(0.01)
        model.gray_tilt.strength.bias.fill_(1.0)
        expert.gate.weight.mul_(0.001)
        expert.gate.bias.fill_(0.5)
        g = model.encode(torch.rand(2, 1, 64, 64) * 100)[1]
        assert (model.gray_tilt.scores(g) > 0).all()  # both heads pull
        assert 0 < expert.weight(g).min() and expert.weight(g).max() < 1
    path = tmp_path_factory.mktemp("onnx") / "effunet_tiny.onnx"
    return model, path, export_onnx(model, path)


def test_a_shut_expert_exports_as_the_base(tmp_path):
    """The exported graph runs every decoder whatever the gate; a shut gate must still give
    the base's logits there, as the torch model (which skips the expert) does."""
    model = scrambled("effunet_tiny", experts=("shared",))
    with torch.no_grad():
        model.experts[0].gate.weight.zero_()
        model.experts[0].gate.bias.fill_(-1.0)
    report = export_onnx(model, tmp_path / "shut.onnx")
    assert report.max_raw_diff < 1e-3 and report.max_ab_diff < 0.05


def test_two_experts_one_on_its_own_encoder_export_open(tmp_path):
    """The graph carries every expert and an "own" one's second encoder, and mixes them as the
    model does, their shares (0.6 + 0.7) scaled down to a sum of 1."""
    model = scrambled("effunet_tiny", experts=("shared", "own"))
    with torch.no_grad():
        for expert, share in zip(model.experts, (0.6, 0.7), strict=True):
            expert.gate.weight.zero_()
            expert.gate.bias.fill_(share)
    report = export_onnx(model, tmp_path / "own.onnx")
    assert report.max_raw_diff < 1e-3 and report.max_ab_diff < 0.05


def test_effunet_exports_with_its_same_padding(effunet_file, tmp_path):
    model, path, report = effunet_file
    assert report.max_raw_diff < 1e-3 and report.max_ab_diff < 0.05
    check_file(model, path)
    # sizes that are no multiple of 32: the TF-SAME pads differ at every stride-2 layer
    odd = scrambled("effunet_tiny", input_size=(72, 88))
    export_onnx(odd, tmp_path / "odd.onnx")
    check_file(odd, tmp_path / "odd.onnx")


@pytest.mark.parametrize("name", ["colornet_tiny", "cunet_tiny", "streetside_tiny", "eccv16_tiny"])
def test_onnxruntime_reproduces_torch(name, tmp_path):
    model = scrambled(name)
    report = export_onnx(model, tmp_path / "m.onnx")
    assert report.max_raw_diff < 1e-3 and report.max_ab_diff < 0.05
    check_file(model, tmp_path / "m.onnx")


@pytest.mark.parametrize("name", ["landscape", "street", "default"])
def test_shipped_checkpoints_export(name, tmp_path):
    if find_weights(name) is None:
        pytest.skip(f"weights/{name}.pt is not in this checkout")
    export_onnx(load_model(name)[0], tmp_path / f"{name}.onnx")
    check_file(create_model(name), tmp_path / f"{name}.onnx")


def test_exported_file_is_readable_as_the_umask_allows(effunet_file, tmp_path):
    # written through colorizer.atomic: mode 0666 less the umask, not mkstemp's 0600
    model, _path, _report = effunet_file
    old = os.umask(0o022)
    try:
        export_onnx(model, tmp_path / "shared.onnx")
    finally:
        os.umask(old)
    assert (tmp_path / "shared.onnx").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["shared.onnx"]  # no temp file left


def test_export_size_is_enforced_with_a_clear_error(effunet_file):
    onnx_model = OnnxModel.from_file(effunet_file[1])
    with pytest.raises(ValueError, match=r"\(B, 1, 64, 64\), its export size"):
        onnx_model(torch.zeros(1, 1, 96, 96))


class BatchDependent(nn.Module):
    """Follows the contract, but its forward branches in Python on the batch size: a trace at
    batch 1 bakes in one branch, so onnxruntime disagrees with torch at batch 2."""

    def __init__(self) -> None:
        super().__init__()
        self.kind, self.bins, self.input_size = "regression", None, (16, 16)
        self.decoding = Decoding()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, L: torch.Tensor) -> torch.Tensor:
        y = torch.sigmoid(self.conv(L / 100.0))
        return y if L.shape[0] == 1 else 1.0 - y


def test_a_graph_that_disagrees_with_torch_is_refused_and_writes_nothing(tmp_path):
    with pytest.raises(OnnxError, match="does not reproduce torch"):
        export_onnx(BatchDependent(), tmp_path / "bad.onnx")
    assert list(tmp_path.iterdir()) == []


def test_files_without_our_metadata_are_refused(tmp_path):
    import onnx

    data, _ = export_bytes(scrambled("streetside_tiny"))
    proto = onnx.load_from_string(data)
    del proto.metadata_props[:]
    (tmp_path / "plain.onnx").write_bytes(proto.SerializeToString())
    with pytest.raises(OnnxError, match="without colorizer metadata"):
        OnnxModel.from_file(tmp_path / "plain.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(OnnxError, match="not a readable ONNX file"):
        OnnxModel.from_file(tmp_path / "junk.onnx")
    with pytest.raises(OnnxError, match=r"end in \.onnx"):
        export_onnx(scrambled("streetside_tiny"), tmp_path / "m.pt")


def test_onnx_backend_colorizes_like_torch(tmp_path):
    model = scrambled("colornet_tiny")
    img = load_image(EXAMPLE)
    torch_c = Colorizer(model, device="cpu")
    onnx_c = Colorizer(model, device="cpu", backend="onnx")
    assert onnx_c.backend == "onnx" and torch_c.backend == "torch"
    a = np.asarray(torch_c.colorize(img)).astype(int)
    b = np.asarray(onnx_c.colorize(img)).astype(int)
    assert np.abs(a - b).max() <= 1
    u_torch = torch_c.colorize(img, return_uncertainty=True)[1]
    u_onnx = onnx_c.colorize(img, return_uncertainty=True)[1]
    assert np.abs(u_torch - u_onnx).max() < 1e-3
    with pytest.raises(ValueError, match="backend must be"):
        Colorizer(model, device="cpu", backend="tensorrt")


def test_cli_export_then_colorize_with_the_file_and_the_backend(tmp_path, capsys):
    ckpt = save_checkpoint(tmp_path / "tiny.pt", scrambled("colornet_tiny"), decoding=Decoding(0.3))
    (tmp_path / "in").mkdir()
    Image.open(EXAMPLE).resize((120, 80)).save(tmp_path / "in" / "dune.png")
    out_file = tmp_path / "tiny.onnx"
    assert main(["-q", "export-onnx", "--model", str(ckpt), str(out_file)]) == 0
    assert "onnxruntime vs torch" in capsys.readouterr().out
    meta = OnnxModel.from_file(out_file)
    assert meta.decoding == Decoding(0.3)  # the checkpoint's, carried along
    runs = {
        "file": ["--model", str(out_file)],
        "backend": ["--model", str(ckpt), "--backend", "onnx"],
        "torch": ["--model", str(ckpt)],
    }
    for label, how in runs.items():
        code = main(["-q", "colorize", str(tmp_path / "in"), "--out", str(tmp_path / label), *how])
        assert code == 0
    imgs = {k: np.asarray(Image.open(tmp_path / k / "dune.png")).astype(int) for k in runs}
    assert np.abs(imgs["file"] - imgs["torch"]).max() <= 1
    assert np.abs(imgs["backend"] - imgs["torch"]).max() <= 1
    # errors are one line, exit 2, and leave nothing behind
    assert main(["-q", "export-onnx", "--model", "no_such_model", str(tmp_path / "x.onnx")]) == 2
    assert main(["-q", "export-onnx", "--model", str(ckpt), str(tmp_path / "x.txt")]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 2 and "Traceback" not in err
    assert not (tmp_path / "x.onnx").exists()


def test_checkpoint_and_onnx_write_one_card(tmp_path):
    # the model contract is one record (colorizer.card.ModelCard): a checkpoint keeps its
    # rebuild fields, an ONNX file the whole card; both read back to the model's own card
    from colorizer.card import ModelCard
    from colorizer.models import load_checkpoint
    from colorizer.onnx import card_of_meta, contract

    model = scrambled("colornet_tiny")
    model.decoding = Decoding(0.3, {"entropy": [0.2, 0.6], "weight": [0.9, 0.1]})
    card = ModelCard.of(model)
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "m.pt", model))
    assert ModelCard.of(loaded).to_dict(json=True) == card.to_dict(json=True)
    assert card_of_meta(contract(model)).to_dict(json=True) == card.to_dict(json=True)
    # an ONNX file exported before the card: arch_name, a temperature and a calibration
    old = {k: v for k, v in contract(model).items() if k not in ("arch", "decoding")}
    old.update(
        arch_name="colornet_tiny", default_temperature=0.3, calibration=model.decoding.calibration
    )
    old["arch_args"] = {**old["arch_args"], "default_temperature": 0.4}  # v1 kept one here too
    assert card_of_meta(old) == ModelCard.from_dict(card.to_dict(json=True))
    with pytest.raises(TypeError, match="model has no 'arch_name'"):
        ModelCard.of(torch.nn.Conv2d(1, 2, 1))
    # a Colorizer shows the same card whichever backend runs the network
    torch_c, onnx_c = Colorizer(model, device="cpu"), Colorizer(model, device="cpu", backend="onnx")
    assert (
        torch_c.card.to_dict(json=True) == onnx_c.card.to_dict(json=True) == card.to_dict(json=True)
    )
    assert Colorizer(model, device="cpu", temperature=0.6).card.decoding.temperature == 0.6
    with pytest.raises(ValueError, match="has no bins"):
        card.replace(bins=None)
