"""Settings declared once (lifelong_gen/settings.py): every field of the configs has its help and kind,
every number the values it admits, and `lgen train`'s options are exactly the declared settings plus
the run options."""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Optional

import pytest

from lifelong_gen.config import (
    EXECUTION_SETTINGS,
    MODEL_KEYS,
    TRAIN_KEYS,
    ModelConfig,
    TrainConfig,
    preset_settings,
    resolve_run_config,
)
from lifelong_gen.errors import LgenError
from lifelong_gen.presets import PRESETS
from lifelong_gen.settings import KINDS, RESUMABLE_KINDS, check_declared, setting, settings_of


@pytest.mark.parametrize("cls", [ModelConfig, TrainConfig])
def test_every_field_is_declared_with_help_and_kind(cls):
    for f in dataclasses.fields(cls):
        assert f.metadata.get("help") and f.metadata.get("kind") in KINDS, f.name


def test_resume_may_change_how_a_run_executes_and_nothing_it_learns():
    kinds = {f.name: f.metadata["kind"] for f in dataclasses.fields(TrainConfig)}
    assert {"precision", "compile", "checkpoint_every", "log_every", "data_root"} <= set(EXECUTION_SETTINGS)
    assert all(kinds[name] in RESUMABLE_KINDS for name in EXECUTION_SETTINGS)
    assert not {"seed", "steps_per_domain", "replay_ratio", "s_real_weight"} & set(EXECUTION_SETTINGS)


def test_every_lever_is_off_by_default_or_qualifies_one_it_names():
    """A lever (an addition to the paper's objective) must leave the paper's run alone by default:
    it is 0 / False, or it only qualifies another lever, whose flag its help names."""
    levers = [s for s in settings_of(TrainConfig) + settings_of(ModelConfig) if s.kind == "lever"]
    assert levers
    lever_flags = {s.flags[0].split("/")[0] for s in levers}
    for s in levers:
        if s.default:
            assert any(flag in s.help for flag in lever_flags - {s.flags[0]}), s.name


def test_flags_types_and_defaults_come_from_the_declarations():
    by_name = {s.name: s for s in settings_of(TrainConfig) + settings_of(ModelConfig)}
    assert "betas" not in by_name and "inherited_domains" not in by_name  # given as --beta1/2; set by --from
    assert by_name["steps_per_domain"].flags == ("--steps-per-domain",) and by_name["steps_per_domain"].type is int
    assert by_name["replay"].flags == ("--replay/--no-replay",) and by_name["replay"].default is True
    assert by_name["joint"].flags == ("--joint/--lifelong",)
    assert by_name["replay_ratio"].type is float and by_name["domains"].type is str
    assert by_name["img_resolution"].default is None  # follows the domains: no default shown


def test_a_kind_outside_the_vocabulary_is_refused():
    with pytest.raises(ValueError, match="kind must be one of"):
        setting(1, help="x", kind="speed")


def test_lgen_train_has_an_option_per_declared_setting():
    import typer

    from lifelong_gen.cli.app import app

    command = typer.main.get_command(app).commands["train"]
    names = {p.name for p in command.params if p.param_type_name == "option"}  # typer vendors click
    declared = {s.name for s in settings_of(TrainConfig) + settings_of(ModelConfig)}
    run_options = {"preset", "quick", "out", "resume", "from_model", "critic", "dry_run", "beta1", "beta2", "device",
                   "progress", "seeds"}
    assert names == declared | run_options
    helps = {p.name: p.help for p in command.params}
    assert helps["n_critic"] == "Critic updates per generator step [default: 5]"
    assert helps["cuda_deterministic"].endswith("[default: --cuda-deterministic]")


@dataclass
class _Declared:
    count: int = setting(1, help="x", kind="method", bounds=">= 1")
    rate: float = setting(0.5, help="x", kind="method", bounds="> 0")
    share: Optional[float] = setting(None, help="x", kind="method", bounds="[0, 1)")
    mode: str = setting("a", help="x", kind="method", choices=("a", "b"))


@pytest.mark.parametrize("change,message", [
    ({"count": 0}, "--count must be >= 1, got 0"),
    ({"rate": 0.0}, "--rate must be > 0, got 0.0"),
    ({"rate": math.nan}, "--rate must be > 0, got nan"),  # NaN fails every comparison
    ({"share": 1.0}, r"--share must be in \[0, 1\), got 1.0"),
    ({"share": -0.1}, r"--share must be in \[0, 1\), got -0.1"),
    ({"mode": "c"}, "--mode 'c' is not supported \\(choose one of a, b\\)"),
])
def test_check_declared_refuses_what_a_declaration_does_not_admit(change, message):
    with pytest.raises(ValueError, match=message):
        check_declared(_Declared(**change))


def test_check_declared_admits_the_bounds_edges_and_none():
    check_declared(_Declared(count=1, rate=1e-12, share=0.0, mode="b"))
    check_declared(_Declared(share=None))  # an Optional setting left unset


def test_a_misspelt_bound_is_refused_where_it_is_declared():
    with pytest.raises(ValueError, match="bounds must read"):
        setting(1, help="x", kind="method", bounds="=> 1")


# Numbers whose admitted values depend on other settings (validate's own rules) or are any value.
UNBOUNDED = {"seed", "inherited_domains", "betas", "domain_groups"}  # domain_groups: ModelConfig.validate checks it


@pytest.mark.parametrize("cls", [ModelConfig, TrainConfig])
def test_every_number_declares_what_it_admits_and_its_default_is_admitted(cls):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        inner = [a for a in typing.get_args(hints[f.name]) if a is not type(None)] or [hints[f.name]]
        if inner[0] in (int, float) and f.name not in UNBOUNDED:
            assert f.metadata["bounds"] or f.metadata["choices"], f"{f.name} declares no bounds"
    check_declared(cls(domains=["mnist"]) if cls is TrainConfig else cls())


def test_the_configs_turn_a_declared_bound_into_a_one_line_error():
    # The loss weights of L_MI were unchecked before their bounds were declared.
    with pytest.raises(LgenError, match="--info-weight-continuous must be >= 0, got -0.1"):
        resolve_run_config({"domains": "mnist", "info_weight_continuous": -0.1})
    with pytest.raises(LgenError, match="--img-channels 2 is not supported"):
        resolve_run_config({"domains": "mnist", "img_channels": 2})


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_and_its_variants_are_settings_that_resolve(name):
    # A preset's dict-valued entries are variants (`quick`, `joint_run`); everything else, and every
    # key a variant overrides, is a declared setting, and each combination gives a valid run.
    variants = {k: v for k, v in PRESETS[name].items() if isinstance(v, dict)}
    assert set(variants) <= {"quick", "joint_run"}, name
    for overrides in [preset_settings(name), *variants.values()]:
        assert set(overrides) <= MODEL_KEYS | TRAIN_KEYS, name
    for quick in (False, True):
        for joint in (False, True):
            run = resolve_run_config({"joint": True} if joint else {}, preset=name, quick=quick)
            expected = {**preset_settings(name, quick, joint), "joint": joint}
            for key, value in expected.items():
                if key in ("domains", "precision"):  # parsed into specs; `auto` is kept until training
                    continue
                section = run.model if key in MODEL_KEYS else run.train
                assert getattr(section, key) == value, (name, quick, joint, key)


def test_the_reference_presets_joint_run_leaves_out_what_needs_replay():
    assert resolve_run_config({}, preset="mnist-fashion").train.s_real_by_domain
    joint = resolve_run_config({"joint": True}, preset="mnist-fashion", quick=True).train
    assert joint.joint and not joint.s_real_by_domain and joint.steps_per_domain == 1000  # quick still applies
