"""`lgen train --help` lists its options under sections named by the settings' kinds."""

from __future__ import annotations

import re

from conftest import lgen
from lifelong_gen.config import ModelConfig, TrainConfig
from lifelong_gen.settings import settings_of


def _sections(text: str) -> dict[str, set[str]]:
    """{section heading: the long flags listed under it} of a click help text."""
    sections: dict[str, set[str]] = {}
    current = None
    for line in text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            current = sections.setdefault(line[:-1], set())
        elif current is not None and (m := re.match(r"^  (--[a-z0-9-]+)", line)):
            current.add(m[1])
    return sections


def test_train_help_groups_every_setting_under_its_kind():
    r = lgen("train", "--help")
    assert r.returncode == 0, r.stderr
    sections = _sections(r.stdout)
    by_kind = {"lever": "Interpretability levers", "data": "Data", "cadence": "Logging and checkpoints",
               "execution": "Execution"}
    model = {s.name for s in settings_of(ModelConfig)}
    for s in settings_of(TrainConfig) + settings_of(ModelConfig):
        flag = s.flags[0].split("/")[0]
        if s.name == "domains":
            want = "Run"
        elif s.kind == "method":
            want = "Networks and codes" if s.name in model else "Method"
        else:
            want = by_kind[s.kind]
        holders = [name for name, flags in sections.items() if flag in flags]
        assert len(holders) == 1 and holders[0].startswith(want), (flag, holders)
    assert {"--preset", "--from", "--resume", "--dry-run"} <= sections["Run"]
    assert "--preset NAME --dry-run" in r.stdout  # where a preset's own values are shown
