"""Loss functions of the method, as small pure functions.

- `critic_loss`: WGAN critic objective, eq. (2) without the penalty term.
- `gradient_penalty`: λ E[(‖∇D(õ)‖₂ − 1)²] at per-sample interpolates õ (Gulrajani et al.).
- `generator_loss`: −E[D(G(z, u))].
- `info_loss`: the negative of L_MI, eq. (10), up to the constant H(u): cross-entropy for
  the discrete code d and Gaussian negative log-likelihood (unit variance) for c.
- `alignment_loss`: MeRGAN replay alignment, ‖G_k(z,u) − G_{k−1}(z,u)‖².
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F


def critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """The critic minimises E[D(fake)] − E[D(real)] (maximises eq. (1))."""
    return fake_scores.mean() - real_scores.mean()


def generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    return -fake_scores.mean()


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    eps: torch.Tensor,
    gp_lambda: float = 10.0,
    autocast_dtype: Optional[torch.dtype] = None,
) -> torch.Tensor:
    """λ · mean over the batch of (‖∇_õ D(õ)‖₂ − 1)², õ = eps·real + (1 − eps)·fake.

    Args:
        critic: maps images [N, C, H, W] to scores [N].
        real, fake: [N, C, H, W]; `fake` should be detached from G.
        eps: [N] uniform(0, 1) draws, one per sample (passed in so the caller owns the RNG).
        gp_lambda: λ of eq. (2).
        autocast_dtype: e.g. torch.bfloat16: the critic's forward (and so its first and
            double backward) runs under autocast (CPU or CUDA, as the tensors) in that dtype, while õ, the gradient
            and its norm stay float32 (the norm of a bf16 vector would carry ~2^-8
            relative error into (‖g‖ − 1)²). None: everything in the inputs' dtype.
    """
    eps = eps.view(-1, 1, 1, 1).to(real.dtype)
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
    if autocast_dtype is None:
        scores = critic(mixed)
    else:
        with torch.autocast(real.device.type, dtype=autocast_dtype):
            scores = critic(mixed)
        scores = scores.float()
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    norms = grad.float().flatten(1).norm(2, dim=1)  # [N], float32 whatever the forward's dtype
    return gp_lambda * ((norms - 1) ** 2).mean()


def info_loss(
    d_logits: torch.Tensor,
    c_mean: torch.Tensor,
    d_target: torch.Tensor,
    c_target: torch.Tensor,
    weight_discrete: float = 1.0,
    weight_continuous: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """−L_MI (without H(u)) for a batch of generated images and the codes that made them.

    Args:
        d_logits: [N, d_dim] from S; d_target: [N] category indices.
        c_mean: [N, c_dim] from S; c_target: [N, c_dim] the c fed to G.
    Returns:
        (weighted total, discrete cross-entropy, continuous Gaussian NLL), NLL per code
        dimension averaged, with unit variance and its constant dropped.
    """
    ce = F.cross_entropy(d_logits, d_target)
    if c_target.shape[1] > 0:
        nll = 0.5 * ((c_mean - c_target) ** 2).mean()
    else:
        nll = d_logits.new_zeros(())
    return weight_discrete * ce + weight_continuous * nll, ce, nll


def alignment_loss(current: torch.Tensor, snapshot: torch.Tensor) -> torch.Tensor:
    """Mean squared distance between G_k and the frozen G_{k−1} on the same codes."""
    return ((current - snapshot) ** 2).flatten(1).sum(1).mean()
