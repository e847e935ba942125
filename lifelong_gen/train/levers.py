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
  With `s_neighbour_weight`, SCAN's neighbour term (losses.neighbour_consistency_loss): each new
  image of the batch and one of its mined nearest images (neighbours.py) get the same d, over the
  new domain's d's (all active d's without `s_real_by_domain`), in the same forward of S.
  With `s_replay_label_weight`, the replayed rows of that batch (from domain 2 on) also get a
  cross-entropy against the d the frozen generator drew each with (losses.replay_label_loss), or
  with `s_replay_target="previous-s"` against the frozen previous S's reading of them
  (losses.replay_distillation_loss).

Both see the view of `consistency_augment` (losses.CONSISTENCY_AUGMENTS): a small rotation,
scale and shift for digits, or scale, vertical shift, blur and brightness for clothes.

Off, a lever draws nothing from the run's random stream, so a run without levers is
bit-identical to one made before they existed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from lifelong_gen.train.domains import to_float
from lifelong_gen.train.losses import (
    augmented_info_loss,
    clustering_loss,
    consistency_augment,
    domain_clustering_loss,
    neighbour_consistency_loss,
    replay_distillation_loss,
    replay_label_loss,
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
        _real_image_terms(trainer, phase, terms, logged)
    return terms, logged


def _real_image_terms(trainer: Trainer, phase: Phase, terms: dict[str, tuple[float, torch.Tensor]],
                      logged: Losses) -> None:
    """`s_real_weight`'s terms, added to `terms` / `logged`: S's clustering of the real batch, and
    on the same forward the neighbour, replay-target and over-clustering terms."""
    tc, fw = trainer.tc, trainer.fw
    with torch.no_grad():
        # --s-real-reuse: the critic's last batch, drawn in this same step from the same mix.
        if tc.s_real_reuse:
            real, idx, replay_d = trainer.last_real, trainer.last_real_idx, trainer.last_replay_d
        else:
            real, idx, replay_d = trainer.real_batch(phase, tc.batch_size, with_indices=True)
        augmented = consistency_augment(real, trainer.rng, tc.consistency_augment)
        # [domain images; replay] as real_batch lays them out; the new domain's d's are the last d_per_domain.
        n, n_new = real.shape[0], idx.shape[0]
        rows = [real, augmented]
        if tc.s_neighbour_weight > 0:  # one random mined neighbour of each new image (SCAN)
            table = trainer.neighbours.of(phase)  # [N_phase, k]
            pick = torch.randint(0, table.shape[1], (n_new,), generator=trainer.rng, device=trainer.rng.device)
            rows.append(to_float(phase.images[table[idx, pick.to(idx.device)]]))
    over = trainer.cfg.s_overcluster_dim > 0
    both = torch.cat(rows)
    with trainer.autocast():
        out = fw.S(both, overcluster=True) if over else fw.S(both)
    logits = out[0].float()[:, :phase.d_slots]
    clean, augmented_logits = logits[:n], logits[n:2 * n]
    new_from = phase.d_slots - tc.d_per_domain if tc.s_real_by_domain else 0
    if tc.s_real_by_domain:
        loss, consistency, balance, domain = domain_clustering_loss(
            clean, augmented_logits, n_new=n_new, new_from=new_from, balance_weight=tc.s_balance_weight)
        logged.update(s_domain=domain)
    else:
        loss, consistency, balance = clustering_loss(clean, augmented_logits, balance_weight=tc.s_balance_weight)
    terms["s_real"] = (tc.s_real_weight, loss)
    logged.update(s_consistency=consistency, s_marginal_entropy=balance)
    if tc.s_neighbour_weight > 0:
        own = slice(new_from, phase.d_slots)  # the new domain's d's (all active ones when not by domain)
        terms["s_neighbour"] = (tc.s_neighbour_weight,
                                neighbour_consistency_loss(clean[:n_new, own], logits[2 * n:, own]))
    if tc.s_replay_label_weight > 0 and n_new < n:
        terms["s_replay_label"] = (tc.s_replay_label_weight, _replay_target_term(
            trainer, clean[n_new:], augmented_logits[n_new:], real[n_new:], replay_d))
    if over:
        # IIC's over-clustering head: the same objective over all of its categories, with the d
        # head's weight (IIC alternates the two heads with equal weight), through the same trunk.
        over_loss, over_consistency, over_balance = clustering_loss(
            *out[2].float()[:2 * n].chunk(2), balance_weight=tc.s_balance_weight)
        terms["s_overcluster"] = (tc.s_real_weight, over_loss)
        logged.update(s_over_consistency=over_consistency, s_over_marginal_entropy=over_balance)


def _replay_target_term(trainer: Trainer, clean: torch.Tensor, augmented: torch.Tensor, replayed: torch.Tensor,
                        replay_d: torch.Tensor) -> torch.Tensor:
    """`s_replay_label_weight`'s term on the replay rows, both views [2R, K] against a target (DGR's
    replayed labels): the d the frozen generator drew each with, or the previous S's reading of
    the clean image (`s_replay_target="previous-s"`)."""
    both_views = torch.cat([clean, augmented])
    if trainer.tc.s_replay_target == "previous-s":
        with trainer.autocast():
            previous = trainer.snapshot.read(replayed).float()
        return replay_distillation_loss(both_views[:, :previous.shape[1]], previous.repeat(2, 1))
    return replay_label_loss(both_views, replay_d.repeat(2))
