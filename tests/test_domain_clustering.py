"""`--s-real-by-domain` (issue 20): S's clustering of real images applied per domain.

Closed forms of losses.domain_clustering_loss (the first domain is plain clustering_loss; the
domain term is −log of the mass on the image's own domain; each part is clustered over its
own categories), its gradient's direction, the settings' validation (a preset's lever is left
out of its joint run), and a two-domain run.
"""

from __future__ import annotations

import math

import pytest
import torch

from conftest import TINY
from lifelong_gen.config import resolve_run_config
from lifelong_gen.errors import LgenError
from lifelong_gen.presets import PRESETS
from lifelong_gen.train.callbacks import StepFunction
from lifelong_gen.train.losses import clustering_loss, domain_clustering_loss
from lifelong_gen.train.trainer import Trainer


def test_first_domain_is_plain_clustering():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    loss, consistency, balance, domain = domain_clustering_loss(a, b, n_new=8, new_from=0)
    expected = clustering_loss(a, b)
    assert float(domain) == 0.0
    assert torch.allclose(torch.stack([loss, consistency, balance]), torch.stack(list(expected)), atol=1e-6)


def test_domain_term_is_minus_log_own_mass_and_parts_use_their_own_categories():
    # K = 4, the new domain owns d 2, 3. Every row puts half its mass on each domain: term = log 2.
    logits = torch.zeros(6, 4)
    loss, _, _, domain = domain_clustering_loss(logits, logits, n_new=4, new_from=2)
    assert float(domain) == pytest.approx(math.log(2), abs=1e-6)
    # New rows sure of their own domain (d 2 or 3), replay sure of the old one (d 0 or 1): term ~ 0.
    sure = torch.tensor([[-20.0, -20, 5, 0], [-20, -20, 0, 5], [-20, -20, 5, 0], [-20, -20, 0, 5],
                         [5, 0, -20, -20], [0, 5, -20, -20]])
    aug = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    loss, consistency, balance, domain = domain_clustering_loss(sure, aug, n_new=4, new_from=2, balance_weight=0.5)
    assert float(domain) < 1e-6
    new = clustering_loss(sure[:4, 2:], aug[:4, 2:], 0.5)
    old = clustering_loss(sure[4:, :2], aug[4:, :2], 0.5)
    weighted = [4 / 6 * x + 2 / 6 * y for x, y in zip(new, old)]
    assert torch.allclose(torch.stack([consistency, balance]), torch.stack(weighted[1:]), atol=1e-6)
    assert float(loss) == pytest.approx(float(weighted[0] + domain), abs=1e-6)
    # Each part's balance is over its own two categories: at most log 2 each.
    assert float(balance) <= math.log(2) + 1e-6


def test_gradient_moves_new_images_out_of_old_categories():
    logits = torch.zeros(4, 4, requires_grad=True)
    _, _, _, domain = domain_clustering_loss(logits, logits.detach(), n_new=2, new_from=2)
    domain.backward()
    grad = logits.grad
    # Descent lowers the other domain's logits and raises the own domain's, for new and replayed rows.
    assert (grad[:2, :2] > 0).all() and (grad[:2, 2:] < 0).all()
    assert (grad[2:, 2:] > 0).all() and (grad[2:, :2] < 0).all()


def test_replay_needs_old_categories():
    with pytest.raises(ValueError, match="new_from must be > 0"):
        domain_clustering_loss(torch.zeros(4, 3), torch.zeros(4, 3), n_new=2, new_from=0)


def test_settings_are_validated():
    base = {"domains": ["synthetic:bars", "synthetic:rings"], "s_real_weight": 1.0, "s_real_by_domain": True}
    with pytest.raises(LgenError, match="--s-real-by-domain needs --d-per-domain"):
        resolve_run_config(base)
    with pytest.raises(LgenError, match="--s-real-by-domain needs"):
        resolve_run_config({**base, "d_per_domain": 5, "joint": True})
    with pytest.raises(LgenError, match="--s-real-by-domain needs"):
        resolve_run_config({**base, "d_per_domain": 5, "s_real_weight": 0.0})
    assert resolve_run_config({**base, "d_per_domain": 5}).train.s_real_by_domain


def test_a_presets_lever_is_left_out_of_its_joint_run(monkeypatch):
    # `--preset P --joint` is P's joint upper bound: the lever needs a lifelong batch's layout, so the
    # preset's `joint_run` variant turns it off, while the same lever given as a flag is still refused.
    monkeypatch.setitem(PRESETS, "two", {"domains": ["synthetic:bars", "synthetic:rings"], "d_per_domain": 5,
                                         "s_real_weight": 1.0, "s_real_by_domain": True, "quick": {},
                                         "joint_run": {"s_real_by_domain": False}})
    assert resolve_run_config({}, preset="two").train.s_real_by_domain
    joint = resolve_run_config({"joint": True}, preset="two").train
    assert joint.joint and not joint.s_real_by_domain
    assert resolve_run_config({"replay": False}, preset="two").train.s_real_by_domain  # no replay keeps it
    with pytest.raises(LgenError, match="--s-real-by-domain needs"):
        resolve_run_config({"joint": True, "s_real_by_domain": True}, preset="two")


def test_two_domains_train_with_it(tmp_path, synthetic28):
    settings = {**TINY, "domains": [d.spec for d in synthetic28], "steps_per_domain": 6, "d_per_domain": 5,
                "s_real_weight": 1.0, "s_real_reuse": True, "s_real_by_domain": True}
    trainer = Trainer(resolve_run_config(settings), tmp_path / "run", data=synthetic28, progress=False)
    logged = []
    trainer.callbacks.append(StepFunction(lambda t, l: logged.append((t.phase_position, l))))
    trainer.train()
    first = [l for k, l in logged if k == 0]
    second = [l for k, l in logged if k == 1]
    assert all(l["s_domain"] == 0.0 for l in first)  # one domain: nothing to keep apart
    assert all(math.isfinite(l["s_domain"]) and l["s_domain"] > 0 for l in second)
    # Per part, the balance is over one domain's 5 categories (the plain objective's spans all 10).
    assert max(l["s_marginal_entropy"] for l in second) <= math.log(5) + 1e-5
