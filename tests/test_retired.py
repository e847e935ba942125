"""Retired settings (lifelong_gen/retired.py): how a config.json that names them is read, and what
is refused in one line (exit 2, nothing written) where this version cannot honour them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import TINY, lgen
from lifelong_gen.config import read_run_config, resolve_run_config
from lifelong_gen.errors import LgenError
from lifelong_gen.retired import RETIRED, retired_flag_note
from lifelong_gen.train.trainer import Trainer


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, synthetic28):
    """A tiny one-domain run with a checkpoint to resume (2 of 4 steps done)."""
    out = tmp_path_factory.mktemp("retired") / "run"
    run = resolve_run_config({**TINY, "domains": ["synthetic:bars"], "steps_per_domain": 4, "checkpoint_every": 2})
    trainer = Trainer(run, out, data=[synthetic28[0]], progress=False)
    trainer.train()
    return out


def _with_config(src, dst, section: str, **values):
    """A copy of run `src` whose config.json also names `values` in `section` (as an older version wrote it)."""
    import shutil

    shutil.copytree(src, dst)
    raw = json.loads((dst / "config.json").read_text())
    raw[section].update(values)
    _write_config(dst, raw)
    return dst


def _write_config(root, raw):
    """config.json rewritten with its manifest entry (as the version that wrote it would have)."""
    from lifelong_gen.bundle import manifest

    manifest.write_files(root, {"config.json": json.dumps(raw).encode()})


def _files(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_retired_settings_at_todays_behaviour_read_as_nothing_and_are_not_written_back(run_dir, tmp_path):
    now = {section: {name: r.now for name, r in table.items()} for section, table in RETIRED.items()}
    old = _with_config(run_dir, tmp_path / "old", "train", **{**now["train"], "self_label_lr": 3e-4})
    raw = json.loads((old / "config.json").read_text())
    raw["model"].update(now["model"])
    _write_config(old, raw)
    run = read_run_config(old)
    assert run.retired == {}
    written = json.loads(run.to_json())
    assert not (set(written["train"]) | set(written["model"])) & {n for t in RETIRED.values() for n in t}
    run.require_current("rebuild its networks")
    run.require_current("resume it")


def test_the_embedded_model_names_retired_settings_and_still_loads():
    import lifelong_gen

    embedded = Path(lifelong_gen.__file__).parent / "pretrained" / "mnist-fashion"
    raw = json.loads((embedded / "config.json").read_text())
    assert "gp_every" in raw["train"]  # written before the retirement: the case this module is for
    run = read_run_config(embedded)
    assert run.retired == {} and run.model.d_dim == 20


def test_a_setting_that_shaped_a_network_refuses_the_rebuild_but_not_the_config(run_dir, tmp_path):
    from lifelong_gen.train.checkpoint import load_bundle

    wide = _with_config(run_dir, tmp_path / "wide", "model", s_width=64)
    assert read_run_config(wide).model.d_width == 8  # the torch-free reader (sampling) still reads it
    with pytest.raises(LgenError, match="used --s-width, retired after its study .* cannot rebuild its networks"):
        load_bundle(wide, ("S",))
    before = _files(wide)
    r = lgen("export", str(wide))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--s-width" in r.stderr, r.stderr
    assert _files(wide) == before


def test_resume_of_a_run_a_retired_setting_changed_is_one_line_and_writes_nothing(run_dir, tmp_path):
    lazy = _with_config(run_dir, tmp_path / "lazy", "train", gp_every=2, self_label_threshold=0.5)
    before = _files(lazy)
    r = lgen("train", "--resume", str(lazy), "--no-progress")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "--gp-every" in r.stderr and "cannot resume it" in r.stderr and "self-label" not in r.stderr
    assert _files(lazy) == before


def test_resume_of_a_two_forward_run_goes_on_and_says_it_is_not_bit_identical(run_dir, tmp_path):
    two = _with_config(run_dir, tmp_path / "two", "train", fused_critic_forward=False)
    r = lgen("train", "--resume", str(two), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "--no-fused-critic-forward is retired" in r.stderr and "not bit-identically" in r.stderr
    assert "fused_critic_forward" not in json.loads((two / "config.json").read_text())["train"]


def test_every_retired_flag_gets_the_note_and_no_current_flag_does():
    for table in RETIRED.values():
        for name in table:
            note = retired_flag_note("--" + name.replace("_", "-"))
            assert note is not None and "experiments/README.md" in note, name
    for current in ("--gp-subsample", "--s-real-weight", "--replay-ratio", "--steps-per-domain", "--gp-evry"):
        assert retired_flag_note(current) is None, current
