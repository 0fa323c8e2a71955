"""ColorNet: our own colorization net, small enough to train on two CPU cores.

A residual U-net that classifies every pixel (at half resolution) into colour bins:

    L/100 -> stem (H) -> enc1 (H/2) -> enc2 (H/4) -> enc3 (H/8)
          -> bottleneck: dilated residual block + scene context (H/8)
          -> dec2 (H/4, skip enc2) -> dec1 (H/2, skip enc1) -> 1x1 head -> (B, Q, H/2, W/2)

Why this shape:
- Strided 3x3 convs downsample (no pooling) and each level has one residual block
  (conv-BN-ReLU, conv-BN, + identity): deep enough to learn texture -> colour, cheap to train.
- Colour is low-frequency, so the head works at H/2 and the full-resolution L carries the
  detail at inference (ECCV16 predicts at H/4).
- The bottleneck's dilations (2, 4) widen the receptive field without more downsampling, and
  a global-average-pooled context vector (an MLP of the whole image's features, broadcast
  back and fused by a 1x1 conv, as in Iizuka et al. 2016) lets every pixel know the scene:
  a sky, a sea and a forest should agree with each other across the image.
- Bilinear upsampling + skip concatenation avoids the checkerboard of transposed convs.

The default widths (32, 64, 128, 256) give about 3.8M parameters (7.5 MB in fp16). It is
fully convolutional: any H, W >= 8 work (output ceil(H/2) x ceil(W/2)); 128x128 is the default
working size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from colorizer.bins import Decoding, get_bins
from colorizer.models import ModelArgs, register_model


def conv_bn_relu(
    c_in: int, c_out: int, k: int = 3, stride: int = 1, dilation: int = 1
) -> nn.Sequential:
    pad = dilation * (k // 2)
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, stride, pad, dilation, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ResBlock(nn.Module):
    """conv-BN-ReLU, conv-BN, + identity, ReLU. Same size and channels in and out."""

    def __init__(self, c: int, dilations: tuple[int, int] = (1, 1)) -> None:
        super().__init__()
        d1, d2 = dilations
        self.conv1 = conv_bn_relu(c, c, dilation=d1)
        self.conv2 = nn.Conv2d(c, c, 3, 1, d2, d2, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        # Zero-init the last BN's scale so each block starts as the identity (Goyal et al.
        # 2017): the untrained net is then a plain shallow U-net and trains stably from step 1.
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.bn2(self.conv2(self.conv1(x))))


class SceneContext(nn.Module):
    """Global average pool -> MLP -> broadcast over the map -> fuse with the local features."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(c, c), nn.ReLU(inplace=True), nn.Linear(c, c))
        self.fuse = conv_bn_relu(2 * c, c, k=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.mlp(x.mean(dim=(2, 3)))  # (B, C)
        g = g[:, :, None, None].expand_as(x)  # (B, C, h, w)
        return self.fuse(torch.cat([x, g], 1))  # (B, 2C, h, w) -> (B, C, h, w)


class Up(nn.Module):
    """Bilinear x2, concat the encoder's skip, 1x1 conv to ``c_out``, residual block."""

    def __init__(self, c_in: int, c_skip: int, c_out: int) -> None:
        super().__init__()
        self.reduce = conv_bn_relu(c_in + c_skip, c_out, k=1)
        self.block = ResBlock(c_out)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.block(self.reduce(torch.cat([x, skip], 1)))  # (B, c_out, *skip.shape[-2:])


@dataclass
class ColorNetArgs(ModelArgs):
    widths: tuple[int, int, int, int] = (32, 64, 128, 256)  # stem, H/2, H/4, H/8
    bins: str = "zhang313"
    input_size: tuple[int, int] = (128, 128)
    context: bool = True  # the global scene vector at the bottleneck


class ColorNet(nn.Module):
    """forward(L in [0, 100], (B, 1, H, W)) -> (B, Q, H/2, W/2) logits over ``bins``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        a = ColorNetArgs(**kwargs)
        if len(a.widths) != 4 or min(a.widths) < 1:
            raise ValueError(f"widths must be 4 positive ints; got {a.widths}")
        a.set_contract(self, "colornet", "classification")
        self.bins = get_bins(a.bins)
        widths, context = a.widths, a.context
        c0, c1, c2, c3 = widths
        self.stem = conv_bn_relu(1, c0)
        self.enc1 = nn.Sequential(conv_bn_relu(c0, c1, stride=2), ResBlock(c1))
        self.enc2 = nn.Sequential(conv_bn_relu(c1, c2, stride=2), ResBlock(c2))
        self.enc3 = nn.Sequential(conv_bn_relu(c2, c3, stride=2), ResBlock(c3))
        self.bottleneck = ResBlock(c3, dilations=(2, 4))
        self.context = SceneContext(c3) if context else nn.Identity()
        self.dec2 = Up(c3, c2, c2)
        self.dec1 = Up(c2, c1, c1)
        self.head = nn.Conv2d(c1, self.bins.num_classes, 1)
        nn.init.zeros_(self.head.bias)

    def forward(self, L: torch.Tensor) -> torch.Tensor:
        if L.dim() != 4 or L.shape[1] != 1:
            raise ValueError(f"ColorNet expects L of shape (B, 1, H, W); got {tuple(L.shape)}")
        if L.shape[-2] < 8 or L.shape[-1] < 8:
            raise ValueError(f"ColorNet needs H, W >= 8; got {tuple(L.shape[-2:])}")
        x = self.stem(L / 100.0)  # (B, c0, H, W)
        s1 = self.enc1(x)  # (B, c1, H/2, W/2)
        s2 = self.enc2(s1)  # (B, c2, H/4, W/4)
        x = self.enc3(s2)  # (B, c3, H/8, W/8)
        x = self.context(self.bottleneck(x))  # (B, c3, H/8, W/8)
        x = self.dec2(x, s2)  # (B, c2, H/4, W/4)
        x = self.dec1(x, s1)  # (B, c1, H/2, W/2)
        return self.head(x)  # (B, Q, H/2, W/2)


@register_model("colornet", decoding=Decoding(0.4))
def colornet(**kwargs: Any) -> ColorNet:
    """Our residual U-net with dilated bottleneck + scene context, 313 bins at H/2 (3.8M)."""
    return ColorNet(**kwargs)


@register_model(
    "colornet_tiny",
    decoding=Decoding(0.4),
    default_args={"widths": (4, 8, 8, 16), "input_size": (32, 32)},
)
def colornet_tiny(**kwargs: Any) -> ColorNet:
    """ColorNet at widths (4, 8, 8, 16), for tests."""
    return ColorNet(**kwargs)
