"""G's no-gradient forward for the critic's fakes under bf16 autocast, its matmul weights cast once per G update.

Owns `CastOnce`. Under autocast every linear and convolution casts its fp32 weight to bf16
at each call: four operators per tensor. The critic's fakes call G `n_critic` times per
generator step while G's weights stay the same, so the casts repeat. `CastOnce` keeps bf16
copies of exactly the tensors autocast would cast (the weights and biases of G's linear and
convolution layers), recasts them in place after G's weights change (hooks on G's optimiser
step and on loading G's state: the fused Adam moves weights without bumping their version
counters, so those cannot tell), and runs G on them with
`torch.func.functional_call`. Autocast finds them already bf16 and casts nothing; batch-norm
parameters and buffers stay G's own, so running statistics move exactly as before.

The values are the same bit for bit: the copy rounds as autocast's cast does (tests/test_cast_once.py).
Only for the no-grad forward: with gradients, one shared bf16 copy would sum its gradient
contributions in bf16 where separate casts sum them in fp32.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from torch.func import functional_call

# The layers whose weight and bias autocast runs in lower precision (its CPU and CUDA lists
# both hold linear, conv*d and conv_transpose*d).
CAST_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
               nn.ConvTranspose3d)


class CastOnce:
    """Calls `module` (no gradients, under the caller's autocast) with bf16 copies of its matmul weights."""

    def __init__(self, module: nn.Module, optimizer: torch.optim.Optimizer, dtype: torch.dtype = torch.bfloat16):
        """
        Args:
            module: G.
            optimizer: the optimiser that steps G's weights: after each of its steps the copies are stale.
            dtype: autocast's lower precision.
        """
        self.module, self.dtype = module, dtype
        self.names = [f"{layer_name}.{p_name}" if layer_name else p_name
                      for layer_name, layer in module.named_modules() if isinstance(layer, CAST_LAYERS)
                      for p_name, p in layer.named_parameters(recurse=False) if p.dtype == torch.float32]
        self.copies: Optional[dict[str, torch.Tensor]] = None
        self.stale = True

        # A plain function, not a bound method: deepcopy (G_ema, the replay snapshots) shares functions
        # but would copy a bound method's CastOnce along with G.
        def mark_stale(*_: object) -> None:
            self.stale = True

        optimizer.register_step_post_hook(mark_stale)
        module.register_load_state_dict_post_hook(mark_stale)

    def refresh(self) -> dict[str, torch.Tensor]:
        """The bf16 copies, recast in place (one copy per tensor) if G's weights moved since the last cast."""
        if self.stale:
            params = dict(self.module.named_parameters())
            sources = [params[name] for name in self.names]
            with torch.no_grad():
                if self.copies is None:
                    self.copies = {name: p.to(self.dtype) for name, p in zip(self.names, sources)}
                else:
                    torch._foreach_copy_(list(self.copies.values()), sources)
            self.stale = False
        assert self.copies is not None
        return self.copies

    @torch.no_grad()
    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        return functional_call(self.module, self.refresh(), args, strict=False)
