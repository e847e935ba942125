"""Multi-process data-parallel training (torchrun): process group, gradient and buffer sync.

Owns `DistContext`, the one object the trainer asks "am I distributed, which rank,
am I the writer?", and the collectives the trainer needs. A run launched as

    torchrun --nproc_per_node N -m lifelong_gen.cli train ...

has WORLD_SIZE > 1 in its environment; `init_from_env` then starts a process group
(gloo on CPU, NCCL when CUDA is present and the trainer runs on it) and every rank
builds the same networks from the same seed.

Why explicit all-reduce rather than wrapping G, D, S in DistributedDataParallel:
one generator step runs D three times (real, fake, interpolates) and G up to
n_critic + 2 times before a backward, the gradient penalty needs a double backward
(create_graph), and with S on the critic's trunk the S heads get gradient in the
critic step only. DDP's reducer copes with each of these only with flags
(find_unused_parameters, static_graph) whose interaction with double backward is
fragile. Averaging the flattened gradients of exactly the parameters an optimizer
steps, right before `opt.step()`, has none of these failure modes and costs one
all-reduce per optimizer step (what DDP would do, minus the compute/comm overlap,
which buys nothing on a few CPU cores). BatchNorm runs on per-rank batch
statistics (SyncBatchNorm has no CPU path); the running statistics are averaged
across ranks after every generator step so that every rank holds identical buffers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Optional

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    """Rank and world size of this process; world_size 1 means the single-process path."""

    rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, metrics, samples and snapshots."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def _mean_in_place(self, tensors: list[torch.Tensor]) -> None:
        """Each tensor <- its mean over ranks, in one collective (flattened, not one per tensor)."""
        if not tensors:
            return
        flat = torch.cat([t.reshape(-1) for t in tensors])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.world_size
        offset = 0
        for t in tensors:
            n = t.numel()
            t.copy_(flat[offset:offset + n].view_as(t))
            offset += n

    def average_gradients(self, params: Iterable[torch.nn.Parameter]) -> None:
        """grad <- mean over ranks, for every parameter that has a grad (the same set on every rank)."""
        if self.enabled:
            self._mean_in_place([p.grad for p in params if p.grad is not None])

    def average_buffers(self, modules: Iterable[torch.nn.Module]) -> None:
        """Floating buffers (BatchNorm running mean / var) <- mean over ranks."""
        if self.enabled:
            self._mean_in_place([b for m in modules for b in m.buffers() if b.is_floating_point()])

    def average_scalars(self, values: dict[str, float]) -> dict[str, float]:
        """Mean over ranks of a dict of floats (logged losses describe the global batch)."""
        if not self.enabled:
            return values
        keys = sorted(values)
        t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= self.world_size
        return dict(zip(keys, t.tolist()))

    def gather_states(self, state: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's copy of a uint8 RNG state (same size on all ranks), in rank order."""
        if not self.enabled:
            return [state]
        out = [torch.empty_like(state) for _ in range(self.world_size)]
        dist.all_gather(out, state.contiguous())
        return out


def init_from_env(backend: Optional[str] = None) -> DistContext:
    """Join the process group torchrun describes (WORLD_SIZE, RANK, MASTER_ADDR, ...).

    Without WORLD_SIZE > 1 nothing is initialised and the single-process context is
    returned, so `lgen train` run directly is unchanged.
    """
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size())
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    if backend is None:
        # The trainer runs on CPU; NCCL only moves CUDA tensors.
        backend = "gloo"
    dist.init_process_group(backend=backend)
    return DistContext(dist.get_rank(), dist.get_world_size())


def current() -> DistContext:
    """The context of an already initialised process group (or the single-process one)."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size())
    return DistContext()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
