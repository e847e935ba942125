"""A run trained before `--s-bn-recalibration` existed, given the S statistics a retraining would have.

Owns `recalibrate_run` (its command line: scripts/recalibrate_s.py). For each domain RUN learned,
its snapshot's S (snapshots/domain-K) and, for the last domain, the run's own S get their
batch-norm statistics recomputed exactly as the trainer now does at that domain's end
(bn_recalibration.py): the same batches of the domain's images and replay from the previous
domain's snapshot, drawn from the same generator. Training never reads these statistics, so no
weight would differ: the files written are those a retraining at this version writes
(tests/test_bn_recalibration.py checks that on a tiny run). config.json records
`s_bn_recalibration`; manifests are updated. The ONNX graphs and metrics are then stale:
`lgen export RUN` and `lgen evaluate RUN` after it.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from lifelong_gen.bundle import SNAPSHOTS_DIR
from lifelong_gen.config import domain_slots, read_run_config
from lifelong_gen.errors import LgenError
from lifelong_gen.train import checkpoint as ckpt
from lifelong_gen.train.bn_recalibration import recalibrate_s
from lifelong_gen.train.replay import ReplaySnapshot
from lifelong_gen.train.trainer import Trainer


def recalibrate_run(run_dir: Path, batches: int, data=None) -> list[Path]:
    """Recalibrate RUN's S and its snapshots' S in place; returns the bundle directories written."""
    run_dir = Path(run_dir)
    old = read_run_config(run_dir)
    if old.train.inherited_domains:
        # Its first domain replayed the parent's G grown to this run's codes (train/growth.py).
        raise LgenError(f"{run_dir} continued another model: continue it again with this version instead")
    run = dataclasses.replace(old, train=dataclasses.replace(old.train, s_bn_recalibration=batches))
    written = []
    with tempfile.TemporaryDirectory() as scratch:
        # A trainer only for its phases, real batches and networks: it writes nothing to run_dir.
        trainer = Trainer(run, Path(scratch) / "run", data=data, progress=False)
        for i, phase in enumerate(trainer.phases):
            snapshot = run_dir / SNAPSHOTS_DIR / f"domain-{phase.index + 1}"
            targets = [snapshot] if snapshot.is_dir() else []
            if i == len(trainer.phases) - 1:
                targets.append(run_dir)
            if not targets:
                continue
            _, nets = ckpt.load_bundle(targets[-1], which=("S",))
            trainer.S.load_state_dict(nets["S"].state_dict())
            trainer.snapshot = None
            if phase.replay_ratio > 0:  # replay of the previous domain's frozen EMA G, as in training
                _, prev = ckpt.load_bundle(run_dir / SNAPSHOTS_DIR / f"domain-{phase.index}", which=("G_ema",))
                trainer.snapshot = ReplaySnapshot(prev["G_ema"], domain_slots(run.train, run.model, phase.index - 1))
            recalibrate_s(trainer, phase)
            for target in targets:
                keys = ("G", "G_ema", "S", "D") if target == run_dir else ("G_ema", "S")
                _, nets = ckpt.load_bundle(target, which=tuple(k for k in keys if k != "S"))
                ckpt.save_bundle(target, run, {**nets, "S": trainer.S})
                written.append(target)
    return written
