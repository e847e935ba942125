"""Continuing a trained model onto new domains: which parent, which settings, the lineage record.

`lgen train --from MODEL --domains NEW` is the paper's setting across runs (Definition 2):
while a new domain is learned, only its data and the previous generator are available.
This module owns the torch-free half of it:

- `resolve_parent`: MODEL as resolve.py resolves any model (a run or bundle directory, the
  name of an embedded model such as `mnist-fashion`, or `ORG/NAME[@REV]` through the HF
  cache) -> a local directory with config.json, the EMA generator, S and, when present, the
  critic, each checked against the bundle's manifest.
- `continue_config`: the child's RunConfig. Method settings (the networks, d_per_domain,
  the loss weights and levers) are the parent's and cannot be changed; training settings
  (steps, batch, learning rates, replay, seed, cadence, device-side options) may be.
  `domains` becomes the whole lineage (the parent's first) with `inherited_domains` set,
  and d_dim grows by d_per_domain per new domain (train/growth.py grows the weights).
- the lineage record in config.json's `parent`: the model as given, where it was found,
  its revision, the sha256 of the weights used, its domains and its own parent (nested,
  so a chain of continuations is recorded whole; model_card.py reads the chain back).

The weights themselves are loaded and grown on the torch side (train/trainer.py).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from lifelong_gen import __version__
from lifelong_gen.atomic import sha256_file
from lifelong_gen.bundle import NETWORK_FILES
from lifelong_gen.bundle.resolve import resolve_bundle
from lifelong_gen.config import (
    EXECUTION_SETTINGS,
    MODEL_KEYS,
    S_BN_RECALIBRATION,
    ModelConfig,
    RunConfig,
    read_run_config,
    resolved_growth,
)
from lifelong_gen.domain_names import check_domains, native_shape, parse_domains
from lifelong_gen.errors import LgenError
from lifelong_gen.settings import flag_of

# A continued run keeps these training settings of its parent: they define the objective
# the parent's codes were learned under (the model's shape is fixed by its weights anyway).
METHOD_SETTINGS = ("d_per_domain", "gp_lambda", "info_weight_discrete", "info_weight_continuous",
                   "info_augment_weight", "s_real_weight", "s_balance_weight")
# What `--from` may change (the schedule, optimiser, replay and seed, and every execution
# setting); anything else given is refused in one line.
TRAINING_SETTINGS = ("steps_per_domain", "batch_size", "n_critic", "lr_g", "lr_d", "betas", "replay", "growth",
                     "replay_ratio", "replay_alignment", "ema_decay", "seed", "s_bn_recalibration",
                     *EXECUTION_SETTINGS)
REQUIRED_WEIGHTS = ("G_ema", "S")
CRITIC_CHOICES = ("auto", "parent", "fresh")


@dataclass
class Parent:
    """A model to continue: where its files are, its config, and how it was found."""

    path: Path  # a local directory with config.json and the weight files
    run: RunConfig
    record: dict[str, Any]  # the lineage entry (without the critic choice, made later)
    has_critic: bool


def resolve_parent(value: str, *, endpoint: Optional[str] = None, weights: bool = True) -> Parent:
    """The parent model named by `--from VALUE`, checked before any training work.

    Args:
        value: a run or bundle directory, an embedded model's name, or ORG/NAME[@REV].
        endpoint: the Hub URL (default HF_ENDPOINT).
        weights: False for `--dry-run`: only config.json is needed (and fetched).

    One-line LgenError when it names no model, lacks the EMA generator or S, or fails its checks.
    """
    required = [NETWORK_FILES[k] for k in REQUIRED_WEIGHTS] if weights else []
    found = resolve_bundle(value, required, fetch=[NETWORK_FILES["D"]] if weights else [], endpoint=endpoint,
                           hint=": a continuation needs the EMA generator and S (an ONNX-only pull lacks them: "
                                "`lgen pull` without --onnx-only)")
    path = found.path
    run = read_run_config(path)
    record = {"model": value, **found.origin(), "domains": list(run.train.domains), "d_dim": run.model.d_dim,
              "parent": run.parent}
    has_critic = (path / NETWORK_FILES["D"]).is_file()
    if weights:
        used = required + ([NETWORK_FILES["D"]] if has_critic else [])
        record["weights"] = {rel: sha256_file(path / rel) for rel in used}
    return Parent(path=path, run=run, record=record, has_critic=has_critic)


def _grown_model(pm: ModelConfig, d_per_domain: Optional[int], new_domains: int, growth: str,
                 rank: Optional[int]) -> ModelConfig:
    """The parent's model config grown by `new_domains` domains (train/growth.py grows the weights):
    d_dim by d_per_domain each, and with --growth adapters a group of per-domain parameters each."""
    if pm.domain_groups and growth != "adapters":
        raise LgenError("the parent keeps its old domains in per-domain parameters (--growth adapters): "
                        "it grows only that way")
    if growth == "adapters" and d_per_domain is None:
        raise LgenError("--growth adapters needs the parent's domains to have their own d's (--d-per-domain); "
                        "this parent shares one Cat across its domains: continue it with --growth replay")
    if rank is not None and growth != "adapters":
        raise LgenError("--adapter-rank sets --growth adapters' per-domain parameters: give --growth adapters")
    if rank is not None and pm.domain_groups and rank != pm.adapter_rank:
        raise LgenError(f"--adapter-rank {rank}: the parent's domains have adapters of rank {pm.adapter_rank}, "
                        "and every later domain's must match")
    step = d_per_domain or 0
    grown = dataclasses.replace(pm, d_dim=pm.d_dim + step * new_domains)
    if growth == "adapters":
        grown.domain_groups = list(pm.domain_groups) + [pm.d_dim + step * i for i in range(new_domains)]
        if not pm.domain_groups:
            grown.adapter_rank = ModelConfig.adapter_rank if rank is None else rank
    return grown


def continue_config(parent: Parent, domains: str | list[str], overrides: dict[str, Any], *,
                    critic: str = "auto") -> RunConfig:
    """The RunConfig of a run that continues `parent` onto `domains` (validated; one-line errors).

    Args:
        parent: from resolve_parent.
        domains: the new domains (the CLI's comma-separated text or a list).
        overrides: flag settings given; only TRAINING_SETTINGS may differ from the parent's.
        critic: "auto" (the parent's critic when it has one), "parent" (required) or "fresh".
    """
    new = parse_domains(domains) if isinstance(domains, str) else list(domains)
    pm, pt = parent.run.model, parent.run.train
    # pt.domains is the parent's whole lineage: no new spec may hold a class (or folder) it learned.
    check_domains(list(pt.domains) + new, inherited=len(pt.domains))
    for spec in new:
        shape = native_shape(spec)
        if shape is not None and shape != (pm.img_channels, pm.img_resolution):
            raise LgenError(f"domain {spec} comes as {shape[0]}x{shape[1]}x{shape[1]}, the parent model is "
                            f"{pm.img_channels}x{pm.img_resolution}x{pm.img_resolution}: a continuation keeps the "
                            f"parent's shape (a folder: domain is converted to it)")
    overrides = dict(overrides)
    rank = overrides.pop("adapter_rank", None)
    for key, value in overrides.items():
        if key == "joint":
            if value:
                raise LgenError("--joint cannot be combined with --from: a continuation has only the new data")
            continue
        current = getattr(pm, key) if key in MODEL_KEYS else getattr(pt, key, None)
        if key in MODEL_KEYS or key in METHOD_SETTINGS:
            if value != current:
                raise LgenError(f"{flag_of(key)} is fixed by the parent model ({json.dumps(current)}): "
                                f"a continuation keeps the parent's method settings")
        elif key not in TRAINING_SETTINGS:
            raise LgenError(f"{flag_of(key)} cannot be combined with --from")
    if critic not in CRITIC_CHOICES:
        raise LgenError(f"critic {critic!r} is not one of {', '.join(CRITIC_CHOICES)}")
    if critic == "parent" and not parent.has_critic:
        raise LgenError(f"--parent-critic: {parent.record['model']} has no {NETWORK_FILES['D']} "
                        f"(a run directory has one; on the Hub, `lgen push --with-critic`)")
    use_parent_critic = parent.has_critic and critic != "fresh"
    settings = {k: v for k, v in overrides.items() if k in TRAINING_SETTINGS}
    # A continuation trains on this machine, so its precision is chosen here (`auto`: bf16 where the
    # CPU has bf16 instructions), not inherited: the parent's config.json records what *its* machine
    # chose, and bf16 on a CPU without them is slower than fp32.
    settings.setdefault("precision", "auto")
    # Likewise S's recalibration: it changes no weight, only the statistics this run's S ends with,
    # so a parent trained before it existed (0) does not keep its continuations without it.
    settings.setdefault("s_bn_recalibration", S_BN_RECALIBRATION)
    # Each boundary gets today's default growth, not the one the parent's own boundaries had; a parent
    # whose domains already have their own parameters can only grow that way.
    settings.setdefault("growth", "auto")
    train = dataclasses.replace(pt, domains=list(pt.domains) + new, inherited_domains=len(pt.domains),
                                joint=False, **settings)
    train.growth = resolved_growth(train)
    model = _grown_model(pm, pt.d_per_domain, len(new), train.growth, rank)
    train.validate()
    model.validate()
    record = {**parent.record, "critic": "parent" if use_parent_critic else "fresh"}
    sources = list(parent.run.data_sources)[:len(pt.domains)]
    return RunConfig(model=model, train=train, data_sources=sources, package_version=__version__, parent=record)
