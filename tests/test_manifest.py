"""Bundle manifests (issue 21, item 2): RUN/manifest.json lists the size and sha256 of config.json,
the safetensors and onnx/*.onnx, is renamed into place after them, and every reader checks the
files it reads: a flipped byte inside a weight file's tensor data (it still parses) ends in one
line naming the file, in the library and in `lgen export | evaluate | sample | train --from`.

One tiny run (4 steps, in-process) and one in-process export of it are shared by the module;
each test damages its own copy.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import shutil
import threading
import time
from pathlib import Path

import pytest

from conftest import TINY, lgen
from lifelong_gen.bundle import CONFIG_NAME, MANIFEST_NAME, NETWORK_FILES, ONNX_FILES, manifest
from lifelong_gen.errors import LgenError

SETTINGS = {**TINY, "domains": ["synthetic:bars"], "steps_per_domain": 4, "checkpoint_every": 1000}
G_EMA = NETWORK_FILES["G_ema"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, synthetic28):
    from lifelong_gen.config import resolve_run_config
    from lifelong_gen.train.trainer import Trainer

    run_dir = tmp_path_factory.mktemp("manifest") / "run"
    Trainer(resolve_run_config(SETTINGS), run_dir, data=synthetic28[:1], progress=False).train()
    return run_dir


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    from lifelong_gen.export.onnx_export import export_bundle

    out = tmp_path_factory.mktemp("exported") / "run"
    shutil.copytree(trained, out)
    export_bundle(out)
    return out


@pytest.fixture
def run_copy(trained, tmp_path):
    return Path(shutil.copytree(trained, tmp_path / "run"))


@pytest.fixture
def exported_copy(exported, tmp_path):
    return Path(shutil.copytree(exported, tmp_path / "run"))


def listed(root: Path) -> dict:
    return json.loads((root / MANIFEST_NAME).read_text())["files"]


def flip_tensor_byte(path: Path) -> None:
    """Flip one byte in the middle of the file: in a safetensors file, past its small JSON header,
    so inside the tensor data; in an ONNX file inside an initializer's raw data."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def digest_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def one_error_line(r) -> str:
    assert r.returncode == 2, r.stdout + r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("lgen: error:")]
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    return errors[0]


# ---------------------------------------------------------------- what is written


def test_a_trained_run_lists_exactly_its_config_and_weights(trained):
    files = listed(trained)
    assert set(files) == {CONFIG_NAME, *NETWORK_FILES.values()}
    for rel, entry in files.items():  # hashed from the bytes written: the same as the files on disk
        assert entry == manifest.file_entry(trained / rel), rel
    snapshot = trained / "snapshots" / "domain-1"  # save_bundle's too: config, EMA G and S
    assert set(listed(snapshot)) == {CONFIG_NAME, G_EMA, NETWORK_FILES["S"]}
    assert not list(trained.glob(".*.tmp"))


def test_export_adds_the_onnx_files_and_keeps_the_other_entries(trained, exported):
    before, after = listed(trained), listed(exported)
    assert set(after) == set(before) | set(ONNX_FILES)
    assert {rel: after[rel] for rel in before} == before  # the weights' entries as recorded, not re-hashed
    for rel in ONNX_FILES:
        assert after[rel] == manifest.file_entry(exported / rel), rel


def test_update_keeps_recorded_entries_and_drops_files_gone(run_copy):
    before = listed(run_copy)
    (run_copy / NETWORK_FILES["D"]).unlink()
    flip_tensor_byte(run_copy / G_EMA)
    manifest.update(run_copy)
    after = listed(run_copy)
    assert NETWORK_FILES["D"] not in after
    assert after == {rel: e for rel, e in before.items() if rel != NETWORK_FILES["D"]}
    with pytest.raises(LgenError, match="generator_ema.safetensors does not match"):  # damage stays visible
        manifest.verify(run_copy, [G_EMA])


def test_write_config_keeps_the_manifest_true(run_copy):
    # A resume rewrites config.json (its execution changes) without the weights: the entry follows.
    from lifelong_gen.config import read_run_config
    from lifelong_gen.train import checkpoint as ckpt

    run = read_run_config(run_copy)
    run.train.log_every += 1  # an execution setting `--resume --log-every` changes
    ckpt.write_config(run_copy, run)
    assert listed(run_copy)[CONFIG_NAME] == manifest.file_entry(run_copy / CONFIG_NAME)
    manifest.verify(run_copy, [CONFIG_NAME, *NETWORK_FILES.values()])


# ---------------------------------------------------------------- readers


def test_a_flipped_byte_in_the_tensor_data_fails_load_bundle_naming_the_file(run_copy):
    from safetensors.torch import load_file

    from lifelong_gen.train.checkpoint import load_bundle, load_networks

    flip_tensor_byte(run_copy / G_EMA)
    load_file(str(run_copy / G_EMA))  # still parses: only the sha256 can tell
    for load in (lambda: load_bundle(run_copy, which=("G_ema", "S")), lambda: load_networks(run_copy)):
        with pytest.raises(LgenError) as e:
            load()
        message = str(e.value)
        assert "\n" not in message
        assert message.startswith(f"{run_copy / G_EMA} does not match its sha256 in {run_copy / MANIFEST_NAME}")
    load_bundle(run_copy, which=("S",))  # only the files read are checked


def test_a_changed_config_value_that_still_parses_is_caught(exported_copy):
    from lifelong_gen.runtime import read_model_config
    from lifelong_gen.train.checkpoint import load_bundle

    path = exported_copy / CONFIG_NAME
    text = path.read_text()
    assert '"seed": 0' in text
    path.write_text(text.replace('"seed": 0', '"seed": 1'))  # same size: the sha256 sees it
    for read in (lambda: load_bundle(exported_copy, which=("S",)), lambda: read_model_config(exported_copy)):
        with pytest.raises(LgenError, match=r"config\.json does not match its sha256"):
            read()


def test_a_file_the_manifest_does_not_list_is_read_as_before(run_copy):
    from lifelong_gen.train.checkpoint import load_bundle

    files = listed(run_copy)
    del files[G_EMA]  # as if an older version had written it
    (run_copy / MANIFEST_NAME).write_text(json.dumps({"files": files}))
    flip_tensor_byte(run_copy / G_EMA)
    load_bundle(run_copy, which=("G_ema",))
    flip_tensor_byte(run_copy / NETWORK_FILES["S"])  # listed: still checked
    with pytest.raises(LgenError, match="encoder.safetensors does not match"):
        load_bundle(run_copy, which=("G_ema", "S"))


def test_export_of_a_damaged_run_is_one_line_and_writes_nothing(run_copy):
    flip_tensor_byte(run_copy / G_EMA)
    before = digest_tree(run_copy)
    line = one_error_line(lgen("export", str(run_copy), timeout=120))
    assert f"{run_copy / G_EMA} does not match its sha256 in {run_copy / MANIFEST_NAME}" in line
    assert digest_tree(run_copy) == before and not (run_copy / "onnx").exists()


def test_evaluate_of_a_damaged_run_fails_before_any_data_work(run_copy, monkeypatch, tmp_path):
    from lifelong_gen.eval import metrics

    flip_tensor_byte(run_copy / G_EMA)

    def no_data_work(*args, **kwargs):
        raise AssertionError("evaluate loaded data or a classifier before checking the bundle")

    monkeypatch.setattr(metrics, "load_domain", no_data_work)
    monkeypatch.setattr(metrics, "load_or_train", no_data_work)
    with pytest.raises(LgenError, match="generator_ema.safetensors does not match its sha256"):
        metrics.evaluate(run_copy, progress=False)
    # The CLI too, in a data home of its own: data work would have trained and cached the
    # evaluation classifier there (eval/classifier.py) before any check that came after it.
    home = tmp_path / "data_home"
    line = one_error_line(lgen("evaluate", str(run_copy), env={"LGEN_DATA_HOME": str(home)}, timeout=120))
    assert G_EMA in line and not (run_copy / "metrics.json").exists()
    assert not home.exists() or not any(home.rglob("*")), sorted(home.rglob("*"))


def test_train_from_a_damaged_parent_stops_before_any_training(run_copy, tmp_path):
    flip_tensor_byte(run_copy / G_EMA)
    child = tmp_path / "child"
    r = lgen("train", "--from", str(run_copy), "--domains", "synthetic:rings", "--out", str(child),
             "--no-progress", timeout=120)
    assert G_EMA in one_error_line(r)
    assert not child.exists()


def test_sample_of_a_damaged_graph_is_one_line_and_hashes_only_what_it_opens(exported_copy, tmp_path):
    out = tmp_path / "s.png"
    flip_tensor_byte(exported_copy / "onnx" / "encoder.onnx")  # never opened by sample
    r = lgen("sample", "--model", str(exported_copy), "--n", "4", "--out", str(out), timeout=120)
    assert r.returncode == 0 and out.is_file(), r.stderr
    out.unlink()
    flip_tensor_byte(exported_copy / "onnx" / "generator.onnx")
    r = lgen("sample", "--model", str(exported_copy), "--n", "4", "--out", str(out), timeout=120)
    line = one_error_line(r)
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert (f"{exported_copy / 'onnx' / 'generator.onnx'} does not match its sha256 in "
            f"{exported_copy / MANIFEST_NAME}") in line and "lgen export" in line
    assert not out.exists()


# ---------------------------------------------------------------- bundles without a manifest


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def lgen_log():
    """What the `lifelong_gen` logger says at INFO and above (its own handler: the CLI's setup may
    have turned propagation to the root logger off in this process)."""
    logger, handler = logging.getLogger("lifelong_gen"), _Records()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.messages
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_a_bundle_without_a_manifest_loads_with_one_notice(run_copy, lgen_log):
    from lifelong_gen.train.checkpoint import load_bundle

    (run_copy / MANIFEST_NAME).unlink()
    flip_tensor_byte(run_copy / G_EMA)  # unchecked: read as before
    for _ in range(2):
        load_bundle(run_copy, which=("G_ema", "S"))
    notices = [m for m in lgen_log if "has no manifest.json" in m]
    assert len(notices) == 1 and str(run_copy) in notices[0], lgen_log  # once per bundle and process


# ---------------------------------------------------------------- ordering and concurrency


def _new_networks(run_copy: Path):
    from lifelong_gen.config import read_run_config
    from lifelong_gen.train.networks import build_networks

    run = read_run_config(run_copy)
    G, D, S = build_networks(run.model)  # freshly initialised: other bytes than the trained ones
    return run, {"G": G, "G_ema": G, "S": S, "D": D}


def test_the_manifest_is_renamed_into_place_after_the_files(run_copy, monkeypatch):
    from lifelong_gen.train import checkpoint as ckpt

    run, nets = _new_networks(run_copy)
    renamed = []
    real_publish = manifest.publish
    monkeypatch.setattr(manifest, "publish", lambda tmp, path: renamed.append(Path(path).name) or real_publish(tmp, path))
    ckpt.save_bundle(run_copy, run, nets)
    assert renamed[-1] == MANIFEST_NAME and sorted(renamed[:-1]) == sorted([CONFIG_NAME, *NETWORK_FILES.values()])
    manifest.verify(run_copy, [CONFIG_NAME, *NETWORK_FILES.values()])


def test_a_failed_manifest_write_changes_no_file(run_copy, monkeypatch):
    from lifelong_gen.train import checkpoint as ckpt

    before = digest_tree(run_copy)
    run, nets = _new_networks(run_copy)
    real_write_temp = manifest.write_temp

    def full_disk_at_the_manifest(path, data):
        if Path(path).name == MANIFEST_NAME:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write_temp(path, data)

    monkeypatch.setattr(manifest, "write_temp", full_disk_at_the_manifest)
    with pytest.raises(OSError, match="No space left"):
        ckpt.save_bundle(run_copy, run, nets)
    # Nothing was renamed: the old files and their manifest still agree, and no temp file is left.
    assert digest_tree(run_copy) == before
    ckpt.load_bundle(run_copy)


def test_a_reader_waits_for_a_writer_between_its_files_and_its_manifest(run_copy, monkeypatch):
    import torch

    from lifelong_gen.train import checkpoint as ckpt

    run, nets = _new_networks(run_copy)
    mid_write = threading.Event()
    real_publish = manifest.publish

    def slow_publish(tmp, path):
        result = real_publish(tmp, path)
        if Path(path).name == G_EMA:  # the new weights are in place, the manifest not yet
            mid_write.set()
            time.sleep(0.5)
        return result

    monkeypatch.setattr(manifest, "publish", slow_publish)
    writer = threading.Thread(target=ckpt.save_bundle, args=(run_copy, run, nets))
    writer.start()
    try:
        assert mid_write.wait(30)
        # Without the directory's lock this would see the new file with the old manifest: "damaged".
        _, loaded = ckpt.load_bundle(run_copy, which=("G_ema",))
    finally:
        writer.join()
    for key, value in nets["G_ema"].state_dict().items():
        assert torch.equal(loaded["G_ema"].state_dict()[key], value), key


def test_weight_files_are_byte_reproducible_whatever_order_safetensors_writes_metadata_in():
    """safetensors 0.8 writes __metadata__ in a random order (safetensors#584): tensor_bytes sorts it,
    so equal weights give equal sha256 in a manifest, and the file still loads as written."""
    import torch
    from safetensors.torch import load, save

    from lifelong_gen.train.checkpoint import sorted_metadata, tensor_bytes

    tensors = {"w": torch.arange(6.0).reshape(2, 3), "n": torch.tensor(3)}
    meta = {"network": "S", "format": "pt", "note": 'ü}", \\ {'}
    raw = {save(tensors, metadata=meta) for _ in range(60)}  # several orders with safetensors 0.8.0
    ours = {tensor_bytes(tensors, metadata=meta) for _ in range(60)}
    assert len(ours) == 1
    data = ours.pop()
    assert len(data) == len(next(iter(raw))) and data[8:].startswith(b'{"__metadata__":{"format":"pt","network":"S"')
    loaded = load(data)
    assert torch.equal(loaded["w"], tensors["w"]) and torch.equal(loaded["n"], tensors["n"])
    plain = save(tensors)  # no metadata, or one key: nothing to sort, the bytes pass through
    assert sorted_metadata(plain) == plain
    assert sorted_metadata(b"\x05\x00\x00\x00\x00\x00\x00\x00{bad}") == b"\x05\x00\x00\x00\x00\x00\x00\x00{bad}"
