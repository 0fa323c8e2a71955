"""Model registry and the four families: shapes, attributes, overrides, eccv16's release layout."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import colorizer.models as models_module
from colorizer.bins import Decoding, get_bins
from colorizer.models import (
    ModelError,
    create_model,
    find_weights,
    hub_cache_path,
    list_models,
    model_info,
)
from colorizer.models import eccv16 as eccv16_module

from conftest import FAMILIES, TINY

REPO_WEIGHTS = Path(__file__).resolve().parents[1] / "weights"


def lightness(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 1, h, w, generator=g) * 100.0


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------- registry
def test_list_models_lists_every_family_tiny_variant_and_shipped_name():
    names = list_models()
    for name in FAMILIES + TINY + ["landscape", "street"]:
        assert name in names
    assert names == sorted(names)


@pytest.mark.parametrize("name", FAMILIES + TINY)
def test_model_contract_attributes(name):
    model = create_model(name)
    assert model.kind in ("classification", "regression")
    assert model.arch_name == name
    assert len(model.input_size) == 2 and all(isinstance(s, int) for s in model.input_size)
    assert isinstance(model.decoding, Decoding)
    assert "default_temperature" not in model.arch_args  # one temperature: the decoding's
    if model.kind == "classification":
        assert model.bins is not None
    else:
        assert model.bins is None
    # arch_args rebuild the same network
    again = create_model(model.arch_name, **model.arch_args)
    assert {k: v.shape for k, v in again.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }
    info = model_info(name)
    assert info["name"] == name and info["family"] == name.removesuffix("_tiny")
    assert set(info) >= {"name", "family", "default_args", "weights", "decoding"}


# (name, input H, W) -> expected output (C, h, w); full models at a small size to stay fast
SHAPES = [
    ("cunet_tiny", (32, 32), (105, 32, 32)),
    ("cunet", (32, 48), (105, 32, 48)),
    ("eccv16_tiny", (32, 32), (313, 8, 8)),
    ("eccv16", (32, 48), (313, 8, 12)),
    ("streetside_tiny", (32, 32), (2, 32, 32)),
    ("streetside", (88, 112), (2, 88, 112)),
    ("colornet_tiny", (32, 32), (313, 16, 16)),
    ("colornet", (32, 48), (313, 16, 24)),
    ("colornet_tiny", (27, 41), (313, 14, 21)),  # fully convolutional: odd sizes too
]


@pytest.mark.parametrize("name,hw,expected", SHAPES)
def test_output_shapes(name, hw, expected):
    model = create_model(name).eval()
    with torch.no_grad():
        out = model(lightness(2, *hw))
    assert tuple(out.shape) == (2, *expected)
    assert torch.isfinite(out).all()
    if model.kind == "regression":  # unit-scaled ab from a sigmoid
        assert out.min() >= 0 and out.max() <= 1
    else:
        assert out.shape[1] == model.bins.num_classes


ARGS = {
    "colornet": "colornet.ColorNetArgs",
    "cunet": "cunet.CuNetArgs",
    "eccv16": "eccv16.ECCV16Args",
    "streetside": "streetside.ColorizeCNNArgs",
    "effunet": "effunet.EffUNetArgs",
}


@pytest.mark.parametrize("name", [*FAMILIES, "effunet"])
def test_each_family_has_its_arguments_as_a_dataclass(name):
    """A family's arguments are one dataclass: its fields are the arch_args a checkpoint
    stores (same names, same order) and a wrong one is refused by name."""
    import importlib

    module, cls = ARGS[name].split(".")
    args = getattr(importlib.import_module(f"colorizer.models.{module}"), cls)
    model = create_model(f"{name}_tiny")
    assert list(model.arch_args) == [f.name for f in dataclasses.fields(args)]
    assert model.arch_args == dataclasses.asdict(args(**model.arch_args))
    with pytest.raises(ModelError, match="depth"):
        create_model(f"{name}_tiny", depth=3)


@pytest.mark.parametrize("path", sorted(REPO_WEIGHTS.glob("*.pt")), ids=lambda p: p.name)
def test_shipped_checkpoints_rebuild_from_the_arch_args_they_store(path):
    from colorizer.models import load_checkpoint

    raw = torch.load(path, map_location="cpu", weights_only=True)
    model, _ = load_checkpoint(path)
    # version 1 kept a temperature in arch_args too, version 2 one expert decoder: the
    # upgrades move them to the decoding and to the list of experts
    moved = {"default_temperature", "expert", "expert_encoder"}
    stored = {k: v for k, v in raw["arch_args"].items() if k not in moved}
    assert {k: model.arch_args[k] for k in stored} == stored
    # an argument added since the file was written takes the default that builds what it held
    from colorizer.models import build_model

    defaults = build_model(raw["arch"]).arch_args
    upgraded = {"experts"} if "expert" in raw["arch_args"] else set()  # checked below
    added = {k: v for k, v in model.arch_args.items() if k not in stored.keys() | upgraded}
    assert added == {k: defaults[k] for k in added}
    # named, so that a new one is a decision, not an accident: encoder (Lite2, issue 24),
    # gray_tilt and experts (off / none: a file written before them has no tilt head and one
    # decoder, issue 24), freeze_blocks and freeze_encoder_bn (0 / off: training flags that
    # change nothing at inference, issue 24)
    allowed = {"encoder", "gray_tilt", "experts", "freeze_blocks", "freeze_encoder_bn"}
    assert set(added) <= allowed
    if raw["arch_args"].get("expert"):  # a version-2 file's one expert: the first of the list
        own = raw["arch_args"].get("expert_encoder")
        assert model.arch_args["experts"] == ("own" if own else "shared",)
    if raw["version"] == 1 and model.kind == "classification":  # the top one wins, as it did
        top = raw["default_temperature"]
        t = top if top is not None else raw["arch_args"].get("default_temperature", 1.0)
        assert model.decoding == Decoding(t, raw.get("calibration"))


@pytest.mark.parametrize("name", TINY)
def test_tiny_variants_are_tiny_and_train(name):
    model = create_model(name).train()
    # cunet_tiny keeps two 3x3 layers over its 105 classes, the rest are far smaller
    assert n_params(model) < 300_000
    L = lightness(2, 32, 32)
    out = model(L)
    out.float().square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


def test_bad_inputs_get_clear_errors():
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        create_model("colornet_tiny")(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="divisible by 8"):
        create_model("cunet_tiny")(torch.zeros(1, 1, 30, 32))
    with pytest.raises(ModelError, match="unknown model 'nope'.*colornet"):
        create_model("nope")
    with pytest.raises(ModelError, match="cannot build 'colornet_tiny'"):
        create_model("colornet_tiny", no_such_arg=1)
    with pytest.raises(KeyError, match="unknown bins"):
        create_model("colornet_tiny", bins="rainbow")


def test_create_model_overrides():
    m = create_model("colornet_tiny", bins="seed104", widths=(2, 4, 4, 8))
    assert m.bins == get_bins("seed104")
    assert m.arch_args["widths"] == (2, 4, 4, 8)
    assert m(lightness(1, 16, 16)).shape == (1, 105, 8, 8)
    c = create_model("cunet", base=8)
    assert c.conv1[0].out_channels == 8 and c.conv4[0].out_channels == 64
    e = create_model("eccv16", width=0.25)
    assert e.model4[0].out_channels == 128 and e.model8[6].out_channels == 313
    s = create_model("streetside", width=2, input_size=(64, 64))
    assert s.conv4.out_channels == 128 and s.input_size == (64, 64)
    # the registry entry's decoding reaches the model; a temperature is no architecture argument
    assert create_model("cunet").decoding == Decoding(0.5)
    assert create_model("colornet").decoding == Decoding(0.4)
    with pytest.raises(ModelError, match="default_temperature"):
        create_model("colornet_tiny", default_temperature=0.3)


def test_pretrained_without_weights_entry_is_a_clear_error():
    with pytest.raises(ModelError, match="no pretrained weights"):
        create_model("colornet_tiny", pretrained=True)


def test_shipped_names_need_their_file(tmp_path):
    for name, file in [("landscape", "landscape.pt"), ("street", "street.pt")]:
        info = model_info(name, weights_dir=tmp_path)
        assert info["weights"] == file and info["weights_present"] is False
        assert find_weights(name, weights_dir=tmp_path) is None
        with pytest.raises(ModelError, match=f"missing: expected {tmp_path / file}"):
            create_model(name, weights_dir=tmp_path)


def test_shipped_name_loads_its_checkpoint_architecture(tmp_path):
    from colorizer.checkpoint import save_checkpoint

    trained = create_model("colornet_tiny", bins="seed104").eval()
    save_checkpoint(tmp_path / "landscape.pt", trained, decoding=Decoding(0.33))
    info = model_info("landscape", weights_dir=tmp_path)
    assert info["weights_present"] and info["weights_path"] == str(tmp_path / "landscape.pt")
    model = create_model("landscape", weights_dir=tmp_path)
    assert model.arch_name == "colornet_tiny" and model.decoding == Decoding(0.33)
    assert model.bins == get_bins("seed104")
    L = lightness(1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(L), trained(L))
    with pytest.raises(ModelError, match="takes no overrides"):
        create_model("landscape", weights_dir=tmp_path, widths=(1, 1, 1, 1))


# ---------------------------------------------------------------------- cunet
def test_cunet_matches_the_seed_table_at_256():
    # The seed's table (REFERENCE.md section 1) at 256x256, checked on the meta device: shapes
    # flow through every layer without computing anything.
    table = {
        "conv1": (64, 256, 256),
        "conv2": (128, 128, 128),
        "conv3": (256, 64, 64),
        "conv4": (512, 32, 32),
        "deconv1": (256, 64, 64),
        "deconv2": (128, 128, 128),
        "deconv3": (105, 256, 256),
        "deconv4": (105, 256, 256),
    }
    model = create_model("cunet")
    assert model.input_size == (256, 256)
    convs = [
        m for m in model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)
    ]
    assert len(convs) == 16 and all(c.bias is None for c in convs)
    # BatchNorm + Sigmoid after every conv, the output layer included
    for block in (model.conv1, model.deconv4):
        kinds = [type(m).__name__ for m in block]
        assert kinds[1:3] == ["BatchNorm2d", "Sigmoid"] and kinds[-2:] == ["BatchNorm2d", "Sigmoid"]
    assert model.deconv4[0].in_channels == 169
    model = model.to("meta")
    seen = {}
    for name in table:
        getattr(model, name).register_forward_hook(
            lambda m, i, o, name=name: seen.__setitem__(name, tuple(o.shape[1:]))
        )
    model(torch.empty(1, 1, 256, 256, device="meta"))
    assert seen == table


# ---------------------------------------------------------------------- streetside
def test_streetside_is_the_seed_colorizecnn():
    model = create_model("streetside")
    assert model.kind == "regression" and model.input_size == (88, 112)
    chans = [
        (c.in_channels, c.out_channels)
        for c in (model.conv1, model.conv2, model.conv3, model.conv4, model.conv5)
    ]
    assert chans == [(1, 8), (8, 16), (16, 32), (32, 64), (64, 2)]
    assert all(c.padding == (0, 0) for c in (model.conv1, model.conv5))  # padding is replicate
    # Replicate padding: a constant image stays exactly constant through every layer.
    with torch.no_grad():
        out = model(torch.full((1, 1, 88, 112), 40.0))
    assert torch.allclose(out, out[:, :, :1, :1].expand_as(out), atol=1e-6)


# ---------------------------------------------------------------------- colornet
def test_colornet_size_and_scene_context():
    model = create_model("colornet").eval()
    params = n_params(model)
    assert 1_000_000 <= params <= 4_000_000
    assert params * 2 < 20e6  # fp16 size under 20 MB
    assert model.input_size == (128, 128) and model.bins.num_classes == 313
    # The context vector makes a pixel depend on the far side of a wide image: change only
    # columns 256.. (beyond the ~100 px receptive field of the convolutions) and the
    # prediction of the top-left corner moves; without the context it cannot.
    torch.manual_seed(0)
    L = lightness(1, 32, 384)
    L2 = L.clone()
    L2[..., 256:] = 100 - L2[..., 256:]
    with torch.no_grad():
        tiny = create_model("colornet_tiny").eval()
        assert not torch.allclose(tiny(L)[..., :4, :4], tiny(L2)[..., :4, :4])
        no_ctx = create_model("colornet_tiny", context=False).eval()
        assert torch.equal(no_ctx(L)[..., :4, :4], no_ctx(L2)[..., :4, :4])


# ---------------------------------------------------------------------- eccv16
def release_layout() -> dict[str, tuple[int, ...]]:
    """The official release's state-dict keys and shapes, written out from REFERENCE.md §3."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv(key, c_in, c_out, k=3, transposed=False):
        shapes[f"{key}.weight"] = (c_in, c_out, k, k) if transposed else (c_out, c_in, k, k)
        shapes[f"{key}.bias"] = (c_out,)

    def bn(key, c):
        for p in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{key}.{p}"] = (c,)
        shapes[f"{key}.num_batches_tracked"] = ()

    conv("model1.0", 1, 64), conv("model1.2", 64, 64), bn("model1.4", 64)
    conv("model2.0", 64, 128), conv("model2.2", 128, 128), bn("model2.4", 128)
    conv("model3.0", 128, 256), conv("model3.2", 256, 256), conv("model3.4", 256, 256)
    bn("model3.6", 256)
    conv("model4.0", 256, 512), conv("model4.2", 512, 512), conv("model4.4", 512, 512)
    bn("model4.6", 512)
    for block in ("model5", "model6", "model7"):
        conv(f"{block}.0", 512, 512), conv(f"{block}.2", 512, 512), conv(f"{block}.4", 512, 512)
        bn(f"{block}.6", 512)
    conv("model8.0", 512, 256, k=4, transposed=True)
    conv("model8.2", 256, 256), conv("model8.4", 256, 256), conv("model8.6", 256, 313, k=1)
    shapes["model_out.weight"] = (2, 313, 1, 1)
    return shapes


def random_release_state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in release_layout().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        else:
            state[key] = torch.randn(shape, generator=g) * 0.05
    # model_out holds bin centres / 110: a shuffled, perturbed grid, unlike our init
    centers = get_bins("zhang313").centers[torch.randperm(313, generator=g)]
    state["model_out.weight"] = (centers + torch.randn(313, 2, generator=g)).T[
        ..., None, None
    ] / 110
    return state


def test_eccv16_matches_the_release_layout():
    model = create_model("eccv16")
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert own == release_layout()
    assert abs(n_params(model) - 32.2e6) < 0.05e6
    # strides and dilations of the release
    assert model.model1[2].stride == (2, 2) and model.model3[4].stride == (2, 2)
    assert model.model5[0].dilation == (2, 2) and model.model5[0].padding == (2, 2)
    assert model.model8[0].stride == (2, 2) and model.model_out.bias is None
    model.load_state_dict(random_release_state(), strict=True)


def test_eccv16_bins_follow_loaded_weights_and_decode_reproduces_the_release():
    model = create_model("eccv16").eval()
    state = random_release_state(seed=1)
    model.load_state_dict(state, strict=True)
    expected_centers = state["model_out.weight"][:, :, 0, 0].T * 110
    assert torch.allclose(model.bins.centers, expected_centers, atol=1e-5)
    L = lightness(2, 64, 64)
    with torch.no_grad():
        logits = model(L)  # (2, 313, 16, 16)
        # the release's own head, written out here: softmax -> 1x1 conv -> x110 -> bilinear x4
        release = F.conv2d(torch.softmax(logits, 1), state["model_out.weight"]) * 110
        release_full = F.interpolate(release, scale_factor=4, mode="bilinear")
        ours = model.bins.decode(logits, 1.0)
        ours_full = F.interpolate(ours, scale_factor=4, mode="bilinear")
        assert logits.shape == (2, 313, 16, 16)
        assert torch.allclose(ours, release, atol=1e-4)
        assert torch.allclose(ours_full, model.forward_release(L), atol=1e-4)
        assert torch.allclose(ours_full, release_full, atol=1e-4)
    # loading through a parent module refreshes them too
    wrapper = torch.nn.Sequential(create_model("eccv16"))
    wrapper.load_state_dict({f"0.{k}": v for k, v in state.items()})
    assert torch.allclose(wrapper[0].bins.centers, expected_centers, atol=1e-5)


def test_eccv16_model_out_is_a_fixed_decode_before_loading():
    model = create_model("eccv16_tiny")
    assert not model.model_out.weight.requires_grad
    assert torch.allclose(model.bins.centers, get_bins("zhang313").centers, atol=1e-4)


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """torch hub's cache in a temp dir and the release URL on an unroutable local port."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    if not str(hub_cache_path("eccv16")).startswith(str(tmp_path)):
        pytest.skip("torch.hub.set_dir() was called elsewhere; TORCH_HOME is ignored")
    url = f"http://127.0.0.1:9/{eccv16_module.ECCV16_FILE}"
    entry = dataclasses.replace(models_module._REGISTRY["eccv16"], url=url)
    monkeypatch.setitem(models_module._REGISTRY, "eccv16", entry)  # the entry carries the URL
    return tmp_path, url


def test_eccv16_loader_offline_fails_fast_and_says_where(offline_hub):
    tmp_path, url = offline_hub
    weights_dir = tmp_path / "weights"
    t0 = time.monotonic()
    with pytest.raises(FileNotFoundError) as err:
        eccv16_module.load_eccv16_weights(weights_dir=weights_dir)
    assert time.monotonic() - t0 < 10
    msg = str(err.value)
    assert url in msg
    assert str(weights_dir / eccv16_module.ECCV16_FILE) in msg
    assert str(hub_cache_path("eccv16")) in msg
    assert not hub_cache_path("eccv16").exists()  # nothing half-downloaded left
    with pytest.raises(FileNotFoundError, match="downloading disabled"):
        eccv16_module.load_eccv16_weights(weights_dir=weights_dir, download=False)
    with pytest.raises(FileNotFoundError, match="could not be downloaded"):
        create_model("eccv16", pretrained=True, weights_dir=weights_dir)
    with pytest.raises(FileNotFoundError, match="not found"):
        eccv16_module.load_eccv16_weights(tmp_path / "nope.pth")


def test_eccv16_loader_finds_weights_dir_then_hub_cache(offline_hub, tmp_path):
    state = random_release_state(seed=2)
    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    cache = hub_cache_path("eccv16")
    cache.parent.mkdir(parents=True)
    torch.save(state, cache)
    assert find_weights("eccv16", weights_dir) == cache
    model = create_model("eccv16", pretrained=True, weights_dir=weights_dir)
    assert not model.training
    assert torch.equal(model.model4[2].weight, state["model4.2.weight"])
    assert torch.allclose(model.bins.centers, state["model_out.weight"][:, :, 0, 0].T * 110)
    # a file in weights_dir wins over the cache
    local = weights_dir / eccv16_module.ECCV16_FILE
    torch.save({"model_out.weight": torch.zeros(2, 313, 1, 1)}, local)
    assert model_info("eccv16", weights_dir)["weights_path"] == str(local)
    assert eccv16_module.load_eccv16_weights(weights_dir=weights_dir).keys() == {"model_out.weight"}
    with pytest.raises(
        ModelError, match="does not fit architecture 'eccv16'.*missing keys: model1.0.weight"
    ):
        create_model("eccv16", pretrained=True, weights_dir=weights_dir)
    local.write_text("not weights")
    with pytest.raises(ValueError, match="not a readable eccv16 weights file"):
        eccv16_module.load_eccv16_weights(weights_dir=weights_dir)


def test_a_downloadable_entry_of_any_family_is_found_in_the_hub_cache(offline_hub, monkeypatch):
    """What a pretrained model needs is the registry entry's (file, URL, hash, reader), not its
    family's: a colornet entry with a URL is looked up in torch hub's cache and read by its
    entry's reader, as eccv16's release is."""
    tmp_path, _ = offline_hub
    source = create_model("colornet_tiny")
    entry = dataclasses.replace(
        models_module._REGISTRY["colornet_tiny"],
        name="hub_tiny",
        weights="hub_tiny-00000000.pth",
        url="http://127.0.0.1:9/hub_tiny-00000000.pth",
        sha256="00000000",
        read_weights=lambda path: torch.load(path, weights_only=True),
    )
    monkeypatch.setitem(models_module._REGISTRY, "hub_tiny", entry)
    info = model_info("hub_tiny", tmp_path / "weights")
    assert info["url"] == entry.url and info["sha256"] == "00000000"
    assert not info["weights_present"]
    cache = hub_cache_path("hub_tiny")
    cache.parent.mkdir(parents=True)
    torch.save(source.state_dict(), cache)
    assert find_weights("hub_tiny", tmp_path / "weights") == cache
    model = create_model("hub_tiny", pretrained=True, weights_dir=tmp_path / "weights")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 source.state_dict().values(), strict=True))  # fmt: skip


def test_colornet_learns_a_synthetic_scene():
    # Blue-ish top, yellow-green bottom, L brighter toward the bottom: 25 Adam steps of the
    # tiny net must cut the cross-entropy at least in half.
    torch.manual_seed(0)
    yy = torch.linspace(0, 1, 16).view(1, 1, 16, 1).expand(2, 1, 16, 16)
    L = 40 + 20 * yy + torch.randn(2, 1, 16, 16) * 3
    ab = torch.cat([-30 + 40 * yy, -40 + 80 * yy], 1)  # (2, 2, 16, 16)
    model = create_model("colornet_tiny").train()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    losses = []
    for _ in range(25):
        out = model(L)  # (2, 313, 8, 8)
        target = model.bins.encode_hard(F.interpolate(ab, size=out.shape[-2:], mode="bilinear"))
        loss = F.cross_entropy(out, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.cuda
@pytest.mark.parametrize("name", TINY)
def test_tiny_models_agree_on_cuda(name, tmp_path):
    from colorizer.checkpoint import save_checkpoint
    from colorizer.models import load_checkpoint

    model = create_model(name).eval()
    L = lightness(2, 32, 32)
    with torch.no_grad():
        cpu = model(L)
        gpu_model, _ = load_checkpoint(save_checkpoint(tmp_path / "m.pt", model), device="cuda")
        gpu = gpu_model(L.cuda())
        assert gpu.device.type == "cuda"
        # cuDNN may use TF32: compare loosely
        assert torch.allclose(gpu.cpu(), cpu, atol=1e-2, rtol=1e-2)
        if model.kind == "classification":
            ab = gpu_model.bins.decode(gpu, gpu_model.decoding)
            assert ab.device.type == "cuda" and ab.shape == (2, 2, *gpu.shape[-2:])


def test_available_models_lists_registry_files_then_loose_checkpoints(tmp_path):
    # what the demo's picker offers: entries whose file is here, in registry order, then any
    # other checkpoint file; never an architecture without weights, a hidden half-written
    # file or a folder
    from colorizer.checkpoint import save_checkpoint
    from colorizer.models import available_models

    tiny = create_model("colornet_tiny").eval()
    save_checkpoint(tmp_path / "street.pt", tiny)
    save_checkpoint(tmp_path / "landscape.pt", tiny)
    save_checkpoint(tmp_path / "mine.pth", tiny)
    save_checkpoint(tmp_path / "street.pth", tiny)  # a loose file whose stem is taken
    (tmp_path / ".default.pt.123.tmp").write_bytes(b"half")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "dir.pt").mkdir()
    got = [(a.label, a.source) for a in available_models(tmp_path)]
    assert got == [
        ("landscape", "landscape"),
        ("street", "street"),
        ("mine", tmp_path / "mine.pth"),
        ("street.pth", tmp_path / "street.pth"),
    ]
    assert available_models(tmp_path / "nowhere") == []
