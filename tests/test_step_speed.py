"""The step's speed settings: what each computes, against the step it replaces.

- one critic forward of [real; fake] scores as two do (the critic has no batch norm);
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
    # The critic has no batch norm, so scoring [real; fake] in one forward is scoring each half alone.
    trainer = _trainer(tmp_path, synthetic28, "one")
    x = torch.rand(16, 1, 28, 28)
    assert torch.allclose(trainer.D(x), torch.cat([trainer.D(x[:8]), trainer.D(x[8:])]), atol=1e-6)


def test_s_real_reuse_clusters_the_critic_batch_and_draws_none(tmp_path, synthetic28, monkeypatch):
    counts = {}
    for reuse in (False, True):
        trainer = _trainer(tmp_path, synthetic28, f"reuse-{reuse}", s_real_weight=1.0, s_real_reuse=reuse)
        trainer.advance_domain(trainer.phases[0])  # replay on: the batch the critic scores holds replay too
        calls, s_inputs, scored = [], [], []
        real_batch, S, critic_step = trainer.real_batch, trainer.fw.S, trainer.critic_step
        monkeypatch.setattr(trainer, "real_batch", lambda *a, **kw: calls.append(a) or real_batch(*a, **kw))
        monkeypatch.setattr(trainer.fw, "S", lambda x, **kw: s_inputs.append(x) or S(x, **kw))
        monkeypatch.setattr(trainer, "critic_step", lambda *a: scored.append(critic_step(*a)) or scored[-1])
        losses = trainer.train_step(trainer.phases[1])
        counts[reuse] = len(calls)
        assert torch.isfinite(losses["s_real"])
        clustered = next(x for x in s_inputs if x.shape[0] == 2 * trainer.tc.batch_size)
        # With reuse, S clusters exactly the last critic update's batch; without, a batch of its own.
        last_scored = scored[-1][1].images
        assert torch.equal(clustered[:trainer.tc.batch_size], last_scored) == reuse
    assert counts == {False: trainer.tc.n_critic + 1, True: trainer.tc.n_critic}


def test_a_retired_flag_is_one_line_exit_2_naming_the_study_index():
    r = lgen("train", "--domains", "synthetic:bars", "--gp-every", "2", "--dry-run")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "--gp-every was retired" in r.stderr and "experiments/README.md" in r.stderr, r.stderr
    typo = lgen("train", "--domains", "synthetic:bars", "--gp-evry", "2", "--dry-run")
    assert typo.returncode == 2 and "No such option: --gp-evry" in typo.stderr, typo.stderr


@pytest.mark.parametrize("flags, device, expected", [
    ({"avx2", "avx512f", "avx512_bf16"}, "cpu", "bf16"), ({"avx2", "amx_bf16", "amx_tile"}, "cpu", "bf16"),
    ({"avx2", "avx512f"}, "cpu", "fp32"), ({"avx2"}, "cpu", "fp32"), (set(), "cpu", "fp32"),
    ({"avx512_bf16"}, "cuda", "fp32")])
def test_auto_precision_is_bf16_only_on_native_bf16_cpus(flags, device, expected):
    assert resolve_precision("auto", torch.device(device), frozenset(flags), "AVX512") == expected
    assert resolve_precision("fp32", torch.device(device), frozenset(flags), "AVX512") == "fp32"  # others pass through
    # torch dispatching below AVX-512 (ATEN_CPU_CAPABILITY=avx2, the AVX2-only stand-in): fp32 as there.
    assert resolve_precision("auto", torch.device(device), frozenset(flags), "AVX2") == "fp32"


def test_auto_precision_follows_atens_dispatch_level_in_a_fresh_process():
    import subprocess
    import sys

    code = ("import torch; from lifelong_gen.train.process import resolve_precision; "
            "print(resolve_precision('auto', torch.device('cpu')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**__import__("os").environ, "ATEN_CPU_CAPABILITY": "avx2"})
    assert r.returncode == 0 and r.stdout.strip() == "fp32", r.stderr


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
    _, scored = trainer.critic_step(trainer.phases[1])
    real, fake, eps, lam = seen[0]
    assert real.shape[0] == fake.shape[0] == eps.shape[0] == 4 and lam == trainer.tc.gp_lambda
    assert torch.equal(real, scored.images[::2])  # rows 0, 2 (new data) and 4, 6 (replay)
