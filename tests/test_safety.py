"""Installed and cached bundles are read, never written: the embedded model by name, its
manifest checked for the files a command reads, where `lgen evaluate` writes, and an
`lgen export` that checks what it needs before working and leaves nothing behind.

In-process and fast (the embedded model samples in well under a second); the one real
evaluation run is in test_evaluate.py, the export without onnxruntime in test_runtime_cli.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import lgen
from lifelong_gen.bundle import CONFIG_NAME, GENERATOR_ONNX, MANIFEST_NAME, RUNTIME_FILES, embedded, manifest
from lifelong_gen.bundle.resolve import installed_location, resolve_bundle
from lifelong_gen.cli import main
from lifelong_gen.cli.evaluate import DEFAULT_OUT_ROOT, bundle_label, output_dir
from lifelong_gen.errors import LgenError


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A copy of the embedded model, installed in place of the real one (PRETRAINED_ROOT patched)."""
    copy = tmp_path / "pretrained" / embedded.DEFAULT_MODEL
    shutil.copytree(embedded.PRETRAINED_ROOT / embedded.DEFAULT_MODEL, copy)
    monkeypatch.setattr(embedded, "PRETRAINED_ROOT", copy.parent)
    return copy


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))


def cli(capsys, *argv) -> tuple[int, str, str]:
    """`lgen ARGV` in this process (so that monkeypatches apply): (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


# ---------------------------------------------------------------- the manifest: only what is read


def test_the_embedded_manifest_lists_every_file_and_checks_what_is_asked_for(shipped):
    listed = manifest.read_manifest(shipped)
    on_disk = {p.relative_to(shipped).as_posix() for p in shipped.rglob("*") if p.is_file()} - {MANIFEST_NAME}
    assert set(listed) == on_disk
    flip_last_byte(shipped / "figures" / "dc_grid.png")
    manifest.verify(shipped, RUNTIME_FILES, required=True)  # sampling's files are intact
    with pytest.raises(LgenError, match=r"figures/dc_grid.png does not match its sha256"):
        manifest.verify(shipped, ["figures/dc_grid.png"], required=True)
    (shipped / "critic.safetensors").write_bytes(b"x")  # never shipped: not silently "verified"
    with pytest.raises(LgenError, match=f"is not listed in .*{MANIFEST_NAME}: reinstall lifelong-gen"):
        manifest.verify(shipped, ["critic.safetensors"], required=True, fix=embedded.REINSTALL)


@pytest.mark.parametrize("damaged", ["figures/dc_grid.png", "samples/domain-1.png", "metrics.json", "README.md"])
def test_a_damaged_file_sampling_never_reads_does_not_stop_sampling(shipped, tmp_path, capsys, damaged):
    flip_last_byte(shipped / damaged)
    out = tmp_path / "s.png"
    code, stdout, err = cli(capsys, "sample", "--n", 4, "--out", out)
    assert code == 0, err
    assert out.is_file() and stdout.strip() == str(out)
    code, _, err = cli(capsys, "sample", "--model", embedded.DEFAULT_MODEL, "--n", 4, "--out", tmp_path / "t.png")
    assert code == 0, err


@pytest.mark.parametrize("damaged", [GENERATOR_ONNX, CONFIG_NAME])
def test_a_damaged_file_sampling_reads_is_one_line_exit_2(shipped, tmp_path, capsys, damaged):
    flip_last_byte(shipped / damaged)
    out = tmp_path / "s.png"
    code, stdout, err = cli(capsys, "sample", "--n", 4, "--out", out)
    errors = [line for line in err.splitlines() if line.startswith("lgen: error:")]
    assert code == 2 and stdout == "" and not out.exists()
    assert errors == [f"lgen: error: {shipped / damaged} does not match its sha256 in {shipped / MANIFEST_NAME} "
                      f"(damaged or changed after it was written): reinstall lifelong-gen"], err


def test_an_embedded_model_without_its_manifest_is_refused(shipped, tmp_path, capsys):
    (shipped / MANIFEST_NAME).unlink()
    code, stdout, err = cli(capsys, "sample", "--n", 4, "--out", tmp_path / "s.png")
    assert code == 2 and err.strip() == f"lgen: error: {shipped} has no {MANIFEST_NAME}: reinstall lifelong-gen"


# ---------------------------------------------------------------- the embedded model by name


def test_a_bare_name_is_the_embedded_model_unless_a_local_directory_has_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = embedded.DEFAULT_MODEL
    assert resolve_bundle(name).path == embedded.PRETRAINED_ROOT / name  # checked and returned
    (tmp_path / name).mkdir()  # a local directory of the same name wins
    with pytest.raises(LgenError, match=f"{name} is not a lifelong-gen run or bundle: it has no config.json"):
        resolve_bundle(name)


def test_sample_model_by_embedded_name(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, stdout, err = cli(capsys, "sample", "--model", embedded.DEFAULT_MODEL, "--n", 4, "--json")
    assert code == 0, err
    assert json.loads(stdout)["model"] == embedded.DEFAULT_MODEL and (tmp_path / "samples.png").is_file()
    assert "no --model given" not in err
    code, _, err = cli(capsys, "sample", "--model", "no-such-model", "--n", 4)
    assert code == 2 and err.strip() == ("lgen: error: 'no-such-model' is neither a directory nor an embedded model "
                                         f"(embedded: {embedded.DEFAULT_MODEL})")


def test_evaluate_takes_the_embedded_name_and_refuses_out_inside_it(tmp_path, capsys, monkeypatch):
    # Both checks come before any torch-side work, so this runs in a blink.
    monkeypatch.chdir(tmp_path)
    inside = embedded.PRETRAINED_ROOT / embedded.DEFAULT_MODEL / "eval"
    code, stdout, err = cli(capsys, "evaluate", embedded.DEFAULT_MODEL, "--out", inside)
    assert code == 2 and stdout == ""
    assert err.strip() == (f"lgen: error: --out {inside} is in lifelong-gen's embedded models "
                           f"({embedded.PRETRAINED_ROOT}), which lgen evaluate never writes into: "
                           f"choose a directory outside it")
    assert not inside.exists()
    code, _, err = cli(capsys, "evaluate", "no-such-model")
    assert code == 2 and err.strip() == ("lgen: error: 'no-such-model' is neither a directory nor an embedded model "
                                         f"(embedded: {embedded.DEFAULT_MODEL})")


# ---------------------------------------------------------------- where evaluate writes


def test_output_dir_of_installed_and_cached_bundles(tmp_path, monkeypatch):
    import huggingface_hub.constants

    shipped = embedded.PRETRAINED_ROOT / embedded.DEFAULT_MODEL
    site = tmp_path / "venv" / "lib" / "python3.12" / "site-packages" / "pkg" / "bundle"
    dist = tmp_path / "usr" / "lib" / "python3" / "dist-packages" / "pkg" / "bundle"
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    snapshot = cache / "models--org--tiny" / "snapshots" / ("0" * 40)
    link = tmp_path / "my-link"
    link.symlink_to(shipped, target_is_directory=True)  # a user's link to the installed copy still counts
    cases = {shipped: embedded.DEFAULT_MODEL, site: "bundle", dist: "bundle", snapshot: "org--tiny",
             link: embedded.DEFAULT_MODEL}
    for path, name in cases.items():
        out, note = output_dir(path, None)
        assert out == DEFAULT_OUT_ROOT / name == Path("lgen-evaluate") / name, path
        assert note and note.startswith(f"{path} is in ") and f"to lgen-evaluate/{name} (--out DIR" in note
        assert bundle_label(path) == name
        assert output_dir(path, tmp_path / "elsewhere") == (tmp_path / "elsewhere", None)  # --out outside: used
        with pytest.raises(LgenError, match="never writes into") as e:
            output_dir(tmp_path / "run", path / "eval")  # --out inside one of them: refused
        assert "\n" not in str(e.value)
    assert "Hugging Face cache" in output_dir(snapshot, None)[1] and "site-packages" in output_dir(site, None)[1]
    # A user's own run directory: written in place (other code reads RUN/metrics.json).
    run = tmp_path / "runs" / "mf"
    assert output_dir(run, None) == (run, None)
    assert installed_location(run) is None


# ---------------------------------------------------------------- export: checks first, leaves nothing


def test_export_refuses_an_installed_bundle_before_any_work(shipped):
    from lifelong_gen.export import onnx_export

    before = {p: p.read_bytes() for p in shipped.rglob("*") if p.is_file()}
    with pytest.raises(LgenError, match="lgen export never writes into: copy the bundle elsewhere"):
        onnx_export.export_bundle(shipped)
    assert {p: p.read_bytes() for p in shipped.rglob("*") if p.is_file()} == before


def test_a_failed_first_export_leaves_no_onnx_directory(tmp_path, monkeypatch):
    from conftest import TINY
    from lifelong_gen.config import resolve_run_config
    from lifelong_gen.export import onnx_export
    from lifelong_gen.train.checkpoint import save_bundle
    from lifelong_gen.train.networks import build_networks

    run = resolve_run_config({**TINY, "domains": ["synthetic:bars"]})
    G, _, S = build_networks(run.model)
    save_bundle(tmp_path / "b", run, {"G_ema": G, "S": S})
    # Skip the slow real export: a junk "graph" reaches write_temp (which makes onnx/) and fails the checker.
    monkeypatch.setattr(onnx_export, "_to_proto", lambda graph, opset: None)
    monkeypatch.setattr(onnx_export, "_check_outputs_named", lambda proto, graph: None)
    monkeypatch.setattr(onnx_export, "_serialize", lambda proto, graph, cfg, opset: b"not an onnx graph")
    with pytest.raises(LgenError, match="fails onnx.checker"):
        onnx_export.export_bundle(tmp_path / "b")
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["config.json", "encoder.safetensors",
                                                                  "generator_ema.safetensors", "manifest.json"]


def test_export_without_onnxruntime_fails_before_loading_anything(tmp_path, monkeypatch):
    import sys

    from lifelong_gen.export import onnx_export

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ImportError
    with pytest.raises(LgenError) as e:
        onnx_export.check_requirements(tmp_path / "missing")  # the modules come first, the bundle after
    assert str(e.value) == ("lgen export needs onnxruntime for its parity check, which is not installed: "
                            "pip install 'lifelong-gen[cpu]' (or pip install 'lifelong-gen[gpu]' for CUDA; not both)")


def test_lgen_evaluate_help_names_the_default_out():
    r = lgen("evaluate", "--help")
    assert r.returncode == 0 and "lgen-evaluate" in " ".join(r.stdout.split())


def test_card_takes_the_embedded_name_and_never_rewrites_it(capsys):
    before = (embedded.PRETRAINED_ROOT / "mnist-fashion" / "README.md").read_bytes()
    with pytest.raises(SystemExit) as e:
        main(["card", "mnist-fashion"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "never writes into" in err[0]
    assert (embedded.PRETRAINED_ROOT / "mnist-fashion" / "README.md").read_bytes() == before


def test_a_failed_atomic_write_names_the_target_not_the_temp_file(tmp_path, monkeypatch):
    import errno
    import os

    from lifelong_gen import atomic

    def full_disk(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(src))  # what os.replace reports: the temp

    monkeypatch.setattr(atomic.os, "replace", full_disk)
    target = tmp_path / "metrics.json"
    with pytest.raises(OSError) as e:
        atomic.atomic_write_text(target, "{}")
    assert e.value.filename == str(target) and e.value.errno == errno.ENOSPC
    assert os.listdir(tmp_path) == []  # the temp file is gone too
