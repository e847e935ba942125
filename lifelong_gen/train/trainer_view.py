"""What the trainer's helpers may read and set on it: the trainer's surface, declared once.

Owns `TrainerView`, a Protocol (Avalanche's `SGDStrategyProtocol` plays the same part) of the
attributes and methods that callbacks (callbacks.py, metrics_log.py), the checkpoint state
(training_state.py), S's recalibration (bn_recalibration.py) and a continued run's start
(growth.py) use. They type their `trainer` argument with it and import nothing of trainer.py, so
the trainer imports them without a circle, and a change to the trainer that breaks one of them
shows here. Anything a helper needs that is not listed is a change to this file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Protocol

import torch

from lifelong_gen.config import ModelConfig, RunConfig, TrainConfig
from lifelong_gen.train.distributed import DistContext
from lifelong_gen.train.phase import Phase
from lifelong_gen.train.replay import RealBatch, ReplaySnapshot


class RunLogState(Protocol):
    """The part of the training log (metrics_log.MetricsLog) a checkpoint holds."""

    def state(self) -> dict[str, Any]: ...

    def restore(self, state: dict[str, Any]) -> None: ...

    def discard(self) -> None: ...


class TrainerView(Protocol):
    """The trainer as its helpers see it (trainer.Trainer implements it)."""

    run: RunConfig
    cfg: ModelConfig  # run.model
    tc: TrainConfig  # run.train
    run_dir: Path
    device: torch.device
    dist: DistContext
    G: torch.nn.Module
    D: torch.nn.Module
    S: torch.nn.Module
    G_ema: torch.nn.Module
    opt_g: torch.optim.Optimizer  # G's (and a separate S's) Adam: growth restarts G's state at a boundary
    rng: torch.Generator  # the run's one random stream
    snapshot: Optional[ReplaySnapshot]  # G_{k-1} of eq. (7), None before the first boundary
    phase_position: int  # position in the run's phases (a Phase's `index` is its place in the lineage)
    step: int  # generator steps done in the current phase
    global_step: int
    metrics_log: RunLogState

    @property
    def lineage_length(self) -> int: ...

    @property
    def networks(self) -> dict[str, torch.nn.Module]: ...

    def real_batch(self, phase: Phase, batch: int, generator: Optional[torch.Generator] = None,
                   replay: bool = True) -> RealBatch: ...

    def make_rng(self, restart_at: int = 0) -> torch.Generator: ...

    def write_bundle(self) -> None: ...
