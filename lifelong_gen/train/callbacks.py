"""Hooks of the lifelong loop, and the callbacks that do its side work.

The trainer owns the method (critic and generator updates, replay, checkpoints); what a
run shows and writes along the way lives here, as Avalanche-style callbacks called at
`before_domain` / `after_step` / `after_domain`: the progress display (a rich bar on a
terminal, plain log lines otherwise), the sample grid of each domain's end and the
per-domain bundle snapshot (the training log is one too: metrics_log.py).
`Trainer(callbacks=[...])` adds a user's own. These three hooks are the loop's only ones.

`after_step` receives the step's losses as 0-dim device tensors: reading one
(`float(v)`) waits for the device, so callbacks do it only when they show something.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from lifelong_gen import bundle as bundle_files
from lifelong_gen.images import save_grid
from lifelong_gen.train.phase import Losses, Phase
from lifelong_gen.train.trainer_view import TrainerView

log = logging.getLogger("lifelong_gen")


class Callback:
    """Base class: every hook is a no-op. `close` runs however training ends."""

    def before_domain(self, trainer: TrainerView, phase: Phase) -> None:
        """A domain starts, or resumes in this process (after a checkpoint mid-domain)."""

    def after_step(self, trainer: TrainerView, phase: Phase, losses: Losses) -> None:
        """After each generator step (trainer.step counts it already), before any checkpoint of it."""

    def after_domain(self, trainer: TrainerView, phase: Phase) -> None:
        """After the domain's last step and its replay snapshot (trainer.phase_position has moved on)."""

    def close(self) -> None:
        """However training ends (a rich bar must give the terminal back)."""


class StepFunction(Callback):
    """Calls `fn(trainer, losses)` after every step with the losses as Python floats.

    Reading the floats synchronises with the device every step: meant for tests and
    small runs (`Trainer(..., callbacks=[StepFunction(fn)])`), not for speed.
    """

    def __init__(self, fn: Callable[[TrainerView, dict[str, float]], None]):
        self.fn = fn

    def after_step(self, trainer, phase, losses):
        self.fn(trainer, {k: float(v) for k, v in losses.items()})


def loss_text(losses: dict[str, Any]) -> str:
    return (f"W {float(losses['wasserstein']):.3f} gp {float(losses['gp']):.3f} G {float(losses['loss_g']):.3f} "
            f"MI {float(losses['info']):.3f}")


class PlainProgress(Callback):
    """One plain log line at most every `every_seconds` (and at each domain's end), for logs.

    When stderr is not a terminal (nohup, a batch scheduler, `2> log`), a progress bar
    prints nothing useful until it is finished; this writes step, domain, s/step, ETA and
    the last losses instead.
    """

    every_seconds = 10.0

    def __init__(self, emit: Callable[[str], None]):
        self.emit = emit

    def before_domain(self, trainer, phase):
        self.start_step = trainer.step
        self.start = self.last = time.perf_counter()

    def after_step(self, trainer, phase, losses):
        now, step = time.perf_counter(), trainer.step
        if now - self.last < self.every_seconds and step != phase.steps:
            return
        self.last = now
        per_step = (now - self.start) / max(1, step - self.start_step)
        eta = int(per_step * (phase.steps - step))
        self.emit(f"domain {phase.index + 1}/{trainer.lineage_length} {phase.name}: step {step}/{phase.steps} "
                  f"({100 * step // phase.steps}%), {per_step:.3f} s/step, ETA {eta // 3600}:{eta // 60 % 60:02d}:"
                  f"{eta % 60:02d}, {loss_text(losses)}")


class RichProgress(Callback):
    """A rich progress bar per domain, for a terminal (losses redrawn at most 4 times a second)."""

    def __init__(self):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), TextColumn("{task.fields[losses]}"),
                                 console=Console(stderr=True))
        self.progress.start()
        self.task, self.last = None, 0.0

    def before_domain(self, trainer, phase):
        self.task = self.progress.add_task(f"{phase.index + 1}/{trainer.lineage_length} {phase.name}",
                                           total=phase.steps, completed=trainer.step, losses="")

    def after_step(self, trainer, phase, losses):
        now = time.perf_counter()
        if now - self.last >= 0.25 or trainer.step == phase.steps:  # the losses text reads the device
            self.last = now
            self.progress.update(self.task, completed=trainer.step, losses=loss_text(losses))
        else:
            self.progress.update(self.task, completed=trainer.step)

    def close(self):
        self.progress.stop()


def progress_display(enabled: bool) -> Optional[Callback]:
    """A rich bar on a terminal, plain `lgen:` log lines otherwise, None when disabled."""
    if not enabled:
        return None
    if not sys.stderr.isatty():
        return PlainProgress(lambda line: log.info("%s", line))
    return RichProgress()


class SampleGrids(Callback):
    """samples/domain-K.png at each domain's end: one row per active d, shared (z, c) per column."""

    def __init__(self, columns: int = 8):
        self.columns = columns

    def after_domain(self, trainer, phase):
        if trainer.dist.is_main:
            write_grid(trainer.G_ema, trainer.run_dir / bundle_files.SAMPLES_DIR / f"domain-{phase.index + 1}.png",
                       phase.d_slots, self.columns)


@torch.no_grad()
def write_grid(G: torch.nn.Module, path: Path, d_slots: int, columns: int = 8) -> None:
    """PNG grid from G: one row per category below `d_slots`, fixed codes so grids compare across domains.

    Written by images.save_grid, like `lgen sample`'s grids (its layout recorded for `lgen encode`),
    not torchvision's save_image, whose import (torchvision's models, torch._dynamo) cost seconds.
    """
    from lifelong_gen.train.replay import sample_noise

    cfg, device = G.cfg, next(G.parameters()).device
    z, c = sample_noise(columns, cfg.z_dim, cfg.c_dim, torch.Generator().manual_seed(1234))
    z, c = z.repeat(d_slots, 1), c.repeat(d_slots, 1)
    d = torch.nn.functional.one_hot(torch.arange(d_slots).repeat_interleave(columns), cfg.d_dim).float()
    images = G(z.to(device), c.to(device), d.to(device)).float().cpu().numpy()
    save_grid(images, path, columns)


class DomainSnapshots(Callback):
    """snapshots/domain-K/: a loadable bundle (G_ema and S) of the model after each domain."""

    def after_domain(self, trainer, phase):
        if trainer.dist.is_main:
            from lifelong_gen.train import checkpoint as ckpt

            ckpt.save_bundle(trainer.run_dir / bundle_files.SNAPSHOTS_DIR / f"domain-{phase.index + 1}", trainer.run,
                             {"G_ema": trainer.G_ema, "S": trainer.S})


@contextlib.contextmanager
def closing_all(callbacks: list[Callback]):
    """Every callback's `close`, however the loop ends (a rich bar must give the terminal back)."""
    try:
        yield callbacks
    finally:
        for cb in callbacks:
            cb.close()
