"""Which callable each forward of a training step goes through: plain, DDP-wrapped or compiled.

One training step calls G, D and S in six roles; under torchrun some must go through
DistributedDataParallel and some must not, and with `--compile` some can be compiled
and one cannot. `training_forwards` decides once, so the trainer's step reads the same
in every setting:

- `G`, `D`, `S`: the forwards whose gradients the optimizers use (DDP under torchrun;
  with S on the critic's trunk, `D` is `CriticWithHeads` and `D(o, codes=True)` is S).
- `G_fakes`: G under no_grad for the critic's fakes (never DDP: no gradient to reduce).
- `D_frozen`: the critic in the generator update, its parameters frozen (never DDP: its
  reducer would wait for gradients that never come).
- `D_penalty`: the critic inside the gradient penalty. Always eager: the penalty
  differentiates D's gradient (a double backward), which torch.compile's AOTAutograd
  does not support.

`--compile MODE` (single process) wraps the others in `torch.compile(mode=MODE)`:
"default" (Inductor kernels), "reduce-overhead" (also CUDA graphs: fewer launches, the
GPU path's bottleneck) or "max-autotune". Off by default, so CPU training stays the
bit-reproducible eager loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from lifelong_gen.config import COMPILE_MODES
from lifelong_gen.errors import LgenError
from lifelong_gen.train import distributed


@dataclass
class Forwards:
    G: Callable
    D: Callable
    S: Callable
    G_fakes: Callable
    D_frozen: Callable
    D_penalty: Callable
    compiled: bool = False
    cuda_graphs: bool = False

    def step_begins(self) -> None:
        """Mark a new step for CUDA graph trees (outputs of the previous replay may be reused)."""
        if self.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()


def training_forwards(G: torch.nn.Module, D: torch.nn.Module, S: torch.nn.Module,
                      ctx: distributed.DistContext, compile_mode: str = "off") -> Forwards:
    """The callables of one training step (see the module docstring)."""
    if compile_mode not in COMPILE_MODES:
        raise LgenError(f"--compile {compile_mode!r} is not supported (choose one of {', '.join(COMPILE_MODES)})")
    G_train, D_train, S_train = distributed.wrap_for_training(G, D, S, ctx)
    if compile_mode == "off":
        return Forwards(G=G_train, D=D_train, S=S_train, G_fakes=G, D_frozen=D, D_penalty=D_train)
    if ctx.enabled:
        raise LgenError("--compile runs in a single process for now; drop it under torchrun")
    device = next(G.parameters()).device

    def compiled(module: torch.nn.Module) -> Callable:
        return torch.compile(module, mode=compile_mode)

    # One compiled wrapper per module: the no-grad and frozen calls are guarded variants of it.
    G_c, D_c = compiled(G), compiled(D_train)
    S_c = S_train if getattr(S, "shares_trunk", False) else compiled(S_train)
    return Forwards(G=G_c, D=D_c, S=S_c, G_fakes=G_c, D_frozen=D_c if D_train is D else compiled(D),
                    D_penalty=D_train, compiled=True,
                    cuda_graphs=compile_mode == "reduce-overhead" and device.type == "cuda")
