"""The user docs: docs/cli.md is what scripts/cli_reference.py writes, and every page links where it says."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT

PAGES = sorted((ROOT / "docs").glob("*.md"))


def _reference():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import cli_reference
    finally:
        sys.path.pop(0)
    return cli_reference


def test_the_cli_reference_is_not_stale():
    assert (ROOT / "docs" / "cli.md").read_text() == _reference().render(), \
        "docs/cli.md is stale: run python scripts/cli_reference.py"


def test_the_cli_reference_lists_every_command_and_setting():
    from lifelong_gen.config import ModelConfig, TrainConfig
    from lifelong_gen.settings import settings_of

    text = (ROOT / "docs" / "cli.md").read_text()
    for command in ["train", "export", "sample", "encode", "interpolate", "push", "pull", "card", "evaluate",
                    "explore"]:
        assert f"### `lgen {command}`" in text, command
    for s in settings_of(TrainConfig) + settings_of(ModelConfig):
        assert f"`{s.flags[0]}`" in text, s.name


def test_the_check_mode_fails_on_a_stale_page(tmp_path, monkeypatch):
    reference = _reference()
    stale = tmp_path / "cli.md"
    stale.write_text(reference.render().replace("--steps-per-domain", "--steps-per-phase"))
    monkeypatch.setattr(reference, "PAGE", stale)
    monkeypatch.setattr(reference, "ROOT", tmp_path)
    assert reference.main(["--check"]) == 1
    stale.write_text(reference.render())
    assert reference.main(["--check"]) == 0


def test_the_script_runs_as_documented():
    r = subprocess.run([sys.executable, "scripts/cli_reference.py", "--check"], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr


def test_relative_links_in_the_docs_and_readme_resolve():
    for page in [ROOT / "README.md", *PAGES]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} links to a missing {target}"
