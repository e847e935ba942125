"""The opt-in interpretability levers of the generator update, beside the paper's eq. (10).

Owns `lever_terms`: what the levers add to the generator update's loss (each a config field,
off at weight 0), with their diagnostics kept apart so they are logged, never summed:

- `info_augment_weight`: S must read d from a randomly transformed copy of G's image
  (losses.augmented_info_loss, Elastic-InfoGAN), through G;
- `s_real_weight`: S alone clusters real images (with replay, as the critic sees them) over
  the categories active in the phase, consistent under augmentation and balanced
  (losses.clustering_loss, IMSAT); `s_real_reuse` clusters the critic's last real batch.
  With `s_real_by_domain`, the objective is applied per domain (losses.domain_clustering_loss):
  the new data over the new domain's d's, replay over the old ones.
  With `s_neighbour_weight`, SCAN's neighbour term (losses.neighbour_consistency_loss): each new
  image of the batch and one of its mined nearest images (neighbours.py) get the same d, over the
  new domain's d's (all active d's without `s_real_by_domain`), in the same forward of S.

The augmented view is losses.random_affine: a small rotation, scale and shift.

Off, a lever draws nothing from the run's random stream, so a run without levers is
bit-identical to one made before they existed.
"""

from __future__ import annotations

from typing import Callable, ContextManager

import torch

from lifelong_gen.config import TrainConfig
from lifelong_gen.train.domains import to_float
from lifelong_gen.train.losses import (
    augmented_info_loss,
    clustering_loss,
    domain_clustering_loss,
    neighbour_consistency_loss,
    random_affine,
)
from lifelong_gen.train.neighbours import NeighbourTables
from lifelong_gen.train.phase import Losses, Phase
from lifelong_gen.train.replay import RealBatch

Terms = dict[str, tuple[float, torch.Tensor]]


def lever_terms(tc: TrainConfig, phase: Phase, S: Callable, fake: torch.Tensor, d_idx: torch.Tensor, *,
                real_batch: Callable[[], RealBatch], rng: torch.Generator,
                autocast: Callable[[], ContextManager], neighbours: NeighbourTables) -> tuple[Terms, Losses]:
    """({name: (weight, term)} for the generator update's loss, {name: diagnostic} logged only, so a
    NaN in a diagnostic cannot reach the loss); both empty when every lever is off.

    Args:
        S: the forward of S that trains (forwards.py: DDP-wrapped or compiled as the run says).
        fake: G's images of this update [B, C, H, W] (still attached to G's graph).
        d_idx: their categories [B].
        real_batch: the real batch S clusters, drawn only if a lever needs it (the critic's last
            with `s_real_reuse`, a fresh draw of the same mix otherwise).
        rng: the run's stream (augmentations, neighbour picks).
        autocast: the run's autocast context for network forwards.
        neighbours: the mined neighbour tables of `s_neighbour_weight`.
    """
    terms: Terms = {}
    logged: Losses = {}
    if tc.info_augment_weight > 0:
        augmented = random_affine(fake.float(), rng)
        with autocast():
            d_logits_aug, _ = S(augmented)
        terms["info_aug"] = (tc.info_augment_weight, augmented_info_loss(d_logits_aug.float(), d_idx))
    if tc.s_real_weight > 0:
        terms_real, logged = _real_image_terms(tc, phase, S, real_batch(), rng, autocast, neighbours)
        terms.update(terms_real)
    return terms, logged


def _real_image_terms(tc: TrainConfig, phase: Phase, S: Callable, real: RealBatch, rng: torch.Generator,
                      autocast: Callable[[], ContextManager], neighbours: NeighbourTables) -> tuple[Terms, Losses]:
    """`s_real_weight`'s terms: S's clustering of the real batch, and on the same forward the neighbour term."""
    images, idx = real.images, real.idx
    with torch.no_grad():
        augmented = random_affine(images, rng)
        # [domain images; replay] as the mix lays them out; the new domain's d's are the last d_per_domain.
        n, n_new = images.shape[0], idx.shape[0]
        rows = [images, augmented]
        if tc.s_neighbour_weight > 0:  # one random mined neighbour of each new image (SCAN)
            table = neighbours.of(phase)  # [N_phase, k]
            pick = torch.randint(0, table.shape[1], (n_new,), generator=rng, device=rng.device)
            rows.append(to_float(phase.images[table[idx, pick.to(idx.device)]]))
    with autocast():
        logits = S(torch.cat(rows))[0].float()
    if phase.d_slots < logits.shape[1]:  # the active categories (a view; none to take once all are)
        logits = logits.narrow(1, 0, phase.d_slots)
    # One split, not a slice per part: a single backward gathers their gradients.
    clean, augmented_logits, neighbour_logits = logits.split([n, n, logits.shape[0] - 2 * n])
    new_from = phase.d_slots - tc.d_per_domain if tc.s_real_by_domain else 0
    logged: Losses = {}
    if tc.s_real_by_domain:
        loss, consistency, balance, domain = domain_clustering_loss(
            clean, augmented_logits, n_new=n_new, new_from=new_from, balance_weight=tc.s_balance_weight)
        logged["s_domain"] = domain
    else:
        loss, consistency, balance = clustering_loss(clean, augmented_logits, balance_weight=tc.s_balance_weight)
    terms: Terms = {"s_real": (tc.s_real_weight, loss)}
    logged.update(s_consistency=consistency, s_marginal_entropy=balance)
    if tc.s_neighbour_weight > 0:
        own = slice(new_from, phase.d_slots)  # the new domain's d's (all active ones when not by domain)
        terms["s_neighbour"] = (tc.s_neighbour_weight,
                                neighbour_consistency_loss(clean[:n_new, own], neighbour_logits[:, own]))
    return terms, logged
