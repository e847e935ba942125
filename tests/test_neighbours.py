"""SCAN's neighbour term (`--s-neighbour-weight`, issue 20): mined neighbours, the loss's closed
forms, that the term reaches only the new domain's images and d's, and that off it changes nothing."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import TINY
from lifelong_gen.config import resolve_run_config
from lifelong_gen.errors import LgenError
from lifelong_gen.train.callbacks import StepFunction
from lifelong_gen.train.losses import neighbour_consistency_loss
from lifelong_gen.train.neighbours import NeighbourTables, mine_neighbours
from lifelong_gen.train.phase import Phase
from lifelong_gen.train.trainer import Trainer


def _groups(n_groups: int, per_group: int, side: int = 28, channels: int = 1, seed: int = 0) -> torch.Tensor:
    """uint8 images in groups: each group one random pattern at several brightnesses (cosine-equal)
    plus a little noise, so an image's nearest neighbours are the rest of its group."""
    g = torch.Generator().manual_seed(seed)
    patterns = torch.rand(n_groups, channels, side, side, generator=g) * 150 + 50
    scale = torch.linspace(0.7, 1.0, per_group).view(1, per_group, 1, 1, 1)
    noise = torch.rand(n_groups, per_group, channels, side, side, generator=g) * 4
    images = patterns.unsqueeze(1) * scale + noise
    return images.reshape(n_groups * per_group, channels, side, side).round().to(torch.uint8)


@pytest.mark.parametrize("side, channels", [(28, 1), (64, 3)])
def test_neighbours_are_the_rest_of_each_group_never_the_image_itself(side, channels):
    per_group = 4
    images = _groups(5, per_group, side, channels)
    table = mine_neighbours(images, k=per_group - 1, chunk=7)  # a chunk that does not divide N
    assert table.shape == (20, 3) and table.dtype == torch.int64
    rows = torch.arange(20).unsqueeze(1)
    assert not (table == rows).any()
    assert torch.equal(table // per_group, (rows // per_group).expand(-1, 3))  # all in its own group
    # Chunking changes only how much of the similarity matrix is held at once.
    assert torch.equal(table.sort(1).values, mine_neighbours(images, k=3, chunk=1024).sort(1).values)


def test_mining_refuses_a_k_it_cannot_give():
    images = _groups(2, 2)
    with pytest.raises(ValueError, match="k must be in"):
        mine_neighbours(images, k=4)


def test_tables_are_mined_once_per_phase():
    images = _groups(3, 3)
    phase = Phase(1, "p", images, steps=1, d_slots=2, replay_ratio=0.0)
    tables = NeighbourTables(k=2)
    first = tables.of(phase)
    assert tables.of(phase) is first and first.shape == (9, 2)


def test_neighbour_loss_closed_forms_and_gradients():
    K = 6
    sure = torch.full((3, K), -30.0)
    sure[torch.arange(3), torch.tensor([0, 2, 5])] = 30.0
    assert float(neighbour_consistency_loss(sure, sure)) == pytest.approx(0.0, abs=1e-6)  # same one-hot
    uniform = torch.zeros(3, K)
    assert float(neighbour_consistency_loss(uniform, uniform)) == pytest.approx(math.log(K))
    # Against a sure neighbour: -log p(its class), here -log(1/K) for a uniform image.
    assert float(neighbour_consistency_loss(uniform, sure)) == pytest.approx(math.log(K), abs=1e-5)
    # Two different one-hots: the dot product underflows in float32, the log-sum-exp form stays finite.
    other = sure.roll(1, dims=1)
    assert math.isfinite(float(neighbour_consistency_loss(sure, other)))
    a = torch.randn(4, K, requires_grad=True)
    b = torch.randn(4, K, requires_grad=True)
    neighbour_consistency_loss(a, b).backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0  # both sides learn, as in SCAN
    with torch.no_grad():
        assert float(neighbour_consistency_loss(a, b)) == pytest.approx(float(neighbour_consistency_loss(b, a)))


def test_settings_are_validated():
    with pytest.raises(LgenError, match="--s-neighbour-weight adds to --s-real-weight"):
        resolve_run_config({**TINY, "domains": ["synthetic:bars"], "s_neighbour_weight": 1.0})
    with pytest.raises(LgenError, match="--s-neighbour-weight must be >= 0"):
        resolve_run_config({**TINY, "domains": ["synthetic:bars"], "s_real_weight": 1.0, "s_neighbour_weight": -1.0})
    with pytest.raises(LgenError, match="--s-neighbours must be >= 1"):
        resolve_run_config({**TINY, "domains": ["synthetic:bars"], "s_neighbours": 0})


def _train(tmp_path, data, name, **settings):
    run = resolve_run_config({**TINY, "domains": [d.spec for d in data], "steps_per_domain": 4, "d_per_domain": 5,
                              "s_real_weight": 1.0, "s_real_reuse": True, "s_real_by_domain": True, **settings})
    trainer = Trainer(run, tmp_path / name, data=data, progress=False)
    logged = []
    trainer.callbacks.append(StepFunction(lambda t, losses: logged.append((t.phase_position, losses))))
    trainer.train()
    return trainer, {k: v.detach().clone() for k, v in trainer.S.state_dict().items()}, logged


def test_off_it_mines_nothing_and_on_it_trains_two_domains(tmp_path, synthetic28):
    off, s_off, logged_off = _train(tmp_path, synthetic28, "off")
    # At weight 0 the term is not computed and nothing is mined (its k setting changes nothing).
    assert off.neighbours._tables == {} and all("s_neighbour" not in losses for _, losses in logged_off)
    _, s_k, _ = _train(tmp_path, synthetic28, "off-k", s_neighbours=3)
    assert all(torch.equal(s_off[k], s_k[k]) for k in s_off)

    on, s_on, logged = _train(tmp_path, synthetic28, "on", s_neighbour_weight=1.0)
    assert sorted(on.neighbours._tables) == [0, 1]  # a table per domain, of that domain's images only
    assert on.neighbours._tables[1].shape == (synthetic28[1].train_images.shape[0], 20)
    second = [losses["s_neighbour"] for k, losses in logged if k == 1]
    assert second and all(math.isfinite(float(v)) and float(v) >= 0 for v in second)
    assert not all(torch.equal(s_off[k], s_on[k]) for k in s_off)


def test_a_joint_run_mines_one_table_over_all_domains(tmp_path, synthetic28):
    # The joint upper bound has no replay rows: every row of the batch is new data, over all d's.
    on, _, logged = _train(tmp_path, synthetic28, "joint", joint=True, s_real_by_domain=False,
                           s_neighbour_weight=0.2)
    total = sum(d.train_images.shape[0] for d in synthetic28)
    assert list(on.neighbours._tables) == [0] and on.neighbours._tables[0].shape == (total, 20)
    assert logged and all(math.isfinite(float(losses["s_neighbour"])) for _, losses in logged)
