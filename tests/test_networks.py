"""Network shapes for both architectures, and the shared-trunk variant of S."""

import pytest
import torch

from lifelong_gen.config import ModelConfig
from lifelong_gen.train.networks import build_networks


@pytest.mark.parametrize("channels,resolution", [(1, 28), (3, 64)])
@pytest.mark.parametrize("shared", [False, True])
def test_shapes(channels, resolution, shared):
    cfg = ModelConfig(z_dim=5, c_dim=3, d_dim=4, img_channels=channels, img_resolution=resolution,
                      g_width=8, d_width=8, fc_width=32, encoder_shares_critic=shared)
    G, D, S = build_networks(cfg)
    n = 6
    z, c = torch.randn(n, 5), torch.randn(n, 3)
    d = torch.nn.functional.one_hot(torch.arange(n) % 4, 4).float()
    o = G(z, c, d)
    assert o.shape == (n, channels, resolution, resolution)
    assert o.min() >= -1 and o.max() <= 1
    assert D(o).shape == (n,)
    logits, c_mean = S(o)
    assert logits.shape == (n, 4) and c_mean.shape == (n, 3)
    assert (S.trunk is D.trunk) == shared


def test_critic_has_no_batch_norm():
    # The per-sample gradient penalty is wrong with batch statistics in the critic.
    for res, ch in ((28, 1), (64, 3)):
        _, D, _ = build_networks(ModelConfig(img_resolution=res, img_channels=ch, g_width=8, d_width=8, fc_width=16))
        assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in D.modules())


def test_shape_checks_reject_wrong_inputs():
    G, D, _ = build_networks(ModelConfig(g_width=8, d_width=8, fc_width=16))
    with pytest.raises(AssertionError, match="c must be"):
        G(torch.randn(2, 62), torch.randn(2, 5), torch.zeros(2, 10))
    with pytest.raises(AssertionError, match="image must be"):
        D(torch.randn(2, 3, 28, 28))


def test_unsupported_resolution():
    from lifelong_gen.errors import LgenError

    with pytest.raises(LgenError, match="--img-resolution 32 is not supported"):
        build_networks(ModelConfig(img_resolution=32))


def test_z_and_c_scale_act_inside_the_generator():
    # G(z, c, d) with z_scale / c_scale must equal the unscaled G fed z * z_scale and c * c_scale.
    base = ModelConfig(z_dim=5, c_dim=3, d_dim=4, g_width=8, d_width=8, fc_width=32)
    scaled = ModelConfig(**{**base.__dict__, "z_scale": 0.1, "c_scale": 0.3})
    torch.manual_seed(0)
    G1 = build_networks(base)[0].eval()
    G2 = build_networks(scaled)[0].eval()
    G2.load_state_dict(G1.state_dict())
    z, c = torch.randn(6, 5), torch.randn(6, 3)
    d = torch.nn.functional.one_hot(torch.arange(6) % 4, 4).float()
    assert torch.allclose(G2(z, c, d), G1(z * 0.1, c * 0.3, d), atol=1e-6)
    assert not torch.allclose(G2(z, c, d), G1(z, c, d), atol=1e-3)


def test_the_ema_update_stays_out_of_autograd():
    """update_ema runs under no_grad: the EMA copy's parameters stay frozen leaves, so no graph
    chains one step's average to the next (a refactor once dropped the decorator)."""
    from lifelong_gen.train.networks import frozen_copy, update_ema

    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    ema = frozen_copy(model)
    for _ in range(2):
        update_ema(ema, model, 0.1)
    assert all(p.is_leaf and not p.requires_grad for p in ema.parameters())
