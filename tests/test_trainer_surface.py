"""The trainer's surface (train/trainer_view.py): its helpers read only what TrainerView declares,
the trainer has all of it, and no helper imports the trainer (the train/ import circle stays cut)."""

from __future__ import annotations

import ast
import typing

from conftest import ROOT, TINY
from lifelong_gen.config import resolve_run_config
from lifelong_gen.train.trainer import Trainer
from lifelong_gen.train.trainer_view import TrainerView

HELPERS = ["callbacks", "metrics_log", "training_state", "growth", "bn_recalibration"]


def _declared() -> set[str]:
    names = set(typing.get_type_hints(TrainerView))
    return names | {n for n in vars(TrainerView) if not n.startswith("_")}


def _reads(module: str) -> dict[str, int]:
    """{attribute: line} read or set on a variable called `trainer` in train/<module>.py."""
    tree = ast.parse((ROOT / "lifelong_gen" / "train" / f"{module}.py").read_text())
    return {n.attr: n.lineno for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "trainer"}


def test_helpers_use_only_the_declared_surface_and_import_no_trainer():
    declared = _declared()
    for module in HELPERS:
        undeclared = {a: line for a, line in _reads(module).items() if a not in declared}
        assert not undeclared, f"train/{module}.py reads trainer attributes TrainerView lacks: {undeclared}"
        source = (ROOT / "lifelong_gen" / "train" / f"{module}.py").read_text()
        assert "lifelong_gen.train.trainer import" not in source, module
    assert _reads("training_state")  # the check sees real reads (a renamed variable would empty it)


def test_the_trainer_has_everything_the_view_declares(tmp_path, synthetic28):
    run = resolve_run_config({**TINY, "domains": ["synthetic:bars"], "steps_per_domain": 1})
    trainer = Trainer(run, tmp_path / "r", data=[synthetic28[0]], progress=False)
    missing = sorted(n for n in _declared() if not hasattr(trainer, n))
    assert not missing, missing
