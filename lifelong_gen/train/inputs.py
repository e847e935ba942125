"""What a run starts from, before any network exists: the precision this machine runs, the
parent's networks (a continued run), and the domains' data, recorded in the run's config.

Owns `RunInputs` and `load_run_inputs`. The order is the user's: a damaged or mismatched
parent fails in one line before any data work, and what `--precision auto` chose is said
only once the parent and the data have loaded, so an error there stays one line.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from lifelong_gen.config import RunConfig
from lifelong_gen.errors import LgenError
from lifelong_gen.train.domains import DomainData, load_domain
from lifelong_gen.train.growth import load_parent
from lifelong_gen.train.process import resolve_precision

log = logging.getLogger("lifelong_gen")


@dataclass
class RunInputs:
    run: RunConfig  # the caller's, with the precision resolved and this run's data sources recorded
    data: list[DomainData]  # the domains this run learns (the inherited ones live on in the replay snapshot)
    parent_nets: Optional[dict[str, torch.nn.Module]]  # a continued run's parent, at its own size


def load_run_inputs(run: RunConfig, device: torch.device, data: Optional[list[DomainData]] = None,
                    parent: Optional[Path] = None) -> RunInputs:
    """Resolve `--precision auto` for `device`, load the parent (when given) and the data (unless
    given: tests), and record where the data came from; the caller's `run` is left as it was."""
    precision = resolve_precision(run.train.precision, device)
    chose = None
    if precision != run.train.precision:  # config.json records what auto chose
        chose = f"precision {run.train.precision}: {precision} on this machine"
        run = dataclasses.replace(run, train=dataclasses.replace(run.train, precision=precision))
    inherited = run.train.inherited_domains
    if parent is not None and not inherited:
        raise LgenError("a parent model was given, but the config continues none (use lineage.continue_config)")
    parent_nets = load_parent(Path(parent), run) if parent is not None else None
    cfg, tc = run.model, run.train
    if data is None:
        data = [load_domain(spec, cfg.img_channels, cfg.img_resolution, tc.data_root, tc.download)
                for spec in tc.domains[inherited:]]
    if chose is not None:
        log.info(chose)
    run = dataclasses.replace(run, data_sources=list(run.data_sources)[:inherited] + [d.describe() for d in data])
    return RunInputs(run, data, parent_nets)
