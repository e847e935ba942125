"""bf16 autocast training: the gradient penalty stays exact up to weight rounding, and a
tiny bf16 run trains (finite losses, falling info loss) with fp32 master weights."""

from __future__ import annotations

import pytest
import torch

from conftest import TINY, lgen
from lifelong_gen.config import resolve_run_config
from lifelong_gen.train.callbacks import StepFunction
from lifelong_gen.train.losses import gradient_penalty
from lifelong_gen.train.trainer import Trainer


@pytest.mark.parametrize("scale", [0.3, 1.0, 2.5])
def test_bf16_gradient_penalty_linear_critic_closed_form(scale):
    # D(x) = w·x: under autocast the matmul runs with bf16(w), so ∇D = bf16(w) exactly, and the
    # fp32 norm gives λ(‖bf16(w)‖ − 1)² to fp32 accuracy; against the fp32 closed form λ(‖w‖ − 1)²
    # the error is bounded by the weights' rounding: |‖bf16(w)‖ − ‖w‖| ≤ 2⁻⁹‖w‖ =: δ, so
    # |gp − λ(‖w‖ − 1)²| ≤ λ(2|‖w‖ − 1|δ + δ²).
    torch.manual_seed(0)
    w = torch.randn(784)
    w = w / w.norm() * scale
    critic = lambda x: torch.nn.functional.linear(x.flatten(1), w[None])[:, 0]  # noqa: E731
    real, fake = torch.randn(16, 1, 28, 28), torch.randn(16, 1, 28, 28)
    gp = gradient_penalty(critic, real, fake, torch.rand(16), gp_lambda=10.0, autocast_dtype=torch.bfloat16)
    assert gp.dtype == torch.float32
    rounded = w.bfloat16().float().norm().item()
    assert gp.item() == pytest.approx(10.0 * (rounded - 1) ** 2, rel=1e-5, abs=1e-6)
    delta = 2 ** -9 * scale
    assert abs(gp.item() - 10.0 * (scale - 1) ** 2) <= 10.0 * (2 * abs(scale - 1) * delta + delta ** 2)
    # A norm taken in bf16 would not be this close: its own rounding is of the same order as δ, not 1e-5.
    grad_bf16 = w.bfloat16().expand(16, -1)
    gp_bf16_norm = 10.0 * ((grad_bf16.norm(dim=1).float() - 1) ** 2).mean().item()
    if scale != 1.0:
        assert abs(gp_bf16_norm - 10.0 * (rounded - 1) ** 2) > abs(gp.item() - 10.0 * (rounded - 1) ** 2)


def test_bf16_gradient_penalty_trains_critic():
    # The double backward through an autocast forward reaches the fp32 weights.
    conv = torch.nn.Conv2d(1, 4, 3)
    critic = lambda x: conv(x).flatten(1).sum(1)  # noqa: E731
    gp = gradient_penalty(critic, torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8), torch.rand(4),
                          autocast_dtype=torch.bfloat16)
    gp.backward()
    assert conv.weight.grad is not None and conv.weight.grad.dtype == torch.float32
    assert torch.isfinite(conv.weight.grad).all() and conv.weight.grad.abs().sum() > 0


def test_bf16_training_finite_and_info_loss_falls(tmp_path, synthetic28):
    settings = {**TINY, "domains": [synthetic28[0].spec], "steps_per_domain": 60, "n_critic": 1,
                "lr_g": 2e-3, "lr_d": 2e-3, "batch_size": 32, "precision": "bf16"}
    trainer = Trainer(resolve_run_config(settings), tmp_path / "run", data=synthetic28[:1], progress=False)
    losses = []
    trainer.callbacks.append(StepFunction(lambda t, l: losses.append(l)))
    trainer.train()
    assert all(torch.isfinite(torch.tensor(list(l.values()))).all() for l in losses)
    ce = [l["info_ce"] for l in losses]
    first, last = sum(ce[:10]) / 10, sum(ce[-10:]) / 10
    assert first > 1.8 and last < 0.5 * first, (first, last)
    # fp32 master weights and optimizer state.
    assert all(p.dtype == torch.float32 for m in (trainer.G, trainer.D, trainer.S) for p in m.parameters())
    assert all(v.dtype == torch.float32 for s in trainer.opt_g.state.values() for v in s.values() if v.dim())


def test_precision_flag(tmp_path):
    r = lgen("train", "--domains", "synthetic:bars", "--precision", "bf16", "--dry-run")
    assert r.returncode == 0 and '"precision": "bf16"' in r.stdout, r.stderr
    r = lgen("train", "--domains", "synthetic:bars", "--precision", "fp16", "--dry-run")
    assert r.returncode == 2 and "fp32, bf16" in r.stderr, r.stderr
