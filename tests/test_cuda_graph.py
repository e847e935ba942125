"""--cuda-graph (train/cuda_graph.py): the whole step captured in one CUDA graph.

On the CPU: the settings' checks, and GraphedStep's bookkeeping with a stand-in for torch.cuda's
graphs whose "replay" runs the eager step and writes its losses into the captured outputs in
place, as a real replay overwrites them. That checks the warm-up count, the EMA rate's static
buffer (filled per step, bit-identical to the float), and that the losses handed out are
copies. Capture itself (that the step holds no host synchronisation) is tests/test_sync_free.py's.
With CUDA: the real capture against eager training.
"""

from __future__ import annotations

import contextlib

import pytest
import torch

from conftest import TINY
from lifelong_gen.config import resolve_run_config
from lifelong_gen.errors import LgenError
from lifelong_gen.train.cuda_graph import WARMUP, GraphedStep, check_cuda_graph
from lifelong_gen.train.trainer import Trainer

SETTINGS = {**TINY, "g_conditioning": "cbn", "info_augment_weight": 1.0, "s_real_weight": 1.0, "d_per_domain": 2,
            "growth": "replay", "steps_per_domain": 6}


class ReplayingGraphs:
    """Stands in for torch.cuda's graphs on the CPU (module docstring)."""

    def __init__(self, trainer: Trainer, phase):
        self.trainer, self.phase = trainer, phase
        self.step: GraphedStep | None = None
        self.captures = self.replays = 0

    def side_stream(self):
        return contextlib.nullcontext()

    def new_graph(self, generator):
        assert generator is self.trainer.rng
        return self

    @contextlib.contextmanager
    def capturing(self, graph):
        self.captures += 1
        yield  # the body ran the step for real: the replay that follows it must not run it again
        self.just_captured = True

    def replay(self):
        self.replays += 1
        if getattr(self, "just_captured", False):
            self.just_captured = False
            return
        losses = self.trainer.train_step(self.phase)
        self.step.stacked.copy_(torch.stack([losses[k] for k in self.step.keys]))


def run(tmp_path, data, name, graphed: bool):
    settings = {**SETTINGS, "domains": [d.spec for d in data]}
    trainer = Trainer(resolve_run_config(settings), tmp_path / name, data=data, progress=False)
    seen, fakes = [], []
    for phase in trainer.phases:
        trainer.enter_phase(phase)
        if graphed:
            trainer.ema_weight = torch.zeros(())  # what --cuda-graph sets on a GPU
            api = ReplayingGraphs(trainer, phase)
            step = GraphedStep(trainer, phase, graph_api=api)
            api.step = step
            fakes.append(api)
        for _ in range(phase.steps):
            seen.append(step() if graphed else trainer.train_step(phase))
            trainer.step += 1
            trainer.global_step += 1
        trainer.advance_domain(phase)
    state = {f"{n}.{k}": v for n, m in trainer.networks.items() for k, v in m.state_dict().items()}
    return state, seen, fakes


def test_graphed_bookkeeping_matches_eager_training_bit_for_bit(tmp_path, synthetic28):
    eager, eager_losses, _ = run(tmp_path, synthetic28, "eager", graphed=False)
    graphed, graphed_losses, fakes = run(tmp_path, synthetic28, "graphed", graphed=True)
    assert [k for k in eager if not torch.equal(eager[k], graphed[k])] == []
    for a, b in zip(eager_losses, graphed_losses):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # A capture per phase after WARMUP eager steps, then a replay per remaining step.
    assert [(f.captures, f.replays) for f in fakes] == [(1, 6 - WARMUP)] * 2
    # The losses of different steps are different tensors, not views of the graph's outputs.
    assert graphed_losses[-1]["loss_d"].data_ptr() != graphed_losses[-2]["loss_d"].data_ptr()


def test_requirements_are_one_line_errors():
    with pytest.raises(LgenError, match="--cuda-graph captures the step on a GPU, but this run trains on cpu"):
        check_cuda_graph(torch.device("cpu"), "off", False)
    with pytest.raises(LgenError, match="pick one"):
        check_cuda_graph(torch.device("cuda"), "reduce-overhead", False)
    with pytest.raises(LgenError, match="torchrun"):
        check_cuda_graph(torch.device("cuda"), "off", True)


def test_a_cpu_run_refuses_it(tmp_path, synthetic28):
    settings = {**SETTINGS, "domains": [synthetic28[0].spec], "cuda_graph": True}
    with pytest.raises(LgenError, match="--cuda-graph"):
        Trainer(resolve_run_config(settings), tmp_path / "run", data=synthetic28[:1], progress=False, device="cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_graphed_training_follows_eager_training_on_cuda(tmp_path, synthetic28):
    """The real capture. Not bit-identical to eager: the graph's kernels draw the same Philox numbers,
    but cuDNN may pick other algorithms for a captured convolution; measured within a tolerance."""
    results = {}
    for name, graph in (("eager", False), ("graphed", True)):
        settings = {**SETTINGS, "domains": [d.spec for d in synthetic28], "cuda_graph": graph, "steps_per_domain": 8}
        trainer = Trainer(resolve_run_config(settings), tmp_path / name, data=synthetic28, progress=False,
                          device="cuda")
        losses = []
        from lifelong_gen.train.callbacks import StepFunction

        trainer.callbacks.append(StepFunction(lambda t, step_losses: losses.append(
            {k: float(v) for k, v in step_losses.items()})))
        trainer.train()
        results[name] = (losses, {k: v.float().cpu() for k, v in trainer.G_ema.state_dict().items()})
    (le, ge), (lg, gg) = results["eager"], results["graphed"]
    assert len(le) == len(lg) == 16
    for a, b in zip(le, lg):
        for key in a:
            assert abs(a[key] - b[key]) < 1e-3 * max(1.0, abs(a[key])), key
    assert max((ge[k] - gg[k]).abs().max().item() for k in ge) < 1e-3
