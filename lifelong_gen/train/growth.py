"""Growing the discrete code: G and S with more categories that keep the parent's function.

A continued run (`lgen train --from PARENT`, lineage.py) adds `d_per_domain` categories per
new domain. d enters three kinds of layer, and each grows along its d axis only:

    G's input Linear       weight [fc, z + c + d]   d is the last block of columns
    ConditionalBatchNorm   gain / bias [F, d]        (g_conditioning="cbn")
    S's d head             weight [d, feat], bias [d]

With `--growth adapters` (domain_groups.py) a new domain also gets a group of its own: its
rows of the per-group batch-norm statistics and its slices of the low-rank adapters.

The parent's tensors fill the leading slice of the grown ones; the rest keeps the fresh
network's initialisation (random input columns and S rows as any new layer; zero CBN
columns, CBN's own "plain batch norm" start). An old one-hot d multiplies the new input
columns and CBN columns by zero, so the grown G draws exactly the parent's images for
every old category, and the grown S's first logits are the parent's: growth preserves the
function (Avalanche's IncrementalClassifier grows its head the same way; tested to 1e-6).
Every other tensor (trunks, the critic) must match in shape.

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
from lifelong_gen.train.domain_groups import GroupIsolation, domain_group, start_group
from lifelong_gen.train.replay import ReplaySnapshot
from lifelong_gen.train.trainer_view import TrainerView


def grow_state(old: dict[str, torch.Tensor], fresh: dict[str, torch.Tensor], d_growth: int,
               what: str) -> dict[str, torch.Tensor]:
    """`fresh` (a newly built network's state dict) with the parent's tensors `old` embedded.

    Args:
        old: the parent network's state dict (d_dim categories).
        fresh: the grown network's freshly initialised state dict (d_dim + d_growth).
        d_growth: how many categories were added. A tensor may differ from its parent only by
            growing along one axis (d, or a new domain group's adapter rank or statistics row).
        what: the network's name, for error messages.

    A grown G with domain groups (domain_groups.py) also has tensors its parent lacks, all new
    parameters of the new groups: adapters that start at zero (kept as initialised) and per-group
    batch-norm statistics, whose new rows start as the parent's base statistics.
    """
    missing = sorted(k for k in set(fresh) - set(old) if not k.startswith("adapters."))
    unexpected = sorted(set(old) - set(fresh))
    if missing or unexpected:
        raise LgenError(f"cannot grow the parent's {what}: its weights lack {missing[:3]} / have extra "
                        f"{unexpected[:3]} (a different architecture)")
    grown = {}
    for key, new in fresh.items():
        parent = old.get(key)
        if parent is None or parent.shape == new.shape:
            grown[key] = new.clone() if parent is None else parent.clone()
            continue
        if key.endswith(("running_mean", "running_var")) and new.dim() == 2 and parent.dim() in (1, 2):
            rows = parent.reshape(-1, new.shape[1])  # a plain batch norm's statistics are the base row
            out = rows[:1].expand_as(new).clone()
            out[:rows.shape[0]] = rows
            grown[key] = out
            continue
        axes = [i for i, (a, b) in enumerate(zip(parent.shape, new.shape)) if a != b]
        # An adapter of the input layer grows along d (its inputs) and its rank (a new group) at once.
        allowed = 2 if key.startswith("adapters.") else 1
        if (parent.dim() != new.dim() or not 0 < len(axes) <= allowed
                or any(new.shape[i] < parent.shape[i] for i in axes)):
            raise LgenError(f"cannot grow the parent's {what}: {key} is {tuple(parent.shape)}, the grown network "
                            f"needs {tuple(new.shape)} (only the d axis and new domains' parameters may grow, "
                            f"d by {d_growth})")
        out = new.clone()
        out[tuple(slice(0, n) for n in parent.shape)] = parent  # the parent's block, new parts as initialised
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
    groups, parent_groups = run.model.domain_groups, parent_run.model.domain_groups
    expected = dataclasses.replace(parent_run.model, d_dim=run.model.d_dim, domain_groups=list(groups),
                                   adapter_rank=run.model.adapter_rank if not parent_groups else
                                   parent_run.model.adapter_rank)
    if expected != run.model or grown < 0 or list(groups[:len(parent_groups)]) != list(parent_groups):
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


def phase_group(cfg, tc, phase) -> int:
    """The domain group a phase learns on its own under --growth adapters (domain_groups.py); 0: the
    base, or any phase of another growth, which trains every weight."""
    if tc.growth != "adapters" or not cfg.domain_groups or tc.joint or tc.d_per_domain is None:
        return 0
    return domain_group(cfg, phase.d_slots - tc.d_per_domain)


def isolation_for(G: torch.nn.Module, tc, phase) -> Optional[GroupIsolation]:
    """What a phase may train under --growth adapters: its own group only; None: every weight."""
    group = phase_group(G.cfg, tc, phase)
    return GroupIsolation(G, group) if group > 0 else None


@torch.no_grad()
def begin_group(trainer: TrainerView, phase) -> None:
    """A domain boundary inside a run, under --growth adapters: G restarts from its EMA copy (what
    the snapshot of the old domains is, so their frozen parameters stay exactly the snapshot's), the
    new group's batch-norm statistics from the base's, and G's Adam state fresh, so that Adam moves
    no entry whose gradient is masked to zero. A continued run starts the same way from its parent."""
    group = phase_group(trainer.cfg, trainer.tc, phase)
    if group == 0:
        return
    trainer.G.load_state_dict(trainer.G_ema.state_dict())
    start_group(trainer.G, group)
    start_group(trainer.G_ema, group)
    for p in trainer.G.parameters():
        trainer.opt_g.state.pop(p, None)
