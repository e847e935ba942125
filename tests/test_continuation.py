"""`lgen train --from PARENT --domains NEW`: growth preserves the function, lineage, errors, resume.

A continued run must (issue 19): start G and S from the parent's EMA G and S grown along d
(equal to the parent's on old codes within 1e-6), replay the parent's EMA G, record its parent,
refuse bad combinations in one line with nothing written, and resume bit-identically.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from conftest import STOP_AT, TINY, TINY_FLAGS, lgen, wait_stopped
from lifelong_gen.bundle.lineage import continue_config, resolve_parent
from lifelong_gen.bundle.model_card import lineage_chain
from lifelong_gen.config import ModelConfig, read_run_config, resolve_run_config
from lifelong_gen.errors import LgenError
from lifelong_gen.train.growth import grow_into, grow_state
from lifelong_gen.train.networks import build_networks

WEIGHTS = ["generator.safetensors", "generator_ema.safetensors", "encoder.safetensors", "critic.safetensors"]
PARENT_FLAGS = ["--steps-per-domain", "12", "--checkpoint-every", "5", "--d-per-domain", "3", "--seed", "1",
                "--g-conditioning", "cbn", *TINY_FLAGS]


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """Non-trivial weights and BN statistics everywhere (CBN starts at zero: that would hide a bug)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.dtype.is_floating_point:
                t.copy_(torch.rand(t.shape, generator=g) + 0.5 if "running_var" in name
                        else torch.randn(t.shape, generator=g) * 0.3)


@pytest.mark.parametrize("resolution,channels,conditioning", [(28, 1, "cbn"), (28, 1, "input"), (64, 3, "cbn")])
def test_growing_d_preserves_g_and_s_on_old_codes(resolution, channels, conditioning):
    old_cfg = ModelConfig(z_dim=5, c_dim=2, d_dim=4, img_channels=channels, img_resolution=resolution, g_width=8,
                          d_width=8, fc_width=16, g_conditioning=conditioning)
    new_cfg = ModelConfig(**{**old_cfg.__dict__, "d_dim": 7})
    G_old, _, S_old = build_networks(old_cfg)
    _randomise(G_old, 0)
    _randomise(S_old, 1)
    torch.manual_seed(5)
    G_new, _, S_new = build_networks(new_cfg)
    grow_into(G_new, G_old.state_dict(), 3, "generator")
    grow_into(S_new, S_old.state_dict(), 3, "encoder")
    g = torch.Generator().manual_seed(2)
    z, c = torch.randn(16, 5, generator=g), torch.randn(16, 2, generator=g)
    d_old = torch.nn.functional.one_hot(torch.arange(16) % 4, 4).float()
    d_new = torch.cat([d_old, torch.zeros(16, 3)], 1)
    for mode in ("eval", "train"):  # running statistics and batch statistics alike
        for m in (G_old, G_new, S_old, S_new):
            getattr(m, mode)()
        with torch.no_grad():
            assert (G_new(z, c, d_new) - G_old(z, c, d_old)).abs().max() <= 1e-6
            images = G_old(z, c, d_old)
            (logits_new, c_new), (logits_old, c_old) = S_new(images), S_old(images)
        assert logits_new.shape == (16, 7)
        assert (logits_new[:, :4] - logits_old).abs().max() <= 1e-6
        assert (c_new - c_old).abs().max() <= 1e-6
    # The new categories are not copies of old ones: a new d draws something else.
    with torch.no_grad():
        G_new.eval()
        G_old.eval()
        d6 = torch.nn.functional.one_hot(torch.full((16,), 6), 7).float()
        assert (G_new(z, c, d6) - G_old(z, c, d_old)).abs().max() > 1e-3


def test_grow_state_refuses_anything_but_the_d_axis():
    old = {"w": torch.zeros(4, 3), "b": torch.zeros(4)}
    with pytest.raises(LgenError, match="only the d axis"):
        grow_state(old, {"w": torch.zeros(5, 4), "b": torch.zeros(4)}, 1, "generator")
    with pytest.raises(LgenError, match="different architecture"):
        grow_state(old, {"w": torch.zeros(4, 3)}, 0, "generator")


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """A tiny trained run directory (critic included) of one domain, 3 categories."""
    out = tmp_path_factory.mktemp("parent") / "p"
    r = lgen("train", "--domains", "synthetic:bars", *PARENT_FLAGS, "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


def test_continue_config_inherits_the_method_and_grows_d(parent):
    p = resolve_parent(str(parent))
    run = continue_config(p, "synthetic:rings", {"steps_per_domain": 7, "lr_g": 1e-3})
    assert run.train.domains == ["synthetic:bars", "synthetic:rings"] and run.train.inherited_domains == 1
    assert run.model.d_dim == 6 and run.train.d_per_domain == 3
    assert run.train.steps_per_domain == 7 and run.train.lr_g == 1e-3
    assert run.model.g_conditioning == "cbn" and run.train.seed == 1  # the parent's
    assert run.parent["critic"] == "parent"
    # Precision is chosen on the machine that continues (the trainer resolves auto), unless given.
    assert run.train.precision == "auto"
    assert continue_config(p, "synthetic:rings", {"precision": "fp32"}).train.precision == "fp32"
    assert run.parent["weights"]["generator_ema.safetensors"] == __import__("hashlib").sha256(
        (parent / "generator_ema.safetensors").read_bytes()).hexdigest()
    fresh = continue_config(p, "synthetic:rings", {}, critic="fresh")
    assert fresh.parent["critic"] == "fresh"
    with pytest.raises(LgenError, match="--info-augment-weight is fixed by the parent"):
        continue_config(p, "synthetic:rings", {"info_augment_weight": 2.0})
    with pytest.raises(LgenError, match="overlaps synthetic:bars of the parent's lineage"):
        continue_config(p, "synthetic:bars", {})


def test_continued_run_starts_from_the_grown_parent_and_records_its_lineage(parent, tmp_path):
    child = tmp_path / "c"
    r = lgen("train", "--from", str(parent), "--domains", "synthetic:rings", "--steps-per-domain", "6",
             "--checkpoint-every", "4", "--out", str(child), "--no-progress")
    assert r.returncode == 0, r.stderr
    run = read_run_config(child)
    assert run.train.domains == ["synthetic:bars", "synthetic:rings"] and run.model.d_dim == 6
    assert lineage_chain(run)[0]["path"] == str(parent.resolve())
    # The parent's model is the forgetting matrix's first row, byte for byte.
    for rel in ("config.json", "generator_ema.safetensors", "encoder.safetensors"):
        assert (child / "snapshots" / "domain-1" / rel).read_bytes() == (parent / rel).read_bytes()
    assert (child / "snapshots" / "domain-2" / "config.json").is_file()
    assert [json.loads(line)["domain_index"] for line in (child / "metrics.jsonl").read_text().splitlines()] == [1, 1]
    # The grandchild's lineage holds both ancestors, nearest first.
    grand = tmp_path / "g"
    r = lgen("train", "--from", str(child), "--domains", "synthetic:bars-free", "--dry-run")
    assert r.returncode == 2  # an unknown domain name is still one line
    r = lgen("train", "--from", str(child), "--domains", f"folder:{tmp_path / 'none'}", "--dry-run")
    assert r.returncode == 0, r.stderr
    chain = lineage_chain(read_run_config_from_text(r.stdout))
    assert [a["domains"] for a in chain] == [["synthetic:bars", "synthetic:rings"], ["synthetic:bars"]]
    assert not grand.exists()


def read_run_config_from_text(text):
    from lifelong_gen.config import RunConfig

    return RunConfig.from_dict(json.loads(text))


def test_first_step_starts_from_the_parent_exactly(parent, tmp_path, synthetic28):
    """Before any update the child's G_ema, on old codes, is the parent's EMA G; the snapshot is too."""
    from lifelong_gen.train.trainer import Trainer

    p = resolve_parent(str(parent))
    run = continue_config(p, ["synthetic:rings"], {"steps_per_domain": 1})
    trainer = Trainer(run, tmp_path / "c", data=[synthetic28[1]], progress=False, parent=parent)
    _, nets = __import__("lifelong_gen.train.checkpoint", fromlist=["load_bundle"]).load_bundle(parent, ("G_ema", "S", "D"))
    g = torch.Generator().manual_seed(0)
    z, c = torch.randn(6, TINY["z_dim"], generator=g), torch.randn(6, 2, generator=g)
    d_old = torch.nn.functional.one_hot(torch.arange(6) % 3, 3).float()
    d_new = torch.cat([d_old, torch.zeros(6, 3)], 1)
    with torch.no_grad():
        want = nets["G_ema"](z, c, d_old)
        assert (trainer.G_ema.eval()(z, c, d_new) - want).abs().max() <= 1e-6
        assert (trainer.snapshot.render(z, c, d_new) - want).abs().max() <= 1e-6
    assert trainer.snapshot.d_slots == 3 and trainer.phases[0].d_slots == 6
    assert trainer.phases[0].replay_ratio == 0.5  # each of the two domains keeps an equal share
    for k, v in nets["D"].state_dict().items():
        assert trainer.D.state_dict()[k].equal(v)


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_continued_run_kill9_then_resume_is_bit_identical(parent, tmp_path):
    import signal
    import subprocess

    args = ["train", "--from", str(parent), "--domains", "synthetic:rings", "--steps-per-domain", "30",
            "--checkpoint-every", "7", "--critic", "fresh", "--no-progress"]
    ref = tmp_path / "ref"
    r = lgen(*args, "--out", str(ref))
    assert r.returncode == 0, r.stderr
    # Killed where the run stops itself (lgen_stop_at.py): after step 1 (the grown start's
    # checkpoint, step-0, the newest) or step 16 (step-14 the newest).
    for moment, stop_at, want in (("step-0", 1, "step-00000000"), ("mid", 16, "step-00000014")):
        out = tmp_path / moment
        proc = subprocess.Popen([*STOP_AT, str(stop_at), *args, "--out", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_stopped(proc)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
        assert (out / "checkpoints" / "latest").read_text().strip() == want
        # The parent is gone: a resume needs only the run directory.
        hidden = tmp_path / "hidden"
        shutil.move(str(parent), str(hidden))
        try:
            r = lgen("train", "--resume", str(out), "--no-progress")
        finally:
            shutil.move(str(hidden), str(parent))
        assert r.returncode == 0, r.stderr
        for name in WEIGHTS:
            a, b = load_file(str(ref / name)), load_file(str(out / name))
            assert all(a[k].equal(b[k]) for k in a), f"{moment}: {name} differs"


def _one_line(r, message):
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("lgen: error: ") and message in lines[0], r.stderr


def _damaged(parent, tmp_path, what):
    bad = tmp_path / what
    shutil.copytree(parent, bad, ignore=shutil.ignore_patterns("checkpoints", "snapshots"))
    if what == "no-s":
        (bad / "encoder.safetensors").unlink()
    elif what == "truncated":
        data = (bad / "generator_ema.safetensors").read_bytes()
        (bad / "generator_ema.safetensors").write_bytes(data[: len(data) // 2])
    elif what == "no-config":
        (bad / "config.json").unlink()
    return bad


@pytest.mark.parametrize("case,extra,message", [
    ("missing", ["--from", "{tmp}/nowhere"], "is neither a directory nor a Hub repo id"),
    ("no-s", ["--from", "{bad}"], "has no encoder.safetensors"),
    ("truncated", ["--from", "{bad}"], "generator_ema.safetensors"),
    ("no-config", ["--from", "{bad}"], "no config.json"),
    ("shape", ["--from", "{parent}", "--domains", "synthetic64:rings"], "the parent model is 1x28x28"),
    ("resume", ["--from", "{parent}", "--resume", "{parent}"], "give one of them"),
    ("joint", ["--from", "{parent}", "--joint"], "--joint cannot be combined with --from"),
    ("method", ["--from", "{parent}", "--g-width", "16"], "--g-width is fixed by the parent model"),
    ("parent-critic", ["--from", "{bad}", "--critic", "parent"], "has no critic.safetensors"),
    ("no-domains", ["--from", "{parent}", "--domains", ""], "--domains"),
])
def test_bad_continuations_are_one_line_and_write_nothing(parent, tmp_path, case, extra, message):
    bad = _damaged(parent, tmp_path, case if case in ("no-s", "truncated", "no-config") else "intact")
    if case == "parent-critic":
        (bad / "critic.safetensors").unlink()
    before = {p: p.read_bytes() for p in parent.rglob("*") if p.is_file()}
    args = [a.format(tmp=tmp_path, bad=bad, parent=parent) for a in extra]
    if "--domains" not in args:
        args += ["--domains", "synthetic:rings"]
    out = tmp_path / "out"
    r = lgen("train", *args, "--out", str(out), "--no-progress")
    _one_line(r, message)
    assert not out.exists()
    assert {p: p.read_bytes() for p in parent.rglob("*") if p.is_file()} == before


def test_resume_of_a_bundle_without_checkpoints_refuses_and_changes_nothing(parent, tmp_path):
    """A pulled or copied bundle has weights but no checkpoints: --resume would train from random init."""
    copy = tmp_path / "copied"
    shutil.copytree(parent, copy, ignore=shutil.ignore_patterns("checkpoints"))
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    r = lgen("train", "--resume", str(copy), "--no-progress")
    _one_line(r, "holds trained weights")
    assert "--from" in r.stderr
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before


def test_embedded_model_name_is_a_parent():
    p = resolve_parent("mnist-fashion")
    assert p.record["source"] == "embedded" and p.run.model.d_dim == 20 and not p.has_critic
    run = continue_config(p, "synthetic:bars", {})
    assert run.model.d_dim == 30 and run.train.inherited_domains == 2
    assert run.parent["critic"] == "fresh"
    assert run.train.replay_ratio_for(2) == pytest.approx(2 / 3)
    assert run.data_sources == p.run.data_sources[:2]


def test_resolve_run_config_is_unchanged_for_runs_from_scratch():
    run = resolve_run_config({**TINY, "domains": "synthetic:bars"})
    assert run.train.inherited_domains == 0 and run.parent is None


def test_model_card_shows_the_lineage(parent, tmp_path):
    from lifelong_gen.bundle.model_card import render_card

    child = tmp_path / "c"
    r = lgen("train", "--from", str(parent), "--domains", "synthetic:rings", "--steps-per-domain", "2",
             "--out", str(child), "--no-progress")
    assert r.returncode == 0, r.stderr
    card = render_card(child)
    assert "## Lineage" in card
    sha = __import__("hashlib").sha256((parent / "encoder.safetensors").read_bytes()).hexdigest()
    assert f"`encoder.safetensors` {sha[:12]}" in card
    assert f"| 1 | `synthetic:bars` | 0–2 | `{parent}` |" in card
    assert "| 2 | `synthetic:rings` | 3–5 | this model |" in card
    assert "## Lineage" not in render_card(parent)  # a model trained from scratch has none


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_grown_embedded_model_exports_and_samples_all_30_d_torch_free(tmp_path, no_torch, grown_embedded):
    """The embedded 20-d model continued onto a third domain keeps the ONNX contract with d_dim 30."""
    child = grown_embedded
    script = f"""
import json, numpy as np
from lifelong_gen.runtime import load_model
m = load_model({str(child)!r})
cfg = json.load(open({str(child / "config.json")!r}))["model"]
assert cfg["d_dim"] == 30
rng = np.random.default_rng(0)
z = rng.standard_normal((30, cfg["z_dim"])).astype(np.float32)
c = rng.standard_normal((30, cfg["c_dim"])).astype(np.float32)
images = m.sample(z, c, np.eye(30, dtype=np.float32))
assert images.shape == (30, 1, 28, 28) and np.isfinite(images).all()
logits, _ = m.encode(images)
assert logits.shape == (30, 30)
print("ok", len({{im.tobytes() for im in images}}))
"""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env={**__import__("os").environ,
                                                                                          **no_torch})
    assert r.returncode == 0 and r.stdout.strip() == "ok 30", r.stderr
    r = lgen("sample", "--model", str(child), "--d", "29", "--n", "2", "--out", str(tmp_path / "d29.png"),
             env=no_torch)
    assert r.returncode == 0, r.stderr
    r = lgen("sample", "--model", str(child), "--d", "30", "--n", "2", "--out", str(tmp_path / "d30.png"),
             env=no_torch)
    assert r.returncode == 2 and not (tmp_path / "d30.png").exists()


@pytest.fixture(scope="module")
def continued_runs(tmp_path_factory, synthetic28):
    """A tiny parent (bars, 5 categories) continued onto rings with and without replay, each evaluated."""
    from lifelong_gen.eval.metrics import evaluate
    from lifelong_gen.train.trainer import Trainer

    settings = {**TINY, "domains": ["synthetic:bars"], "steps_per_domain": 150, "lr_g": 2e-3, "lr_d": 2e-3,
                "batch_size": 32, "d_per_domain": 5}
    parent_dir = tmp_path_factory.mktemp("eval-parent") / "p"
    Trainer(resolve_run_config(settings), parent_dir, data=synthetic28[:1], progress=False).train()
    out = {}
    for name, replay in (("replay", True), ("no-replay", False)):
        run = continue_config(resolve_parent(str(parent_dir)), ["synthetic:rings"], {"replay": replay})
        run_dir = tmp_path_factory.mktemp(name) / "c"
        Trainer(run, run_dir, data=synthetic28[1:], progress=False, parent=parent_dir).train()
        out[name] = (run_dir, evaluate(run_dir, num_samples=600, data=synthetic28, progress=False))
    return out


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_evaluating_a_continued_run_covers_the_lineage_and_its_forgetting(continued_runs):
    from lifelong_gen.eval.report import run_report

    _, m = continued_runs["replay"]
    assert m["training"]["domains"] == ["synthetic:bars", "synthetic:rings"]
    assert m["training"]["inherited_domains"] == 1 and m["training"]["critic"] == "parent"
    f = m["forgetting"]
    assert f["rows"] == ["domain-1", "domain-2"] and f["fid"][0][0] is not None and f["fid"][1][1] is not None
    assert len(m["interpretability"]["d_purity"]["per_d"]) == 10
    # The default growth froze the parent's domain: its d's draw the parent's images (up to float rounding:
    # the parent's plain batch norm became per-domain statistics), so the purity is the parent's.
    assert m["training"]["growth"] == "adapters"
    assert abs(f["d_purity"][1][0] - f["d_purity"][0][0]) <= 0.01 and f["d_purity"][1][1] is not None
    assert f["fid_own_d"][1][0] == pytest.approx(f["fid_own_d"][0][0], rel=1e-3)  # same codes, same images
    report = run_report(m, [])
    assert "## Continuation" in report and "| synthetic:bars | parent |" in report
    # The no-replay continuation is the baseline: it forgets the parent's domain entirely; replay keeps part
    # of it (measured: 0.10 of the samples vs 0.00; these tiny nets after 150 steps keep little either way).
    kept = m["per_domain"]["synthetic:bars"]["sample_share"]
    lost = continued_runs["no-replay"][1]["per_domain"]["synthetic:bars"]["sample_share"]
    assert lost < 0.02 and kept > lost + 0.05, (kept, lost)
