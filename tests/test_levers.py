"""The opt-in interpretability levers (issue 11): conditional batch norm in G, d kept under
augmentation (Elastic-InfoGAN), S's clustering objective on real images (IMSAT).

Closed forms and invariances where they exist, ONNX parity for the conditioned G, and
that with every lever off a run is exactly what it was before they existed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import TINY
from lifelong_gen.config import ModelConfig, resolve_run_config
from lifelong_gen.errors import LgenError
from lifelong_gen.train import checkpoint as ckpt
from lifelong_gen.train.callbacks import StepFunction
from lifelong_gen.train.losses import (
    augmented_info_loss,
    clustering_loss,
    random_affine,
)
from lifelong_gen.train.networks import ConditionalBatchNorm, build_networks
from lifelong_gen.train.trainer import Trainer
from tiny_onnx import export_against_torch


def _cfg(**kw) -> ModelConfig:
    return ModelConfig(z_dim=4, c_dim=2, d_dim=5, g_width=4, d_width=4, fc_width=16, **kw)


@pytest.mark.parametrize("resolution, channels", [(28, 1), (64, 3)])
def test_cbn_generator_shapes_and_every_batch_norm_conditioned(resolution, channels):
    cfg = _cfg(g_conditioning="cbn", img_resolution=resolution, img_channels=channels)
    G, _, _ = build_networks(cfg)
    assert not any(isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)) and
                   not isinstance(parent, ConditionalBatchNorm)
                   for parent in G.modules() for m in parent.children())
    n_cbn = sum(isinstance(m, ConditionalBatchNorm) for m in G.modules())
    assert n_cbn == (3 if resolution == 28 else 4)
    z, c = torch.randn(6, 4), torch.randn(6, 2)
    d = torch.nn.functional.one_hot(torch.arange(6) % 5, 5).float()
    assert G(z, c, d).shape == (6, channels, resolution, resolution)


def test_cbn_starts_as_the_input_layout_and_keeps_its_parameter_names():
    # γ(d) = β(d) = 0 at initialisation: the same seed gives the same images as "input".
    torch.manual_seed(0)
    G_in, _, _ = build_networks(_cfg())
    torch.manual_seed(0)
    G_cbn, _, _ = build_networks(_cfg(g_conditioning="cbn"))
    z, c = torch.randn(8, 4), torch.randn(8, 2)
    d = torch.nn.functional.one_hot(torch.arange(8) % 5, 5).float()
    G_in.load_state_dict({k.replace(".bn.", "."): v for k, v in G_cbn.state_dict().items()
                          if ".gain." not in k and ".bias.weight" not in k or ".bn." in k}, strict=True)
    assert torch.equal(G_in(z, c, d), G_cbn(z, c, d))
    # The paper's layout keeps the parameter names of earlier bundles (they load strictly).
    assert not any(".bn." in k or ".gain." in k for k in G_in.state_dict())


def test_cbn_modulation_is_linear_in_d():
    # A soft d (any probability vector, as the ONNX contract allows) mixes the categories' γ, β.
    bn = torch.nn.BatchNorm1d(3).eval()
    layer = ConditionalBatchNorm(bn, 2).eval()
    torch.nn.init.normal_(layer.gain.weight)
    torch.nn.init.normal_(layer.bias.weight)
    h = torch.randn(1, 3)
    e0, e1 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    mixed = layer(h, 0.25 * e0 + 0.75 * e1)
    assert torch.allclose(mixed, 0.25 * layer(h, e0) + 0.75 * layer(h, e1), atol=1e-6)


def test_cbn_generator_exports_with_parity(tmp_path):
    from lifelong_gen.export import spec

    cfg = _cfg(g_conditioning="cbn")
    torch.manual_seed(0)
    G, _, S = build_networks(cfg)
    for m in G.modules():  # non-zero modulations, so the export must carry them
        if isinstance(m, ConditionalBatchNorm):
            torch.nn.init.normal_(m.gain.weight, std=0.5)
            torch.nn.init.normal_(m.bias.weight, std=0.5)
    images, expected = export_against_torch(tmp_path, cfg, G, S, 7)
    assert np.abs(images - expected.numpy()).max() <= spec.PARITY_ATOL
    _, loaded = ckpt.load_bundle(tmp_path, which=("G",))  # strict rebuild from the bundle alone
    assert any(isinstance(m, ConditionalBatchNorm) for m in loaded["G"].modules())


def test_random_affine_identity_range_and_gradient():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    same = random_affine(x, g, max_rotate=0.0, max_scale=0.0, max_shift=0.0)
    assert torch.allclose(same, x, atol=1e-5)  # the identity transform changes nothing
    x.requires_grad_(True)
    y = random_affine(x, g)
    assert y.shape == x.shape and y.min() >= -1 - 1e-5 and y.max() <= 1 + 1e-5
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # G trains through it
    # Pixels moved in from outside the image are background (-1), not grey (0).
    shifted = random_affine(torch.ones(1, 1, 28, 28), torch.Generator().manual_seed(1), max_rotate=0.0,
                            max_scale=0.0, max_shift=0.5)
    assert shifted.min() == pytest.approx(-1.0, abs=1e-5)


def test_random_affine_follows_the_generator_state():
    x = torch.rand(3, 1, 28, 28)
    a = random_affine(x, torch.Generator().manual_seed(5))
    b = random_affine(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_clustering_loss_closed_forms():
    K = 4
    # Uniform predictions: consistency = H = log K, marginal entropy = log K -> loss = log K.
    uniform = torch.zeros(6, K)
    loss, consistency, marginal = clustering_loss(uniform, uniform)
    assert consistency.item() == pytest.approx(math.log(K), rel=1e-6)
    assert marginal.item() == pytest.approx(math.log(K), rel=1e-6)
    assert loss.item() == pytest.approx(math.log(K), rel=1e-6)
    # Confident, consistent and balanced (one image per category): loss -> -log K, its minimum.
    sharp = 50 * torch.eye(K)
    loss, consistency, marginal = clustering_loss(sharp, sharp)
    assert loss.item() == pytest.approx(-math.log(K), abs=1e-4)
    # Confident and consistent but all in one category: no balance, loss -> 0.
    collapsed = 50 * torch.eye(K)[[0, 0, 0, 0]]
    assert clustering_loss(collapsed, collapsed)[0].item() == pytest.approx(0.0, abs=1e-4)
    # Relabelling the categories (same permutation on both views) changes nothing.
    logits, augmented = torch.randn(8, K), torch.randn(8, K)
    perm = torch.randperm(K)
    a = clustering_loss(logits, augmented, balance_weight=2.0)[0]
    b = clustering_loss(logits[:, perm], augmented[:, perm], balance_weight=2.0)[0]
    assert a.item() == pytest.approx(b.item(), rel=1e-5)


def test_clustering_loss_trains_only_the_augmented_view_through_consistency():
    logits = torch.randn(5, 3, requires_grad=True)
    augmented = torch.randn(5, 3, requires_grad=True)
    _, consistency, _ = clustering_loss(logits, augmented)
    consistency.backward()
    assert logits.grad is None or logits.grad.abs().sum() == 0  # the clean view is the target
    assert augmented.grad.abs().sum() > 0


def test_augmented_info_loss_is_cross_entropy():
    logits, target = torch.randn(4, 5), torch.tensor([0, 3, 1, 4])
    expected = -torch.log_softmax(logits, 1)[torch.arange(4), target].mean()
    assert augmented_info_loss(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)


def _final_weights(tmp_path, data, name, **overrides):
    settings = {**TINY, "domains": [d.spec for d in data], "steps_per_domain": 6, "d_per_domain": 5, **overrides}
    trainer = Trainer(resolve_run_config(settings), tmp_path / name, data=data, progress=False)
    logged = []
    trainer.callbacks.append(StepFunction(lambda t, l: logged.append(l)))
    trainer.train()
    return {k: v.clone() for k, v in trainer.G.state_dict().items()}, logged


def test_levers_off_change_nothing_and_on_train_two_domains(tmp_path, synthetic28):
    base, logged = _final_weights(tmp_path, synthetic28, "a")  # both levers at their default weight 0
    assert "s_real" not in logged[-1] and "info_aug" not in logged[-1]  # neither term is computed
    # A setting of the S-on-real term changes nothing while its weight is 0: the term draws no
    # real batch and adds nothing (the two runs differ in that setting only).
    other, _ = _final_weights(tmp_path, synthetic28, "b", s_balance_weight=5.0)
    assert resolve_run_config({**TINY, "domains": ["synthetic:bars"], "s_balance_weight": 5.0}).train.s_real_weight == 0
    assert all(torch.equal(base[k], other[k]) for k in base)
    on, logged = _final_weights(tmp_path, synthetic28, "c", g_conditioning="cbn", info_augment_weight=1.0,
                                s_real_weight=1.0)
    assert all(math.isfinite(logged[-1][k]) for k in ("s_real", "info_aug", "s_consistency", "s_marginal_entropy"))
    # In domain 2 the balance is over both domains' 10 categories: H(mean p) <= log 10.
    assert logged[-1]["s_marginal_entropy"] <= math.log(10) + 1e-5
    assert any(".gain." in k for k in on)


def test_lever_settings_are_validated():
    with pytest.raises(LgenError, match="--g-conditioning"):
        resolve_run_config({"domains": ["synthetic:bars"], "g_conditioning": "film"})
    with pytest.raises(LgenError, match="--s-real-weight must be >= 0"):
        resolve_run_config({"domains": ["synthetic:bars"], "s_real_weight": -1.0})
    run = resolve_run_config({**TINY, "domains": ["synthetic:bars"], "s_real_weight": 1.0,
                              "encoder_shares_critic": True})
    with pytest.raises(LgenError, match="separate S"):
        Trainer(run, "/nonexistent", data=[], progress=False)
