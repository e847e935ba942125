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


def make_phases(tc: TrainConfig, cfg: ModelConfig, data: list[DomainData], device: torch.device) -> list[Phase]:
    """A phase per domain this run learns (after the inherited ones), or one joint phase of all of them."""
    if tc.joint:
        images = torch.cat([d.train_images for d in data])
        weights = torch.cat([torch.full((d.train_images.shape[0],), 1.0 / d.train_images.shape[0]) for d in data])
        return [Phase(0, "joint:" + "+".join(d.spec for d in data), images.to(device),
                      tc.joint_steps, cfg.d_dim, 0.0, weights.to(device))]
    return [Phase(k, d.spec, d.train_images.to(device), tc.steps_for(k), domain_slots(tc, cfg, k),
                  tc.replay_ratio_for(k))
            for k, d in enumerate(data, start=tc.inherited_domains)]
