"""`--replay-ratio` with per-domain d's: G's d prior follows the critic's real mix.

Owns the prior's closed form (`phase.matched_d_prior`: r over the older domains' d's, 1 − r over
the new domain's, and None wherever that equals the uniform draw or no d belongs to a domain),
the code draw it feeds (`replay.sample_codes` with `d_prior`), and the wiring: both halves of
a step draw G's fakes from the phase's prior, while the default ratio keeps the uniform draw;
and the evaluation report's words for a given ratio.
"""

from __future__ import annotations

import pytest
import torch

from conftest import TINY
from lifelong_gen.config import ModelConfig, TrainConfig, resolve_run_config
from lifelong_gen.eval.report import mode_text
from lifelong_gen.train import trainer as trainer_module
from lifelong_gen.train.phase import make_phases, matched_d_prior
from lifelong_gen.train.replay import categorical, sample_codes
from lifelong_gen.train.trainer import Trainer


def _configs(**train) -> tuple[TrainConfig, ModelConfig]:
    run = resolve_run_config({"domains": ["synthetic:bars:0-4", "synthetic:rings", "synthetic:bars:5-9"],
                              "d_per_domain": 10, "growth": "replay", **train})
    return run.train, run.model


@pytest.mark.parametrize("k,ratio,old,new", [
    (1, 0.3, 0.3 / 10, 0.7 / 10),   # second domain: 10 old d's share 0.3, 10 new ones 0.7
    (2, 0.3, 0.3 / 20, 0.7 / 10),   # third domain: 20 old d's share 0.3
    (2, 0.5, 0.5 / 20, 0.5 / 10),   # 0.5 is not the default in domain 2 (2/3), so it is matched
    (1, 0.8, 0.8 / 10, 0.2 / 10),   # more replay than the default is matched the same way
])
def test_the_prior_puts_the_ratio_on_the_old_domains_d(k, ratio, old, new):
    tc, cfg = _configs(replay_ratio=ratio)
    prior = matched_d_prior(tc, cfg, k)
    slots = 10 * (k + 1)
    assert prior is not None and prior.shape == (slots,)
    assert torch.allclose(prior[:slots - 10], torch.full((slots - 10,), old))
    assert torch.allclose(prior[slots - 10:], torch.full((10,), new))
    assert prior[:slots - 10].sum().item() == pytest.approx(ratio)
    assert prior.sum().item() == pytest.approx(1.0)


@pytest.mark.parametrize("train,k", [
    ({}, 1), ({}, 2),                                  # the default k/(k+1) is the uniform draw itself
    ({"replay_ratio": 0.5}, 1),                        # so is 0.5 given explicitly in domain 2
    ({"replay_ratio": 0.3}, 0),                        # the first domain replays nothing
    ({"replay_ratio": 0.0}, 1),                        # a zero ratio replays nothing either
    ({"replay_ratio": 0.3, "replay": False}, 1),       # the no-replay baseline
    ({"replay_ratio": 0.3, "d_per_domain": None}, 1),  # one Cat shared by all domains: no d is "old"
])
def test_the_prior_is_uniform_where_it_would_change_nothing(train, k):
    tc, cfg = _configs(**train)
    assert matched_d_prior(tc, cfg, k) is None


def test_a_joint_run_keeps_the_uniform_draw():
    tc, cfg = _configs(replay_ratio=0.3, joint=True)
    assert matched_d_prior(tc, cfg, 1) is None


def test_sample_codes_draws_from_the_prior():
    prior = torch.tensor([0.3, 0.0, 0.0, 0.7])
    g = torch.Generator().manual_seed(0)
    z, c, d, d_idx = sample_codes(100_000, 5, 2, 6, 4, g, d_prior=prior)
    assert z.shape == (100_000, 5) and c.shape == (100_000, 2) and d.shape == (100_000, 6)
    assert torch.equal(d.argmax(1), d_idx) and torch.equal(d.sum(1), torch.ones(100_000))
    counts = torch.bincount(d_idx, minlength=6).float() / 100_000
    # A binomial share over 1e5 draws has sd <= 0.0016, so 0.01 is more than 6 sd.
    assert counts[0].item() == pytest.approx(0.3, abs=0.01) and counts[3].item() == pytest.approx(0.7, abs=0.01)
    assert counts[1] == 0 and counts[2] == 0 and counts[4] == 0 and counts[5] == 0


def test_without_a_prior_the_draw_is_the_uniform_one_as_before():
    """No prior: z, c, then d uniform over the first d_slots, drawn in that order on the stream (the
    draw every run made before priors existed, so their random streams are unchanged)."""
    z, c, d, d_idx = sample_codes(64, 5, 2, 6, 4, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    want_z, want_c = torch.randn(64, 5, generator=g), torch.randn(64, 2, generator=g)
    want_idx = torch.randint(0, 4, (64,), generator=g)
    assert torch.equal(z, want_z) and torch.equal(c, want_c) and torch.equal(d_idx, want_idx)
    assert torch.equal(d, torch.eye(6)[want_idx])


def test_phases_carry_the_prior_on_the_training_device(synthetic28):
    run = resolve_run_config({**TINY, "domains": [d.spec for d in synthetic28], "d_per_domain": 3,
                              "replay_ratio": 0.25, "growth": "replay"})
    first, second = make_phases(run.train, run.model, synthetic28, torch.device("cpu"))
    assert first.d_prior is None
    assert second.d_prior is not None and second.d_prior.device.type == "cpu"
    assert torch.allclose(second.d_prior, torch.tensor([0.25 / 3] * 3 + [0.75 / 3] * 3))
    default = resolve_run_config({**TINY, "domains": [d.spec for d in synthetic28], "d_per_domain": 3,
                                  "growth": "replay"})
    assert all(p.d_prior is None for p in make_phases(default.train, default.model, synthetic28, torch.device("cpu")))
    # With the old domains frozen (--growth adapters, the default here), G draws only the new d's.
    isolated = resolve_run_config({**TINY, "domains": [d.spec for d in synthetic28], "d_per_domain": 3})
    assert isolated.train.growth == "adapters"
    _, second = make_phases(isolated.train, isolated.model, synthetic28, torch.device("cpu"))
    assert torch.equal(second.d_prior, torch.tensor([0.0] * 3 + [1 / 3] * 3))


def test_both_halves_of_a_step_draw_g_s_fakes_from_the_phase_prior(tmp_path, synthetic28, monkeypatch):
    run = resolve_run_config({**TINY, "domains": [d.spec for d in synthetic28], "d_per_domain": 3,
                              "replay_ratio": 0.1, "steps_per_domain": 2, "growth": "replay"})
    trainer = Trainer(run, tmp_path / "run", data=synthetic28, progress=False)
    phase0, phase1 = trainer.phases
    trainer.train_step(phase0)
    trainer.advance_domain(phase0)
    drawn: list[tuple] = []
    real_sample_codes = trainer_module.sample_codes

    def spy(n, *args, **kwargs):
        out = real_sample_codes(n, *args, **kwargs)
        drawn.append((args[-1] if len(args) == 7 else kwargs.get("d_prior"), out[3]))
        return out

    monkeypatch.setattr(trainer_module, "sample_codes", spy)
    for _ in range(20):
        trainer.train_step(phase1)
    assert len(drawn) == 20 * (run.train.n_critic + 1)  # every critic update and every generator update
    assert all(prior is phase1.d_prior for prior, _ in drawn)
    d_idx = torch.cat([idx for _, idx in drawn])
    old_share = (d_idx < 3).float().mean().item()
    # 0.1 of the fakes are old-domain d's: about 0.1 over these draws, far from the uniform 0.5.
    assert old_share < 0.25, old_share


def test_the_report_names_a_given_replay_ratio():
    t = {"joint": False, "replay": True, "replay_ratio": None}
    assert mode_text(t) == "lifelong, replay"
    assert mode_text({"joint": False, "replay": True}) == "lifelong, replay"  # metrics.json from before the field
    assert mode_text({**t, "replay_ratio": 0.3}) == "lifelong, replay ratio 0.3"
    assert mode_text({**t, "replay": False, "replay_ratio": 0.3}) == "lifelong, no replay"
    assert mode_text({**t, "joint": True}) == "joint (upper bound)"


def test_categorical_draws_in_proportion_and_never_a_zero_weight():
    """The inverse-CDF draw behind the d prior and a joint run's balanced batches: unnormalised
    weights in proportion, zero weights never (the first and the last included)."""
    weights = torch.tensor([0.0, 2.0, 0.0, 6.0, 0.0])
    drawn = categorical(weights, 100_000, torch.Generator().manual_seed(1))
    counts = torch.bincount(drawn, minlength=5).float() / 100_000
    assert counts[1].item() == pytest.approx(0.25, abs=0.01) and counts[3].item() == pytest.approx(0.75, abs=0.01)
    assert counts[0] == 0 and counts[2] == 0 and counts[4] == 0
    assert drawn.dtype == torch.long and drawn.shape == (100_000,)


def test_categorical_keeps_a_draw_at_the_top_on_a_nonzero_weight(monkeypatch):
    """A uniform draw at the very top of the range (u · total = total, where a plain lookup falls off
    the end of the CDF) takes the last category of non-zero weight, never the zero-weight one after it."""
    weights = torch.tensor([0.1, 0.7, 0.0])
    cdf = weights.cumsum(0)
    assert torch.searchsorted(cdf, cdf[-1:], right=True).item() == 3
    monkeypatch.setattr(torch, "rand", lambda n, **kwargs: torch.ones(n))
    assert categorical(weights, 4, torch.Generator()).tolist() == [1, 1, 1, 1]
