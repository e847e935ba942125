"""S's own widths (`--s-width`, `--s-fc-width`, issue 20): a separate S sized apart from the critic.

Unset, S is what it was (the critic's widths, the same initial weights); set, only S changes
shape, it exports with parity and reloads strictly from its bundle; the shared-encoder layout
refuses them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lifelong_gen.config import ModelConfig, RunConfig, TrainConfig, resolve_run_config
from lifelong_gen.errors import LgenError
from lifelong_gen.train import checkpoint as ckpt
from lifelong_gen.train.networks import build_networks


def _cfg(**kw) -> ModelConfig:
    return ModelConfig(z_dim=4, c_dim=2, d_dim=5, g_width=4, d_width=4, fc_width=16, **kw)


def _built(cfg: ModelConfig):
    torch.manual_seed(0)
    return build_networks(cfg)


def test_unset_is_the_critics_widths_and_the_same_weights():
    _, D, S = _built(_cfg())
    _, D2, S2 = _built(_cfg(s_width=4, s_fc_width=16))
    for a, b in ((S, S2), (D, D2)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("resolution, channels", [(28, 1), (64, 3)])
def test_only_s_changes_shape(resolution, channels):
    base = dict(img_resolution=resolution, img_channels=channels)
    G, D, S = _built(_cfg(**base))
    G2, D2, S2 = _built(_cfg(**base, s_width=6, s_fc_width=24))
    assert all(torch.equal(a, b) for a, b in zip(G.state_dict().values(), G2.state_dict().values()))
    assert all(torch.equal(a, b) for a, b in zip(D.state_dict().values(), D2.state_dict().values()))
    first_conv = next(m for m in S2.trunk.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.out_channels == 6
    # The fully connected width exists on the 28x28 nets only (64x64's S flattens its last conv).
    assert S2.trunk.out_features == (24 if resolution == 28 else 6 * 8 * 4 * 4)
    d_logits, c_mean = S2.eval()(torch.rand(3, channels, resolution, resolution) * 2 - 1)
    assert d_logits.shape == (3, 5) and c_mean.shape == (3, 2)


def test_a_wider_s_exports_with_parity_and_reloads(tmp_path):
    from lifelong_gen import runtime
    from lifelong_gen.export import onnx_export, spec

    cfg = _cfg(s_width=8, s_fc_width=40)
    G, _, S = _built(cfg)
    ckpt.save_bundle(tmp_path, RunConfig(model=cfg, train=TrainConfig(domains=["synthetic:bars"])),
                     {"G": G, "G_ema": G, "S": S})
    result = onnx_export.export_bundle(tmp_path)
    assert max(result.max_abs_diff.values()) <= spec.PARITY_ATOL
    images = np.random.default_rng(1).uniform(-1, 1, (4, 1, 28, 28)).astype(np.float32)
    d_onnx, _ = runtime.OnnxModel(tmp_path, provider="cpu").encode(images)
    with torch.no_grad():
        d_torch = S.eval()(torch.from_numpy(images))[0].numpy()
    assert np.abs(d_onnx - d_torch).max() <= spec.PARITY_ATOL
    run, loaded = ckpt.load_bundle(tmp_path, which=("S",))  # strict rebuild from config.json alone
    assert run.model.s_fc_width == 40 and loaded["S"].trunk.out_features == 40


def test_widths_are_validated():
    with pytest.raises(LgenError, match="--s-width must be >= 1"):
        resolve_run_config({"domains": ["synthetic:bars"], "s_width": 0})
    with pytest.raises(LgenError, match="sizes a separate S"):
        resolve_run_config({"domains": ["synthetic:bars"], "s_fc_width": 64, "encoder_shares_critic": True})
    assert resolve_run_config({"domains": ["synthetic:bars"], "s_width": 16}).model.s_width == 16
