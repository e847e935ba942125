"""The replayed images' d as S's target (`--s-replay-label-weight`, issue 20): the loss's closed
forms, that each replay row carries the d that made it, that the term is the cross-entropy of S's
logits on exactly those rows, and that it draws nothing from the run's random stream."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from conftest import TINY
from lifelong_gen.config import resolve_run_config
from lifelong_gen.errors import LgenError
from lifelong_gen.train import levers
from lifelong_gen.train.callbacks import StepFunction
from lifelong_gen.train.losses import replay_distillation_loss, replay_label_loss
from lifelong_gen.train.trainer import Trainer


def test_replay_label_loss_closed_forms_and_gradient():
    K = 7
    target = torch.tensor([0, 3, 6])
    sure = torch.full((3, K), -30.0)
    sure[torch.arange(3), target] = 30.0
    assert float(replay_label_loss(sure, target)) == pytest.approx(0.0, abs=1e-6)
    assert float(replay_label_loss(torch.zeros(3, K), target)) == pytest.approx(math.log(K))
    logits = torch.randn(3, K, requires_grad=True)
    loss = replay_label_loss(logits, target)
    # −mean log softmax at the target, and its gradient (softmax − one-hot) / N.
    expected = -torch.log_softmax(logits, 1)[torch.arange(3), target].mean()
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    loss.backward()
    grad = (torch.softmax(logits.detach(), 1) - F.one_hot(target, K)) / 3
    assert torch.allclose(logits.grad, grad, atol=1e-6)


def test_settings_are_validated():
    with pytest.raises(LgenError, match="--s-replay-label-weight adds to --s-real-weight"):
        resolve_run_config({**TINY, "domains": ["synthetic:bars"], "s_replay_label_weight": 1.0})
    with pytest.raises(LgenError, match="--s-replay-label-weight must be >= 0"):
        resolve_run_config({**TINY, "domains": ["synthetic:bars"], "s_real_weight": 1.0,
                            "s_replay_label_weight": -1.0})


def _trainer(tmp_path, data, name, **settings) -> Trainer:
    run = resolve_run_config({**TINY, "domains": [d.spec for d in data], "steps_per_domain": 4, "d_per_domain": 5,
                              "s_real_weight": 1.0, "s_real_reuse": True, "s_real_by_domain": True, **settings})
    return Trainer(run, tmp_path / name, data=data, progress=False)


def _second_domain(trainer: Trainer):
    """The trainer moved to its second domain, as after the first (replay snapshot taken), untrained."""
    first, second = trainer.phases[:2]
    trainer.advance_domain(first)
    return second


def test_each_replay_row_carries_the_d_that_made_it(tmp_path, synthetic28):
    trainer = _trainer(tmp_path, synthetic28, "rows")
    phase = _second_domain(trainer)
    drawn = []
    sample = trainer.snapshot.sample
    trainer.snapshot.sample = lambda n, g: drawn.append(sample(n, g)) or drawn[-1]
    real, idx, replay_d = trainer.real_batch(phase, 8, with_indices=True)
    n_replay = trainer.replay_rows(phase, 8)
    assert n_replay > 0 and replay_d.shape == (n_replay,) and idx.shape == (8 - n_replay,)
    (images, (z, c, d, d_idx)), = drawn
    assert torch.equal(replay_d, d_idx) and int(replay_d.max()) < trainer.snapshot.d_slots
    assert torch.equal(d.argmax(1), replay_d)  # the one-hot G was given is the index returned
    assert torch.equal(real[8 - n_replay:], trainer.snapshot.render(z, c, d))
    # Without replay (the first domain) there is no replay row and no d.
    _, _, none = trainer.real_batch(trainer.phases[0], 8, with_indices=True)
    assert none.shape == (0,)


def test_the_term_is_the_cross_entropy_of_s_on_the_batch_replay_rows(tmp_path, synthetic28, monkeypatch):
    trainer = _trainer(tmp_path, synthetic28, "term", s_replay_label_weight=0.5)
    phase = _second_domain(trainer)
    # An identity view, so the augmented half of S's forward is the clean half again.
    monkeypatch.setattr(levers, "consistency_augment", lambda x, g, kind: x.clone())
    trainer.critic_step(phase)
    z, c, d, d_idx = trainer._codes(8, phase.d_slots)
    terms, _ = levers.lever_terms(trainer, phase, trainer.G(z, c, d), d_idx)
    weight, term = terms["s_replay_label"]
    n_new = trainer.last_real_idx.shape[0]
    with torch.no_grad():  # S in training mode, on the same rows in the same order: the same batch statistics
        logits = trainer.S(torch.cat([trainer.last_real, trainer.last_real]))[0][:, :phase.d_slots]
    expected = F.cross_entropy(logits[n_new:8], trainer.last_replay_d)
    assert weight == 0.5 and float(term.detach()) == pytest.approx(float(expected), rel=1e-5)
    # In the first domain there is no replay, so no term.
    first = trainer.phases[0]
    trainer.snapshot = None
    trainer.critic_step(first)
    terms, _ = levers.lever_terms(trainer, first, trainer.G(z, c, d), d_idx)
    assert "s_replay_label" not in terms


def _train(tmp_path, data, name, **settings):
    trainer = _trainer(tmp_path, data, name, **settings)
    logged = []
    trainer.callbacks.append(StepFunction(lambda t, losses: logged.append((t.phase_index, losses))))
    trainer.train()
    return trainer, logged


def test_it_acts_in_the_second_domain_only_and_draws_nothing_from_the_stream(tmp_path, synthetic28):
    off, logged_off = _train(tmp_path, synthetic28, "off")
    on, logged_on = _train(tmp_path, synthetic28, "on", s_replay_label_weight=1.0)
    assert all("s_replay_label" not in losses for _, losses in logged_off)
    assert all(("s_replay_label" in losses) == (k == 1) for k, losses in logged_on)
    assert all(math.isfinite(float(losses["s_replay_label"])) for k, losses in logged_on if k == 1)
    # The target costs no draw (the snapshot draws each replay row's d anyway): the run's stream ends
    # where it ends without the term, and domain 1, before any replay, trained to the same S.
    assert torch.equal(off.rng.get_state(), on.rng.get_state())
    first_off = [losses["s_real"] for k, losses in logged_off if k == 0]
    assert first_off == [losses["s_real"] for k, losses in logged_on if k == 0]
    s_off, s_on = off.S.state_dict(), on.S.state_dict()
    assert not all(torch.equal(s_off[k], s_on[k]) for k in s_off)  # domain 2 did train differently


def test_replay_distillation_closed_forms_and_gradient():
    previous = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    p = torch.softmax(previous / 2, 1)
    entropy = -(p * p.log()).sum(1).mean()
    same = previous.clone().requires_grad_(True)
    loss = replay_distillation_loss(same, previous)
    # At S = the previous S: T² times the targets' entropy at T = 2, and no gradient (the minimum).
    assert float(loss.detach()) == pytest.approx(4 * float(entropy), rel=1e-6)
    loss.backward()
    assert same.grad.abs().max() < 1e-6
    # Elsewhere it is higher by T² · KL(p_old || p).
    other = torch.zeros(2, 3)
    q = torch.softmax(other / 2, 1)
    kl = (p * (p.log() - q.log())).sum(1).mean()
    assert float(replay_distillation_loss(other, previous)) == pytest.approx(4 * float(entropy + kl), rel=1e-5)


def test_previous_s_target_is_the_frozen_s_reading_of_the_replay_rows(tmp_path, synthetic28, monkeypatch):
    trainer = _trainer(tmp_path, synthetic28, "prev", s_replay_label_weight=1.0, s_replay_target="previous-s")
    first = trainer.phases[0]
    trainer.train_step(first)
    phase = _second_domain(trainer)
    frozen = trainer.snapshot.S
    assert frozen is not trainer.S and not frozen.training
    assert all(torch.equal(v, trainer.S.state_dict()[k]) for k, v in frozen.state_dict().items())
    monkeypatch.setattr(levers, "consistency_augment", lambda x, g, kind: x.clone())
    trainer.critic_step(phase)
    z, c, d, d_idx = trainer._codes(8, phase.d_slots)
    terms, _ = levers.lever_terms(trainer, phase, trainer.G(z, c, d), d_idx)
    n_new, old = trainer.last_real_idx.shape[0], trainer.snapshot.d_slots
    with torch.no_grad():
        logits = trainer.S(torch.cat([trainer.last_real, trainer.last_real]))[0]
        target = frozen(trainer.last_real[n_new:])[0][:, :old]
    expected = replay_distillation_loss(logits[n_new:8, :old], target)
    assert float(terms["s_replay_label"][1].detach()) == pytest.approx(float(expected), rel=1e-5)
    # The generator target keeps no S in its snapshot.
    plain = _trainer(tmp_path, synthetic28, "plain", s_replay_label_weight=1.0)
    _second_domain(plain)
    assert plain.snapshot.S is None and "S.fc.weight" not in "".join(plain.snapshot.state_dict())


@pytest.mark.parametrize("mode", [{"replay": False}, {"joint": True, "s_real_by_domain": False}],
                         ids=["no-replay", "joint"])
def test_without_replay_rows_the_lever_changes_nothing(tmp_path, synthetic28, mode):
    # So a preset's --no-replay and --joint baselines are the same runs with the lever as without it.
    off, _ = _train(tmp_path, synthetic28, "off", **mode)
    on, _ = _train(tmp_path, synthetic28, "on", s_replay_label_weight=1.0, s_replay_target="previous-s", **mode)
    assert on.snapshot is None or on.snapshot.S is None
    for key, module in off.networks.items():
        other = on.networks[key].state_dict()
        assert all(torch.equal(v, other[k]) for k, v in module.state_dict().items()), key
