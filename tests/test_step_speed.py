"""The step's speed settings (issue 23): what each computes, against the step it replaces.

- `--fused-critic-forward`: one critic forward of [real; fake] scores as two do (the critic
  has no batch norm), up to float summation order;
- `--gp-every k`: the penalty on every k-th critic update only, following the step count,
  weighted k·λ (so its closed form is k times the eager one on the same batch);
- `--s-real-reuse`: S clusters the critic's last real batch and draws none of its own;
- `--precision auto`: bf16 on CPUs with native bf16 instructions only, recorded as what ran.

That each resumes exactly is tests/test_training_state.py's; what they cost in quality is
experiments/throughput.md's.
"""

from __future__ import annotations

import json

import pytest
import torch

from conftest import TINY, lgen
from lifelong_gen.config import resolve_run_config
from lifelong_gen.train.process import resolve_precision
from lifelong_gen.train.trainer import Trainer

TWO = {**TINY, "domains": ["synthetic:bars", "synthetic:rings"], "steps_per_domain": 4}


def _trainer(tmp_path, data, name: str, **extra) -> Trainer:
    return Trainer(resolve_run_config({**TWO, **extra}), tmp_path / name, data=data, progress=False)


def test_one_critic_forward_scores_as_two(tmp_path, synthetic28):
    two = _trainer(tmp_path, synthetic28, "two")
    fused = _trainer(tmp_path, synthetic28, "fused", fused_critic_forward=True)
    x = torch.rand(16, 1, 28, 28)
    assert torch.allclose(fused.D(x), torch.cat([fused.D(x[:8]), fused.D(x[8:])]), atol=1e-6)
    # The same critic update from the same state: the same losses and critic, within float rounding.
    la, lb = two.critic_step(two.phases[0]), fused.critic_step(fused.phases[0])
    for key in la:
        assert torch.allclose(la[key], lb[key], rtol=1e-5, atol=1e-6), key
    # The critic's gradients (the update's outcome before Adam, whose first step moves a weight by
    # about lr·sign(g) and so turns a rounding-size difference of a near-zero gradient into lr).
    for (name, a), b in zip(two.D.named_parameters(), fused.D.parameters()):
        assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-5 * a.grad.abs().max().item()), name


def test_lazy_penalty_is_k_times_lambda_on_the_same_batch(tmp_path, synthetic28):
    eager = _trainer(tmp_path, synthetic28, "eager")
    lazy = _trainer(tmp_path, synthetic28, "lazy", gp_every=3)
    # Same seed: the same networks and random stream, so the same real batch, fakes and eps.
    gp_eager = eager.critic_step(eager.phases[0])["gp"]
    gp_lazy = lazy.critic_step(lazy.phases[0], penalize=True)["gp"]
    assert gp_eager > 0 and torch.allclose(gp_lazy, 3 * gp_eager, rtol=1e-6)
    skipped = lazy.critic_step(lazy.phases[0], penalize=False)
    assert skipped["gp"].item() == 0.0
    assert torch.equal(skipped["loss_d"], -skipped["wasserstein"])  # the critic loss alone


@pytest.mark.parametrize("k, expected", [(1, [True] * 6), (2, [True, False] * 3),
                                         (3, [True, False, False, True, False, False])])
def test_lazy_penalty_rhythm_follows_the_step_count(tmp_path, synthetic28, monkeypatch, k, expected):
    trainer = _trainer(tmp_path, synthetic28, "rhythm", gp_every=k)
    seen, original = [], trainer.critic_step

    def spy(phase, penalize=True):
        seen.append(penalize)
        return original(phase, penalize=penalize)

    monkeypatch.setattr(trainer, "critic_step", spy)
    logged = []
    for _ in range(3):  # n_critic 2: six critic updates
        logged.append(trainer.train_step(trainer.phases[0])["gp"])
        trainer.step += 1
    assert seen == expected
    if k == 2:  # one penalised update of two: the logged penalty is their mean, half the applied term
        assert all(v > 0 for v in logged)


def test_s_real_reuse_clusters_the_critic_batch_and_draws_none(tmp_path, synthetic28, monkeypatch):
    counts = {}
    for reuse in (False, True):
        trainer = _trainer(tmp_path, synthetic28, f"reuse-{reuse}", s_real_weight=1.0, s_real_reuse=reuse)
        trainer.advance_domain(trainer.phases[0])  # replay on: the batch the critic scores holds replay too
        calls, s_inputs = [], []
        real_batch, S = trainer.real_batch, trainer.fw.S
        monkeypatch.setattr(trainer, "real_batch", lambda *a, **kw: calls.append(a) or real_batch(*a, **kw))
        monkeypatch.setattr(trainer.fw, "S", lambda x, **kw: s_inputs.append(x) or S(x, **kw))
        losses = trainer.train_step(trainer.phases[1])
        counts[reuse] = len(calls)
        assert torch.isfinite(losses["s_real"])
        clustered = next(x for x in s_inputs if x.shape[0] == 2 * trainer.tc.batch_size)
        if reuse:
            assert torch.equal(clustered[:trainer.tc.batch_size], trainer.last_real)
    assert counts == {False: trainer.tc.n_critic + 1, True: trainer.tc.n_critic}


def test_gp_every_below_one_is_one_line_exit_2():
    r = lgen("train", "--domains", "synthetic:bars", "--gp-every", "0", "--dry-run")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "--gp-every" in r.stderr, r.stderr


@pytest.mark.parametrize("flags, device, expected", [
    ({"avx2", "avx512f", "avx512_bf16"}, "cpu", "bf16"), ({"avx2", "amx_bf16", "amx_tile"}, "cpu", "bf16"),
    ({"avx2", "avx512f"}, "cpu", "fp32"), ({"avx2"}, "cpu", "fp32"), (set(), "cpu", "fp32"),
    ({"avx512_bf16"}, "cuda", "fp32")])
def test_auto_precision_is_bf16_only_on_native_bf16_cpus(flags, device, expected):
    assert resolve_precision("auto", torch.device(device), frozenset(flags)) == expected
    assert resolve_precision("fp32", torch.device(device), frozenset(flags)) == "fp32"  # others pass through


def test_auto_precision_is_recorded_as_what_ran(tmp_path, synthetic28):
    trainer = _trainer(tmp_path, synthetic28, "auto", precision="auto", steps_per_domain=1)
    chosen = resolve_precision("auto", torch.device("cpu"))
    assert trainer.tc.precision == trainer.run.train.precision == chosen
    assert (trainer.amp_dtype is torch.bfloat16) == (chosen == "bf16")
    trainer.train()
    assert json.loads((tmp_path / "auto" / "config.json").read_text())["train"]["precision"] == chosen


def test_gp_subsample_penalises_every_kth_interpolate_of_new_data_and_replay(tmp_path, synthetic28, monkeypatch):
    import lifelong_gen.train.trainer as trainer_module

    trainer = _trainer(tmp_path, synthetic28, "sub", gp_subsample=2, batch_size=8, replay_ratio=0.5)
    trainer.advance_domain(trainer.phases[0])  # real batch: 4 domain images, then 4 replayed
    seen, penalty = [], trainer_module.gradient_penalty
    monkeypatch.setattr(trainer_module, "gradient_penalty",
                        lambda critic, real, fake, eps, lam, **kw: seen.append((real, fake, eps, lam)) or
                        penalty(critic, real, fake, eps, lam, **kw))
    trainer.critic_step(trainer.phases[1])
    real, fake, eps, lam = seen[0]
    assert real.shape[0] == fake.shape[0] == eps.shape[0] == 4 and lam == trainer.tc.gp_lambda
    assert torch.equal(real, trainer.last_real[::2])  # rows 0, 2 (new data) and 4, 6 (replay)
