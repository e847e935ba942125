"""The user docs: docs/cli.md is what scripts/cli_reference.py writes, every page links where it says, and
what users read (the package, the CLI, the exporter, the README, docs/) speaks to them: no study-log
references a reader cannot open ("session 12", "issue 20") and no words of how the team borrows machines."""

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


# A study is cited by its experiment file; these are references only the team's own notes can resolve.
INTERNAL = re.compile(
    r"\bsessions?[ -]\d+"          # "session 16", "sessions 12-14"
    r"|\bissues?[ -]\d+"           # "issue 20", "issue-14"
    r"|this workplace|device tool|\bcarr(?:y|ies|ied)\b|gpu_carry",
    re.IGNORECASE,
)
SCANNED = ["lifelong_gen", "cli", "export", "model_cards", "docs", "README.md"]
TEXT_SUFFIXES = {".py", ".md", ".j2", ".json", ".js", ".html", ".css", ".txt", ".toml"}


def _user_facing_files():
    files = subprocess.run(["git", "ls-files", *SCANNED], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    return [ROOT / f for f in files if (ROOT / f).suffix in TEXT_SUFFIXES and (ROOT / f).is_file()]


def internal_references(text: str) -> list[str]:
    return [m.group(0) for m in INTERNAL.finditer(text)]


def test_the_pattern_catches_what_it_is_for():
    assert internal_references("Issue 20 (session 17): S lost") == ["Issue 20", "session 17"]
    assert internal_references("sessions 12-15, issue-14, on this workplace's kind") == \
        ["sessions 12", "issue-14", "this workplace"]
    assert internal_references("the device tool's run with carry: [.gpu_carry]") == \
        ["device tool", "carry", "gpu_carry"]
    # onnxruntime sessions, a session of its own, an issue without a number: words users meet.
    assert internal_references("cached sessions; a session of its own; sessions.py; a known issue") == []


def test_no_internal_references_in_what_users_read():
    files = _user_facing_files()
    assert any(f.name == "README.md" for f in files) and any(f.parent.name == "docs" for f in files)
    found = []
    for path in files:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for hit in internal_references(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {hit!r}")
    assert not found, "cite the experiment file instead:\n" + "\n".join(found)
