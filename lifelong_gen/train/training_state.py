"""A training's resumable state: what a checkpoint holds of a Trainer, captured and applied.

Owns `TrainingState`: the networks (G, G_ema, S, D and the replay snapshot), both optimizers,
the loop's position (phase, step, global step), every rank's random streams, the metrics
log's state and the numerics the run had (threads, CPU capability: what bit-identity on
resume depends on). `capture(trainer)` reads it (a collective under torchrun: the random
streams of every rank are gathered), `apply(trainer)` puts it back; `save` and `restore`
write and read it through checkpoint.py (atomic, with a manifest, the newest complete
checkpoint kept until the next one is whole). Checkpoints of versions with biases before
batch norm are folded on the way in (legacy.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional

import torch

from lifelong_gen.errors import LgenError
from lifelong_gen.train import checkpoint as ckpt
from lifelong_gen.train import legacy
from lifelong_gen.train.networks import build_networks, parameter_groups
from lifelong_gen.train.replay import ReplaySnapshot
from lifelong_gen.train.trainer_view import TrainerView

log = logging.getLogger("lifelong_gen")

OPTIMIZERS = ("opt_g", "opt_d")


def _rank_suffix(rank: int) -> str:
    return "" if rank == 0 else f".rank{rank}"  # rank 0 keeps the single-process names


@dataclass
class TrainingState:
    """A checkpoint's two halves: `state` (JSON: position, optimizer layout, window) and `tensors`."""

    state: dict[str, Any]
    tensors: dict[str, torch.Tensor]

    @classmethod
    def capture(cls, trainer: TrainerView) -> Optional[TrainingState]:
        """The trainer's state now; None on ranks other than 0 (their random streams are gathered to it)."""
        rng_train = trainer.dist.gather_states(trainer.rng.get_state())
        rng_torch = trainer.dist.gather_states(torch.get_rng_state())
        if not trainer.dist.is_main:
            return None
        tensors: dict[str, torch.Tensor] = {}
        for key, module in trainer.networks.items():
            tensors.update({f"{key}.{name}": value for name, value in module.state_dict().items()})
        if trainer.snapshot is not None:
            tensors.update({f"snapshot.{name}": value for name, value in trainer.snapshot.state_dict().items()})
        opt_meta = {}
        for key in OPTIMIZERS:
            t, opt_meta[key] = ckpt.optimizer_to_tensors(getattr(trainer, key), key)
            tensors.update(t)
        for rank, (train_state, torch_state) in enumerate(zip(rng_train, rng_torch)):
            tensors["rng.train" + _rank_suffix(rank)] = train_state
            tensors["rng.torch" + _rank_suffix(rank)] = torch_state
        state = {
            "world_size": trainer.dist.world_size,  # a resume must use as many processes
            "phase_index": trainer.phase_position, "step": trainer.step, "global_step": trainer.global_step,
            "snapshot_d_slots": trainer.snapshot.d_slots if trainer.snapshot else None,
            "optimizers": opt_meta,
            # The losses of the steps since the last metrics line: a resume then logs the same averages.
            **trainer.metrics_log.state(),
            "rng_device": trainer.rng.device.type,
            "numerics": ckpt.numerics(trainer.device),  # what bit-identity on resume depends on
        }
        return cls(state, tensors)

    def _sub(self, prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) + 1:]: v for k, v in self.tensors.items() if k.startswith(prefix + ".")}

    def apply(self, trainer: TrainerView) -> None:
        """Put this state into `trainer` (built from the same config), on this process's rank."""
        state = self.state
        saved_world = state["world_size"]
        if saved_world != trainer.dist.world_size:
            raise LgenError(f"{trainer.run_dir} was checkpointed by {saved_world} process(es); resume it with the "
                            f"same number (torchrun --nproc_per_node {saved_world}), not {trainer.dist.world_size}")
        folded = {}  # a checkpoint of an older version: biases before batch norm folded (legacy.py)
        for key, module in trainer.networks.items():
            weights, folded[key] = legacy.fold_norm_biases(module, self._sub(key))
            module.load_state_dict(weights, strict=True)
        if state["snapshot_d_slots"] is not None:
            G_old, _, _ = build_networks(trainer.cfg)
            G_old.load_state_dict(legacy.fold_norm_biases(G_old, self._sub("snapshot"))[0], strict=True)
            G_old.to(trainer.device)
            trainer.snapshot = ReplaySnapshot(G_old, state["snapshot_d_slots"])
        ckpt.warn_if_numerics_differ(state.get("numerics"), trainer.device)  # absent in older versions' checkpoints
        maps = legacy.optimizer_index_maps(parameter_groups(trainer.G, trainer.D, trainer.S), folded)
        for key in OPTIMIZERS:
            ckpt.optimizer_from_tensors(getattr(trainer, key), key, self.tensors, state["optimizers"][key],
                                        maps.get(key))
        legacy.notice_once(str(trainer.run_dir / "checkpoints"),
                           sorted(f"{k}.{n}" for k, v in folded.items() for n in v))
        trainer.phase_position, trainer.step, trainer.global_step = state["phase_index"], state["step"], state["global_step"]
        suffix = _rank_suffix(trainer.dist.rank)
        saved_device = state["rng_device"]
        if saved_device == trainer.rng.device.type:
            trainer.rng.set_state(self.tensors["rng.train" + suffix])
        else:  # a CPU generator's state means nothing to a CUDA one (and back)
            log.warning("the checkpoint's random stream was on %s, this run trains on %s: continuing with a fresh "
                        "stream (not bit-identical to an uninterrupted run)", saved_device, trainer.rng.device.type)
            trainer.rng = trainer.make_rng(restart_at=trainer.global_step)
        torch.set_rng_state(self.tensors["rng.torch" + suffix])
        trainer.metrics_log.restore(state)


def save(trainer: TrainerView) -> None:
    """Write the trainer's state as checkpoints/step-N/ (atomic), then the bundle files at the run's top level.

    Collective under torchrun: rank 0 writes, the others wait at a barrier, so no rank runs
    ahead of a checkpoint being written.
    """
    captured = TrainingState.capture(trainer)
    if captured is None:
        trainer.dist.barrier()
        return
    try:
        ckpt.save_checkpoint(trainer.run_dir, trainer.global_step, captured.state, captured.tensors)
        trainer.write_bundle()
    except OSError as e:  # a full disk, a read-only mount: the newest complete checkpoint is untouched
        raise LgenError(f"cannot write the checkpoint of step {trainer.global_step} in {trainer.run_dir} "
                        f"({e.strerror or e}); the previous checkpoint is intact: fix that, then "
                        f"`lgen train --resume {trainer.run_dir}`") from None
    trainer.dist.barrier()


def restore(trainer: TrainerView) -> bool:
    """Load the newest checkpoint of the trainer's run directory; False when there is none (start fresh)."""
    found = ckpt.load_checkpoint(trainer.run_dir)
    if found is None:
        trainer.metrics_log.discard()
        return False
    TrainingState(*found).apply(trainer)
    log.info("resumed %s at domain %d, step %d (global %d)", trainer.run_dir, trainer.phase_position + 1,
             trainer.step, trainer.global_step)
    return True
