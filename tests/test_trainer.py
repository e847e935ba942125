"""The lifelong loop on tiny synthetic domains: MI learning, replay, end-to-end runs."""

import json

import pytest
import torch

from conftest import TINY
from lifelong_gen.config import resolve_run_config
from lifelong_gen.train import checkpoint as ckpt
from lifelong_gen.train.callbacks import StepFunction
from lifelong_gen.train.replay import categorical
from lifelong_gen.train.trainer import Trainer


def make_trainer(tmp_path, data, **overrides):
    settings = {**TINY, "domains": [d.spec for d in data], "steps_per_domain": 10, **overrides}
    return Trainer(resolve_run_config(settings), tmp_path / "run", data=data, progress=False)


def test_info_loss_decreases(tmp_path, synthetic28):
    # L_MI is maximised by G and S: −L_MI (the info loss) must fall over a short run.
    trainer = make_trainer(tmp_path, synthetic28[:1], steps_per_domain=60, n_critic=1, lr_g=2e-3, lr_d=2e-3,
                           batch_size=32)
    losses = []
    trainer.callbacks.append(StepFunction(lambda t, l: losses.append(l["info_ce"])))
    trainer.train()
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert first > 1.8  # near log(10) = 2.30 for an untrained S
    assert last < 0.5 * first, (first, last)


def test_replay_snapshot_frozen_and_used(tmp_path, synthetic28):
    trainer = make_trainer(tmp_path, synthetic28, replay_ratio=0.5)
    phase0, phase1 = trainer.phases
    assert phase1.replay_ratio == 0.5
    for _ in range(3):
        trainer.train_step(phase0)
    trainer.advance_domain(phase0)
    snap = trainer.snapshot
    assert snap is not None and not snap.G.training
    assert all(not p.requires_grad for p in snap.G.parameters())
    frozen = {k: v.clone() for k, v in snap.state_dict().items()}
    # The snapshot equals G_ema at the boundary, and is a copy, not the same module.
    for k, v in trainer.G_ema.state_dict().items():
        assert torch.equal(frozen[k], v)
    assert snap.G is not trainer.G_ema

    # The critic's real batch holds snapshot samples: reproduce them from the same RNG state.
    state = trainer.rng.get_state()
    batch = trainer.real_batch(phase1, 8).images
    trainer.rng.set_state(state)
    torch.randint(0, phase1.images.shape[0], (4,), generator=trainer.rng)  # the 4 real indices
    replayed, _ = snap.sample(4, trainer.rng)
    assert torch.equal(batch[4:], replayed)

    for _ in range(3):
        trainer.train_step(phase1)
    for k, v in snap.state_dict().items():
        assert torch.equal(frozen[k], v), f"snapshot changed: {k}"
    assert any(not torch.equal(frozen[k], v) for k, v in trainer.G_ema.state_dict().items())


def test_default_replay_ratio_keeps_domains_equal():
    run = resolve_run_config({"domains": ["synthetic:bars", "synthetic:rings", "mnist"]})
    assert [run.train.replay_ratio_for(k) for k in range(3)] == [0.0, 0.5, 2 / 3]
    run = resolve_run_config({"domains": ["synthetic:bars", "synthetic:rings"], "replay": False})
    assert run.train.replay_ratio_for(1) == 0.0


def test_two_domain_run_end_to_end(tmp_path, synthetic28):
    trainer = make_trainer(tmp_path, synthetic28, d_per_domain=3, replay_alignment=0.1)
    trainer.train()
    run_dir = tmp_path / "run"
    for name in ["config.json", "generator.safetensors", "generator_ema.safetensors", "encoder.safetensors",
                 "critic.safetensors", "metrics.jsonl", "samples/domain-1.png", "samples/domain-2.png",
                 "snapshots/domain-1/generator_ema.safetensors", "snapshots/domain-2/encoder.safetensors"]:
        assert (run_dir / name).is_file(), name
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["model"]["d_dim"] == 6 and cfg["train"]["domains"] == ["synthetic:bars", "synthetic:rings"]
    assert [s["source"].startswith("synthetic") for s in cfg["data_sources"]] == [True, True]
    assert cfg["package_version"]
    phases = [(p.d_slots, p.replay_ratio) for p in trainer.phases]
    assert phases == [(3, 0.0), (6, 0.5)]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["global_step"] for r in records] == [5, 10, 15, 20]
    assert records[-1]["align"] > 0  # alignment active in domain 2
    # The bundle alone rebuilds the networks, strictly, and G_ema reproduces the trainer's.
    run, nets = ckpt.load_bundle(run_dir)
    z, c = torch.randn(4, run.model.z_dim), torch.randn(4, run.model.c_dim)
    d = torch.nn.functional.one_hot(torch.tensor([0, 1, 4, 5]), 6).float()
    assert torch.equal(nets["G_ema"](z, c, d), trainer.G_ema.eval()(z, c, d))


def test_joint_and_no_replay_modes(tmp_path, synthetic28):
    joint = make_trainer(tmp_path / "j", synthetic28, joint=True)
    assert len(joint.phases) == 1 and joint.phases[0].steps == 20
    assert joint.phases[0].images.shape[0] == sum(d.train_images.shape[0] for d in synthetic28)
    # Batches are balanced across domains even when their sizes differ (as MNIST subset vs Fashion).
    import copy

    uneven = copy.copy(synthetic28[1])
    uneven.train_images = synthetic28[1].train_images[:200]
    jt = make_trainer(tmp_path / "u", [synthetic28[0], uneven], joint=True)
    n0 = synthetic28[0].train_images.shape[0]
    drawn = categorical(jt.phases[0].sample_weights, 4000, torch.Generator().manual_seed(0))
    assert abs((drawn >= n0).float().mean().item() - 0.5) < 0.05
    nr = make_trainer(tmp_path / "n", synthetic28, replay=False, steps_per_domain=2)
    nr.train()
    assert nr.snapshot is None


@pytest.mark.parametrize("shared", [True, False])
def test_encoder_layouts_train(tmp_path, synthetic28, shared):
    trainer = make_trainer(tmp_path, synthetic28[:1], encoder_shares_critic=shared, steps_per_domain=3)
    assert (trainer.S.trunk is trainer.D.trunk) == shared
    before = [p.clone() for p in trainer.S.parameters()]
    trainer.train()
    # Every parameter of S learns: heads (with the critic when shared, with G otherwise) and trunk.
    assert all(not torch.equal(b, p) for b, p in zip(before, trainer.S.parameters()))
    _, nets = ckpt.load_bundle(tmp_path / "run", which=("S",))  # standalone S from the bundle
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    assert torch.equal(nets["S"](x)[0], trainer.S.eval()(x)[0])
