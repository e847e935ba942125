"""A Trainer's checkpoint state (train/training_state.py): capture, JSON round trip, apply."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import TINY
from lifelong_gen.config import resolve_run_config
from lifelong_gen.train.trainer import Trainer
from lifelong_gen.train.training_state import TrainingState

# The step's speed settings (issue 23) change what a step computes, so each must resume exactly too:
# the lazy penalty's rhythm follows the step count, the reused real batch is drawn in the same step.
FAST = {"gp_every": 3, "gp_subsample": 2, "fused_critic_forward": True, "s_real_weight": 1.0, "s_real_reuse": True,
        "info_augment_weight": 1.0}


# --s-replay-target previous-s: the snapshot carries a frozen S, whose reading is the next steps' target.
PREVIOUS_S = {**FAST, "s_replay_label_weight": 1.0, "s_replay_target": "previous-s"}


@pytest.mark.parametrize("extra", [{}, FAST, {**FAST, "precision": "bf16"}, PREVIOUS_S],
                         ids=["preset-step", "fast", "fast-bf16", "replay-previous-s"])
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
    assert (b.phase_index, b.step, b.global_step) == (1, 1, 5) and b.snapshot is not None
    for key, module in a.networks.items():
        other = b.networks[key].state_dict()
        assert all(torch.equal(v, other[k]) for k, v in module.state_dict().items()), key
    assert (a.snapshot.S is None) == (b.snapshot.S is None) == (extra is not PREVIOUS_S)
    if a.snapshot.S is not None:
        other = b.snapshot.S.state_dict()
        assert all(torch.equal(v, other[k]) for k, v in a.snapshot.S.state_dict().items())
        assert not b.snapshot.S.training and not any(p.requires_grad for p in b.snapshot.S.parameters())
    # The next step of both draws the same codes and data and gives the same losses, to the bit.
    la, lb = a.train_step(a.phases[1]), b.train_step(b.phases[1])
    assert la.keys() == lb.keys() and all(torch.equal(la[k], lb[k]) for k in la)
