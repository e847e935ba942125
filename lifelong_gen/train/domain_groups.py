"""Per-domain parameters of G (`--growth adapters`): each later domain learns parameters of its own
on a frozen shared generator, so adding a domain cannot change what the old domains draw.

G's d slots fall into groups: the base group (the first domain, or every domain of a parent grown
by replay) and one group per later domain (`ModelConfig.domain_groups`: the first slot of each).
`group_matrix` turns d into a gate [N, 1 + J] (d summed over each group's slots), computed inside
G, so the ONNX contract stays (z, c, d) -> image and a soft d mixes groups as it mixes categories.
Per later domain, G owns:

- its d columns of the input layer and of every conditional batch norm (already per d);
- `DomainBatchNorm`: batch-norm statistics per group. In eval mode each sample is normalised
  with its own group's statistics, so an old domain's images are exactly its own whatever a
  later domain's batches did to the statistics (Li et al., "Revisiting Batch Normalization for
  Practical Domain Adaptation", AdaBN, 2017: per-domain statistics on shared weights);
- `LowRankAdapters` (rank `adapter_rank` > 0): a low-rank update ΔW = U V of every linear and
  transposed-convolution layer, gated by the group (LoRA, Hu et al. 2021; per-domain modulation of
  a frozen GAN as in GAN Memory, Cong et al., NeurIPS 2020, and Piggyback GAN, Zhai et al., ECCV
  2020). U starts at zero, so a new group starts as the base generator.

While a later domain is learned (`GroupIsolation`), every gradient of G except its own group's
is zeroed before the optimiser step, and G's Adam state starts fresh at the boundary, so Adam's
update of every other entry is exactly zero. Old groups' gates are zero in its batches, so their
slices get no gradient anyway; the mask also covers the shared tensors (trunk, z and c columns).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def group_bounds(d_dim: int, starts: list[int]) -> list[tuple[int, int]]:
    """[first, end) slots of each group: the base [0, starts[0]) then one per start."""
    edges = [0] + list(starts) + [d_dim]
    return list(zip(edges[:-1], edges[1:]))


def group_matrix(d_dim: int, starts: list[int]) -> torch.Tensor:
    """[d_dim, 1 + J] 0/1: which group each d slot belongs to (column 0: the base)."""
    bounds = group_bounds(d_dim, starts)
    m = torch.zeros(d_dim, len(bounds))
    for j, (lo, hi) in enumerate(bounds):
        m[lo:hi, j] = 1.0
    return m


def gate_of(d: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """d [N, d_dim] -> each group's share of d [N, 1 + J]. Elementwise multiply and sum, not a
    matmul: autocast would run a matmul in bf16, and an old domain's gate must be exactly 1."""
    return (d.float()[:, :, None] * matrix[None]).sum(1)


def _per_sample(values: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """Rows [1 + J, F] mixed per sample by gate [N, 1 + J] -> [N, F] (exact for a one-hot gate)."""
    return (gate[:, :, None] * values[None]).sum(1)


class DomainBatchNorm(nn.Module):
    """Batch norm with running statistics per group; the affine weight and bias are shared.

    Training mode normalises with the batch's statistics, as nn.BatchNorm does, and moves only the
    rows of groups present in the batch (a group learned alone: its own row). Eval mode normalises
    each sample with its group's row. Its parameter and buffer names are nn.BatchNorm's, so a
    parent's plain batch norm grows into it (growth.py: the statistics fill every group's row).
    """

    def __init__(self, num_features: int, groups: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(groups, num_features))
        self.register_buffer("running_var", torch.ones(groups, num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, h: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        if self.training:
            out = F.batch_norm(h, None, None, self.weight, self.bias, True, 0.0, self.eps)
            with torch.no_grad():
                dims = [0] + list(range(2, h.dim()))
                x = h.float()
                mean, var = x.mean(dims), x.var(dims, correction=1)  # nn.BatchNorm keeps the unbiased var
                # Sync-free: each present group's row moves by momentum, an absent one by exactly zero.
                move = self.momentum * (gate.sum(0) > 0).to(mean.dtype)[:, None]  # [1 + J, 1]
                self.running_mean.add_(move * (mean - self.running_mean))
                self.running_var.add_(move * (var - self.running_var))
                self.num_batches_tracked.add_(1)
            return out
        mean, var = _per_sample(self.running_mean, gate), _per_sample(self.running_var, gate)  # [N, F]
        scale = self.weight / torch.sqrt(var + self.eps)
        shape = (h.shape[0], -1) + (1,) * (h.dim() - 2)
        return h * scale.view(shape).to(h.dtype) + (self.bias - mean * scale).view(shape).to(h.dtype)


class LowRankAdapters(nn.Module):
    """ΔW of one layer for J groups, rank r each, stacked: out = base(x) + up(down(x) ⊙ gate).

    `down` maps the base layer's inputs to J·r channels (a linear map; a 1x1 convolution before a
    transposed convolution), `up` maps them to the base's outputs (for a transposed convolution,
    one of the same kernel, stride and padding). G's channels shrink layer by layer, so the kernel
    sits on the narrow side: at 28x28, a rank-16 group costs about a tenth of what a kernel on the
    input side would. Each group's r channels are multiplied by its gate, so a group's update acts
    on its own samples only, and an old group's slices meet a zero gate (and get a zero gradient)
    in a later group's batches.
    """

    def __init__(self, layer: nn.Module, groups: int, rank: int):
        super().__init__()
        self.groups, self.rank = groups, rank
        width = groups * rank
        if isinstance(layer, nn.Linear):
            self.down = nn.Linear(layer.in_features, width, bias=False)
            self.up = nn.Linear(width, layer.out_features, bias=False)
        elif isinstance(layer, nn.ConvTranspose2d):
            self.down = nn.Conv2d(layer.in_channels, width, 1, bias=False)
            self.up = nn.ConvTranspose2d(width, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                                         bias=False)
        else:
            raise TypeError(f"no low-rank adapter for {type(layer).__name__}")
        nn.init.zeros_(self.up.weight)  # LoRA's start: the update is zero, the group starts as the base

    def forward(self, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        n = gate.shape[0]
        g = gate[:, 1:, None].expand(n, self.groups, self.rank).reshape(n, self.groups * self.rank)
        h = self.down(x)
        h = h * g.view(g.shape + (1,) * (h.dim() - 2)).to(h.dtype)
        return self.up(h)


class GroupIsolation:
    """While one group is learned: a 0/1 gradient mask for each of G's parameters (1: its own entries).

    Its own entries: its d columns of the input layer and of the conditional batch norms, and its
    slices of every adapter. Everything else (the shared trunk, batch-norm affines, z and c columns,
    older groups) gets a zero gradient; `mask_grads` applies it after backward, before the step.
    """

    def __init__(self, G: nn.Module, group: int):
        cfg = G.cfg
        lo, hi = group_bounds(cfg.d_dim, cfg.domain_groups)[group]
        first = cfg.z_dim + cfg.c_dim  # the input layer's d columns come after z and c
        own: dict[str, torch.Tensor] = {}
        for name, module in G.named_modules():
            if name == "fc.0":  # the input layer [fc, z + c + d]
                mask = torch.zeros_like(module.weight)
                mask[:, first + lo:first + hi] = 1
                own[f"{name}.weight"] = mask
            elif type(module).__name__ == "ConditionalBatchNorm":
                for part in ("gain", "bias"):
                    mask = torch.zeros_like(getattr(module, part).weight)  # [F, d_dim]
                    mask[:, lo:hi] = 1
                    own[f"{name}.{part}.weight"] = mask
            elif isinstance(module, LowRankAdapters) and group > 0:
                r, j = module.rank, group - 1
                down, up = module.down.weight, module.up.weight
                dmask, umask = torch.zeros_like(down), torch.zeros_like(up)
                dmask[j * r:(j + 1) * r] = 1  # Linear [J·r, in] or Conv2d [J·r, in, 1, 1]
                if isinstance(module.up, nn.Linear):
                    umask[:, j * r:(j + 1) * r] = 1  # [out, J·r]
                else:
                    umask[j * r:(j + 1) * r] = 1  # ConvTranspose2d [J·r, out, k, k]
                own[f"{name}.down.weight"], own[f"{name}.up.weight"] = dmask, umask
        self.masks = [(p, own.get(name)) for name, p in G.named_parameters()]

    @torch.no_grad()
    def mask_grads(self) -> None:
        for p, mask in self.masks:
            if p.grad is None:
                continue
            if mask is None:
                p.grad.zero_()
            else:
                p.grad.mul_(mask)


def domain_group(cfg, domain_slot_start: int) -> int:
    """The group of a domain whose d slots start at `domain_slot_start` (0: the base)."""
    return sum(1 for s in cfg.domain_groups if s <= domain_slot_start)


@torch.no_grad()
def start_group(G: nn.Module, group: int, source: int = 0) -> None:
    """A new group's batch-norm statistics start as the base's (row `source`): the group starts as
    the base generator, which its zero adapters and zero batch-norm columns already are."""
    for module in G.modules():
        if isinstance(module, DomainBatchNorm):
            module.running_mean[group].copy_(module.running_mean[source])
            module.running_var[group].copy_(module.running_var[source])
