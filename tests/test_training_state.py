"""A Trainer's checkpoint state (train/training_state.py): capture, JSON round trip, apply."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import TINY
from lifelong_gen.config import resolve_run_config
from lifelong_gen.train.trainer import Trainer
from lifelong_gen.train.training_state import TrainingState

# The step's speed settings change what a step computes, so each must resume exactly too:
# the reused real batch is drawn in the same step, the penalty on every k-th interpolate.
FAST = {"gp_subsample": 2, "s_real_weight": 1.0, "s_real_reuse": True, "info_augment_weight": 1.0}


@pytest.mark.parametrize("extra", [{}, FAST, {**FAST, "precision": "bf16"}],
                         ids=["preset-step", "fast", "fast-bf16"])
def test_capture_then_apply_continues_exactly_as_the_original(tmp_path, synthetic28, extra):
    run = resolve_run_config({**TINY, "domains": ["synthetic:bars", "synthetic:rings"], "steps_per_domain": 4,
                              **extra})
    a = Trainer(run, tmp_path / "a", data=synthetic28, progress=False)
    a.train_step(a.phases[0])
    a.advance_domain(a.phases[0])  # a replay snapshot to carry too
    a.train_step(a.phases[1])
    a.step, a.global_step = 1, 5
    captured = TrainingState.capture(a)
    state = json.loads(json.dumps(captured.state))  # as state.json holds it
    assert (state["phase_index"], state["step"], state["global_step"], state["snapshot_d_slots"]) == (1, 1, 5, 10)

    b = Trainer(run, tmp_path / "b", data=synthetic28, progress=False)
    # Copies, as read back from disk: the captured tensors are the live ones of `a` (state_dict views,
    # Adam's moments), which a's next step changes in place.
    TrainingState(state, {k: v.clone() for k, v in captured.tensors.items()}).apply(b)
    assert (b.phase_position, b.step, b.global_step) == (1, 1, 5) and b.snapshot is not None
    for key, module in a.networks.items():
        other = b.networks[key].state_dict()
        assert all(torch.equal(v, other[k]) for k, v in module.state_dict().items()), key
    other = b.snapshot.state_dict()
    assert all(torch.equal(v, other[k]) for k, v in a.snapshot.state_dict().items())
    # The next step of both draws the same codes and data and gives the same losses, to the bit.
    la, lb = a.train_step(a.phases[1]), b.train_step(b.phases[1])
    assert la.keys() == lb.keys() and all(torch.equal(la[k], lb[k]) for k in la)
