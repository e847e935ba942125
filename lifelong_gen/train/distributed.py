"""Multi-process data-parallel training (torchrun): process group, gradient and buffer sync.

Owns `DistContext`, the one object the trainer asks "am I distributed, which rank,
am I the writer?", and the collectives the trainer needs. A run launched as

    torchrun --nproc_per_node N -m lifelong_gen.cli train ...

has WORLD_SIZE > 1 in its environment; `init_from_env` then starts a process group
(gloo on CPU, NCCL when the run trains on CUDA: each rank on its LOCAL_RANK's GPU) and
every rank builds the same networks from the same seed. A worker dies with its launcher,
even one killed with SIGKILL (lifelong_gen/worker_lifetime.py).

Gradients are averaged by torch's DistributedDataParallel. What the trainer does so
that DDP's reducer sees exactly one backward per forward cycle of each wrapper:
- G, a separate S and the critic are wrapped one by one (`wrap_for_training`). A frozen
  network is always called unwrapped: the critic in the generator step (its parameters
  do not require grad, so a DDP forward would leave its reducer waiting for gradients
  that never come), G under no_grad in the critic step.
- The critic runs three forwards (real, fake, interpolates) before one backward, and the
  gradient penalty takes torch.autograd.grad with respect to the interpolates only: DDP's
  hooks sit on the parameters, so they fire once, in loss.backward(), with the full
  (penalty included) gradient. Tested against per-rank gradients averaged by hand
  (tests/test_distributed.py::test_ddp_gradients_equal_the_rank_mean...).
- With S on the critic's trunk (--shared-encoder) the critic and S's heads are one
  module (`CriticWithHeads`): wrapped separately, the trunk would sit in two reducers.
- BatchNorm (G, S) runs on per-rank batch statistics (SyncBatchNorm has no CPU path).
  DDP's default broadcast of rank 0's buffers before every forward is off
  (broadcast_buffers=False): G runs twice before a backward with replay alignment, and
  the broadcast would rewrite buffers in place between the two (a known failure on
  CUDA). The running statistics are instead averaged across ranks after every
  generator step (`average_buffers`), so every rank holds identical buffers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.distributed as dist

from lifelong_gen.errors import LgenError
from lifelong_gen.worker_lifetime import bind_to_launcher


@dataclass
class DistContext:
    """Rank and world size of this process; world_size 1 means the single-process path."""

    rank: int = 0
    world_size: int = 1
    backend: str = "gloo"  # NCCL moves CUDA tensors only: collectives put their tensors there

    @property
    def _collective_device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")

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

    def average_buffers(self, modules: Iterable[torch.nn.Module]) -> None:
        """Floating buffers (BatchNorm running mean / var) <- mean over ranks."""
        if self.enabled:
            self._mean_in_place([b for m in modules for b in m.buffers() if b.is_floating_point()])

    def average_scalars(self, values: dict[str, float]) -> dict[str, float]:
        """Mean over ranks of a dict of floats (logged losses describe the global batch)."""
        if not self.enabled:
            return values
        keys = sorted(values)
        t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=self._collective_device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= self.world_size
        return dict(zip(keys, t.tolist()))

    def gather_states(self, state: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's copy of a uint8 RNG state (same size on all ranks), in rank order."""
        if not self.enabled:
            return [state]
        local = state.contiguous().to(self._collective_device)
        out = [torch.empty_like(local) for _ in range(self.world_size)]
        dist.all_gather(out, local)
        return [t.cpu() for t in out]


class CriticWithHeads(torch.nn.Module):
    """The critic and S's heads on its trunk as one module (the shared-encoder layout under DDP).

    forward(o) is D(o); forward(o, codes=True) is S(o) = (d logits, c means).
    """

    def __init__(self, D: torch.nn.Module, S: torch.nn.Module):
        super().__init__()
        self.D, self.S = D, S  # S.trunk is D.trunk: parameters() lists it once

    def forward(self, o: torch.Tensor, codes: bool = False):
        return self.S(o) if codes else self.D(o)


def wrap_for_training(G: torch.nn.Module, D: torch.nn.Module, S: torch.nn.Module, ctx: DistContext):
    """(G, D, S) to call for forwards that train, DDP-wrapped under torchrun, themselves otherwise.

    With S on D's trunk the returned D is `CriticWithHeads` (in one process too, so both
    paths run the same code; S's critic-step forward is D_train(o, codes=True)) and the
    returned S is S itself, to be called only where its gradient is discarded (the
    generator step, where the trunk is frozen).
    """
    shared = getattr(S, "shares_trunk", False)
    critic = CriticWithHeads(D, S) if shared else D
    if not ctx.enabled:
        return G, critic, S
    from torch.nn.parallel import DistributedDataParallel as DDP

    device = next(G.parameters()).device

    def ddp(module: torch.nn.Module) -> torch.nn.Module:
        ids = [device.index] if device.type == "cuda" else None
        return DDP(module, device_ids=ids, broadcast_buffers=False)

    return ddp(G), ddp(critic), (S if shared else ddp(S))


def pick_device(requested: str, ctx: DistContext) -> torch.device:
    """The device a run trains on: "cpu", "cuda" or "auto" (CUDA when torch sees a GPU).

    Under torchrun on CUDA each rank takes GPU LOCAL_RANK (and makes it current).
    """
    if requested not in ("auto", "cpu", "cuda"):
        raise LgenError(f"--device {requested!r} is not supported (choose auto, cpu or cuda)")
    use_cuda = requested == "cuda" or (requested == "auto" and torch.cuda.is_available())
    if not use_cuda:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise LgenError("--device cuda: torch sees no CUDA GPU here (use --device cpu or auto)")
    # use_deterministic_algorithms on CUDA needs this set before cuBLAS starts.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    index = int(os.environ.get("LOCAL_RANK", "0")) if ctx.enabled else torch.cuda.current_device()
    if index >= torch.cuda.device_count():
        raise LgenError(f"rank wants GPU {index} but torch sees {torch.cuda.device_count()}: "
                        f"use --nproc_per_node <= {torch.cuda.device_count()}")
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def init_from_env(device: str = "auto") -> DistContext:
    """Join the process group torchrun describes (WORLD_SIZE, RANK, MASTER_ADDR, ...).

    Without WORLD_SIZE > 1 nothing is initialised and the single-process context is
    returned, so `lgen train` run directly is unchanged. `device` is the run's --device:
    NCCL when it resolves to CUDA, gloo otherwise.
    """
    if dist.is_available() and dist.is_initialized():
        return current()
    bind_to_launcher()  # `lgen train` armed it already; other torchrun entry points (benchmarks) too
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    probe = DistContext(int(os.environ.get("RANK", "0")), world_size)
    backend = "nccl" if pick_device(device, probe).type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    return DistContext(dist.get_rank(), dist.get_world_size(), backend)


def current() -> DistContext:
    """The context of an already initialised process group (or the single-process one)."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), dist.get_backend())
    return DistContext()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
