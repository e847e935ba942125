"""A training step makes no host synchronisation, checked on the CPU with the profiler's op trace.

On a GPU a step that reads a value back (`.item()`, a Python `if` on a tensor, `nonzero`,
boolean-mask indexing, `torch.multinomial`) waits for every queued kernel, and cannot be
captured in a CUDA graph. Every such read goes through one of the operators below, so a
profile of N steps of each training path that holds none of them proves the step sync-free.
The logging boundary (the metrics log reads its window of device losses every `log_every`
steps) lies outside `train_step`, so outside the profile.

One exception, named: the CPU kernel of the fused Adam reads its step counters from host
memory (`aten::_fused_adam_` calls `item` inside). That is the CPU implementation of the
kernel; the CUDA one reads them on the device.
"""

from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from conftest import TINY
from lifelong_gen.config import resolve_run_config
from lifelong_gen.train.trainer import Trainer

SYNC_OPS = frozenset({"aten::_local_scalar_dense", "aten::item", "aten::nonzero", "aten::multinomial",
                      "aten::masked_select"})
# The operator whose CPU kernel may read host scalars (module docstring).
CPU_KERNEL_READS = "aten::_fused_adam_"

# Every path of the step: replay, alignment, both interpretability levers, per-domain
# clustering with SCAN neighbours; then the other layouts one at a time.
LEVERS = {"g_conditioning": "cbn", "info_augment_weight": 1.0, "s_real_weight": 1.0, "s_real_by_domain": True,
          "s_neighbour_weight": 0.2, "s_real_reuse": True, "d_per_domain": 2, "gp_subsample": 2}
PATHS = {
    "levers-replay-alignment": {**LEVERS, "growth": "replay", "replay_alignment": 0.1},
    # --growth adapters: a d prior with zeros (torch.multinomial before), masks, S's old samples.
    "adapters": {**LEVERS, "growth": "adapters"},
    # a replay ratio off the uniform share: a non-uniform d prior under replay.
    "replay-ratio": {"d_per_domain": 2, "growth": "replay", "replay_ratio": 0.3},
    # a joint run: balanced batches drawn by per-image weights (torch.multinomial before).
    "joint": {"joint": True},
    "shared-encoder": {"encoder_shares_critic": True},
    "bf16": {**LEVERS, "precision": "bf16"},
    # --cuda-graph's step: the EMA's rate from a device tensor (the graph's static buffer).
    "graph-ema-rate": {**LEVERS, "growth": "replay"},
}


def synchronising_ops(prof) -> dict[str, int]:
    """{operator: count} of the host reads in the trace, those inside the fused Adam's CPU kernel aside."""
    found: dict[str, int] = {}
    for event in prof.events():
        if event.name not in SYNC_OPS:
            continue
        parent = event.cpu_parent
        while parent is not None and parent.name != CPU_KERNEL_READS:
            parent = parent.cpu_parent
        if parent is None:
            found[event.name] = found.get(event.name, 0) + 1
    return found


@pytest.mark.parametrize("path", sorted(PATHS))
def test_the_training_step_is_sync_free(tmp_path, synthetic28, path):
    settings = {**TINY, "domains": [d.spec for d in synthetic28], "steps_per_domain": 6, **PATHS[path]}
    trainer = Trainer(resolve_run_config(settings), tmp_path / "run", data=synthetic28, progress=False)
    phase = trainer.phases[0]
    if not trainer.tc.joint:  # the second domain's step: replay (or the isolated group) on
        trainer.advance_domain(phase)
        phase = trainer.phases[1]
        trainer.enter_phase(phase)
    if path in ("adapters", "replay-ratio"):
        assert phase.d_prior is not None  # the path drawn from a prior
    if path == "graph-ema-rate":
        trainer.ema_weight = torch.full((), trainer.ema_rate(0))  # what --cuda-graph sets, on a GPU
    trainer.train_step(phase)  # first use: the neighbour tables are mined here, outside the count
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            trainer.train_step(phase)
    assert synchronising_ops(prof) == {}


def test_the_check_sees_a_read(tmp_path, synthetic28):
    """The trace check fails on a step that reads a value back (a control: the test above can fail)."""
    settings = {**TINY, "domains": [synthetic28[0].spec], "steps_per_domain": 3}
    trainer = Trainer(resolve_run_config(settings), tmp_path / "run", data=synthetic28[:1], progress=False)
    phase = trainer.phases[0]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        losses = trainer.train_step(phase)
        if losses["gp"] > 0:  # a Python branch on a tensor value
            torch.multinomial(torch.ones(3), 2)
    assert synchronising_ops(prof).keys() >= {"aten::_local_scalar_dense", "aten::item"}
