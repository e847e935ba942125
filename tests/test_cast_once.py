"""CastOnce (train/cast_once.py): the critic's fakes under bf16 from weights cast once per G update,
the same bit for bit as autocast casting them at every call."""

from __future__ import annotations

import torch

from conftest import TINY
from lifelong_gen.config import resolve_run_config
from lifelong_gen.train.cast_once import CastOnce
from lifelong_gen.train.replay import sample_codes
from lifelong_gen.train.trainer import Trainer

SETTINGS = {**TINY, "precision": "bf16", "g_conditioning": "cbn", "d_per_domain": 2, "growth": "replay",
            "z_scale": 0.1, "c_scale": 0.1, "steps_per_domain": 3}


def trained_state(tmp_path, data, name: str, cast_once: bool) -> dict[str, torch.Tensor]:
    trainer = Trainer(resolve_run_config({**SETTINGS, "domains": [d.spec for d in data]}), tmp_path / name,
                      data=data, progress=False)
    assert isinstance(trainer.fw.G_fakes, CastOnce)
    if not cast_once:
        trainer.fw.G_fakes = trainer.G  # autocast casts at every call, as before
    for phase in trainer.phases:
        for _ in range(3):
            trainer.train_step(phase)
        trainer.advance_domain(phase)
    return {f"{net}.{k}": v for net, module in trainer.networks.items() for k, v in module.state_dict().items()}


def test_training_is_bit_identical_with_and_without_it(tmp_path, synthetic28):
    a = trained_state(tmp_path, synthetic28, "once", True)
    b = trained_state(tmp_path, synthetic28, "every", False)
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


def test_copies_follow_optimiser_steps_and_loads(tmp_path, synthetic28):
    trainer = Trainer(resolve_run_config({**SETTINGS, "domains": [synthetic28[0].spec]}), tmp_path / "run",
                      data=synthetic28[:1], progress=False)
    fakes = trainer.fw.G_fakes
    z, c, d, _ = sample_codes(8, trainer.cfg.z_dim, trainer.cfg.c_dim, trainer.cfg.d_dim, 2, torch.Generator())

    def autocast_forward():
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            trainer.G.eval()  # eval: no running statistics move between the two forwards
            out = trainer.G(z, c, d), fakes(z, c, d)
            trainer.G.train()
            return out

    every, once = autocast_forward()
    assert torch.equal(every, once)
    trainer.train_step(trainer.phases[0])  # G's Adam steps: the copies must be recast
    every, once = autocast_forward()
    assert torch.equal(every, once)
    # Loading G's state (a resume, a domain boundary of --growth adapters) makes them stale too.
    state = {k: v + 0.01 if v.is_floating_point() else v for k, v in trainer.G.state_dict().items()}
    trainer.G.load_state_dict(state)
    every, once = autocast_forward()
    assert torch.equal(every, once)
    # Only the linear and convolution weights and biases are copied: batch norm stays G's own.
    assert fakes.names and all(not n.endswith(("running_mean", "running_var")) for n in fakes.names)
    assert all(".bn." not in n for n in fakes.names)
