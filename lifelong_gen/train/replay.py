"""Generative replay, eq. (7): a frozen generator snapshot, the critic's mixed "real" batch; the priors' sampler.

At each domain boundary the trainer takes a frozen, eval-mode copy of the EMA
generator (the best sampler it has; Avalanche and Mammoth freeze the same way).
While the next domain is learned, the critic's "real" batch mixes that domain's
images with fresh samples of the snapshot (`mixed_real_batch`): replay is drawn
online, never from a stored buffer, so it costs no memory and covers the old codes
densely. How much of the batch is replay is the phase's `replay_ratio` (config.py,
`TrainConfig.replay_ratio_for`: k/(k+1) while learning domain k, so every domain seen
keeps an equal share); G's d prior follows it (phase.py, `matched_d_prior`).
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import torch

from lifelong_gen.train.domains import to_float
from lifelong_gen.train.networks import Generator, frozen_copy
from lifelong_gen.train.phase import Phase


def sample_noise(n: int, z_dim: int, c_dim: int, generator: torch.Generator,
                 device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """z ~ N(0, I) [n, z_dim], then c ~ N(0, I) [n, c_dim], drawn in that order on `generator`'s device.

    The one place the torch side draws the continuous priors: the trainer's codes, replay, the
    sample grids and the evaluation all go through it (runtime/codes.py's random_codes is the numpy twin).
    """
    on = generator.device
    z = torch.randn(n, z_dim, generator=generator, device=on)
    c = torch.randn(n, c_dim, generator=generator, device=on)
    return (z, c) if device is None else (z.to(device), c.to(device))


def sample_codes(
    n: int, z_dim: int, c_dim: int, d_dim: int, d_slots: int, generator: torch.Generator,
    device: torch.device | str = "cpu", d_prior: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw (z, c, d one-hot, d index) from the priors; d ~ Uniform over the first `d_slots` categories,
    or ~ Cat(`d_prior`) (probabilities over those categories, on the generator's device) when given.

    Drawn on `generator`'s device (the trainer keeps its stream on the training device, so
    a CUDA step draws without host round trips), then moved to `device` if that differs.
    """
    on = generator.device
    z, c = sample_noise(n, z_dim, c_dim, generator)
    if d_prior is None:
        d_idx = torch.randint(0, d_slots, (n,), generator=generator, device=on)
    else:
        d_idx = categorical(d_prior, n, generator)
    # A comparison, not F.one_hot (it reads the indices' range back to the host) nor scatter_
    # (flagged by CUDA's deterministic-algorithms check): elementwise, no sync, same 0/1 values.
    d = (d_idx[:, None] == _arange(d_dim, on)).float()
    codes = (z, c, d, d_idx)
    # (`.to` of a tensor already there is still an operator call, four per draw: skipped.)
    return codes if torch.device(device) == on else tuple(t.to(device) for t in codes)  # type: ignore[return-value]


@functools.lru_cache(maxsize=None)
def _arange(n: int, device: torch.device) -> torch.Tensor:
    """arange(n) on `device`, made once: a constant the step would otherwise allocate and fill each draw."""
    return torch.arange(n, device=device)


def categorical(weights: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """n indices drawn from Cat(weights / sum(weights)) on `weights`' device, by the inverse CDF: a
    uniform draw looked up in the cumulative sum. Unlike torch.multinomial, nothing is read back to
    the host, so a training step that draws with it stays free of synchronisation (and capturable in a
    CUDA graph). Zero weights are never drawn: their CDF step is empty.
    """
    cdf = weights.cumsum(0)
    u = torch.rand(n, generator=generator, device=weights.device) * cdf[-1]
    # u < 1, so u · total < total in float32; should a draw reach the total all the same (another
    # generator's rounding), it takes the last category of non-zero weight, the first whose CDF
    # reaches the total (a device-side minimum, no read-back), never a zero weight after it.
    last = (cdf < cdf[-1]).sum()
    return torch.minimum(torch.searchsorted(cdf, u, right=True), last)


class ReplaySnapshot:
    """A frozen copy of G from the end of the previous domain: G_{k−1} in eq. (7)."""

    def __init__(self, G: Generator, d_slots: int):
        """
        Args:
            G: the generator to freeze (copied; later training does not touch the copy).
            d_slots: how many discrete categories the snapshot had learned; replay draws only those.
        """
        self.G = frozen_copy(G)
        self.d_slots = d_slots

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """n replayed images [n, C, H, W] and the codes (z, c, d one-hot, d index) that made them."""
        cfg = self.G.cfg
        device = next(self.G.parameters()).device
        codes = sample_codes(n, cfg.z_dim, cfg.c_dim, cfg.d_dim, self.d_slots, generator, device)
        return self.G(*codes[:3]), codes

    @torch.no_grad()
    def render(self, z: torch.Tensor, c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """The snapshot's image for given codes (replay alignment target)."""
        return self.G(z, c, d)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """G's tensors (checkpoints keep them: a resume needs the snapshot, not the run that made it)."""
        return dict(self.G.state_dict())


class RealBatch(NamedTuple):
    """The critic's "real" batch of one update, laid out as [the domain's rows; the replayed rows]."""

    images: torch.Tensor  # [B, C, H, W] in [-1, 1]
    idx: torch.Tensor  # [B - R] the domain rows' indices into the phase's images
    replay_d: torch.Tensor  # [R] the d each replayed row was drawn with (R = 0 without a snapshot)


def mixed_real_batch(phase: Phase, batch: int, snapshot: Optional[ReplaySnapshot],
                     generator: torch.Generator) -> RealBatch:
    """Eq. (7): the "real" data of the critic while domain k is learned, p_k's images mixed with
    samples of the frozen G_{k-1}; round(B · replay ratio) rows are replayed, drawn last.

    Args:
        phase: the phase learned (its images, sampling weights and replay ratio).
        snapshot: G_{k-1}, or None (the first domain, a joint run, no replay).
        generator: the stream every index and replay code is drawn from.
    """
    n_replay = round(batch * phase.replay_ratio) if snapshot is not None else 0
    if phase.sample_weights is not None:  # a joint run: each domain an equal share
        idx = categorical(phase.sample_weights, batch - n_replay, generator)
    else:
        idx = torch.randint(0, phase.images.shape[0], (batch - n_replay,), generator=generator,
                            device=generator.device)
    real = to_float(phase.images[idx])
    replay_d = torch.zeros(0, dtype=torch.long, device=real.device)
    if n_replay:
        replayed, codes = snapshot.sample(n_replay, generator)
        real, replay_d = torch.cat([real, replayed]), codes[3]
    return RealBatch(real, idx, replay_d)
