"""A small adversarial term for vividness (issue 24, item 4).

The rebalanced cross-entropy learns a distribution per pixel; where the scene is ambiguous
(autumn leaves green or orange, a sky at dusk blue or red) the decode's annealed mean lands
between the modes, which looks muted. A patch critic that sees the decoded a*b* beside the
lightness, and has learnt what real photos' colours look like there, pushes the decoder to
commit to one plausible colour (Isola et al. 2017, pix2pix; Vitoria et al. 2020, ChromaGAN,
for colorization).

Kept small on purpose: the critic works on the model's output grid (1/4 of the input side),
four spectrally normalised convolutions of width 32 (its cost was not timed apart from the
step's). Hinge losses (Miyato et al. 2018). It lives only in training: the critic and its
optimizer travel in last.pt so a resumed run continues exactly, and never reach a shipped
checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from colorizer.bins import ColorBins
from training.config import TrainingError
from training.data import on_grid


def _sn_conv(cin: int, cout: int, k: int, stride: int) -> nn.Module:
    return spectral_norm(nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2 - (stride == 2)))


class PatchCritic(nn.Module):
    """(B, 1, h, w) L and (B, 2, h, w) a*b* at the model's output grid -> (B, 1, h/4, w/4)
    realness logits, one per patch (a receptive field of about a third of a 40-cell grid)."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _sn_conv(3, width, 3, 1),  # (B, w, h, w)
            nn.LeakyReLU(0.2),
            _sn_conv(width, 2 * width, 4, 2),  # (B, 2w, h/2, w/2)
            nn.LeakyReLU(0.2),
            _sn_conv(2 * width, 2 * width, 4, 2),  # (B, 2w, h/4, w/4)
            nn.LeakyReLU(0.2),
            _sn_conv(2 * width, 1, 3, 1),  # (B, 1, h/4, w/4)
        )

    def forward(self, L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        x = torch.cat([L / 50.0 - 1.0, ab / 110.0], dim=1)  # (B, 3, h, w), about [-1, 1]
        return self.body(x)


@dataclass
class AdversaryStats:
    """The last step's critic outputs (for the log): real and fake means, and the G term."""

    real: float = 0.0
    fake: float = 0.0
    g_loss: float | None = None  # None until the term joins the loss (adv_start_step)

    def row(self) -> dict[str, str]:
        g = "" if self.g_loss is None else f"{self.g_loss:.4f}"
        return dict(d_real=f"{self.real:.4f}", d_fake=f"{self.fake:.4f}", g=g)


class Adversary:
    """The critic, its optimizer and the two hinge losses, at one decode temperature."""

    def __init__(
        self,
        bins: ColorBins,
        temperature: float,
        lr: float,
        device: torch.device,
        width: int = 32,
    ) -> None:
        self.bins = bins
        self.temperature = temperature
        self.critic = PatchCritic(width).to(device)
        self.opt = torch.optim.Adam(self.critic.parameters(), lr=lr, betas=(0.5, 0.999))
        self.stats = AdversaryStats()

    def decoded(self, logits: torch.Tensor) -> torch.Tensor:
        """THE decode (the annealed mean at the term's T, uncalibrated), differentiable:
        (B, Q, h, w) logits -> (B, 2, h, w) a*b*. Computed once a step, for both losses."""
        return self.bins.decode(logits.float(), self.temperature)

    def generator_loss(self, L: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """-D(L, decoded): lower when the critic takes the decoded colours ``fake`` (from
        :meth:`decoded`) for real. The critic's own weights get no gradient from it (they are
        stepped apart)."""
        L_small = on_grid(L, fake.shape[-2:])
        self.critic.requires_grad_(False)
        try:
            g = -self.critic(L_small, fake).mean()
        finally:
            self.critic.requires_grad_(True)
        self.stats.g_loss = float(g.detach())
        return g

    def critic_step(self, L: torch.Tensor, fake: torch.Tensor, ab: torch.Tensor) -> None:
        """One hinge step of the critic: the photo's colours ``ab`` real, the decoded ones
        ``fake`` (from :meth:`decoded`; no gradient reaches the model through them) fake."""
        fake = fake.detach()
        L_small, real = on_grid(L, fake.shape[-2:]), on_grid(ab, fake.shape[-2:])
        d_real = self.critic(L_small, real)
        d_fake = self.critic(L_small, fake)
        loss = F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()
        if not torch.isfinite(loss):
            raise TrainingError(
                f"the critic's loss is {float(loss)}: training stopped; lower adv_lr"
            )
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.stats.real = float(d_real.detach().mean())
        self.stats.fake = float(d_fake.detach().mean())

    def state_dict(self) -> dict[str, Any]:
        return {"critic": self.critic.state_dict(), "optimizer": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any], lr: float | None = None) -> None:
        """The critic and its Adam state; ``lr`` (the config's adv_lr) overrides the saved one."""
        self.critic.load_state_dict(state["critic"])
        self.opt.load_state_dict(state["optimizer"])
        if lr is not None:
            for group in self.opt.param_groups:
                group["lr"] = lr
