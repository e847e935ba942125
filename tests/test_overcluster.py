"""S's training-only over-clustering head (issue 20's IIC lever, `--s-overcluster-dim`).

Shapes; that the head shares the d head's trunk pass and leaves S's other weights, its
default outputs and its exported graph as they are; that it trains through --s-real-weight's
objective over two domains, is checkpointed with S, and is refused without that objective.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import TINY
from lifelong_gen.config import ModelConfig, RunConfig, TrainConfig, resolve_run_config
from lifelong_gen.errors import LgenError
from lifelong_gen.train import checkpoint as ckpt
from lifelong_gen.train.callbacks import StepFunction
from lifelong_gen.train.networks import build_networks
from lifelong_gen.train.trainer import Trainer
from lifelong_gen.train.training_state import TrainingState


def _cfg(**kw) -> ModelConfig:
    return ModelConfig(z_dim=4, c_dim=2, d_dim=5, g_width=4, d_width=4, fc_width=16, **kw)


def test_head_shares_the_trunk_pass_and_changes_nothing_else():
    torch.manual_seed(0)
    _, _, S_plain = build_networks(_cfg())
    torch.manual_seed(0)
    G, D, S = build_networks(_cfg(s_overcluster_dim=7))
    # Built last: every other weight is what the same seed gives without the head.
    plain = S_plain.state_dict()
    own = S.state_dict()
    assert sorted(set(own) - set(plain)) == ["overcluster_head.bias", "overcluster_head.weight"]
    assert all(torch.equal(plain[k], own[k]) for k in plain)
    S.eval()
    o = torch.rand(6, 1, 28, 28) * 2 - 1
    d_logits, c_mean = S(o)
    d2, c2, over = S(o, overcluster=True)
    assert over.shape == (6, 7) and d_logits.shape == (6, 5) and c_mean.shape == (6, 2)
    assert torch.equal(d_logits, d2) and torch.equal(c_mean, c2)
    # The head is the trunk's features through its own linear layer.
    assert torch.allclose(over, S.overcluster_head(S.trunk(o)), atol=1e-6)
    with pytest.raises(ValueError, match="no over-clustering head"):
        S_plain(o, overcluster=True)


def test_export_ignores_the_head_and_the_bundle_keeps_it(tmp_path):
    from lifelong_gen import runtime
    from lifelong_gen.export import onnx_export, spec

    cfg = _cfg(s_overcluster_dim=7)
    torch.manual_seed(0)
    G, _, S = build_networks(cfg)
    torch.nn.init.normal_(S.overcluster_head.weight)
    run = RunConfig(model=cfg, train=TrainConfig(domains=["synthetic:bars"], s_real_weight=1.0))
    ckpt.save_bundle(tmp_path, run, {"G": G, "G_ema": G, "S": S})
    result = onnx_export.export_bundle(tmp_path)
    assert max(result.max_abs_diff.values()) <= spec.PARITY_ATOL
    model = runtime.OnnxModel(tmp_path, provider="cpu")
    images = np.random.default_rng(0).uniform(-1, 1, (3, 1, 28, 28)).astype(np.float32)
    with torch.no_grad():
        d_expected, c_expected = S.eval()(torch.from_numpy(images))
    encoded = model.encode(images)
    assert np.abs(encoded[0] - d_expected.numpy()).max() <= spec.PARITY_ATOL
    assert np.abs(encoded[1] - c_expected.numpy()).max() <= spec.PARITY_ATOL
    _, loaded = ckpt.load_bundle(tmp_path, which=("S",))  # strict: the head is in the bundle
    assert torch.equal(loaded["S"].overcluster_head.weight, S.overcluster_head.weight)


def test_head_trains_over_two_domains_and_is_checkpointed(tmp_path, synthetic28):
    settings = {**TINY, "domains": [d.spec for d in synthetic28], "steps_per_domain": 6, "d_per_domain": 5,
                "s_real_weight": 1.0, "s_overcluster_dim": 12}
    trainer = Trainer(resolve_run_config(settings), tmp_path / "run", data=synthetic28, progress=False)
    start = trainer.S.overcluster_head.weight.detach().clone()
    logged = []
    trainer.callbacks.append(StepFunction(lambda t, l: logged.append(l)))
    trainer.train()
    last = logged[-1]
    assert all(math.isfinite(last[k]) for k in ("s_overcluster", "s_over_consistency", "s_over_marginal_entropy"))
    # The balance is over all 12 of the head's categories in both domains (not the d slots).
    assert math.log(10) < max(r["s_over_marginal_entropy"] for r in logged) <= math.log(12) + 1e-5
    assert not torch.equal(trainer.S.overcluster_head.weight, start)  # it learns
    state = TrainingState.capture(trainer)
    assert torch.equal(state.tensors["S.overcluster_head.weight"], trainer.S.overcluster_head.weight)


def test_head_off_computes_nothing(tmp_path, synthetic28):
    settings = {**TINY, "domains": [synthetic28[0].spec], "steps_per_domain": 3, "s_real_weight": 1.0}
    trainer = Trainer(resolve_run_config(settings), tmp_path / "run", data=synthetic28[:1], progress=False)
    logged = []
    trainer.callbacks.append(StepFunction(lambda t, l: logged.append(l)))
    trainer.train()
    assert trainer.S.overcluster_head is None
    assert "s_overcluster" not in logged[-1] and "s_real" in logged[-1]


def test_settings_are_validated():
    with pytest.raises(LgenError, match="--s-overcluster-dim must be >= 0"):
        resolve_run_config({"domains": ["synthetic:bars"], "s_real_weight": 1.0, "s_overcluster_dim": -1})
    with pytest.raises(LgenError, match="give --s-real-weight > 0"):
        resolve_run_config({"domains": ["synthetic:bars"], "s_overcluster_dim": 50})
    run = resolve_run_config({"domains": ["synthetic:bars"], "s_real_weight": 1.0, "s_overcluster_dim": 50})
    assert run.model.s_overcluster_dim == 50


def test_a_continued_run_grows_s_and_keeps_the_head():
    # `lgen train --from`: S grows along d only; the head (and a wider S's trunk) carry over as they are.
    from lifelong_gen.train.growth import grow_into

    torch.manual_seed(0)
    _, _, parent = build_networks(_cfg(s_overcluster_dim=7, s_width=6))
    torch.manual_seed(1)
    _, _, child = build_networks(ModelConfig(z_dim=4, c_dim=2, d_dim=8, g_width=4, d_width=4, fc_width=16,
                                             s_overcluster_dim=7, s_width=6))
    grow_into(child, parent.state_dict(), 3, "S")
    o = torch.rand(4, 1, 28, 28) * 2 - 1
    (d_p, c_p, over_p), (d_c, c_c, over_c) = parent.eval()(o, overcluster=True), child.eval()(o, overcluster=True)
    # Allclose, not equal: a matrix product of more output rows may round in another order.
    assert torch.allclose(over_p, over_c, atol=1e-6) and torch.allclose(c_p, c_c, atol=1e-6)
    assert torch.allclose(d_p, d_c[:, :5], atol=1e-6)
