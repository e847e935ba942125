"""The one resolver (lifelong_gen/bundle/resolve.py): every kind of string, every bad input.

A copy of the embedded model serves as the local bundle and as the content of a fake Hub repo
(tests/hub_server.py on 127.0.0.1: no test reaches the real Hub, its token or cache). Bad input
is a one-line LgenError from the library and one line, exit 2, from each command that names a
model: `sample --model`, `evaluate`, `train --from`, `card`. `load_model` resolves names and
Hub ids itself, in an interpreter where torch cannot be imported.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import lgen
from hub_server import FakeHub
from lifelong_gen.bundle import CONFIG_NAME, D_CLASSES_NAME, MANIFEST_NAME, ONNX_FILES, embedded
from lifelong_gen.bundle.resolve import resolve_bundle
from lifelong_gen.cli import main
from lifelong_gen.errors import LgenError

SHIPPED = embedded.PRETRAINED_ROOT / embedded.DEFAULT_MODEL
# What a pushed bundle holds of the embedded model (its manifest lists more: previews, card).
REPO_FILES = [CONFIG_NAME, MANIFEST_NAME, D_CLASSES_NAME, *ONNX_FILES, "generator_ema.safetensors",
              "encoder.safetensors"]


def _dead_endpoint() -> str:
    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture(scope="module")
def fake_hub():
    with FakeHub() as server:
        repo = server.create("org/model")
        server._commit(repo, "main", {rel: (SHIPPED / rel).read_bytes() for rel in REPO_FILES},
                       repo.branches["main"])
        server.create("org/config-only")  # a repo that is no bundle
        yield server


@pytest.fixture(autouse=True)
def hf_cache(monkeypatch, tmp_path):
    """A fresh HF cache per test; huggingface_hub never sees the real Hub, token or cache."""
    import huggingface_hub.constants as constants

    cache = tmp_path / "hf_cache"
    for name in ("HF_HUB_OFFLINE", "HF_HUB_CACHE", "HF_TOKEN_PATH", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", _dead_endpoint())
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_TOKEN", "hf_fake_token_for_tests")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))  # read when imported: patched in place
    return cache


def _copy(dst: Path) -> Path:
    shutil.copytree(SHIPPED, dst)
    return dst


def _cli(capsys, *argv) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


# ---------------------------------------------------------------- each kind of string


def test_nothing_and_a_bare_name_are_the_embedded_model():
    for value in (None, embedded.DEFAULT_MODEL):
        found = resolve_bundle(value)
        assert found.path == SHIPPED and found.source == "embedded" and found.value == value
        assert found.origin()["source"] == "embedded" and found.origin()["name"] == embedded.DEFAULT_MODEL


def test_an_existing_directory_is_itself_and_wins_over_a_name_or_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for value in (str(_copy(tmp_path / "bundle")), embedded.DEFAULT_MODEL, "org/model"):
        if not Path(value).exists():
            _copy(tmp_path / value)  # a local directory named like the embedded model, or like a Hub id
        found = resolve_bundle(value)
        assert found.source == "local" and found.path == Path(value), value
        assert found.origin() == {"source": "local", "path": str((tmp_path / value).resolve())}


def test_a_hub_id_downloads_only_what_the_caller_reads(fake_hub, hf_cache):
    mark = len(fake_hub.calls())
    found = resolve_bundle("org/model", fetch=[D_CLASSES_NAME], endpoint=fake_hub.url)
    assert found.source == "hub" and found.ref.repo_id == "org/model" and found.ref.revision is None
    assert hf_cache in found.path.parents and found.origin()["commit"] == found.path.name
    fetched = {p.split("/resolve/", 1)[1].split("/", 1)[1] for m, p in fake_hub.calls()[mark:]
               if m == "GET" and "/resolve/" in p}
    assert fetched == {CONFIG_NAME, MANIFEST_NAME, D_CLASSES_NAME, *ONNX_FILES}  # no weights for sampling
    at_main = resolve_bundle("org/model@main", ["encoder.safetensors"], endpoint=fake_hub.url)
    assert at_main.ref.revision == "main" and (at_main.path / "encoder.safetensors").is_file()


# ---------------------------------------------------------------- bad input: one line


def _bad_cases(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """name -> (value, what the one-line message says)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "file.txt").write_text("x")
    damaged = _copy(tmp_path / "damaged")
    data = bytearray((damaged / CONFIG_NAME).read_bytes())  # what every command reads
    data[-1] ^= 1
    (damaged / CONFIG_NAME).write_bytes(bytes(data))
    unexported = _copy(tmp_path / "unexported")
    shutil.rmtree(unexported / "onnx")
    return {
        "unknown name": ("no-such-model", "'no-such-model' is neither a directory nor an embedded model (embedded: "),
        "missing path": (str(tmp_path / "nowhere"), "is neither a directory nor a Hub repo id of the form ORG/NAME"),
        "empty revision": ("org/name@", "'org/name@' is neither a directory nor a Hub repo id"),
        "three parts": ("a/b/c", "'a/b/c' is neither a directory nor a Hub repo id"),
        "a space": ("org/na me", "'org/na me' is neither a directory nor a Hub repo id"),
        "not a bundle": (str(empty), f"{empty} is not a lifelong-gen run or bundle: it has no config.json"),
        "a file": (str(tmp_path / "file.txt"), "file.txt is not a directory (expected a run or bundle directory)"),
        "fails its check": (str(damaged), f"{damaged / CONFIG_NAME} does not match its sha256 in "
                                          f"{damaged / MANIFEST_NAME}"),
        "unexported": (str(unexported), f"{unexported} has no {', '.join(ONNX_FILES)}: run `lgen export"),
    }


def test_each_bad_input_is_one_line_from_the_library(tmp_path):
    for name, (value, message) in _bad_cases(tmp_path).items():
        with pytest.raises(LgenError) as error:
            resolve_bundle(value)
        assert message in str(error.value) and "\n" not in str(error.value), (name, str(error.value))


def test_hub_refusals_are_one_line(fake_hub):
    cases = {"org/nothing-here": "no local directory org/nothing-here, and Hub repo org/nothing-here not found",
             "org/model@v9": "revision 'v9' not found in Hub repo org/model",
             "org/config-only": "Hub repo org/config-only is not a lifelong-gen run or bundle: it has no config.json"}
    for value, message in cases.items():
        with pytest.raises(LgenError, match="^" + re.escape(message)):
            resolve_bundle(value, endpoint=fake_hub.url)


@pytest.mark.parametrize("command", [
    ["sample", "--model", "{value}", "--out", "{tmp}/s.png"],
    ["evaluate", "{value}"],
    ["train", "--from", "{value}", "--domains", "synthetic:rings", "--dry-run"],
    ["card", "{value}"],
])
def test_each_bad_input_is_one_line_exit_2_from_each_command(tmp_path, capsys, command):
    # In this process (a subprocess each would cost seconds): the commands resolve before any torch work.
    for name, (value, message) in _bad_cases(tmp_path).items():
        if command[0] != "sample" and name == "unexported":
            continue  # only sampling reads the ONNX graphs
        code, stdout, err = _cli(capsys, *[a.format(value=value, tmp=tmp_path) for a in command])
        lines = err.strip().splitlines()
        assert code == 2 and stdout == "" and len(lines) == 1, (name, code, err)
        assert lines[0].startswith("lgen: error: ") and message in lines[0], (name, err)
    assert not (tmp_path / "s.png").exists()


def test_a_hub_id_the_hub_lacks_is_one_line_exit_2_from_the_cli(fake_hub, no_torch, tmp_path):
    env = {**no_torch, "HF_ENDPOINT": fake_hub.url, "HF_HOME": str(tmp_path / "home")}
    r = lgen("sample", "--model", "org/nothing-here", "--out", str(tmp_path / "s.png"), env=env, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "Hub repo org/nothing-here not found" in lines[0], r.stderr


# ---------------------------------------------------------------- load_model, torch-free

LOAD = """
import json, sys
import numpy as np
from lifelong_gen.runtime import load_model
from lifelong_gen.runtime.codes import random_codes
out = {}
for value in sys.argv[1:]:
    model = load_model(None if value == "-" else value)
    codes = random_codes(model, 4, np.random.default_rng(0))
    out[value] = [str(model.bundle), float(model.sample(codes.z, codes.c, codes.d).sum())]
print(json.dumps(out))
"""


def test_load_model_resolves_a_name_and_a_hub_id_torch_free(fake_hub, no_torch, tmp_path):
    env = {**os.environ, **no_torch, "HF_ENDPOINT": fake_hub.url, "HF_HOME": str(tmp_path / "home")}
    r = subprocess.run([sys.executable, "-c", LOAD, "mnist-fashion", "-", "org/model", str(SHIPPED)],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["mnist-fashion"][0] == got["-"][0] == str(SHIPPED)
    assert str(tmp_path / "home") in got["org/model"][0]
    sums = {value: total for value, (_, total) in got.items()}
    assert len(set(sums.values())) == 1, sums  # one model, whichever way it is named


# ---------------------------------------------------------------- an older install's copy


def test_a_copy_with_only_the_old_checksums_json_still_loads(tmp_path, capsys):
    """Before every bundle had a manifest, the embedded model had checksums.json: a copy of it made
    then is read unchecked, as any bundle without a manifest, with the one notice line."""
    old = _copy(tmp_path / "old-copy")
    listed = json.loads((old / MANIFEST_NAME).read_text())["files"]
    (old / MANIFEST_NAME).unlink()
    (old / "checksums.json").write_text(json.dumps(
        {"algorithm": "sha256", "files": {rel: entry["sha256"] for rel, entry in listed.items()}}))
    assert resolve_bundle(old).path == old
    code, _, err = _cli(capsys, "sample", "--model", old, "--n", 4, "--out", tmp_path / "old.png")
    assert code == 0, err
    code, _, err = _cli(capsys, "sample", "--model", embedded.DEFAULT_MODEL, "--n", 4, "--out", tmp_path / "new.png")
    assert code == 0, err
    assert (tmp_path / "old.png").read_bytes() == (tmp_path / "new.png").read_bytes()
