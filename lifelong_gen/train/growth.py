"""Growing the discrete code: G and S with more categories that keep the parent's function.

A continued run (`lgen train --from PARENT`, lineage.py) adds `d_per_domain` categories per
new domain. d enters three kinds of layer, and each grows along its d axis only:

    G's input Linear       weight [fc, z + c + d]   d is the last block of columns
    ConditionalBatchNorm   gain / bias [F, d]        (g_conditioning="cbn")
    S's d head             weight [d, feat], bias [d]

The parent's tensors fill the leading slice of the grown ones; the rest keeps the fresh
network's initialisation (random input columns and S rows as any new layer; zero CBN
columns, CBN's own "plain batch norm" start). An old one-hot d multiplies the new input
columns and CBN columns by zero, so the grown G draws exactly the parent's images for
every old category, and the grown S's first logits are the parent's: growth preserves the
function (Avalanche's IncrementalClassifier grows its head the same way; tested to 1e-6).
Every other tensor (trunks, BatchNorm statistics, the critic) must match in shape.
"""

from __future__ import annotations

import torch

from lifelong_gen.errors import LgenError


def grow_state(old: dict[str, torch.Tensor], fresh: dict[str, torch.Tensor], d_growth: int,
               what: str) -> dict[str, torch.Tensor]:
    """`fresh` (a newly built network's state dict) with the parent's tensors `old` embedded.

    Args:
        old: the parent network's state dict (d_dim categories).
        fresh: the grown network's freshly initialised state dict (d_dim + d_growth).
        d_growth: how many categories were added; a tensor may differ from its parent only
            along one axis, by exactly this much.
        what: the network's name, for error messages.
    """
    missing = sorted(set(fresh) - set(old))
    unexpected = sorted(set(old) - set(fresh))
    if missing or unexpected:
        raise LgenError(f"cannot grow the parent's {what}: its weights lack {missing[:3]} / have extra "
                        f"{unexpected[:3]} (a different architecture)")
    grown = {}
    for key, new in fresh.items():
        parent = old[key]
        if parent.shape == new.shape:
            grown[key] = parent.clone()
            continue
        axes = [i for i, (a, b) in enumerate(zip(parent.shape, new.shape)) if a != b]
        if parent.dim() != new.dim() or len(axes) != 1 or new.shape[axes[0]] - parent.shape[axes[0]] != d_growth:
            raise LgenError(f"cannot grow the parent's {what}: {key} is {tuple(parent.shape)}, the grown network "
                            f"needs {tuple(new.shape)} (only the d axis may grow, by {d_growth})")
        out = new.clone()
        out.narrow(axes[0], 0, parent.shape[axes[0]]).copy_(parent)  # the parent's slice, new part as initialised
        grown[key] = out
    return grown


def grow_into(module: torch.nn.Module, parent_state: dict[str, torch.Tensor], d_growth: int, what: str) -> None:
    """Load `parent_state` into the (already built, grown) `module`, growing the d axis (strict)."""
    module.load_state_dict(grow_state(parent_state, module.state_dict(), d_growth, what), strict=True)
