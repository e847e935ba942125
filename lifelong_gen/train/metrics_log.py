"""The training log, RUN/metrics.jsonl: one line of averaged losses every `log_every` steps.

Owns `LossWindow` (the per-step losses since the last line, kept as device tensors until a
line is written: one device-to-host copy per line, not one per loss per step) and
`MetricsLog`, the callback that fills the window and writes the lines. Its state (the
window, the file's length at the last line) goes into each checkpoint, so a resumed run
truncates lines of steps it re-runs and writes the same averages as an uninterrupted one.
Under torchrun every rank averages its window with the others' (a collective), rank 0 writes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence, Union

import torch

from lifelong_gen.bundle import TRAINING_LOG_NAME
from lifelong_gen.train.callbacks import Callback
from lifelong_gen.train.phase import Losses


class LossWindow:
    """Per-step losses since the last metrics line, kept as device tensors until read.

    `floats()` turns them into Python floats with one stacked device-to-host copy; the
    values are exactly those `.item()` per step would give. Windows restored from a
    checkpoint are already floats.
    """

    def __init__(self, steps: Sequence[dict] = ()):
        self.steps: list[dict[str, Union[float, torch.Tensor]]] = list(steps)

    def append(self, losses: Losses) -> None:
        self.steps.append(losses)

    def __len__(self) -> int:
        return len(self.steps)

    def floats(self) -> list[dict[str, float]]:
        pending = [i for i, s in enumerate(self.steps) if any(isinstance(v, torch.Tensor) for v in s.values())]
        if pending:
            keys = list(self.steps[pending[0]])
            values = torch.stack([torch.stack([self.steps[i][k] for k in keys]) for i in pending]).cpu().tolist()
            for i, row in zip(pending, values):
                self.steps[i] = dict(zip(keys, row))
        return self.steps  # type: ignore[return-value]

    def mean(self) -> dict[str, float]:
        steps = self.floats()
        return {k: sum(s[k] for s in steps) / len(steps) for k in steps[0]}


class MetricsLog(Callback):
    """Appends a line to RUN/metrics.jsonl every `log_every` steps and at each domain's last step."""

    def __init__(self, run_dir: Path, log_every: int, dist):
        self.path = Path(run_dir) / TRAINING_LOG_NAME
        self.log_every, self.dist = log_every, dist
        self.window = LossWindow()
        self.offset = 0  # the file's length after its last line: what a resume truncates it to
        self.t0 = time.perf_counter()

    def before_domain(self, trainer, phase):
        self.t0 = time.perf_counter()

    def after_step(self, trainer, phase, losses):
        self.window.append(losses)
        if trainer.step % self.log_every == 0 or trainer.step == phase.steps:
            self._write(trainer, phase)
            self.t0 = time.perf_counter()

    def after_domain(self, trainer, phase):
        self.window = LossWindow()

    def _write(self, trainer, phase) -> None:
        """Average the window (one device read), average over ranks, append the line (rank 0)."""
        mean = self.dist.average_scalars(self.window.mean())
        seconds = time.perf_counter() - self.t0  # after the read: includes the device work still queued
        n = len(self.window)
        self.window = LossWindow()
        if not self.dist.is_main:
            return
        record = {"domain": phase.name, "domain_index": phase.index, "step": trainer.step,
                  "global_step": trainer.global_step, "sec_per_step": seconds / n, **mean}
        with open(self.path, "a") as f:  # append-only; a resume truncates it to the offset
            f.write(json.dumps(record) + "\n")
        self.offset = self.path.stat().st_size

    # ------------------------------------------------------------ checkpoints

    def state(self) -> dict[str, Any]:
        """What a checkpoint records: the losses since the last line, and the file's length at it."""
        return {"window": self.window.floats(), "metrics_offset": self.offset}

    def restore(self, state: dict[str, Any]) -> None:
        """Back to a checkpoint's state; lines written after it (steps to be re-run) are cut off."""
        self.offset = state["metrics_offset"]
        self.window = LossWindow(state["window"])
        if self.path.exists() and self.dist.is_main:
            with open(self.path, "r+b") as f:
                f.truncate(self.offset)

    def discard(self) -> None:
        """A fresh start: lines of an earlier attempt killed before its first checkpoint go."""
        if self.dist.is_main:
            self.path.unlink(missing_ok=True)
