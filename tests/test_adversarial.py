"""The vividness critic (training/adversarial.py): it learns which colours are real, its term
pulls the decode towards them, and a run with it resumes exactly and ships no critic."""

from __future__ import annotations

import csv

import pytest
import torch
from test_training import tiny_config, tiny_data  # noqa: F401  (a fixture)

from colorizer.bins import get_bins
from training.adversarial import Adversary, PatchCritic
from training.config import ConfigError, TrainingError, load_config
from training.train import train


def _scene_batch(n: int, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Skies over fields: bright rows blue (b* < 0), dark rows green (a* < 0)."""
    L = torch.full((n, 1, size, size), 40.0)
    L[:, :, : size // 2] = 75.0
    ab = torch.empty(n, 2, size, size)
    ab[:, 0, : size // 2], ab[:, 1, : size // 2] = -5.0, -35.0  # sky blue
    ab[:, 0, size // 2 :], ab[:, 1, size // 2 :] = -30.0, 30.0  # grass green
    return L, ab


def _logits_for(bins, ab: torch.Tensor, sharp: float = 30.0) -> torch.Tensor:
    """Logits whose distribution sits on the bins nearest to ``ab`` (B, Q, H, W)."""
    c = bins.centers  # (Q, 2)
    d = ((ab.permute(0, 2, 3, 1)[..., None, :] - c) ** 2).sum(-1)  # (B, H, W, Q)
    return (-d / sharp).permute(0, 3, 1, 2).contiguous()


def test_critic_shapes():
    x = PatchCritic(8)(torch.rand(2, 1, 40, 40) * 100, torch.zeros(2, 2, 40, 40))
    assert x.shape == (2, 1, 10, 10)


def test_the_critic_learns_real_colours_and_its_term_prefers_them():
    torch.manual_seed(0)
    bins = get_bins("zhang313")
    adv = Adversary(bins, temperature=0.5, lr=2e-3, device=torch.device("cpu"), width=8)
    L, ab = _scene_batch(8)
    gray_logits = _logits_for(bins, torch.zeros_like(ab))
    for _ in range(60):  # the decoder paints everything gray; the photos are coloured
        adv.critic_step(L, adv.decoded(gray_logits), ab)
    assert adv.stats.real > adv.stats.fake + 0.5
    true_logits = _logits_for(bins, ab)
    true_g = adv.generator_loss(L, adv.decoded(true_logits))
    assert true_g < adv.generator_loss(L, adv.decoded(gray_logits)) - 0.5
    # The term's gradient reaches the logits and leaves the critic's weights alone.
    g = gray_logits.clone().requires_grad_(True)
    adv.critic.zero_grad(set_to_none=True)
    adv.generator_loss(L, adv.decoded(g)).backward()
    assert g.grad is not None and g.grad.abs().sum() > 0
    assert all(p.grad is None for p in adv.critic.parameters())


def test_bad_adversarial_settings_are_refused(tiny_data, tmp_path):  # noqa: F811
    for bad in (
        {"adv_weight": -0.1},
        {"adv_lr": 0.0},
        {"adv_start_step": -1},
        {"adv_temperature": 1e-5},
    ):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            load_config(None, tiny_config(tiny_data, tmp_path / "x", **bad)).validate()
    cfg = load_config(
        None,
        tiny_config(
            tiny_data, tmp_path / "reg", model='"streetside_tiny"', loss='"mse"', adv_weight=0.1
        ),
    )
    with pytest.raises(TrainingError, match="class model"):
        train(cfg)


def test_a_run_with_the_critic_resumes_exactly_and_ships_none(tiny_data, tmp_path):  # noqa: F811
    kw = dict(adv_weight=0.5, adv_start_step=2, adv_lr=1e-3)
    plain = tmp_path / "plain"
    train(load_config(None, tiny_config(tiny_data, plain)))
    whole = tmp_path / "whole"
    train(load_config(None, tiny_config(tiny_data, whole, **kw)))
    broken = tmp_path / "broken"
    cfg = load_config(None, tiny_config(tiny_data, broken, save_every_steps=5, max_steps=5, **kw))
    assert train(cfg) == {"stopped_at_step": 5}
    last = torch.load(broken / "last.pt", weights_only=True)
    assert set(last["adversary"]) == {"critic", "optimizer"}
    train(load_config(None, tiny_config(tiny_data, broken, **kw)), resume=True)

    a = torch.load(whole / "final.pt", weights_only=True)
    b = torch.load(broken / "final.pt", weights_only=True)
    p = torch.load(plain / "final.pt", weights_only=True)
    assert "adversary" not in a and a["state_dict"].keys() == p["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert any(not torch.equal(a["state_dict"][k], p["state_dict"][k]) for k in a["state_dict"])
    with open(whole / "steps.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"d_real", "d_fake", "g"} <= set(rows[0]) and rows[0]["g"] == ""  # before step 2
    assert float(rows[-1]["g"]) != 0.0


def test_a_diverged_critic_stops_the_run_before_it_steps_the_model(
    tiny_data,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    def nan_critic(self, L, ab):  # fault injection: a critic whose outputs went non-finite
        return torch.full((len(L), 1, 2, 2), float("nan"))

    monkeypatch.setattr(PatchCritic, "forward", nan_critic)
    out = tmp_path / "nan"
    cfg = load_config(None, tiny_config(tiny_data, out, adv_weight=0.1, adv_start_step=0))
    with pytest.raises(TrainingError, match="critic's term is nan"):
        train(cfg)
    assert not (out / "last.pt").exists()  # nothing non-finite was saved
