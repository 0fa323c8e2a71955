"""The second seed's "ColorizeCNN" (streetside colorization): a small regression net.

Five 3x3 convs 1 -> 8 -> 16 -> 32 -> 64 -> 2, each after a replicate pad of 1 (so edges are
not pulled toward zero); conv1, conv2 each ReLU then 2x2 max-pool; conv3 sigmoid; conv4 and
conv5 each on a 2x nearest upsample, then sigmoid. Output: a*b* in the seeds' unit scaling
(``ab_from_unit`` turns it back into Lab units), at the input size when H and W are
multiples of 4. Trained on 112x88 street views with MSE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from colorizer.models import ModelArgs, register_model


@dataclass
class ColorizeCNNArgs(ModelArgs):
    width: float = 1.0  # scales every channel count (8, 16, 32, 64)
    input_size: tuple[int, int] = (88, 112)  # (H, W)


class ColorizeCNN(nn.Module):
    """forward(L in [0, 100], (B, 1, H, W)) -> (B, 2, H', W') ab in [0, 1] (unit scaling)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        a = ColorizeCNNArgs(**kwargs)
        if a.width <= 0:
            raise ValueError(f"width must be > 0; got {a.width}")
        a.set_contract(self, "streetside", "regression")
        self.bins = None
        width = a.width
        c8, c16, c32, c64 = (max(1, round(c * width)) for c in (8, 16, 32, 64))
        self.conv1 = nn.Conv2d(1, c8, 3)
        self.conv2 = nn.Conv2d(c8, c16, 3)
        self.conv3 = nn.Conv2d(c16, c32, 3)
        self.conv4 = nn.Conv2d(c32, c64, 3)
        self.conv5 = nn.Conv2d(c64, 2, 3)

    @staticmethod
    def pad(x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (1, 1, 1, 1), mode="replicate")

    def forward(self, L: torch.Tensor) -> torch.Tensor:
        if L.dim() != 4 or L.shape[1] != 1:
            raise ValueError(f"ColorizeCNN expects L of shape (B, 1, H, W); got {tuple(L.shape)}")
        if L.shape[-2] < 4 or L.shape[-1] < 4:
            raise ValueError(f"ColorizeCNN needs H, W >= 4; got {tuple(L.shape[-2:])}")
        x = L / 100.0
        x = F.max_pool2d(F.relu(self.conv1(self.pad(x))), 2)  # (B, 8, H/2, W/2)
        x = F.max_pool2d(F.relu(self.conv2(self.pad(x))), 2)  # (B, 16, H/4, W/4)
        x = torch.sigmoid(self.conv3(self.pad(x)))  # (B, 32, H/4, W/4)
        x = F.interpolate(x, scale_factor=2, mode="nearest")  # (B, 32, H/2, W/2)
        x = torch.sigmoid(self.conv4(self.pad(x)))  # (B, 64, H/2, W/2)
        x = F.interpolate(x, scale_factor=2, mode="nearest")  # (B, 64, H, W)
        return torch.sigmoid(self.conv5(self.pad(x)))  # (B, 2, H, W)


@register_model("streetside")
def streetside(**kwargs: Any) -> ColorizeCNN:
    """Second seed's ColorizeCNN: 5 convs, replicate pad, sigmoid ab regression at 112x88."""
    return ColorizeCNN(**kwargs)


@register_model("streetside_tiny", default_args={"width": 0.5, "input_size": (32, 32)})
def streetside_tiny(**kwargs: Any) -> ColorizeCNN:
    """ColorizeCNN at half width, for tests."""
    return ColorizeCNN(**kwargs)
