"""The first seed's "Cu_net" (landscape colorization), as its code built it.

A 4-level U-net over 256x256 inputs that classifies every pixel into the ``seed104`` bins
(104 colours + a "no class" bucket = 105 outputs). Every convolution is bias-free and is
followed by BatchNorm and a Sigmoid, the last one included, exactly as in the seed's code (its
README's table describes a different net; the code is what was trained). So the "logits" are
in (0, 1) and the distribution is flat unless decoded at a low temperature: the seed decoded
at its t = 2, our T = 1/2 (the registry entry's ``decoding``).

Widths scale with ``base`` (64 in the seed): base, 2 base, 4 base, 8 base.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from colorizer.bins import Decoding, get_bins
from colorizer.models import ModelArgs, register_model


def conv_bn_sigmoid(c_in: int, c_out: int, k: int, stride: int = 1) -> list[nn.Module]:
    # 3x3 s1 keeps the size, 4x4 s2 halves it (padding 1 in both cases).
    return [
        nn.Conv2d(c_in, c_out, k, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.Sigmoid(),
    ]


def deconv_bn_sigmoid(c_in: int, c_out: int, k: int, stride: int = 1) -> list[nn.Module]:
    # T3x3 s1 keeps the size, T4x4 s2 doubles it (padding 1 in both cases).
    return [
        nn.ConvTranspose2d(c_in, c_out, k, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.Sigmoid(),
    ]


@dataclass
class CuNetArgs(ModelArgs):
    base: int = 64  # the width of the first level (the seed's 64)
    bins: str = "seed104"
    input_size: tuple[int, int] = (256, 256)


class CuNet(nn.Module):
    """Cu_net of the first seed; forward(L in [0, 100]) -> (B, 105, H, W) class scores.

    H and W must be multiples of 8 (three stride-2 levels and skip connections).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        a = CuNetArgs(**kwargs)
        if a.base < 1:
            raise ValueError(f"base must be >= 1; got {a.base}")
        a.set_contract(self, "cunet", "classification")
        self.bins = get_bins(a.bins)
        base = a.base
        c1, c2, c3, c4 = base, 2 * base, 4 * base, 8 * base
        q = self.bins.num_classes  # 105 for seed104

        self.conv1 = nn.Sequential(*conv_bn_sigmoid(1, c1, 3), *conv_bn_sigmoid(c1, c1, 3))
        self.conv2 = nn.Sequential(*conv_bn_sigmoid(c1, c2, 4, 2), *conv_bn_sigmoid(c2, c2, 3))
        self.conv3 = nn.Sequential(*conv_bn_sigmoid(c2, c3, 4, 2), *conv_bn_sigmoid(c3, c3, 3))
        self.conv4 = nn.Sequential(*conv_bn_sigmoid(c3, c4, 4, 2), *conv_bn_sigmoid(c4, c4, 3))
        self.deconv1 = nn.Sequential(
            *deconv_bn_sigmoid(c4, c4, 3), *deconv_bn_sigmoid(c4, c3, 4, 2)
        )
        self.deconv2 = nn.Sequential(
            *deconv_bn_sigmoid(2 * c3, c3, 3), *deconv_bn_sigmoid(c3, c2, 4, 2)
        )
        self.deconv3 = nn.Sequential(
            *deconv_bn_sigmoid(2 * c2, c2, 3), *deconv_bn_sigmoid(c2, q, 4, 2)
        )
        self.deconv4 = nn.Sequential(*deconv_bn_sigmoid(q + c1, q, 3), *deconv_bn_sigmoid(q, q, 3))

    def forward(self, L: torch.Tensor) -> torch.Tensor:
        if L.dim() != 4 or L.shape[1] != 1:
            raise ValueError(f"CuNet expects L of shape (B, 1, H, W); got {tuple(L.shape)}")
        if L.shape[-2] % 8 or L.shape[-1] % 8:
            raise ValueError(f"CuNet needs H and W divisible by 8; got {tuple(L.shape[-2:])}")
        x = L / 100.0
        e1 = self.conv1(x)  # (B, c1, H, W)
        e2 = self.conv2(e1)  # (B, c2, H/2, W/2)
        e3 = self.conv3(e2)  # (B, c3, H/4, W/4)
        e4 = self.conv4(e3)  # (B, c4, H/8, W/8)
        d1 = self.deconv1(e4)  # (B, c3, H/4, W/4)
        d2 = self.deconv2(torch.cat([d1, e3], 1))  # (B, 2 c3, H/4, W/4) -> (B, c2, H/2, W/2)
        d3 = self.deconv3(torch.cat([d2, e2], 1))  # (B, 2 c2, H/2, W/2) -> (B, Q, H, W)
        return self.deconv4(torch.cat([d3, e1], 1))  # (B, Q + c1, H, W) -> (B, Q, H, W)


@register_model("cunet", default_args={"base": 64}, decoding=Decoding(0.5))
def cunet(**kwargs: Any) -> CuNet:
    """First seed's Cu_net: U-net, bias-free convs + BN + Sigmoid, 105 seed104 classes, 256x256."""
    return CuNet(**kwargs)


@register_model(
    "cunet_tiny", decoding=Decoding(0.5), default_args={"base": 4, "input_size": (32, 32)}
)
def cunet_tiny(**kwargs: Any) -> CuNet:
    """Cu_net at base width 4, for tests (the 105-class layers dominate its size)."""
    return CuNet(**kwargs)
