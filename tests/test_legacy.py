"""Layers before batch norm have no bias; bundles and checkpoints written with one still work.

tests/data/legacy-bias-run was written by the code of commit eca2c00 (make_legacy_bias_run.py),
with the eval-mode outputs of its networks as that code computed them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import lgen
from lifelong_gen.config import ModelConfig, read_run_config
from lifelong_gen.train.checkpoint import load_bundle
from lifelong_gen.train.networks import build_networks, norm_fed_layers

DATA = Path(__file__).resolve().parent / "data"
EXPECTED = load_file(str(DATA / "legacy-bias-run-expected.safetensors"))


@pytest.fixture
def legacy_run(tmp_path):
    run = tmp_path / "legacy"
    shutil.copytree(DATA / "legacy-bias-run", run)
    return run


@pytest.mark.parametrize("resolution, channels", [(28, 1), (64, 3)])
@pytest.mark.parametrize("conditioning", ["input", "cbn"])
def test_no_layer_directly_before_batch_norm_has_a_bias(resolution, channels, conditioning):
    cfg = ModelConfig(img_resolution=resolution, img_channels=channels, g_width=4, d_width=4, fc_width=16,
                      g_conditioning=conditioning)
    G, D, S = build_networks(cfg)
    expected = 3 if resolution == 28 else 4  # G's norms: fc, fc, conv / fc, conv x3
    assert len(norm_fed_layers(G)) == expected and len(norm_fed_layers(S)) == (2 if resolution == 28 else 3)
    assert norm_fed_layers(D) == {}  # the critic has no batch norm, and keeps every bias
    for net in (G, D, S):
        for seq in (m for m in net.modules() if isinstance(m, torch.nn.Sequential)):
            layers = list(seq)
            for layer, after in zip(layers, layers[1:]):
                bn = getattr(after, "bn", after)
                if isinstance(bn, torch.nn.modules.batchnorm._BatchNorm):
                    assert layer.bias is None, layer


def test_a_bundle_with_biases_loads_folded_with_the_same_outputs(legacy_run, caplog):
    keys = load_file(str(legacy_run / "generator_ema.safetensors")).keys()
    assert {"fc.0.bias", "fc.3.bias", "conv.0.bias"} <= set(keys)  # the fixture is of the old layout
    with caplog.at_level("INFO", logger="lifelong_gen"):
        _, nets = load_bundle(legacy_run, which=("G_ema", "S"))
    assert "fc.0.bias" not in nets["G_ema"].state_dict()
    assert sum("written by an older lifelong-gen" in r.getMessage() for r in caplog.records) == 2
    e = EXPECTED
    with torch.no_grad():
        images = nets["G_ema"](e["z"], e["c"], e["d"])
        logits, c_mean = nets["S"](e["images"])
    # Folding moves b from before the norm's subtraction to inside it: round-off only.
    assert (images - e["bundle.G_ema"]).abs().max() < 1e-5
    assert (logits - e["bundle.S.d_logits"]).abs().max() < 1e-5 and (c_mean - e["bundle.S.c_mean"]).abs().max() < 1e-5
    assert torch.equal(((images + 1) * 127.5).round(), ((e["bundle.G_ema"] + 1) * 127.5).round())


def test_the_embedded_model_loads_folded_and_still_matches_its_onnx_graph():
    ort = pytest.importorskip("onnxruntime")
    from lifelong_gen.bundle.embedded import pretrained_path

    bundle = pretrained_path()
    run, nets = load_bundle(bundle, which=("G_ema",))
    cfg = run.model
    g = torch.Generator().manual_seed(1)
    z, c = torch.randn(8, cfg.z_dim, generator=g), torch.randn(8, cfg.c_dim, generator=g)
    d = torch.nn.functional.one_hot(torch.arange(8) * 2 % cfg.d_dim, cfg.d_dim).float()
    with torch.no_grad():
        images = nets["G_ema"](z, c, d).numpy()
    session = ort.InferenceSession(str(bundle / "onnx" / "generator.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    onnx_images = session.run(None, dict(zip(names, (z.numpy(), c.numpy(), d.numpy()))))[0]
    assert abs(images - onnx_images).max() < 1e-4  # the graph was exported by the old layout


def test_a_checkpoint_with_biases_resumes_with_its_optimizer_state_renumbered(legacy_run):
    from lifelong_gen.train.trainer import Trainer

    saved = load_file(str(legacy_run / "checkpoints" / "step-00000004" / "state.safetensors"))
    trainer = Trainer(read_run_config(legacy_run), legacy_run, progress=False)
    assert trainer.restore() and trainer.global_step == 4
    e = EXPECTED
    with torch.no_grad():
        assert (trainer.G_ema.eval()(e["z"], e["c"], e["d"]) - e["checkpoint.G_ema"]).abs().max() < 1e-5
        logits, _ = trainer.S.eval()(e["images"])
        assert (logits - e["checkpoint.S.d_logits"]).abs().max() < 1e-5
    # Positions in the old optimizer, counted by hand from the old G (weight, bias per layer):
    # fc.0 0-1, fc.1 2-3, fc.3 4-5, fc.4 6-7, conv.0 8-9, conv.1 10-11, conv.3 12-13.
    old_position = {"fc.0.weight": 0, "fc.1.weight": 2, "fc.4.bias": 7, "conv.0.weight": 8, "conv.3.bias": 13}
    params = dict(trainer.G.named_parameters())
    for name, old in old_position.items():
        state = trainer.opt_g.state[params[name]]
        assert torch.equal(state["exp_avg"], saved[f"opt_g.{old}.exp_avg"]), name
        assert torch.equal(state["exp_avg_sq"], saved[f"opt_g.{old}.exp_avg_sq"]), name
    assert len(trainer.opt_g.state) == len(list(trainer.opt_g.param_groups[0]["params"]))


@pytest.mark.integration
def test_lgen_train_resume_finishes_a_checkpoint_with_biases(legacy_run):
    r = lgen("train", "--resume", str(legacy_run), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "written by an older lifelong-gen" in r.stderr
    weights = load_file(str(legacy_run / "generator_ema.safetensors"))
    assert "fc.0.bias" not in weights and "fc.1.bias" in weights  # the norm's own beta stays
