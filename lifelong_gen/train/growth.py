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

Also owns a continued run's start from its parent: `load_parent` (the parent's networks,
checked against the config that continues it) and `start_from_parent` (G, G_ema and S grown
from them, D from the parent's critic or fresh, the parent's EMA G as the replay snapshot).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import torch

from lifelong_gen.config import RunConfig, domain_slots
from lifelong_gen.errors import LgenError
from lifelong_gen.train import checkpoint as ckpt
from lifelong_gen.train.replay import ReplaySnapshot
from lifelong_gen.train.trainer_view import TrainerView


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


def load_parent(parent: Path, run: RunConfig) -> dict[str, torch.nn.Module]:
    """The parent's networks at its own size (strict key and shape checks, one-line errors): its EMA G
    and S, and its critic when the continuing config says so (`run.parent["critic"] == "parent"`)."""
    which = ("G_ema", "S") + (("D",) if (run.parent or {}).get("critic") == "parent" else ())
    parent_run, nets = ckpt.load_bundle(parent, which=which)
    grown = run.model.d_dim - parent_run.model.d_dim
    expected = dataclasses.replace(parent_run.model, d_dim=run.model.d_dim)
    if expected != run.model or grown < 0:
        raise LgenError(f"{parent} is not the parent this config continues (its model config differs)")
    return nets


def start_from_parent(trainer: TrainerView, nets: dict[str, torch.nn.Module]) -> Optional[ReplaySnapshot]:
    """G, G_ema and S of `trainer` from the parent's EMA G and S (grown along d); D from its critic or
    fresh. Returns the replay snapshot of the domains the parent learned (its EMA G), None without replay."""
    tc, cfg = trainer.tc, trainer.cfg
    growth = cfg.d_dim - nets["G_ema"].cfg.d_dim
    grow_into(trainer.G, nets["G_ema"].state_dict(), growth, "generator")
    trainer.G_ema.load_state_dict(trainer.G.state_dict())
    grow_into(trainer.S, nets["S"].state_dict(), growth, "encoder")
    if "D" in nets:
        trainer.D.load_state_dict(nets["D"].state_dict(), strict=True)
    if not tc.replay:
        return None
    # The grown S reads the parent's categories as the parent's S did (growth keeps its function).
    return ReplaySnapshot(trainer.G_ema, domain_slots(tc, cfg, tc.inherited_domains - 1))
