"""The opt-in interpretability levers of the generator update, beside the paper's eq. (10).

Owns `lever_terms`: what the levers add to the generator update's loss (each a config field,
off at weight 0), with their diagnostics kept apart so they are logged, never summed:

- `info_augment_weight`: S must read d from a randomly transformed copy of G's image
  (losses.augmented_info_loss), through G;
- `s_real_weight`: S alone clusters real images (with replay, as the critic sees them)
  over the categories active in the phase, consistent under augmentation and balanced
  (losses.clustering_loss); `s_real_reuse` takes the critic's last real batch for it;
  with `s_overcluster_dim` (a ModelConfig field: it adds a head to S), S's over-clustering
  head clusters the same batch into more categories (IIC's auxiliary head).
  With `s_real_by_domain`, the objective is applied per domain (losses.domain_clustering_loss):
  the new data over the new domain's d's, replay over the old ones, each image's d kept in its domain.

Both see the view of `consistency_augment` (losses.CONSISTENCY_AUGMENTS): a small rotation,
scale and shift for digits, or scale, vertical shift, blur and brightness for clothes.

Off, a lever draws nothing from the run's random stream, so a run without levers is
bit-identical to one made before they existed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from lifelong_gen.train.losses import (
    augmented_info_loss,
    clustering_loss,
    consistency_augment,
    domain_clustering_loss,
)
from lifelong_gen.train.phase import Losses, Phase

if TYPE_CHECKING:  # the trainer imports this module
    from lifelong_gen.train.trainer import Trainer


def lever_terms(trainer: Trainer, phase: Phase, fake: torch.Tensor, d_idx: torch.Tensor
                ) -> tuple[dict[str, tuple[float, torch.Tensor]], Losses]:
    """({name: (weight, term)} for the generator update's loss, {name: diagnostic} logged only, so a
    NaN in a diagnostic cannot reach the loss); both empty when every lever is off.

    Args:
        fake: G's images of this update [B, C, H, W] (still attached to G's graph).
        d_idx: their categories [B].
    """
    tc, fw = trainer.tc, trainer.fw
    terms: dict[str, tuple[float, torch.Tensor]] = {}
    logged: Losses = {}
    if tc.info_augment_weight > 0:
        augmented = consistency_augment(fake.float(), trainer.rng, tc.consistency_augment)
        with trainer.autocast():
            d_logits_aug, _ = fw.S(augmented)
        terms["info_aug"] = (tc.info_augment_weight, augmented_info_loss(d_logits_aug.float(), d_idx))
    if tc.s_real_weight > 0:
        with torch.no_grad():
            # --s-real-reuse: the critic's last batch, drawn in this same step from the same mix.
            real = trainer.last_real if tc.s_real_reuse else trainer.real_batch(phase, tc.batch_size)
            augmented = consistency_augment(real, trainer.rng, tc.consistency_augment)
        over = trainer.cfg.s_overcluster_dim > 0
        both = torch.cat([real, augmented])
        with trainer.autocast():
            out = fw.S(both, overcluster=True) if over else fw.S(both)
        logits = out[0].float()[:, :phase.d_slots]
        if tc.s_real_by_domain:
            # [domain images; replay] as real_batch lays them out; the new domain's d's are the last d_per_domain.
            n_new = real.shape[0] - trainer.replay_rows(phase, real.shape[0])
            loss, consistency, balance, domain = domain_clustering_loss(
                *logits.chunk(2), n_new=n_new, new_from=phase.d_slots - tc.d_per_domain,
                balance_weight=tc.s_balance_weight)
            logged.update(s_domain=domain)
        else:
            loss, consistency, balance = clustering_loss(*logits.chunk(2), balance_weight=tc.s_balance_weight)
        terms["s_real"] = (tc.s_real_weight, loss)
        logged.update(s_consistency=consistency, s_marginal_entropy=balance)
        if over:
            # IIC's over-clustering head: the same objective over all of its categories, with the d
            # head's weight (IIC alternates the two heads with equal weight), through the same trunk.
            over_loss, over_consistency, over_balance = clustering_loss(
                *out[2].float().chunk(2), balance_weight=tc.s_balance_weight)
            terms["s_overcluster"] = (tc.s_real_weight, over_loss)
            logged.update(s_over_consistency=over_consistency, s_over_marginal_entropy=over_balance)
    return terms, logged
