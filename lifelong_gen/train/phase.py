"""What the loop runs through: `Phase`, one stage of training (a domain, or the union of all
domains in a joint run), and `Losses`, one step's losses.

A phase is only ever this: the two halves of a step are the critic update and the generator
update (trainer.py), never "phases". Owns `make_phases`: the phases of a run from its config
and the data of the domains it learns. The trainer, its callbacks and the metrics log import
these types from here, so none of them imports another for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from lifelong_gen.config import ModelConfig, TrainConfig, domain_slots
from lifelong_gen.train.domains import DomainData

# One step's losses and diagnostics, as 0-dim tensors on the training device.
Losses = dict[str, torch.Tensor]


@dataclass
class Phase:
    """One stage of training: a domain (lifelong) or the union of all domains (joint)."""

    index: int  # the domain's place in the lineage (inherited domains count)
    name: str
    images: torch.Tensor  # uint8 [N, C, H, W], on the training device
    steps: int
    d_slots: int
    replay_ratio: float
    # Joint training: per-image sampling weights giving each domain an equal share of every
    # batch (Fashion-MNIST has 15x the images of the MNIST subset). None: uniform.
    sample_weights: Optional[torch.Tensor] = None
    # G's d prior over the d_slots categories, on the training device; None: uniform. Set where
    # `--replay-ratio` moves the critic's real mix away from the uniform prior's share of old d's.
    d_prior: Optional[torch.Tensor] = None


def make_phases(tc: TrainConfig, cfg: ModelConfig, data: list[DomainData], device: torch.device) -> list[Phase]:
    """A phase per domain this run learns (after the inherited ones), or one joint phase of all of them."""
    if tc.joint:
        images = torch.cat([d.train_images for d in data])
        weights = torch.cat([torch.full((d.train_images.shape[0],), 1.0 / d.train_images.shape[0]) for d in data])
        return [Phase(0, "joint:" + "+".join(d.spec for d in data), images.to(device),
                      tc.joint_steps, cfg.d_dim, 0.0, weights.to(device))]
    return [Phase(k, d.spec, d.train_images.to(device), tc.steps_per_domain, domain_slots(tc, cfg, k),
                  tc.replay_ratio_for(k), d_prior=matched_d_prior(tc, cfg, k, device))
            for k, d in enumerate(data, start=tc.inherited_domains)]


def matched_d_prior(tc: TrainConfig, cfg: ModelConfig, k: int, device: torch.device | str = "cpu"
                    ) -> Optional[torch.Tensor]:
    """G's d prior while learning domain `k`, so that its fakes hold old and new domains in the
    same shares as the critic's real batch: the replay ratio r over the older domains' d's, 1 − r
    over the new domain's, uniform within each. None (uniform over all active d's) where that is
    the same thing: the default r = k/(k+1) with N d's per domain, where old d's are k of k + 1
    equal blocks. Also None where domains share one Cat (no d belongs to a domain), in a joint
    run, and without replay.

    Why: the critic's real batch is r replayed old-domain images and 1 − r new ones (eq. (7)).
    Under a uniform prior G's fakes hold the old domains' d's at k/(k+1) whatever r is, so with
    r < k/(k+1) the critic finds too many old-domain fakes and pushes the old d's towards the new
    domain. Deep Generative Replay (Shin et al., NeurIPS 2017, §3) weights new data against
    replay with one ratio r; here the generator's own code draw follows the same r.
    """
    r = tc.replay_ratio_for(k)
    if tc.d_per_domain is None or r == 0.0:
        return None
    slots = domain_slots(tc, cfg, k)
    old = slots - tc.d_per_domain
    if tc.growth == "adapters" and cfg.domain_groups and old >= cfg.domain_groups[0]:
        # The old domains are frozen (domain_groups.py): G draws only the new domain's d's.
        prior = torch.zeros(slots, dtype=torch.float32)
        prior[old:] = 1.0 / tc.d_per_domain
        return prior.to(device)
    if abs(r - old / slots) < 1e-12:
        return None
    prior = torch.empty(slots, dtype=torch.float32)
    prior[:old] = r / old
    prior[old:] = (1.0 - r) / tc.d_per_domain
    return prior.to(device)
