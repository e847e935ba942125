"""ONNX export: self-contained files, checker, parity with PyTorch, loud failures, CLI errors."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from conftest import lgen
from lifelong_gen import runtime
from lifelong_gen.bundle import ENCODER_ONNX, GENERATOR_ONNX, ONNX_DIR
from lifelong_gen.config import ModelConfig, RunConfig, TrainConfig
from lifelong_gen.errors import LgenError
from lifelong_gen.export import onnx_export, spec
from lifelong_gen.runtime.codes import random_codes, softmax
from lifelong_gen.train import checkpoint as ckpt
from lifelong_gen.train.networks import build_networks
from tiny_onnx import copy_bundle, export_against_torch


def test_export_writes_two_self_contained_checked_files(bundle):
    onnx_dir = bundle / ONNX_DIR
    # One file per network: no external-data side files, no temp files left behind.
    assert sorted(p.name for p in onnx_dir.iterdir()) == ["encoder.onnx", "generator.onnx"]
    cfg = json.loads((bundle / "config.json").read_text())["model"]
    for rel, inputs, outputs in ((GENERATOR_ONNX, spec.GENERATOR_INPUTS, spec.GENERATOR_OUTPUTS),
                                 (ENCODER_ONNX, spec.ENCODER_INPUTS, spec.ENCODER_OUTPUTS)):
        path = bundle / rel
        onnx.checker.check_model(str(path), full_check=True)
        model = onnx.load(str(path), load_external_data=False)
        assert not any(onnx.external_data_helper.uses_external_data(t) for t in model.graph.initializer)
        assert tuple(i.name for i in model.graph.input) == inputs
        assert tuple(o.name for o in model.graph.output) == outputs
        # Dynamic batch axis on every input and output.
        for value in list(model.graph.input) + list(model.graph.output):
            assert value.type.tensor_type.shape.dim[0].dim_param == spec.BATCH_AXIS, value.name
        assert {o.domain: o.version for o in model.opset_import}[""] == spec.DEFAULT_OPSET
        # No randomness inside the graph: the caller draws every code.
        assert not {n.op_type for n in model.graph.node} & {"RandomNormal", "RandomNormalLike", "RandomUniform",
                                                            "RandomUniformLike", "Multinomial", "Dropout"}
        meta = {p.key: p.value for p in model.metadata_props}
        assert json.loads(meta[spec.META_SHAPE]) == {k: cfg[k] for k in spec.SHAPE_KEYS}
        assert float(meta[spec.META_PARITY]) <= spec.PARITY_ATOL
    gen_meta = {p.key: p.value for p in onnx.load(str(bundle / GENERATOR_ONNX)).metadata_props}
    assert gen_meta[spec.META_WEIGHTS] == "ema"


@pytest.mark.parametrize("n", spec.PARITY_BATCHES)
def test_onnxruntime_matches_torch(bundle, n):
    _, nets = ckpt.load_bundle(bundle, which=("G_ema", "S"))
    model = runtime.OnnxModel(bundle, provider="cpu")
    rng = np.random.default_rng(n)
    codes = random_codes(model, n, rng)
    codes.d[: n // 2] = softmax(rng.standard_normal((n // 2, model.d_dim)))  # soft d too
    images = model.sample(codes.z, codes.c, codes.d)
    with torch.no_grad():
        expected = nets["G_ema"](*(torch.from_numpy(a) for a in (codes.z, codes.c, codes.d))).numpy()
        d_logits_t, c_mean_t = nets["S"](torch.from_numpy(images))
    assert images.shape == expected.shape == (n, 1, 28, 28)
    assert np.abs(images - expected).max() <= spec.PARITY_ATOL
    assert images.min() >= -1 and images.max() <= 1
    d_logits, c_mean = model.encode(images)
    assert np.abs(d_logits - d_logits_t.numpy()).max() <= spec.PARITY_ATOL
    assert np.abs(c_mean - c_mean_t.numpy()).max() <= spec.PARITY_ATOL


def test_encoder_recovers_generated_d(bundle):
    # The point of the trained fixture: S inverts G on d (InfoGAN's MI term did its job).
    model = runtime.OnnxModel(bundle)
    codes = random_codes(model, 200, np.random.default_rng(7))
    d_logits, _ = model.encode(model.sample(codes.z, codes.c, codes.d))
    accuracy = float((d_logits.argmax(1) == codes.d.argmax(1)).mean())
    assert accuracy >= 0.9, accuracy


def test_failed_parity_writes_nothing(bundle, tmp_path, monkeypatch):
    target = copy_bundle(bundle, tmp_path / "b", with_onnx=True)
    before = {p.name: p.read_bytes() for p in (target / "onnx").iterdir()}
    real = onnx_export._torch_outputs
    # A torch reference off by 1e-3 stands in for a wrong export; the exporter must refuse it.
    monkeypatch.setattr(onnx_export, "_torch_outputs", lambda m, x: [a + 1e-3 for a in real(m, x)])
    with pytest.raises(LgenError, match="differs from PyTorch"):
        onnx_export.export_bundle(target)
    # The previous export is untouched and no temp file is left.
    assert {p.name: p.read_bytes() for p in (target / "onnx").iterdir()} == before


def test_raw_generator_and_no_continuous_codes(tmp_path):
    # c_dim = 0 is legal in configs: c is then [N, 0] on both sides of the graph.
    cfg = ModelConfig(z_dim=4, c_dim=0, d_dim=3, g_width=4, d_width=4, fc_width=16)
    run = RunConfig(model=cfg, train=TrainConfig(domains=["synthetic:bars"]))
    torch.manual_seed(0)
    G, _, S = build_networks(cfg)
    G_ema, _, _ = build_networks(cfg)
    ckpt.save_bundle(tmp_path, run, {"G": G, "G_ema": G_ema, "S": S})
    result = onnx_export.export_bundle(tmp_path, generator="raw")
    assert result.generator_weights == "raw" and max(result.max_abs_diff.values()) <= spec.PARITY_ATOL
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / GENERATOR_ONNX)).metadata_props}
    assert meta[spec.META_WEIGHTS] == "raw"
    model = runtime.OnnxModel(tmp_path, provider="cpu")
    codes = random_codes(model, 5, np.random.default_rng(0))
    images = model.sample(codes.z, codes.c, codes.d)
    with torch.no_grad():
        expected = G.eval()(*(torch.from_numpy(a) for a in (codes.z, codes.c, codes.d))).numpy()
    assert np.abs(images - expected).max() <= spec.PARITY_ATOL  # the raw weights, not the EMA copy
    d_logits, c_mean = model.encode(images)
    assert d_logits.shape == (5, 3) and c_mean.shape == (5, 0)


@pytest.mark.parametrize("args, message", [
    (["--generator", "best"], "--generator must be one of ema, raw"),
    (["--opset", "9"], "--opset must be in"),
])
def test_export_bad_flags(bundle, tmp_path, args, message):
    target = copy_bundle(bundle, tmp_path / "b", with_onnx=False)
    r = lgen("export", str(target), *args)
    assert r.returncode == 2 and r.stderr.startswith("lgen: error: ") and message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (target / "onnx").exists()


def test_export_missing_bundle(tmp_path):
    r = lgen("export", str(tmp_path / "nope"))
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [f"lgen: error: '{tmp_path / 'nope'}' is neither a "
                                                                   f"directory nor a Hub repo id of the form ORG/NAME[@REV]"]


def test_truncated_onnx_is_one_line_error(bundle, tmp_path):
    target = copy_bundle(bundle, tmp_path / "b")
    gen = target / GENERATOR_ONNX
    gen.write_bytes(gen.read_bytes()[: gen.stat().st_size // 2])
    out = tmp_path / "s.png"
    r = lgen("sample", "--model", str(target), "--n", "2", "--out", str(out))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lgen: error: cannot load ") and "lgen export" in lines[0]
    assert not out.exists()


def test_scaled_codes_export_and_the_exporter_leaves_the_model_usable(tmp_path):
    """z and c scaled inside G (the reference preset's 0.1): the export's traced constant must not
    stay behind in G, whose later real forwards (the parity check) then return plain tensors."""
    cfg = ModelConfig(z_dim=4, c_dim=2, d_dim=3, g_width=4, d_width=4, fc_width=16, z_scale=0.1, c_scale=0.1)
    torch.manual_seed(0)
    G, _, S = build_networks(cfg)
    images, expected = export_against_torch(tmp_path, cfg, G, S, 5)
    assert type(expected) is torch.Tensor
    assert np.abs(images - expected.numpy()).max() <= spec.PARITY_ATOL
