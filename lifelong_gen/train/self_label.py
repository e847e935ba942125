"""SCAN-style self-labelling of S: a short pass at the end of each domain (issue 20's lever).

Van Gansbeke et al., "SCAN: Learning to Classify Images without Labels" (ECCV 2020), its third
step (wvangansbeke/Unsupervised-Classification: `losses.ConfidenceBasedCE`, `selflabel.py`): a
clusterer's confident predictions on real images (top probability above a threshold, 0.99
there) become targets of a cross-entropy on strongly augmented views of the same images, each
class weighted by the inverse of its share among the confident targets, so that the largest
clusters do not absorb the rest.

Here the clusterer is S's discrete head, and the pass runs after a domain's generator steps
(`self_label_steps`; 0: off, no draw from the run's stream). Owns:

- `confident_cross_entropy`: the class-balanced, thresholded cross-entropy (a pure function);
- `strong_augment`: the strong view (a larger affine than the levers' `random_affine`, then
  `cutout`), since SCAN's targets come from a weak view and its loss from a strong one;
- `self_label_pass`: the pass itself, on the batches the critic sees (the domain's images with
  replay, eq. (7)) over the categories active in the domain.

Only S moves, with a fresh Adam of its own (SCAN's self-labelling starts a new optimiser too, at
lr 1e-4), so G, its EMA copy and the critic stay as the domain left them. Every pass step also
keeps S reading G's codes (L_MI, eq. (10), on fresh samples of the EMA generator that users
sample), so the clusters S sharpens on real images stay the d's that G draws.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from lifelong_gen.train.losses import info_loss, random_affine
from lifelong_gen.train.phase import Phase

if TYPE_CHECKING:  # the trainer imports this module
    from lifelong_gen.train.trainer import Trainer

log = logging.getLogger("lifelong_gen")


def confident_cross_entropy(logits_clean: torch.Tensor, logits_strong: torch.Tensor, threshold: float
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """SCAN's self-labelling loss: (loss, share of the batch that was confident).

    Args:
        logits_clean: [N, K] S's logits on the images themselves (the targets; no gradient taken).
        logits_strong: [N, K] on strongly augmented copies of the same images (the loss's input).
        threshold: an image is a target when its top softmax probability exceeds this.
    Returns:
        loss: the cross-entropy of the strong views of the confident images against their clean
            argmax, class c weighted n / n_c (n confident images, n_c of them in class c), as a
            weighted mean (so every class present counts alike, whatever its size); 0 (still
            attached to `logits_strong`) when no image is confident.
        confident: the share of the N images above the threshold (a 0-dim tensor).
    """
    with torch.no_grad():
        top, target = F.softmax(logits_clean.float(), dim=1).max(dim=1)
        mask = top > threshold
        n = mask.sum()
        counts = torch.bincount(target[mask], minlength=logits_clean.shape[1]).float()
        # Classes absent among the targets get weight 1 (as SCAN): they are never a target here.
        weight = torch.where(counts > 0, n / counts.clamp_min(1), torch.ones_like(counts))
    if not bool(mask.any()):  # a read-back, once per pass step (not in the GAN step)
        return logits_strong.sum() * 0.0, mask.float().mean()
    loss = F.cross_entropy(logits_strong[mask].float(), target[mask], weight=weight)
    return loss, mask.float().mean()


def cutout(images: torch.Tensor, generator: torch.Generator, fraction: float = 0.25) -> torch.Tensor:
    """Cutout (DeVries & Taylor 2017, in SCAN's strong view): per image, one square of side
    `fraction` x the image side set to the black background (-1), at a uniformly drawn centre
    (so it may be cut by the border).

    Args:
        images: [N, C, H, W] in [-1, 1]; generator: the run's checkpointed stream (draws on its device).
    """
    n, _, h, w = images.shape
    side_h, side_w = max(1, round(fraction * h)), max(1, round(fraction * w))
    u = torch.rand(n, 2, generator=generator, device=generator.device).to(images.device)  # [N, 2] in [0, 1)
    top = (u[:, 0] * h).long().view(n, 1, 1) - side_h // 2
    left = (u[:, 1] * w).long().view(n, 1, 1) - side_w // 2
    rows = torch.arange(h, device=images.device).view(1, h, 1)
    cols = torch.arange(w, device=images.device).view(1, 1, w)
    hole = (rows >= top) & (rows < top + side_h) & (cols >= left) & (cols < left + side_w)  # [N, H, W]
    return images.masked_fill(hole.unsqueeze(1), -1.0)


def strong_augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The strong view of images in [-1, 1]: a random rotation (up to 10°), scale (±20%) and
    shift (±15% of the half-width), then `cutout`. SCAN's strong view is RandAugment plus Cutout;
    on 28x28 grey images the affine stands in for RandAugment's geometry, and rotations stay as
    small as the levers' (rotations may turn a garment into another, a 6 into a 9).
    """
    return cutout(random_affine(images, generator, max_rotate=0.17, max_scale=0.2, max_shift=0.15), generator)


def self_label_pass(trainer: Trainer, phase: Phase) -> dict[str, float]:
    """`self_label_steps` updates of S alone at the end of `phase` (see the module docstring).

    Returns (and logs in one line) what the pass did: the confident share of its first and last
    tenth of steps and the mean self-labelling loss of its last tenth.
    """
    tc, B, slots = trainer.tc, trainer.tc.batch_size, phase.d_slots
    S = trainer.fw.S  # DDP-wrapped under torchrun, so S's gradients are averaged across ranks
    opt = torch.optim.Adam(trainer.S.parameters(), lr=tc.self_label_lr, betas=tc.betas)
    trainer.S.train()
    steps, tenth = tc.self_label_steps, max(1, tc.self_label_steps // 10)
    confident, losses = [], []
    for _ in range(steps):
        with torch.no_grad():
            real = trainer.real_batch(phase, B)
            strong = strong_augment(real, trainer.rng)
            z, c, d, d_idx = trainer._codes(B, slots)
            with trainer.autocast():
                fake = trainer.G_ema(z, c, d).float()
                logits_clean = S(real)[0].float()[:, :slots]
        with trainer.autocast():
            logits_strong = S(strong)[0].float()[:, :slots]
            d_logits, c_mean = S(fake)
        loss_self, share = confident_cross_entropy(logits_clean, logits_strong, tc.self_label_threshold)
        loss_info = info_loss(d_logits.float(), c_mean.float(), d_idx, c, tc.info_weight_discrete,
                              tc.info_weight_continuous)[0]
        opt.zero_grad(set_to_none=True)
        (loss_self + loss_info).backward()
        opt.step()
        trainer.dist.average_buffers((trainer.S,))
        confident.append(share.detach())
        losses.append(loss_self.detach())
    shares = torch.stack(confident).float()
    stats = {"steps": steps, "confident_first": float(shares[:tenth].mean()),
             "confident_last": float(shares[-tenth:].mean()),
             "loss_last": float(torch.stack(losses)[-tenth:].mean())}
    log.info("self-labelling S on %s: %d steps, confident share %.3f -> %.3f, loss %.4f", phase.name, steps,
             stats["confident_first"], stats["confident_last"], stats["loss_last"])
    return stats
