"""SCAN-style self-labelling of S (issue 20's lever, train/self_label.py): the loss's closed
forms, the strong view's cutout, that the pass moves S alone and draws nothing when off, that a
resumed run with it ends bit-identical, and that its settings are validated."""

from __future__ import annotations

import logging
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import TINY
from lifelong_gen.config import resolve_run_config
from lifelong_gen.errors import LgenError
from lifelong_gen.train.callbacks import StepFunction
from lifelong_gen.train.self_label import confident_cross_entropy, cutout, strong_augment
from lifelong_gen.train.trainer import Trainer


def test_confident_cross_entropy_is_a_class_balanced_mean_over_the_confident_images():
    big = 20.0  # softmax ~ 1 on the boosted class: confident
    clean = torch.tensor([[big, 0, 0], [big, 0, 0], [big, 0, 0], [0, big, 0], [0.1, 0, 0]])  # last: not confident
    strong = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    loss, share = confident_cross_entropy(clean, strong, threshold=0.99)
    nll = -F.log_softmax(strong, dim=1)
    # Three targets of class 0 and one of class 1 count alike: the mean of the two class means.
    expected = (nll[:3, 0].mean() + nll[3, 1]) / 2
    assert torch.allclose(loss, expected, atol=1e-6)
    assert share.item() == pytest.approx(4 / 5)
    # Without balancing the big class would dominate: the balanced loss differs from the plain mean.
    assert not torch.allclose(loss, torch.cat([nll[:3, 0], nll[3:4, 1]]).mean())


def test_confident_cross_entropy_takes_no_gradient_through_its_targets_and_is_zero_when_nothing_is_confident():
    clean = torch.tensor([[9.0, 0.0], [0.0, 9.0]], requires_grad=True)
    strong = torch.zeros(2, 2, requires_grad=True)
    loss, _ = confident_cross_entropy(clean, strong, threshold=0.99)
    loss.backward()
    assert clean.grad is None and strong.grad is not None and strong.grad.abs().sum() > 0
    unsure = torch.zeros(4, 3)
    strong = torch.randn(4, 3, requires_grad=True)
    loss, share = confident_cross_entropy(unsure, strong, threshold=0.5)
    assert loss.item() == 0.0 and share.item() == 0.0
    loss.backward()  # still attached: a step with no confident image is a zero update, not an error
    assert torch.equal(strong.grad, torch.zeros_like(strong))


def test_cutout_blackens_one_square_and_leaves_the_rest():
    images = torch.rand(64, 1, 28, 28) * 2 - 1
    out = cutout(images, torch.Generator().manual_seed(1), fraction=0.25)
    changed = out != images
    assert torch.all(out[changed] == -1.0)
    holes = (out == -1.0) & ~(images == -1.0)
    counts = holes.flatten(1).sum(1)
    assert counts.max().item() == 7 * 7  # a square of round(0.25 * 28) = 7 px fully inside
    assert (counts < 49).any()  # and cut by the border where its centre lies near the edge
    for k in range(64):  # each hole is one axis-aligned rectangle
        ys, xs = torch.nonzero(holes[k, 0], as_tuple=True)
        if len(ys):
            assert len(ys) == (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)


def test_strong_augment_keeps_shape_and_range_and_follows_the_generator():
    images = torch.rand(8, 1, 28, 28) * 2 - 1
    a = strong_augment(images, torch.Generator().manual_seed(3))
    b = strong_augment(images, torch.Generator().manual_seed(3))
    assert a.shape == images.shape and torch.equal(a, b)
    assert a.min() >= -1 - 1e-6 and a.max() <= 1 + 1e-6
    assert not torch.equal(a, strong_augment(images, torch.Generator().manual_seed(4)))


def _train(tmp_path, data, name, **overrides):
    settings = {**TINY, "domains": [d.spec for d in data], "steps_per_domain": 6, "d_per_domain": 5,
                "s_real_weight": 1.0, **overrides}
    trainer = Trainer(resolve_run_config(settings), tmp_path / name, data=data, progress=False)
    trainer.train()
    return {key: {k: v.clone() for k, v in net.state_dict().items()} for key, net in trainer.networks.items()}


def test_the_pass_moves_s_alone(tmp_path, synthetic28, caplog):
    one = synthetic28[:1]
    base = _train(tmp_path, one, "off")
    with caplog.at_level(logging.INFO, logger="lifelong_gen"):
        on = _train(tmp_path, one, "on", self_label_steps=5, self_label_threshold=0.0)
    # One domain: the pass comes after every generator step, so G, its EMA and the critic are the
    # run without it to the bit, and S is not.
    for key in ("G", "G_ema", "D"):
        assert all(torch.equal(base[key][k], on[key][k]) for k in base[key]), key
    assert any(not torch.equal(base["S"][k], on["S"][k]) for k in base["S"])
    line = next(r.getMessage() for r in caplog.records if "self-labelling" in r.getMessage())
    assert "5 steps" in line and "synthetic:bars" in line


def test_two_domains_with_the_pass_train_and_stay_finite(tmp_path, synthetic28):
    nets = _train(tmp_path, synthetic28, "two", self_label_steps=3, self_label_threshold=0.0)
    assert all(torch.isfinite(v).all() for v in nets["S"].values() if v.is_floating_point())


# Cut in domain 1 before its pass (the resumed run makes it), or in domain 2 after it.
@pytest.mark.parametrize("phase_index, step", [(0, 5), (1, 3)])
def test_a_run_with_the_pass_resumes_bit_identical(tmp_path, synthetic28, phase_index, step):
    settings = {**TINY, "domains": [d.spec for d in synthetic28], "steps_per_domain": 6, "d_per_domain": 5,
                "checkpoint_every": 2, "self_label_steps": 3, "self_label_threshold": 0.0}
    run = resolve_run_config(settings)
    whole = Trainer(run, tmp_path / "whole", data=synthetic28, progress=False)
    whole.train()

    class Stop(Exception):
        pass

    def stop(trainer, losses):  # one step past a checkpoint (every 2 steps)
        if trainer.phase_index == phase_index and trainer.step == step:
            raise Stop

    cut = Trainer(run, tmp_path / "cut", data=synthetic28, progress=False,
                  callbacks=[StepFunction(stop)])
    with pytest.raises(Stop):
        cut.train()
    resumed = Trainer(run, tmp_path / "cut", data=synthetic28, progress=False)
    assert resumed.restore() and (resumed.phase_index, resumed.step) == (phase_index, step - 1)
    resumed.train()
    for key, net in whole.networks.items():
        other = resumed.networks[key].state_dict()
        assert all(torch.equal(v, other[k]) for k, v in net.state_dict().items()), key


def test_self_label_settings_are_validated():
    base = {"domains": ["synthetic:bars"]}
    with pytest.raises(LgenError, match="--self-label-steps must be >= 0"):
        resolve_run_config({**base, "self_label_steps": -1})
    with pytest.raises(LgenError, match=r"--self-label-threshold must be in \[0, 1\)"):
        resolve_run_config({**base, "self_label_threshold": 1.0})
    with pytest.raises(LgenError, match="--self-label-lr must be > 0"):
        resolve_run_config({**base, "self_label_lr": 0.0})
    shared = resolve_run_config({**TINY, **base, "self_label_steps": 1, "encoder_shares_critic": True})
    with pytest.raises(LgenError, match="separate S"):
        Trainer(shared, "/nonexistent", data=[], progress=False)
    assert resolve_run_config(base).train.self_label_steps == 0 and math.isclose(
        resolve_run_config(base).train.self_label_threshold, 0.99)
