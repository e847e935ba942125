"""Loss functions of the method, as small pure functions.

- `critic_loss`: WGAN critic objective, eq. (2) without the penalty term.
- `gradient_penalty`: λ E[(‖∇D(õ)‖₂ − 1)²] at per-sample interpolates õ (Gulrajani et al.).
- `generator_loss`: −E[D(G(z, u))].
- `info_loss`: the negative of L_MI, eq. (10), up to the constant H(u): cross-entropy for
  the discrete code d and Gaussian negative log-likelihood (unit variance) for c.
- `alignment_loss`: MeRGAN replay alignment, ‖G_k(z,u) − G_{k−1}(z,u)‖².
- `random_affine`, `augmented_info_loss`, `clustering_loss`: the opt-in interpretability
  levers (d kept under augmentation; S as a clusterer of real images).
- `domain_clustering_loss`: `--s-real-by-domain`, the clustering objective applied per domain
  (new data over the new domain's categories, replay over the old ones).
- `neighbour_consistency_loss`: SCAN's neighbour term (`--s-neighbour-weight`).
"""

from __future__ import annotations

import functools
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
            and its norm stay float32 (the norm of a bf16 vector would hold ~2^-8
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
    return scaled(ce, weight_discrete) + scaled(nll, weight_continuous), ce, nll


def scaled(term: torch.Tensor, weight: float) -> torch.Tensor:
    """weight · term, without the multiplication where the weight is 1 (the same value, one operator
    call less: the step's loss adds several unit-weighted terms)."""
    return term if weight == 1.0 else weight * term


def alignment_loss(current: torch.Tensor, snapshot: torch.Tensor) -> torch.Tensor:
    """Mean squared distance between G_k and the frozen G_{k−1} on the same codes."""
    return ((current - snapshot) ** 2).flatten(1).sum(1).mean()


def random_affine(images: torch.Tensor, generator: torch.Generator, *, max_rotate: float = 0.17,
                  max_scale: float = 0.1, max_shift: float = 0.1) -> torch.Tensor:
    """Identity-preserving augmentation: a random small rotation, scale and shift per image.

    Differentiable in `images` (affine_grid + grid_sample), so G can be trained through
    it. Uncovered pixels become −1 (black background), not grey: the images are in
    [−1, 1] and grid_sample pads with 0, so it runs on images + 1.

    Args:
        images: [N, C, H, W] in [−1, 1].
        generator: the trainer's checkpointed stream (draws on its device).
        max_rotate: radians (0.17 ≈ 10°); max_scale: relative; max_shift: fraction of the
            half-width (0.1 ≈ 1.4 px at 28×28). Small enough that a digit keeps its class
            (a 6 is not rotated into a 9), the ranges of Elastic-InfoGAN's and IIC's MNIST
            augmentations.
    """
    n = images.shape[0]
    u = torch.rand(n, 4, generator=generator, device=generator.device).to(images.device) * 2 - 1  # [N, 4] in [-1, 1]
    angle, scale = u[:, 0] * max_rotate, 1 + u[:, 1] * max_scale
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    shift = u[:, 2:] * max_shift
    # [N, 2, 3] = [[cos, −sin, shift x], [sin, cos, shift y]], stacked in one call.
    theta = torch.stack([cos, -sin, shift[:, 0], sin, cos, shift[:, 1]], 1).view(n, 2, 3).to(images.dtype)
    grid = affine_grid(theta, images.shape[2], images.shape[3])
    return F.grid_sample(images + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1


def affine_grid(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """F.affine_grid(theta, [N, C, height, width], align_corners=False), the same values, with the base
    grid of pixel centres made once per size and device instead of at every call (ATen builds it
    anew each time: about 20 operators per call; the step augments twice).

    Computed as ATen's AffineGridGenerator does: the homogeneous base grid [H·W, 3] times θᵀ.
    """
    base = _base_grid(height, width, theta.device, theta.dtype)
    return torch.matmul(base, theta.transpose(1, 2)).view(theta.shape[0], height, width, 2)


@functools.lru_cache(maxsize=None)
def _base_grid(height: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """[H·W, 3]: (x, y, 1) of each pixel centre in [−1, 1] coordinates (align_corners=False)."""
    def centres(steps: int) -> torch.Tensor:  # ATen's linspace_from_neg_one, align_corners=False
        return torch.linspace(-1, 1, steps, device=device, dtype=dtype) * (steps - 1) / steps

    base = torch.ones(height, width, 3, device=device, dtype=dtype)
    base[..., 0] = centres(width)
    base[..., 1] = centres(height)[:, None]
    return base.view(height * width, 3)


def augmented_info_loss(d_logits_augmented: torch.Tensor, d_target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of S's d on an augmented copy of G's image against the d that made it.

    The Elastic-InfoGAN idea (Ojha et al., NeurIPS 2020): G may only encode in d what
    survives identity-preserving transformations, so d cannot name a pose, thickness or
    position: what is left is the class. Weighted by `info_augment_weight`.
    """
    return F.cross_entropy(d_logits_augmented, d_target)


def clustering_loss(
    d_logits: torch.Tensor, d_logits_augmented: torch.Tensor, balance_weight: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """S's discrete head as a clusterer of real images (beyond the paper; IMSAT-style).

    Hu et al., "Learning Discrete Representations via Information Maximizing
    Self-Augmented Training" (ICML 2017): maximise the mutual information between an
    image and its cluster, H(Y) − H(Y|X), while the cluster is kept under augmentation.

    Args:
        d_logits: [N, K] S's logits on real images, restricted to the active categories.
        d_logits_augmented: [N, K] on augmented copies of the same images.
        balance_weight: weight of the marginal entropy H(mean p): it keeps every category
            in use (without it, the cheapest solution is one category for everything).
    Returns:
        (loss, consistency, marginal entropy): loss = consistency + H(Y|X) − balance · H(Y),
        consistency = cross-entropy of the augmented prediction against the (fixed) clean one.
    """
    log_p = F.log_softmax(d_logits, dim=1)
    p = log_p.exp()
    log_q = F.log_softmax(d_logits_augmented, dim=1)
    consistency = -(p.detach() * log_q).sum(1).mean()
    conditional_entropy = -(p * log_p).sum(1).mean()
    marginal = p.mean(0)
    marginal_entropy = -(marginal * torch.log(marginal.clamp_min(1e-12))).sum()
    loss = consistency + conditional_entropy - balance_weight * marginal_entropy
    return loss, consistency, marginal_entropy


def neighbour_consistency_loss(d_logits: torch.Tensor, d_logits_neighbour: torch.Tensor) -> torch.Tensor:
    """SCAN's consistency term (Van Gansbeke et al. 2020, wvangansbeke/Unsupervised-Classification
    `losses.SCANLoss`): −mean log ⟨p(·|x), p(·|n)⟩ for images x and mined neighbours n of theirs
    (train/neighbours.py), gradients through both sides as in SCAN.

    Args:
        d_logits, d_logits_neighbour: [N, K] S's logits on the images and on one neighbour each,
            over the same categories.
    Returns:
        0-dim: 0 when both sides are the same one-hot, log K when both are uniform.
    """
    # log Σ_j p_j q_j as a logsumexp of log-probabilities: exact where the dot product underflows.
    joint = F.log_softmax(d_logits, dim=1) + F.log_softmax(d_logits_neighbour, dim=1)
    return -torch.logsumexp(joint, dim=1).mean()


def domain_clustering_loss(
    d_logits: torch.Tensor, d_logits_augmented: torch.Tensor, n_new: int, new_from: int,
    balance_weight: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """`clustering_loss` per domain, for a real batch of new data followed by replay (eq. (7)'s mix).

    The learner knows which images are the new domain's and which its replay (Definition 2
    gives it the new data and the old generator, apart); no class label is used. The new
    rows are clustered over the new domain's categories [new_from, K) and the replayed rows
    over the old ones [0, new_from), each with its own balance term, so each domain's
    images spread over its own d's; and a domain term, −log Σ_{j in own} p(j|o) under the
    softmax over all K, keeps each image's d inside its domain (without it S sent most real
    sandals to MNIST's d's: experiments/fashion.md).

    Args:
        d_logits, d_logits_augmented: [N, K] over the phase's active categories; rows [:n_new]
            are the new domain's images, rows [n_new:] replay.
        n_new: how many rows are new data (N: no replay).
        new_from: the new domain's first category (0 in the first domain: then the result is
            `clustering_loss`'s, with a domain term of 0).
    Returns:
        (loss, consistency, marginal entropy, domain term): the first three averaged over the
        two parts by their row counts; loss = their clustering loss + the domain term.
    """
    n, K = d_logits.shape
    if n_new < n and new_from == 0:
        raise ValueError("replayed rows need old categories: new_from must be > 0")
    # Each part's rows, then its own columns, as views taken once and shared by the clustering and
    # the domain term: fewer operators, and one backward per view (benchmarks/step_ops.py).
    sizes = [n_new, n - n_new] if n_new < n else [n]
    parts = zip(d_logits.split(sizes), d_logits_augmented.split(sizes), ((new_from, K), (0, new_from)))
    sums: Optional[torch.Tensor] = None  # share-weighted [loss, consistency, balance, domain term]
    for logits, augmented, (lo, hi) in parts:
        if logits.shape[0] == 0:
            continue
        share = logits.shape[0] / n
        whole = lo == 0 and hi == K
        own = logits if whole else logits.narrow(1, lo, hi - lo)
        own_augmented = augmented if whole else augmented.narrow(1, lo, hi - lo)
        part = clustering_loss(own, own_augmented, balance_weight)
        # −log of the probability mass on the image's own domain: logsumexp over all − over own
        # (exactly 0 where the domain owns every category, the first domain).
        domain_term = own.new_zeros(()) if whole else (torch.logsumexp(logits, 1) - torch.logsumexp(own, 1)).mean()
        terms = torch.stack([*part, domain_term]) * share  # one product for the four, not four
        sums = terms if sums is None else sums + terms
    assert sums is not None  # n >= 1 row in some part
    loss, consistency, balance, domain = sums.unbind()
    return loss + domain, consistency, balance, domain
