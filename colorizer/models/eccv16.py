"""Zhang, Isola and Efros, "Colorful Image Colorization" (ECCV 2016), as the official PyTorch
release builds it, plus a loader for its released weights.

Block structure and layer indices match the release, so its state dict
(``model1.0.weight``, ``model1.4.running_mean``, ..., ``model8.6.bias``, ``model_out.weight``)
loads with ``strict=True``. ``forward`` returns the 313-way logits of ``model8`` at 1/4 of the
input size, before the softmax. The release then applies softmax -> ``model_out`` (a 1x1 conv
whose weight holds the bin centres / 110) -> x110 -> bilinear x4; here ``self.bins`` is built
from ``model_out``'s own weight so that ``bins.decode(logits, 1.0)`` is exactly that output
before upsampling. Whenever a state dict is loaded, ``bins`` is rebuilt from it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from colorizer.bins import ColorBins, Decoding, get_bins
from colorizer.checkpoint import FORMAT, read_checkpoint
from colorizer.models import ModelArgs, register_model

ECCV16_FILE = "colorization_release_v2-9b330a0b.pth"
ECCV16_URL = f"https://colorizers.s3.us-east-2.amazonaws.com/{ECCV16_FILE}"
ECCV16_SHA256_PREFIX = "9b330a0b"  # torch hub convention: the hash in the file name
AB_SCALE = 110.0  # the release's ab normalisation: ab = net_out * 110


def _c(channels: int, width: float) -> int:
    return max(1, round(channels * width))


def _block(
    c_in: int, c_out: int, n: int, *, stride_last: int = 1, dilation: int = 1
) -> nn.Sequential:
    """[Conv 3x3 + ReLU] x n then BatchNorm: indices 0, 2, .. are convs, 2n is the BN."""
    layers: list[nn.Module] = []
    for i in range(n):
        stride = stride_last if i == n - 1 else 1
        layers += [
            nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, stride, dilation, dilation, bias=True),
            nn.ReLU(True),
        ]
    layers.append(nn.BatchNorm2d(c_out))
    return nn.Sequential(*layers)


@dataclass
class ECCV16Args(ModelArgs):
    width: float = 1.0  # scales every channel count except the 313 classes (1.0: the release)
    input_size: tuple[int, int] = (256, 256)


class ECCV16(nn.Module):
    """Zhang et al.'s colorization net; forward(L in [0, 100]) -> (B, 313, H/4, W/4) logits."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        a = ECCV16Args(**kwargs)
        if a.width <= 0:
            raise ValueError(f"width must be > 0; got {a.width}")
        a.set_contract(self, "eccv16", "classification")
        width = a.width
        c64, c128, c256, c512 = (_c(c, width) for c in (64, 128, 256, 512))
        q = 313

        self.model1 = _block(1, c64, 2, stride_last=2)  # H/2
        self.model2 = _block(c64, c128, 2, stride_last=2)  # H/4
        self.model3 = _block(c128, c256, 3, stride_last=2)  # H/8
        self.model4 = _block(c256, c512, 3)
        self.model5 = _block(c512, c512, 3, dilation=2)
        self.model6 = _block(c512, c512, 3, dilation=2)
        self.model7 = _block(c512, c512, 3)
        self.model8 = nn.Sequential(
            nn.ConvTranspose2d(c512, c256, 4, 2, 1, bias=True),  # H/8 -> H/4
            nn.ReLU(True),
            nn.Conv2d(c256, c256, 3, 1, 1, bias=True),
            nn.ReLU(True),
            nn.Conv2d(c256, c256, 3, 1, 1, bias=True),
            nn.ReLU(True),
            nn.Conv2d(c256, q, 1, 1, 0, bias=True),  # the logits
        )
        self.model_out = nn.Conv2d(q, 2, 1, 1, 0, bias=False)
        # Before any weights are loaded, model_out holds our own 313 bins (Zhang's grid of 10
        # over the sRGB gamut) and is frozen: in the paper it is the fixed decode, not learned.
        with torch.no_grad():
            self.model_out.weight.copy_(get_bins("zhang313").centers.T[:, :, None, None] / AB_SCALE)
        self.model_out.weight.requires_grad_(False)
        self.bins = self._bins_from_weights()
        self.register_load_state_dict_post_hook(_refresh_bins)

    def _bins_from_weights(self) -> ColorBins:
        # (2, 313, 1, 1) -> (313, 2) centres in Lab units
        centers = self.model_out.weight.detach()[:, :, 0, 0].T.float().cpu() * AB_SCALE
        return ColorBins.from_centers(centers, name="eccv16")

    def forward(self, L: torch.Tensor) -> torch.Tensor:
        if L.dim() != 4 or L.shape[1] != 1:
            raise ValueError(f"ECCV16 expects L of shape (B, 1, H, W); got {tuple(L.shape)}")
        x = (L - 50.0) / 100.0
        x = self.model1(x)  # (B, 64, H/2, W/2)
        x = self.model2(x)  # (B, 128, H/4, W/4)
        x = self.model3(x)  # (B, 256, H/8, W/8)
        x = self.model4(x)  # (B, 512, H/8, W/8)
        x = self.model5(x)
        x = self.model6(x)
        x = self.model7(x)
        return self.model8(x)  # (B, 313, H/4, W/4)

    def forward_release(self, L: torch.Tensor) -> torch.Tensor:
        """The release's own output: softmax -> model_out -> x110 -> bilinear x4, (B, 2, H, W).

        Kept to check that ``bins.decode`` reproduces it; inference uses ``bins.decode``.
        """
        p = torch.softmax(self(L), dim=1)
        ab = self.model_out(p) * AB_SCALE  # (B, 2, H/4, W/4)
        return nn.functional.interpolate(ab, scale_factor=4, mode="bilinear")


def _refresh_bins(module: nn.Module, incompatible_keys: Any) -> None:
    # model_out changed with the loaded weights: the bins must follow, or decode would use
    # centres that the loaded net was not trained with.
    module.bins = module._bins_from_weights()


# ---------------------------------------------------------------------- official weights
def load_eccv16_weights(
    path: str | os.PathLike | None = None,
    weights_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    timeout: float = 5.0,
) -> dict[str, torch.Tensor]:
    """The official release's state dict, for ``ECCV16().load_state_dict(..., strict=True)``.

    Looks in order at: ``path``; ``weights_dir/colorization_release_v2-9b330a0b.pth``
    (weights_dir defaults to the shipped ``weights/``); torch hub's cache; then downloads into
    torch hub's cache when the network allows (the registry's ``fetch_weights``, from the
    entry's URL and hash). Otherwise raises FileNotFoundError naming the URL and the places the
    file may be put.
    """
    from colorizer.models import fetch_weights

    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"eccv16 weights file not found: {path}")
        return _read_release(path)
    return _read_release(fetch_weights("eccv16", weights_dir, download=download, timeout=timeout))


def _read_release(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path} is not a readable eccv16 weights file ({e})") from e
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        obj = read_checkpoint(path)["state_dict"]  # our own (validated) checkpoint of an eccv16
    if not isinstance(obj, dict) or "model_out.weight" not in obj:
        raise ValueError(
            f"{path} does not look like the eccv16 release: expected a state dict with "
            "'model1.0.weight' ... 'model_out.weight'"
        )
    return obj


@register_model(
    "eccv16",
    weights=ECCV16_FILE,
    url=ECCV16_URL,
    sha256=ECCV16_SHA256_PREFIX,
    decoding=Decoding(1.0),  # relative to the T the release folds into model8's last layer
    read_weights=_read_release,
)
def eccv16(**kwargs: Any) -> ECCV16:
    """Zhang et al. ECCV16, official release layout (32.2M params, 313 bins, 256x256)."""
    return ECCV16(**kwargs)


@register_model(
    "eccv16_tiny", decoding=Decoding(1.0), default_args={"width": 1 / 32, "input_size": (32, 32)}
)
def eccv16_tiny(**kwargs: Any) -> ECCV16:
    """ECCV16 at 1/32 width, for tests."""
    return ECCV16(**kwargs)
