"""S's batch-norm statistics, recomputed at each domain's end on the real data S clusters.

Owns `recalibrate_s`. Why: a separate S has batch norm, and in training every forward updates
its running statistics: the batches of G's images (eq. (10)), of their augmented copies, and
of the critic's real batch (`--s-real-weight`). In eval mode, which is how `lgen encode`, the
exported ONNX graph and `lgen evaluate` use S, real images are then normalised with statistics
left mostly by G's batches, which S never met in training mode. Measured on the reference
model's end of domain 1 (experiments/fashion.md): S's Hungarian accuracy on real
MNIST was 0.577 with those statistics and 0.856 with them recomputed as below, with
the same weights; along that run it swung between 0.58 and 0.84 from one 1,000-step probe to the
next (experiments/trajectory.py).

The fix is PreciseBN (Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021): population
statistics over many batches of the data the network is meant for, computed with
`torch.optim.swa_utils.update_bn`. The batches are the ones S's clustering objective sees: the
critic's real batch (the domain's images and, from domain 2 on, replay of the frozen previous
generator, so Definition 2 holds) and, with `--s-real-weight`, its augmented view beside it.

Only S's buffers change: no weight moves, and the draws come from a generator of their own, so
the run's random stream and every later training step are what they were without it. That is
also why `recalibrate_run.py` (scripts/recalibrate_s.py) can apply it to a run trained before it existed and get
the same buffers a retraining would.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch.optim.swa_utils import update_bn

from lifelong_gen.train.losses import random_affine
from lifelong_gen.train.phase import Phase
from lifelong_gen.train.trainer_view import TrainerView


def has_batch_norm(module: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules())


def recalibration_generator(trainer: TrainerView, phase: Phase) -> torch.Generator:
    """A stream of its own per run, domain and rank: drawing from it leaves the run's stream untouched."""
    entropy = [trainer.tc.seed, phase.index, trainer.dist.rank, 0xB2]  # 0xB2: this use's tag
    seed = int(np.random.SeedSequence(entropy).generate_state(1)[0])
    return torch.Generator(device=trainer.device).manual_seed(seed)


@torch.no_grad()
def recalibrate_s(trainer: TrainerView, phase: Phase, S: Optional[torch.nn.Module] = None) -> bool:
    """Recompute S's batch-norm running statistics over `s_bn_recalibration` real batches of `phase`.

    `S`: another module to recalibrate instead of the trainer's (a probe's copy mid-domain).
    Returns False (nothing done) when the setting is 0 or S has no batch norm (a shared trunk).
    Under torchrun each rank draws its own batches and the buffers are then averaged.
    """
    S = trainer.S if S is None else S
    batches = trainer.tc.s_bn_recalibration
    if batches == 0 or not has_batch_norm(S):
        return False
    g = recalibration_generator(trainer, phase)

    def views():
        for _ in range(batches):
            real = trainer.real_batch(phase, trainer.tc.batch_size, generator=g).images
            if trainer.tc.s_real_weight > 0:  # the [real; augmented] batch the objective trains S on
                real = torch.cat([real, random_affine(real, g)])
            yield real

    # Resets the statistics, takes their cumulative mean over the batches in training mode, then
    # restores each layer's momentum and S's mode.
    update_bn(views(), S)
    trainer.dist.average_buffers((S,))
    return True
