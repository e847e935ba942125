"""`--growth adapters`: a later domain learns parameters of its own on a frozen generator.

What it promises (train/domain_groups.py): the old domains' images are exactly what they were
(after growth, and after the new domain's training, in eval mode, which is how every sampler
uses G), the ONNX graph selects the groups from d, a continued run of each growth kind resumes
bit-identically after kill -9, and settings the parent cannot take are refused in one line.
"""

from __future__ import annotations

import dataclasses
import shutil
import signal
import subprocess

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import STOP_AT, TINY, TINY_FLAGS, lgen, wait_stopped
from lifelong_gen.bundle.lineage import continue_config, resolve_parent
from lifelong_gen.config import ModelConfig, read_run_config, resolve_run_config
from lifelong_gen.errors import LgenError
from lifelong_gen.train import checkpoint as ckpt
from lifelong_gen.train.domain_groups import GroupIsolation, group_matrix
from lifelong_gen.train.growth import grow_state
from lifelong_gen.train.networks import Generator

FLAGS = ["--checkpoint-every", "5", "--d-per-domain", "3", "--seed", "1", "--g-conditioning", "cbn", *TINY_FLAGS]


def _codes(cfg: ModelConfig, slots: range, n: int = 24, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    z, c = torch.randn(n, cfg.z_dim, generator=g), torch.randn(n, cfg.c_dim, generator=g)
    d = torch.nn.functional.one_hot(torch.tensor([slots[i % len(slots)] for i in range(n)]), cfg.d_dim).float()
    return z, c, d


def _trained_stats(G: Generator, seed: int) -> None:
    """Non-trivial weights and batch-norm statistics (zero CBN columns and unit statistics hide bugs)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in G.state_dict().items():
            if t.dtype.is_floating_point and name != "group_matrix":
                t.copy_(torch.rand(t.shape, generator=g) + 0.5 if "running_var" in name
                        else torch.randn(t.shape, generator=g) * 0.3)


@pytest.mark.parametrize("resolution,channels", [(28, 1), (64, 3)])
@pytest.mark.parametrize("rank", [0, 3])
def test_growth_keeps_the_old_images_and_starts_the_new_group_as_the_base(resolution, channels, rank):
    plain = ModelConfig(z_dim=5, c_dim=2, d_dim=4, img_channels=channels, img_resolution=resolution, g_width=8,
                        fc_width=16, g_conditioning="cbn")
    G_old = Generator(plain).eval()
    _trained_stats(G_old, 0)
    one = dataclasses.replace(plain, d_dim=6, domain_groups=[4], adapter_rank=rank)
    G_one = Generator(one).eval()
    G_one.load_state_dict(grow_state(G_old.state_dict(), G_one.state_dict(), 2, "generator"))
    z, c, d = _codes(one, range(4))
    with torch.no_grad():
        assert (G_one(z, c, d) - G_old(z, c, d[:, :4])).abs().max() <= 1e-5
    # A second group on a grouped parent: every old group's images, up to float rounding (wider matrices
    # sum in another order; training, which keeps the shapes, keeps them bit for bit: below).
    _trained_stats(G_one, 1)
    two = dataclasses.replace(one, d_dim=8, domain_groups=[4, 6])
    G_two = Generator(two).eval()
    G_two.load_state_dict(grow_state(G_one.state_dict(), G_two.state_dict(), 2, "generator"))
    z, c, d = _codes(two, range(6))
    with torch.no_grad():
        assert (G_two(z, c, d) - G_one(z, c, d[:, :6])).abs().max() <= 1e-5
    # The new group's statistics start as the base's and its adapters at zero.
    for name, t in G_two.state_dict().items():
        if name.endswith("running_mean"):
            assert torch.equal(t[2], t[0])
        if name.endswith("up.weight"):  # the second group's slice: Linear [out, J·r], ConvTranspose2d [J·r, out, k, k]
            new = t[:, rank:] if t.dim() == 2 else t[rank:]
            assert new.numel() and not new.any()
            assert (t[:, :rank] if t.dim() == 2 else t[:rank]).any()  # the first group's, randomised, kept


def test_the_group_matrix_and_isolation_masks_select_one_group():
    cfg = ModelConfig(z_dim=5, c_dim=2, d_dim=9, g_width=8, fc_width=16, g_conditioning="cbn",
                      domain_groups=[3, 6], adapter_rank=2)
    m = group_matrix(9, [3, 6])
    assert m.tolist() == [[1, 0, 0]] * 3 + [[0, 1, 0]] * 3 + [[0, 0, 1]] * 3
    G = Generator(cfg)
    masks = dict((name, mask) for (name, _), (_, mask) in zip(G.named_parameters(), GroupIsolation(G, 2).masks))
    first = cfg.z_dim + cfg.c_dim
    assert masks["fc.0.weight"][:, first + 6:].all() and not masks["fc.0.weight"][:, :first + 6].any()
    assert masks["fc.1.gain.weight"][:, 6:].all() and not masks["fc.1.gain.weight"][:, :6].any()
    down = masks["adapters.fc_3.down.weight"]  # [J·r, in]: group 2 is rows 2..3
    assert down[2:].all() and not down[:2].any()
    assert masks["fc.3.weight"] is None  # the shared trunk: zeroed whole
    assert masks["conv.1.bn.weight"] is None


@pytest.fixture(scope="module")
def adapters_run(tmp_path_factory):
    """A tiny three-domain run from scratch with --growth adapters (two boundaries inside the run)."""
    out = tmp_path_factory.mktemp("growth") / "run"
    r = lgen("train", "--domains", "synthetic:bars,synthetic:rings,mnist", "--growth", "adapters",
             "--adapter-rank", "2", "--steps-per-domain", "8", *FLAGS, "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


def test_training_later_domains_leaves_the_old_images_exactly(adapters_run):
    run = read_run_config(adapters_run)
    assert run.model.domain_groups == [3, 6] and run.train.growth == "adapters"
    _, final = ckpt.load_bundle(adapters_run, which=("G_ema",))
    G = final["G_ema"].eval()
    for k, old_slots in ((1, range(3)), (2, range(6))):
        _, snap = ckpt.load_bundle(adapters_run / "snapshots" / f"domain-{k}", which=("G_ema",))
        z, c, d = _codes(G.cfg, old_slots, seed=k)
        with torch.no_grad():
            assert torch.equal(G(z, c, d), snap["G_ema"].eval()(z, c, d)), f"domain {k}'s images moved"
    # ... while the last domain's images did change (its group trained).
    _, snap = ckpt.load_bundle(adapters_run / "snapshots" / "domain-2", which=("G_ema",))
    z, c, d = _codes(G.cfg, range(6, 9))
    with torch.no_grad():
        assert (G(z, c, d) - snap["G_ema"].eval()(z, c, d)).abs().max() > 1e-3


def test_a_grown_model_exports_and_onnx_matches_torch(adapters_run, tmp_path):
    """Per-domain parameters are picked inside the graph from d: (z, c, d) -> image, soft d included."""
    import onnxruntime as ort

    bundle = tmp_path / "b"
    shutil.copytree(adapters_run, bundle, ignore=shutil.ignore_patterns("checkpoints"))
    r = lgen("export", str(bundle))
    assert r.returncode == 0, r.stderr
    _, nets = ckpt.load_bundle(bundle, which=("G_ema",))
    G = nets["G_ema"].eval()
    cfg = G.cfg
    z, c, d = _codes(cfg, range(9), n=18)
    d[-1] = torch.full((cfg.d_dim,), 1.0 / cfg.d_dim)  # a soft d mixes the groups
    session = ort.InferenceSession(str(bundle / "onnx" / "generator.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    out = session.run(None, dict(zip(names, (z.numpy(), c.numpy(), d.numpy()))))[0]
    with torch.no_grad():
        want = G(z, c, d).clamp(-1, 1).numpy()
    assert np.abs(out - want).max() <= 1e-4


@pytest.fixture(scope="module")
def replay_parent(tmp_path_factory):
    """A tiny one-domain parent with a critic, grown by replay (no domain groups)."""
    out = tmp_path_factory.mktemp("growth-parent") / "p"
    r = lgen("train", "--domains", "synthetic:bars", "--steps-per-domain", "10", *FLAGS, "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


def test_continuing_a_replay_parent_adds_a_group_and_keeps_its_images(replay_parent, tmp_path):
    p = resolve_parent(str(replay_parent))
    run = continue_config(p, ["synthetic:rings"], {"growth": "adapters", "adapter_rank": 2})
    assert run.model.domain_groups == [3] and run.model.adapter_rank == 2 and run.model.d_dim == 6
    child = tmp_path / "c"
    r = lgen("train", "--from", str(replay_parent), "--domains", "synthetic:rings", "--growth", "adapters",
             "--adapter-rank", "2", "--steps-per-domain", "8", "--checkpoint-every", "4", "--no-progress",
             "--out", str(child))
    assert r.returncode == 0, r.stderr
    _, parent_nets = ckpt.load_bundle(replay_parent, which=("G_ema",))
    _, child_nets = ckpt.load_bundle(child, which=("G_ema",))
    z, c, d = _codes(child_nets["G_ema"].cfg, range(3))
    with torch.no_grad():
        diff = child_nets["G_ema"].eval()(z, c, d) - parent_nets["G_ema"].eval()(z, c, d[:, :3])
    assert diff.abs().max() <= 1e-5  # per-group statistics vs the plain batch norm: float rounding only
    # A grandchild adds a third group; the second keeps its rank.
    r = lgen("train", "--from", str(child), "--domains", "synthetic:bars-free", "--dry-run")
    assert r.returncode == 2


@pytest.mark.parametrize("extra,message", [
    (["--growth", "adapters", "--d-per-domain", "0"], "--d-per-domain"),
    (["--growth", "adapters", "--no-replay"], "--no-replay goes with --growth replay"),
    (["--growth", "adapters", "--replay-alignment", "1"], "--replay-alignment"),
    (["--growth", "sideways"], "--growth"),
])
def test_bad_growth_settings_from_scratch_are_one_line(tmp_path, extra, message):
    out = tmp_path / "out"
    args = ["train", "--domains", "synthetic:bars,synthetic:rings", "--steps-per-domain", "2", *TINY_FLAGS]
    if "--d-per-domain" not in extra:
        args += ["--d-per-domain", "3"]
    r = lgen(*args, *extra, "--out", str(out))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and message in lines[0], r.stderr
    assert not out.exists()


def test_adapters_need_each_domain_to_have_its_own_d():
    with pytest.raises(LgenError, match="needs --d-per-domain"):
        resolve_run_config({"domains": "synthetic:bars,synthetic:rings", "growth": "adapters", **TINY})


def test_growth_settings_a_parent_cannot_take_are_one_line_and_write_nothing(replay_parent, adapters_run, tmp_path):
    shared = tmp_path / "shared"  # a parent whose domains share one Cat (no --d-per-domain)
    r = lgen("train", "--domains", "synthetic:bars", "--steps-per-domain", "2", *TINY_FLAGS, "--out", str(shared))
    assert r.returncode == 0, r.stderr
    cases = [
        (shared, ["--growth", "adapters"], "shares one Cat"),
        (adapters_run, ["--growth", "replay"], "grows only that way"),
        (adapters_run, ["--adapter-rank", "5"], "adapters of rank 2"),
        (replay_parent, ["--growth", "replay", "--adapter-rank", "4"], "give --growth adapters"),
    ]
    for parent, extra, message in cases:
        before = {p: p.read_bytes() for p in parent.rglob("*") if p.is_file()}
        out = tmp_path / "out"
        r = lgen("train", "--from", str(parent), "--domains", "synthetic:rings" if parent is not adapters_run
                 else "fashion-mnist", *extra, "--out", str(out), "--no-progress")
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and message in lines[0], (extra, r.stderr)
        assert not out.exists()
        assert {p: p.read_bytes() for p in parent.rglob("*") if p.is_file()} == before


@pytest.mark.integration
@pytest.mark.timeout(900)
@pytest.mark.parametrize("growth", ["replay", "adapters"])
def test_a_continued_run_of_each_growth_resumes_bit_identically_after_kill9(replay_parent, tmp_path, growth):
    args = ["train", "--from", str(replay_parent), "--domains", "synthetic:rings", "--growth", growth,
            "--steps-per-domain", "20", "--checkpoint-every", "7", "--no-progress"]
    ref = tmp_path / "ref"
    r = lgen(*args, "--out", str(ref))
    assert r.returncode == 0, r.stderr
    out = tmp_path / "killed"
    proc = subprocess.Popen([*STOP_AT, "16", *args, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_stopped(proc)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert (out / "checkpoints" / "latest").read_text().strip() == "step-00000014"
    r = lgen("train", "--resume", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    for name in ("generator.safetensors", "generator_ema.safetensors", "encoder.safetensors", "critic.safetensors"):
        a, b = load_file(str(ref / name)), load_file(str(out / name))
        assert all(a[k].equal(b[k]) for k in a), f"{growth}: {name} differs"
