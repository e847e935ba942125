"""Settings declared once (lifelong_gen/settings.py): every field of the configs has its help and kind,
and `lgen train`'s options are exactly the declared settings plus the run options."""

from __future__ import annotations

import dataclasses

import pytest

from lifelong_gen.config import EXECUTION_SETTINGS, ModelConfig, TrainConfig
from lifelong_gen.settings import KINDS, RESUMABLE_KINDS, setting, settings_of


@pytest.mark.parametrize("cls", [ModelConfig, TrainConfig])
def test_every_field_is_declared_with_help_and_kind(cls):
    for f in dataclasses.fields(cls):
        assert f.metadata.get("help") and f.metadata.get("kind") in KINDS, f.name


def test_the_kinds_give_what_resume_may_change():
    resumable = {f.name for f in dataclasses.fields(TrainConfig) if f.metadata["kind"] in RESUMABLE_KINDS}
    assert resumable == set(EXECUTION_SETTINGS)
    assert {f.name for f in dataclasses.fields(TrainConfig) if f.metadata["kind"] == "lever"} == {
        "info_augment_weight", "s_real_weight", "s_real_reuse", "s_balance_weight", "replay_alignment",
        "self_label_steps", "self_label_threshold", "self_label_lr", "consistency_augment", "s_real_by_domain"}
    # S's over-clustering head changes S's weights, so it is a model field; still a lever.
    assert {f.name for f in dataclasses.fields(ModelConfig) if f.metadata["kind"] == "lever"} == {"s_overcluster_dim"}


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
                   "progress"}
    assert names == declared | run_options
    helps = {p.name: p.help for p in command.params}
    assert helps["n_critic"] == "Critic updates per generator step [default: 5]"
    assert helps["cuda_deterministic"].endswith("[default: --cuda-deterministic]")
