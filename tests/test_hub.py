"""Hub I/O (`lgen push | pull`, `--model ORG/NAME[@REV]`, load_networks), model cards, the embedded model.

No network: a fake Hub (tests/hub_server.py) on 127.0.0.1 serves huggingface_hub's real
requests, HF_HOME is a fresh temporary folder per test, and HF_ENDPOINT never points
anywhere else (a dead local port when a test has no fake Hub). The CLI runs in fresh
interpreters where torch cannot be imported (tests/tiny_onnx.py), so pushing, pulling and
sampling from the Hub are proved torch-free.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from conftest import lgen
from hub_server import FakeHub
from lifelong_gen import config
from lifelong_gen.bundle import ENCODER_ONNX, GENERATOR_ONNX, MANIFEST_NAME, embedded, hub, manifest, model_card
from lifelong_gen.bundle.resolve import resolve_bundle
from lifelong_gen.errors import LgenError
from lifelong_gen.export import spec
from tiny_onnx import copy_bundle, torch_free_env

REPO_FILES = {"config.json", "manifest.json", "generator.safetensors", "generator_ema.safetensors", "encoder.safetensors",
              "onnx/generator.onnx", "onnx/encoder.onnx", "README.md", "samples/domain-1.png"}


@pytest.fixture(scope="module")
def fake_hub():
    with FakeHub() as server:
        yield server


def _dead_endpoint() -> str:
    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture(autouse=True)
def _no_real_hub(monkeypatch, tmp_path):
    # Whatever a test does, huggingface_hub never sees the real Hub, token or cache.
    for name in ("HF_HUB_OFFLINE", "HF_HUB_CACHE", "HF_TOKEN_PATH", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", _dead_endpoint())
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home_default"))
    monkeypatch.setenv("HF_TOKEN", "hf_fake_token_for_tests")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")


def hub_env(no_torch, server, home, **extra):
    """Environment of an `lgen` subprocess: torch blocked, the fake Hub, its own HF cache."""
    return {**no_torch, "HF_ENDPOINT": server.url if server else _dead_endpoint(), "HF_HOME": str(home),
            **{k: str(v) for k, v in extra.items()}}


def run(env, *args, cwd=None):
    return lgen(*map(str, args), env=env, timeout=120, cwd=cwd)


def one_line_error(r, message):
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and r.stdout == "", (r.returncode, r.stdout, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("lgen: error: ") and message in lines[0], r.stderr


# ---------------------------------------------------------------- push -> pull -> sample


def test_push_then_sample_from_hub_matches_local_bundle_torch_free(bundle, no_torch, fake_hub, tmp_path):
    env = hub_env(no_torch, fake_hub, tmp_path / "pusher_home")
    before = len(fake_hub.calls())
    r = run(env, "push", bundle, "org/tiny", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["repo_id"] == "org/tiny" and result["revision"] == "main" and set(result["files"]) == REPO_FILES
    # One commit holding every file: the critic stays home, the card was rendered for the repo.
    assert len(fake_hub.calls("POST", "/commit/")) == 1
    assert set(fake_hub.files("org/tiny")) - {".gitattributes"} == REPO_FILES
    for rel in REPO_FILES - {"README.md"}:
        assert fake_hub.files("org/tiny")[rel] == (bundle / rel).read_bytes(), rel
    assert "lgen sample --model org/tiny" in fake_hub.files("org/tiny")["README.md"].decode()
    assert not (bundle / "README.md").exists()  # push leaves the bundle as it was
    assert fake_hub.calls()[before][1] == "/api/repos/create"

    local = tmp_path / "local.png"
    r = run(env, "sample", "--model", bundle, "--n", 12, "--seed", 5, "--out", local)
    assert r.returncode == 0, r.stderr

    # A fresh cache: only config.json and the ONNX files are fetched.
    home = tmp_path / "fresh_home"
    env = hub_env(no_torch, fake_hub, home)
    mark = len(fake_hub.calls())
    remote = tmp_path / "remote.png"
    r = run(env, "sample", "--model", "org/tiny", "--n", 12, "--seed", 5, "--out", remote, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["model"] == "org/tiny"
    assert remote.read_bytes() == local.read_bytes()
    fetched = {p.split("/resolve/", 1)[1].split("/", 1)[1] for m, p in fake_hub.calls()[mark:]
               if m == "GET" and "/resolve/" in p}
    assert fetched == {"config.json", "manifest.json", GENERATOR_ONNX, ENCODER_ONNX}
    cached = {p.name for p in (home / "hub").rglob("*") if p.is_file() or p.is_symlink()}
    assert not any(name.endswith(".safetensors") for name in cached)

    # Offline from the cache: the same image, not one request.
    offline = hub_env(no_torch, fake_hub, home, HF_HUB_OFFLINE=1)
    mark = len(fake_hub.calls())
    again = tmp_path / "offline.png"
    r = run(offline, "sample", "--model", "org/tiny", "--n", 12, "--seed", 5, "--out", again)
    assert r.returncode == 0, r.stderr
    assert again.read_bytes() == local.read_bytes()
    r = run(offline, "encode", local, "--model", "org/tiny", "--json")
    assert r.returncode == 0 and len(json.loads(r.stdout)["images"]) == 12, r.stderr  # the grid, cut into its 12 images
    r = run(offline, "interpolate", "--model", "org/tiny", "--vary", "c1", "--steps", 3, "--out", tmp_path / "i.png")
    assert r.returncode == 0, r.stderr
    # The weights were never fetched: a full pull offline says the cache holds only part of it.
    r = run(offline, "pull", "org/tiny")
    one_line_error(r, "org/tiny is only partly in the Hugging Face cache")
    assert len(fake_hub.calls()) == mark


def test_push_to_branch_with_critic_then_pull(bundle, no_torch, fake_hub, tmp_path):
    env = hub_env(no_torch, fake_hub, tmp_path / "home")
    r = run(env, "push", bundle, "org/branchy", "--revision", "dev", "--with-critic", "--private")
    assert r.returncode == 0, r.stderr
    assert "org/branchy@dev" in r.stdout
    assert fake_hub.repos["org/branchy"].private
    assert "critic.safetensors" in fake_hub.files("org/branchy", "dev")
    assert set(fake_hub.files("org/branchy", "main")) == {".gitattributes"}  # main untouched

    # Full pull into a directory (the critic too, since it was pushed) ...
    target = tmp_path / "pulled"
    r = run(env, "pull", "org/branchy@dev", "--out", target)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(target)
    for rel in REPO_FILES | {"critic.safetensors"}:
        assert (target / rel).is_file(), rel
    assert (target / "generator_ema.safetensors").read_bytes() == (bundle / "generator_ema.safetensors").read_bytes()
    # ... and a pulled directory is a bundle like any other.
    r = run(env, "sample", "--model", target, "--n", 2, "--out", tmp_path / "s.png")
    assert r.returncode == 0, r.stderr

    # --onnx-only into the cache: no weights.
    home = tmp_path / "onnx_home"
    r = run(hub_env(no_torch, fake_hub, home), "pull", "org/branchy@dev", "--onnx-only")
    assert r.returncode == 0, r.stderr
    snapshot = r.stdout.strip()
    assert snapshot.startswith(str(home)) and (home / "hub").is_dir()
    got = {p.relative_to(snapshot).as_posix() for p in Path(snapshot).rglob("*") if p.is_file()}
    assert got == {"config.json", "manifest.json", GENERATOR_ONNX, ENCODER_ONNX}


def test_a_pushed_d_classes_table_travels_with_the_runtime_files(bundle, no_torch, fake_hub, tmp_path):
    """push uploads d_classes.json; `--model ORG/NAME --class` fetches it with config + ONNX, torch-free."""
    from lifelong_gen.bundle import d_classes, manifest

    named = copy_bundle(bundle, tmp_path / "named")
    classes = {"synthetic:bars": [str(k) for k in range(10)]}
    rows = [{"d": k, "domain": "synthetic:bars", "class": str(k), "share": 0.9, "runner_up": None} for k in range(10)]
    table = d_classes.build(rows, classes, weights_sha256=manifest.file_entry(named / "generator_ema.safetensors")
                            ["sha256"], measured={"by": "test"})
    manifest.write_files(named, {"d_classes.json": json.dumps(table).encode()})
    env = hub_env(no_torch, fake_hub, tmp_path / "pusher")
    r = run(env, "push", named, "org/named", "--json")
    assert r.returncode == 0, r.stderr
    assert "d_classes.json" in json.loads(r.stdout)["files"]
    assert fake_hub.files("org/named")["d_classes.json"] == (named / "d_classes.json").read_bytes()

    home = tmp_path / "fresh"
    mark = len(fake_hub.calls())
    r = run(hub_env(no_torch, fake_hub, home), "sample", "--model", "org/named", "--class", "4", "--n", 3,
            "--out", tmp_path / "fours.png", "--json")
    assert r.returncode == 0, r.stderr
    assert {s["d"] for s in json.loads(r.stdout)["samples"]} == {4} and "warning" not in r.stderr
    fetched = {p.split("/resolve/", 1)[1].split("/", 1)[1] for m, p in fake_hub.calls()[mark:]
               if m == "GET" and "/resolve/" in p}
    assert fetched == {"config.json", "manifest.json", "d_classes.json", GENERATOR_ONNX, ENCODER_ONNX}


def test_load_networks_from_hub_is_strict(bundle, fake_hub, tmp_path, monkeypatch):
    import huggingface_hub
    import huggingface_hub.constants
    import torch

    from lifelong_gen.train.checkpoint import load_bundle, load_networks

    # In-process, huggingface_hub read HF_HOME at import: point its cache here explicitly.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    hub.push(bundle, "org/weights", endpoint=fake_hub.url)
    run_cfg, nets = load_networks("org/weights", which=("G_ema", "S"), endpoint=fake_hub.url)
    _, ref = load_bundle(bundle, which=("G_ema", "S"))
    for key in ("G_ema", "S"):
        assert not nets[key].training
        for (name, a), (_, b) in zip(nets[key].state_dict().items(), ref[key].state_dict().items()):
            assert torch.equal(a, b), name
    assert run_cfg.model.z_dim == 8

    with pytest.raises(LgenError, match="only by `lgen push --with-critic`"):
        load_networks("org/weights", which=("D",), endpoint=fake_hub.url)
    with pytest.raises(LgenError, match="which must name some of"):
        load_networks("org/weights", which=("X",), endpoint=fake_hub.url)

    # A config whose shapes disagree with the weights: refused, not partly loaded.
    raw = json.loads((bundle / "config.json").read_text())
    raw["model"]["g_width"] = 16
    fake_hub.create("org/mismatch")
    api = huggingface_hub.HfApi(endpoint=fake_hub.url, token="hf_fake")
    api.create_commit("org/mismatch", operations=[
        huggingface_hub.CommitOperationAdd("config.json", json.dumps(raw).encode()),
        huggingface_hub.CommitOperationAdd("generator_ema.safetensors", str(bundle / "generator_ema.safetensors")),
    ], commit_message="bad")
    with pytest.raises(LgenError, match="generator_ema.safetensors does not match the config"):
        load_networks("org/mismatch", which=("G_ema",), endpoint=fake_hub.url)


# ---------------------------------------------------------------- errors


@pytest.fixture(scope="module")
def broken_repos(bundle, fake_hub):
    """org/config-only (no ONNX files) and org/future (a config from a newer format version)."""
    import huggingface_hub

    api = huggingface_hub.HfApi(endpoint=fake_hub.url, token="hf_fake")
    config = (bundle / "config.json").read_bytes()
    future = json.loads(config)
    future["format_version"] = 99
    for repo_id, files in {
        "org/config-only": {"config.json": config},
        "org/future": {"config.json": json.dumps(future).encode(),
                       **{rel: (bundle / rel).read_bytes() for rel in (GENERATOR_ONNX, ENCODER_ONNX)}},
    }.items():
        fake_hub.create(repo_id)
        api.create_commit(repo_id, operations=[huggingface_hub.CommitOperationAdd(k, v) for k, v in files.items()],
                          commit_message="test")


HUB_ERRORS = [
    ("repo-not-found", ["sample", "--model", "org/nothing-here"], {},
     "no local directory org/nothing-here, and Hub repo org/nothing-here not found (or it is private"),
    ("pull-repo-not-found", ["pull", "org/nothing-here"], {}, "error: Hub repo org/nothing-here not found"),
    ("revision-not-found", ["sample", "--model", "org/config-only@v9"], {},
     "revision 'v9' not found in Hub repo org/config-only"),
    ("offline-nothing-cached", ["sample", "--model", "org/config-only"], {"HF_HUB_OFFLINE": "1"},
     "org/config-only is not in the Hugging Face cache"),
    ("offline-pull", ["pull", "org/config-only"], {"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE=1 forbids downloading it"),
    ("missing-onnx", ["sample", "--model", "org/config-only"], {},
     "Hub repo org/config-only has no onnx/generator.onnx, onnx/encoder.onnx: push an exported bundle"),
    ("missing-onnx-pull", ["pull", "org/config-only", "--onnx-only"], {}, "has no onnx/generator.onnx"),
    ("newer-format", ["encode", "{bundle}/samples/domain-1.png", "--model", "org/future"], {},
     "config format_version 99 is newer than this lifelong-gen reads"),
    ("newer-format-pull", ["pull", "org/future"], {}, "format_version 99 is newer"),
    ("unreachable", ["sample", "--model", "org/config-only"], {"HF_ENDPOINT": "dead"}, "cannot reach the Hub at"),
    ("push-unexported", ["push", "{unexported}", "org/x"], {}, "has no onnx/generator.onnx, onnx/encoder.onnx: run `lgen export"),
    ("push-bad-id", ["push", "{bundle}", "not a repo"], {}, "'not a repo' is not a Hub repo id of the form org/name"),
    ("push-rev-in-id", ["push", "{bundle}", "org/x@dev"], {}, "give a branch with --revision"),
    ("pull-bad-id", ["pull", "./local/dir"], {}, "is not a Hub repo id"),
    ("push-missing-critic", ["push", "{unexported}", "org/x", "--with-critic"], {}, "critic.safetensors"),
]


@pytest.mark.parametrize("args, extra, message", [c[1:] for c in HUB_ERRORS], ids=[c[0] for c in HUB_ERRORS])
def test_hub_errors_are_one_line_exit_2(bundle, no_torch, fake_hub, broken_repos, tmp_path, args, extra, message):
    unexported = copy_bundle(bundle, tmp_path / "unexported", with_onnx=False)
    (unexported / "critic.safetensors").unlink(missing_ok=True)
    args = [a.replace("{bundle}", str(bundle)).replace("{unexported}", str(unexported)) for a in args]
    extra = dict(extra)
    server = None if extra.pop("HF_ENDPOINT", None) == "dead" else fake_hub
    out = tmp_path / "out.png"
    if args[0] == "sample":
        args += ["--out", str(out)]
    commits = len(fake_hub.calls("POST", "/commit/"))
    r = run(hub_env(no_torch, server, tmp_path / "home", **extra), *args)
    one_line_error(r, message)
    assert not out.exists()
    assert len(fake_hub.calls("POST", "/commit/")) == commits


# ---------------------------------------------------------------- parsing, names, help


def test_hub_commands_help_torch_free(no_torch, tmp_path):
    for command, expect in (("push", "--with-critic"), ("pull", "--onnx-only"), ("card", "--repo-id")):
        r = run(hub_env(no_torch, None, tmp_path / "home"), command, "--help")
        assert r.returncode == 0 and expect in r.stdout, r.stderr


def test_hub_repo_ref_parsing(tmp_path, monkeypatch):
    assert hub.parse_repo_ref("org/name") == hub.RepoRef("org/name", None)
    assert hub.parse_repo_ref("my-org/model.v2@dev") == hub.RepoRef("my-org/model.v2", "dev")
    assert str(hub.parse_repo_ref("a/b@0123abc")) == "a/b@0123abc"
    for bad in ("name", "/abs/path", "./rel/dir", "a/b/c", "a/b@", "-a/b", "a/b@x@y", "a/..b", "~/x"):
        assert hub.parse_repo_ref(bad) is None, bad
    # An existing local directory wins over a Hub id that looks the same (no Hub is asked).
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "name").mkdir(parents=True)
    with pytest.raises(LgenError, match="org/name is not a lifelong-gen run or bundle"):
        resolve_bundle("org/name")


# ---------------------------------------------------------------- model cards


def test_hub_model_card_renders_metadata_and_parses_back(bundle, no_torch, tmp_path):
    from huggingface_hub import ModelCard

    copy = copy_bundle(bundle, tmp_path / "b")
    shutil.copytree(bundle / "samples", copy / "samples")
    (copy / "figures").mkdir()
    shutil.copy(bundle / "samples" / "domain-1.png", copy / "figures" / "traversal_c1.png")
    metrics = {"schema_version": 1,  # the layout `lgen evaluate` writes, cut down
               "training": {"domains": ["synthetic:bars"], "d_per_domain": None, "joint": False},
               "per_domain": {"synthetic:bars": {"fid": 12.3456, "sample_share": 0.5, "covered_classes": 10,
                                                 "clustering": {"accuracy": 0.91, "nmi": None}, "note": "text"}},
               "overall": {"fid": 20.5, "joint_clustering": {"accuracy": 0.8}},
               "interpretability": {"d_purity": {"mean": 0.75, "per_d": [{"d": 0, "class": "x", "purity": 0.75}]},
                                    "traversal": {"c1": {"class_change": 0.125, "pixel_change": 0.3}}},
               "forgetting": {"bwt": {"fid": float("nan"), "relative_share": 0.0, "cluster_accuracy": None},
                              "fid": [[1.5]]}}
    (copy / "metrics.json").write_text(json.dumps(metrics))

    r = run(hub_env(no_torch, None, tmp_path / "home"), "card", copy, "--repo-id", "org/tiny", "--note", "A test note.")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(copy / "README.md")
    card = ModelCard.load(copy / "README.md")
    assert card.data.library_name == "lifelong-gen"
    assert card.data.pipeline_tag == "unconditional-image-generation"
    assert card.data.license == "mit"
    assert set(card.data.tags) == {"lifelong-learning", "gan", "infogan", "wgan-gp", "generative-replay", "onnx"}
    assert card.data.datasets is None  # synthetic domains are no Hub datasets
    text = card.text
    assert "> **Note:** A test note." in text
    assert "| 1 | `synthetic:bars` | 0–9 (shared) |" in text
    # The headline figures, as `lgen evaluate`'s report has them; not the whole file.
    evaluation = text[text.index("## Evaluation"):text.index("### What each d draws")]
    rows = [line for line in evaluation.splitlines() if line.startswith("| ") and "metric" not in line]
    assert rows == ["| synthetic:bars: sample share | 0.500 |", "| synthetic:bars: classes present (≥1%) | 10 |",
                    "| synthetic:bars: FID (classifier) | 12.346 |", "| synthetic:bars: S clustering accuracy | 0.910 |",
                    "| overall FID (classifier) | 20.500 |", "| joint S clustering accuracy | 0.800 |",
                    "| d purity (mean) | 0.750 |", "| c1 traversal: class change | 0.125 |",
                    "| BWT relative share (− = forgetting) | 0.000 |"]  # not measured (None, NaN): left out
    assert "metrics.json`, which holds every value" in evaluation
    assert "![EMA generator after domain 1 (synthetic:bars)" in text and "(samples/domain-1.png)" in text
    assert "Traversal of c1 from -1 to 1" in text and "(figures/traversal_c1.png)" in text
    assert "`z` float32 [N, 8]" in text and "`d_logits` float32 [N, 10]" in text
    assert "`steps_per_domain` | `300`" in text and "`z_dim` | `8`" in text
    assert "lgen sample --model org/tiny" in text and 'load_networks("org/tiny"' in text
    assert "max \\|onnxruntime − PyTorch\\|" in text  # parity read from the ONNX metadata
    assert f"(opset {spec.DEFAULT_OPSET})" in text  # the opset the exporter recorded there too

    (copy / "metrics.json").write_text(json.dumps({"per_domain": {"synthetic:bars": {}}}))  # another layout
    assert "not in the layout `lgen evaluate` writes" in model_card.render_card(copy)
    (copy / "metrics.json").unlink()
    card = ModelCard(model_card.render_card(copy))
    assert "Not evaluated" in card.text and "--model BUNDLE" in card.text


def test_hub_card_headline_gives_each_domains_own_d_purity():
    from lifelong_gen.metrics_summary import domain_purities

    per_d = [{"d": d, "purity": p} for d, p in enumerate([1.0, 0.5, 0.25, 0.75])]
    m = {"training": {"domains": ["a", "b"], "d_per_domain": 2, "joint": False},
         "interpretability": {"d_purity": {"per_d": per_d}}}
    assert domain_purities(m) == {"a": 0.75, "b": 0.5}  # a owns d 0-1, b owns d 2-3
    assert domain_purities({**m, "training": {**m["training"], "joint": True}}) == {}  # a joint run shares its d
    assert domain_purities({**m, "training": {**m["training"], "d_per_domain": None}}) == {}


def test_hub_model_card_without_onnxruntime_lists_the_onnx_files_plainly(bundle, tmp_path_factory, tmp_path):
    # A base install (no [cpu]/[gpu] extra) still renders cards: the ONNX metadata is left out.
    copy = copy_bundle(bundle, tmp_path / "b")
    env = {**torch_free_env(tmp_path_factory, block=("torch", "onnx", "onnxruntime")), "HF_HOME": str(tmp_path / "h")}
    r = run(env, "card", copy)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    text = (copy / "README.md").read_text()
    assert f"`{GENERATOR_ONNX}`: " in text and f"`{ENCODER_ONNX}`: " in text
    assert "opset" not in text and "max \\|onnxruntime" not in text


# ---------------------------------------------------------------- the embedded default model


def test_hub_embedded_default_model_manifest_and_card():
    from huggingface_hub import ModelCard

    path = embedded.pretrained_path()
    listed = manifest.read_manifest(path)
    manifest.verify(path, listed, required=True)  # the build's own check: every file
    assert {"config.json", GENERATOR_ONNX, ENCODER_ONNX, "README.md"} <= set(listed)
    on_disk = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()} - {MANIFEST_NAME}
    assert on_disk == set(listed)  # every shipped file is covered
    # Sampling needs no weights; the EMA generator and S ship too so that torch users can
    # evaluate or fine-tune it. The critic and the raw generator stay out.
    assert {rel for rel in on_disk if rel.endswith(".safetensors")} == {"generator_ema.safetensors",
                                                                         "encoder.safetensors"}
    assert sum((path / rel).stat().st_size for rel in on_disk) < 20e6
    run_cfg = model_card.read_run_config(path)
    preset = config.preset_settings("mnist-fashion")
    assert run_cfg.train.domains == ["mnist", "fashion-mnist"]
    for key, value in preset.items():  # it is the preset's model, not a variant of it
        section = run_cfg.model if key in config.MODEL_KEYS else run_cfg.train
        if key == "precision" and value == "auto":  # config.json records what auto chose where it trained
            assert getattr(section, key) in ("fp32", "bf16"), key
        else:
            assert getattr(section, key) == value, key
    card = ModelCard.load(path / "README.md")
    assert card.data.datasets == ["mnist", "fashion_mnist"] and card.data.library_name == "lifelong-gen"
    steps = config.PRESETS["mnist-fashion"]["steps_per_domain"]
    assert "reference model" in card.text and f"{steps:,} generator steps per domain" in card.text
    metrics = json.loads((path / "metrics.json").read_text())
    assert metrics["training"]["replay"] is True  # the card's numbers are this (lifelong) model's


def test_hub_embedded_default_weights_load_and_match_its_onnx():
    # The shipped safetensors rebuild G_ema and S (strict load), and the shipped ONNX graphs
    # compute what they compute: the two halves of the bundle are the same model.
    import torch

    from lifelong_gen.runtime import OnnxModel
    from lifelong_gen.train.checkpoint import load_bundle

    path = embedded.pretrained_path()
    run_cfg, nets = load_bundle(path, which=("G_ema", "S"))
    m = run_cfg.model
    g = torch.Generator().manual_seed(0)
    z, c = torch.randn(16, m.z_dim, generator=g), torch.randn(16, m.c_dim, generator=g)
    d = torch.nn.functional.one_hot(torch.arange(16) % m.d_dim, m.d_dim).float()
    with torch.no_grad():
        images = nets["G_ema"].eval()(z, c, d)
        logits, c_mean = nets["S"].eval()(images)
    onnx = OnnxModel(path)
    ort_images = onnx.sample(z.numpy(), c.numpy(), d.numpy())
    assert np.abs(ort_images - images.numpy()).max() < 1e-4
    ort_logits, ort_c = onnx.encode(images.numpy())
    assert np.abs(ort_logits - logits.numpy()).max() / max(1.0, float(logits.abs().max())) < 1e-4
    assert np.abs(ort_c - c_mean.numpy()).max() < 1e-4


def test_hub_embedded_default_detects_corruption(tmp_path, monkeypatch):
    copy = tmp_path / "pretrained" / "mnist-fashion"
    shutil.copytree(embedded.pretrained_path(), copy)
    monkeypatch.setattr(embedded, "PRETRAINED_ROOT", copy.parent)
    assert resolve_bundle().path == copy
    data = bytearray((copy / GENERATOR_ONNX).read_bytes())
    data[-1] ^= 1
    (copy / GENERATOR_ONNX).write_bytes(bytes(data))
    with pytest.raises(LgenError, match="does not match its sha256"):
        resolve_bundle()
    with pytest.raises(LgenError, match="no embedded model 'nope'"):
        embedded.pretrained_path("nope")


def test_hub_default_model_sample_with_no_arguments_torch_free(no_torch, tmp_path):
    env = hub_env(no_torch, None, tmp_path / "home", HF_HUB_OFFLINE=1)
    r = run(env, "sample", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "samples.png"
    assert "embedded default model mnist-fashion" in r.stderr
    from PIL import Image

    with Image.open(tmp_path / "samples.png") as im:
        assert im.size == (8 * 30 + 2, 8 * 30 + 2) and im.mode == "L"  # 64 samples of 28x28 grey
        assert np.asarray(im).std() > 10  # not blank
    r = run(env, "encode", tmp_path / "samples.png", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["images"][0]["d_probs"]) == 20  # 10 + 10 categories
    assert not (tmp_path / "home").exists()  # the embedded model never touches the HF cache


# ---------------------------------------------------------------- lgen train --from ORG/NAME


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_train_from_a_hub_repo_continues_it_and_records_the_commit(bundle, no_torch, fake_hub, tmp_path):
    """A pushed model (critic included) is continued through the HF cache; the lineage names repo and commit."""
    r = run(hub_env(no_torch, fake_hub, tmp_path / "pusher"), "push", bundle, "org/parent", "--with-critic")
    assert r.returncode == 0, r.stderr
    env = {"HF_ENDPOINT": fake_hub.url, "HF_HOME": str(tmp_path / "trainer_home")}  # torch available: it trains
    child = tmp_path / "child"
    r = run(env, "train", "--from", "org/parent@main", "--domains", "synthetic:rings", "--steps-per-domain", 2,
            "--out", child, "--no-progress")
    assert r.returncode == 0, r.stderr
    record = config.read_run_config(child).parent
    assert record["source"] == "hub" and record["repo_id"] == "org/parent" and record["revision"] == "main"
    assert len(record["commit"]) == 40 and record["critic"] == "parent"
    for rel in ("generator_ema.safetensors", "encoder.safetensors", "critic.safetensors"):
        assert record["weights"][rel] == hashlib.sha256((bundle / rel).read_bytes()).hexdigest()
    assert (child / "snapshots" / "domain-1" / "generator_ema.safetensors").read_bytes() == \
        (bundle / "generator_ema.safetensors").read_bytes()
    # A repo that does not exist: one line, nothing written.
    r = run(env, "train", "--from", "org/missing", "--domains", "synthetic:rings", "--out", tmp_path / "x",
            "--no-progress")
    one_line_error(r, "org/missing")
    assert not (tmp_path / "x").exists()
