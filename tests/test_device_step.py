"""The step stays on the training device (issue 14), checked on the CPU.

A GPU step is slow when it waits on the host: data copied in per batch, codes drawn on
the CPU, a loss read back (`.item()`) per step. These tests pin the properties that
make the CUDA path fast without needing a GPU: data, random stream and losses live on
`trainer.device`; a step reads no scalar back (counted with a dispatch mode: every
device-to-host scalar read is `aten._local_scalar_dense`); metrics lines are the exact
average of the per-step losses; and `--compile` matches eager within a stated tolerance.
"""

from __future__ import annotations

import collections
import json
import traceback

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from conftest import TINY
from lifelong_gen.config import resolve_run_config
from lifelong_gen.errors import LgenError
from lifelong_gen.train.callbacks import StepFunction
from lifelong_gen.train.metrics_log import LossWindow
from lifelong_gen.train.replay import sample_codes
from lifelong_gen.train.trainer import Trainer

LEVERS = {"g_conditioning": "cbn", "info_augment_weight": 1.0, "s_real_weight": 1.0, "replay_alignment": 0.1}


def make_trainer(tmp_path, data, name="run", **overrides):
    settings = {**TINY, "domains": [d.spec for d in data], "steps_per_domain": 6, "d_per_domain": 2, **LEVERS,
                **overrides}
    return Trainer(resolve_run_config(settings), tmp_path / name, data=data, progress=False)


class ScalarReads(TorchDispatchMode):
    """Counts device-to-host scalar reads made outside torch.optim (the fused Adam's CPU kernel reads
    its step counters from host memory; its CUDA kernel reads them on the device)."""

    def __init__(self):
        super().__init__()
        self.where: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            stack = traceback.extract_stack()
            if not any("/torch/optim/" in f.filename for f in stack):
                ours = [f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in stack if "lifelong_gen" in f.filename]
                self.where[" < ".join(reversed(ours[-3:]))] += 1
        return func(*args, **(kwargs or {}))


def test_data_codes_and_losses_live_on_the_training_device(tmp_path, synthetic28):
    trainer = make_trainer(tmp_path, synthetic28)
    for phase in trainer.phases:
        assert phase.images.dtype == torch.uint8 and phase.images.device == trainer.device  # converted per batch
    assert trainer.rng.device == trainer.device
    losses = trainer.train_step(trainer.phases[0])
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 and v.device == trainer.device for v in losses.values())
    assert {"loss_d", "wasserstein", "gp", "loss_g", "info", "info_aug", "s_real"} <= set(losses)


def test_a_training_step_reads_nothing_back_from_the_device(tmp_path, synthetic28):
    # With replay, alignment and both interpretability levers on: every path of the step.
    trainer = make_trainer(tmp_path, synthetic28)
    trainer.advance_domain(trainer.phases[0])
    assert trainer.snapshot is not None
    trainer.train_step(trainer.phases[1])  # warm-up outside the count
    with ScalarReads() as reads:
        trainer.train_step(trainer.phases[1])
    assert not reads.where, f"scalar reads in the step: {dict(reads.where)}"


def test_sample_codes_draws_on_the_generator_device_and_gives_one_hot_d():
    g = torch.Generator().manual_seed(3)
    z, c, d, d_idx = sample_codes(50, 4, 2, 6, 3, g, "cpu")
    assert z.shape == (50, 4) and c.shape == (50, 2) and d.shape == (50, 6)
    assert d_idx.max() < 3 and torch.equal(d, torch.nn.functional.one_hot(d_idx, 6).float())
    # The same stream as drawing each in turn (what checkpoints of earlier versions hold).
    g.manual_seed(3)
    assert torch.equal(z, torch.randn(50, 4, generator=g)) and torch.equal(c, torch.randn(50, 2, generator=g))


def test_loss_window_reads_once_and_gives_the_item_values():
    steps = [{"a": torch.tensor(0.1 * i), "b": torch.tensor(float(i) ** 0.5)} for i in range(7)]
    window = LossWindow([{"a": 5.0, "b": 6.0}])  # a restored window holds floats already
    for s in steps:
        window.append(s)
    floats = window.floats()
    assert floats[0] == {"a": 5.0, "b": 6.0}
    assert floats[1:] == [{k: v.item() for k, v in s.items()} for s in steps]
    assert window.mean()["a"] == sum(f["a"] for f in floats) / 8


def test_metrics_lines_are_the_average_of_the_step_losses(tmp_path, synthetic28):
    trainer = make_trainer(tmp_path, synthetic28[:1], steps_per_domain=9, log_every=4)
    seen = []
    trainer.callbacks.append(StepFunction(lambda t, losses: seen.append(losses)))
    trainer.train()
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [4, 8, 9]
    for line, window in zip(lines, (seen[0:4], seen[4:8], seen[8:9])):
        for key in ("loss_d", "gp", "info", "s_real"):
            assert line[key] == sum(w[key] for w in window) / len(window), key


def test_compile_mode_is_validated():
    with pytest.raises(LgenError, match="--compile 'fast' is not supported"):
        resolve_run_config({"domains": ["synthetic:bars"], "compile": "fast"})


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_compiled_step_matches_eager_on_cpu(tmp_path, synthetic28):
    # torch.compile (Inductor, C++ on the CPU) reorders float sums, so results agree to a
    # tolerance, not bitwise: losses per step within 1e-4 x max(1, |loss|) (measured: up to
    # 1.5e-5 relative by the 4th step, growing step by step as training amplifies it) and
    # the EMA generator's images and the critic's scores within 1e-3 after 4 steps.
    # (Raw weights are not compared: Adam turns float noise in a near-zero gradient, e.g.
    # of a conv bias before batch norm, into a full lr-sized step either way.)
    eager = make_trainer(tmp_path, synthetic28, name="eager")
    compiled = make_trainer(tmp_path, synthetic28, name="compiled", compile="default")
    assert compiled.fw.compiled and not eager.fw.compiled
    eager.advance_domain(eager.phases[0])
    compiled.advance_domain(compiled.phases[0])
    phase = eager.phases[1]
    for _ in range(4):
        le, lc = eager.train_step(phase), compiled.train_step(compiled.phases[1])
        for key in le:
            assert abs(float(le[key]) - float(lc[key])) < 1e-4 * max(1.0, abs(float(le[key]))), \
                (key, float(le[key]), float(lc[key]))
    g = torch.Generator().manual_seed(0)
    z, c, d, _ = sample_codes(16, eager.cfg.z_dim, eager.cfg.c_dim, eager.cfg.d_dim, 4, g)
    with torch.no_grad():
        images_e, images_c = eager.G_ema(z, c, d), compiled.G_ema(z, c, d)
        assert (images_e - images_c).abs().max() < 1e-3
        eager.D.eval(), compiled.D.eval()
        assert (eager.D(images_e) - compiled.D(images_e)).abs().max() < 1e-3


def test_cuda_fastest_leaves_cpu_training_deterministic(tmp_path, synthetic28):
    # --cuda-fastest only changes CUDA kernels: on the CPU deterministic algorithms stay on.
    trainer = make_trainer(tmp_path, synthetic28, cuda_deterministic=False)
    assert trainer.tc.cuda_deterministic is False
    assert torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.benchmark
