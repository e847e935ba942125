"""Losses against closed forms."""

import math

import pytest
import torch

from lifelong_gen.train.losses import alignment_loss, critic_loss, generator_loss, gradient_penalty, info_loss


@pytest.mark.parametrize("scale", [0.3, 1.0, 2.5])
def test_gradient_penalty_linear_critic_closed_form(scale):
    # D(x) = w·x has gradient w everywhere, so the penalty is λ(‖w‖ − 1)² for any inputs.
    torch.manual_seed(0)
    w = torch.randn(1 * 4 * 4)
    w = w / w.norm() * scale

    def critic(x):
        return x.flatten(1) @ w

    real, fake = torch.randn(5, 1, 4, 4), torch.randn(5, 1, 4, 4)
    gp = gradient_penalty(critic, real, fake, torch.rand(5), gp_lambda=10.0)
    assert gp.item() == pytest.approx(10.0 * (scale - 1.0) ** 2, rel=1e-5, abs=1e-6)


def test_gradient_penalty_is_per_sample_and_differentiable():
    # A critic whose gradient norm differs per sample: D(x) = 0.5 * a_i * ‖x‖² has ∇ = a·x.
    x = torch.ones(2, 1, 2, 2)  # ‖x‖ = 2 for each sample

    def critic(o):
        return 0.5 * (o.flatten(1) ** 2).sum(1)

    eps = torch.tensor([1.0, 0.5])  # õ = x and õ = 0.5x: gradient norms 2 and 1
    gp = gradient_penalty(critic, x, torch.zeros_like(x), eps, gp_lambda=1.0)
    assert gp.item() == pytest.approx(((2 - 1) ** 2 + (1 - 1) ** 2) / 2)
    w = torch.ones(4, requires_grad=True)
    gp2 = gradient_penalty(lambda o: o.flatten(1) @ w, x, x, torch.rand(2))
    gp2.backward()  # create_graph=True lets the penalty train the critic
    assert w.grad is not None and torch.isfinite(w.grad).all()


def test_info_loss_values():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    target = torch.tensor([0, 0])
    expected_ce = (-math.log(math.exp(2) / (math.exp(2) + 1)) - math.log(1 / (1 + math.exp(2)))) / 2
    c_mean, c_target = torch.tensor([[1.0], [0.0]]), torch.tensor([[0.0], [0.0]])
    total, ce, nll = info_loss(logits, c_mean, target, c_target, weight_discrete=1.0, weight_continuous=0.5)
    assert ce.item() == pytest.approx(expected_ce, rel=1e-6)
    assert nll.item() == pytest.approx(0.25)  # 0.5 * mean([1, 0])
    assert total.item() == pytest.approx(expected_ce + 0.5 * 0.25, rel=1e-6)


def test_wasserstein_signs_and_alignment():
    real, fake = torch.tensor([3.0, 1.0]), torch.tensor([0.0, 0.0])
    assert critic_loss(real, fake).item() == -2.0
    assert generator_loss(fake + 1).item() == -1.0
    a = torch.zeros(2, 1, 2, 2)
    assert alignment_loss(a + 1, a).item() == 4.0
