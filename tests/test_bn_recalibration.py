"""S's batch-norm statistics recomputed at each domain's end (lifelong_gen/train/bn_recalibration.py):
only S's buffers change, they become the real mix's statistics, old configs read as off, and
recalibrate_run (scripts/recalibrate_s.py) gives an older run the files a retraining writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY, lgen
from lifelong_gen.config import RunConfig, read_run_config, resolve_run_config
from lifelong_gen.errors import LgenError
from lifelong_gen.train.bn_recalibration import recalibrate_s
from lifelong_gen.train.recalibrate_run import recalibrate_run
from lifelong_gen.train.trainer import Trainer

SETTINGS = {**TINY, "steps_per_domain": 12, "d_per_domain": 3, "s_real_weight": 1.0, "s_real_reuse": True,
            "info_augment_weight": 1.0}


def _run(synthetic28, out: Path, batches: int) -> Path:
    run = resolve_run_config({**SETTINGS, "domains": [d.spec for d in synthetic28], "s_bn_recalibration": batches})
    Trainer(run, out, data=synthetic28, progress=False).train()
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory, synthetic28):
    """The same tiny two-domain run without and with the recalibration (8 batches)."""
    root = tmp_path_factory.mktemp("bnrecal")
    return {n: _run(synthetic28, root / f"b{n}", n) for n in (0, 8)}


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def test_only_s_buffers_change_and_training_is_untouched(runs):
    off, on = runs[0], runs[8]
    for name in ("generator.safetensors", "generator_ema.safetensors", "critic.safetensors"):
        a, b = _tensors(off / name), _tensors(on / name)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert (off / "metrics.jsonl").read_text().splitlines()[0] and [
        {k: v for k, v in json.loads(line).items() if k != "sec_per_step"}
        for line in (off / "metrics.jsonl").read_text().splitlines()] == [
        {k: v for k, v in json.loads(line).items() if k != "sec_per_step"}
        for line in (on / "metrics.jsonl").read_text().splitlines()]
    a, b = _tensors(off / "encoder.safetensors"), _tensors(on / "encoder.safetensors")
    buffers = {k for k in a if k.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    assert buffers and all(torch.equal(a[k], b[k]) for k in a if k not in buffers)
    assert all(not torch.equal(a[k], b[k]) for k in buffers if not k.endswith("num_batches_tracked"))
    assert read_run_config(on).train.s_bn_recalibration == 8


def test_statistics_become_the_real_mix_and_leave_the_run_stream_alone(synthetic28, tmp_path):
    run = resolve_run_config({**SETTINGS, "domains": [synthetic28[0].spec], "s_bn_recalibration": 40})
    trainer = Trainer(run, tmp_path / "r", data=synthetic28[:1], progress=False)
    S, phase = trainer.S, trainer.phases[0]
    bn = next(m for m in S.modules() if isinstance(m, torch.nn.BatchNorm2d))
    weights = {k: v.clone() for k, v in S.named_parameters()}
    mode = S.training
    stream = trainer.rng.get_state()
    captured = []
    hook = bn.register_forward_hook(lambda m, inp, out: captured.append(inp[0].detach()))
    assert recalibrate_s(trainer, phase)
    hook.remove()
    assert torch.equal(trainer.rng.get_state(), stream)
    assert all(torch.equal(weights[k], v) for k, v in S.named_parameters())
    # PreciseBN's closed form: the running mean is the mean of the batches' means, the variance
    # the mean of their unbiased variances (torch's cumulative average with momentum None).
    means = torch.stack([x.mean((0, 2, 3)) for x in captured])
    variances = torch.stack([x.transpose(0, 1).flatten(1).var(1, unbiased=True) for x in captured])
    assert len(captured) == 40 and captured[0].shape[0] == 2 * run.train.batch_size  # [real; augmented]
    torch.testing.assert_close(bn.running_mean, means.mean(0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bn.running_var, variances.mean(0), rtol=1e-4, atol=1e-5)
    assert bn.momentum == 0.1 and S.training == mode  # update_bn restores both


def test_off_and_shared_trunk_do_nothing(synthetic28, tmp_path):
    run = resolve_run_config({**SETTINGS, "domains": [synthetic28[0].spec], "s_bn_recalibration": 0})
    assert not recalibrate_s(Trainer(run, tmp_path / "a", data=synthetic28[:1], progress=False),
                             None)  # 0: returns before touching the phase
    shared = resolve_run_config({**SETTINGS, "domains": [synthetic28[0].spec], "encoder_shares_critic": True,
                                 "s_real_weight": 0.0, "s_real_reuse": False})
    trainer = Trainer(shared, tmp_path / "b", data=synthetic28[:1], progress=False)
    assert not recalibrate_s(trainer, trainer.phases[0])


def test_a_config_from_before_the_setting_reads_as_off_and_a_negative_count_is_refused(tmp_path):
    run = resolve_run_config({**SETTINGS, "domains": ["synthetic:bars"]})
    assert run.train.s_bn_recalibration == 100  # on by default for new runs
    raw = run.to_dict()
    del raw["train"]["s_bn_recalibration"]
    assert RunConfig.from_dict(raw).train.s_bn_recalibration == 0
    with pytest.raises(LgenError, match="--s-bn-recalibration must be >= 0"):
        resolve_run_config({**SETTINGS, "domains": ["synthetic:bars"], "s_bn_recalibration": -1})
    r = lgen("train", "--domains", "synthetic:bars", "--s-bn-recalibration", "-1", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "s-bn-recalibration" in r.stderr
    assert not (tmp_path / "x").exists()


def test_script_gives_an_older_run_the_files_a_retraining_writes(runs, synthetic28, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(runs[0], old)
    written = recalibrate_run(old, 8, data=synthetic28)
    assert written == [old / "snapshots" / "domain-1", old / "snapshots" / "domain-2", old]
    for rel in ("encoder.safetensors", "config.json", "generator.safetensors", "critic.safetensors",
                "snapshots/domain-1/encoder.safetensors", "snapshots/domain-2/encoder.safetensors",
                "snapshots/domain-1/config.json"):
        assert (old / rel).read_bytes() == (runs[8] / rel).read_bytes(), rel
    from lifelong_gen.train.checkpoint import load_bundle

    load_bundle(old)  # every file still matches its manifest


def test_a_continuation_recalibrates_even_when_its_parent_did_not(synthetic28, tmp_path):
    """It changes no weight, so a parent trained before it (0 in its config) does not keep it off;
    a continuation may also set it, unlike the parent's method settings."""
    from lifelong_gen.bundle.lineage import continue_config, resolve_parent

    run = resolve_run_config({**SETTINGS, "domains": [synthetic28[0].spec], "steps_per_domain": 2,
                              "s_bn_recalibration": 0})
    Trainer(run, tmp_path / "p", data=synthetic28[:1], progress=False).train()
    parent = resolve_parent(str(tmp_path / "p"))
    assert parent.run.train.s_bn_recalibration == 0
    assert continue_config(parent, ["synthetic:rings"], {}).train.s_bn_recalibration == 100
    assert continue_config(parent, ["synthetic:rings"], {"s_bn_recalibration": 7}).train.s_bn_recalibration == 7
