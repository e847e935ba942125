"""How a setting of ModelConfig / TrainConfig is declared, once: its default, help, kind and flag.

Owns `setting` (a dataclasses.field whose metadata holds the help text, the kind, the values
it admits and, where it differs from the name, the command-line flag), `Setting` / `settings_of`,
the view of a dataclass's declared settings that `lgen train`'s options are generated from
(cli/app.py), and `check_declared`, which holds a config to the values its settings admit (the
rules that tie several settings together stay in config.py's `validate` methods).

The kinds, from what a setting changes:

    method     the networks, losses, codes, replay and schedule: fixed for a run
    lever      an opt-in addition to the paper's objective (weight 0 = off): fixed for a run
    data       where the data comes from: `--resume` may change it
    cadence    how often the loop logs and checkpoints: `--resume` may change it
    execution  how the step runs (precision, compilation, kernels): `--resume` may change it

Torch-free (config.py, and so every torch-free command, imports it).
"""

from __future__ import annotations

import dataclasses
import operator
import re
import typing
from dataclasses import MISSING, dataclass
from typing import Any, Optional

KINDS = ("method", "lever", "data", "cadence", "execution")
# What `lgen train --resume` may change: how a run executes, never what it learns.
RESUMABLE_KINDS = ("data", "cadence", "execution")

# A setting's `bounds`, written as its error message says them: ">= 1", "> 0", "[0, 1)".
_COMPARISON = re.compile(r"^(>=|>) (-?[0-9.e+-]+)$")
_INTERVAL = re.compile(r"^\[(-?[0-9.e+-]+), (-?[0-9.e+-]+)\)$")


def _bounds_test(bounds: str):
    """The predicate of a `bounds` text (ValueError on a text it cannot read, at import time)."""
    if m := _COMPARISON.match(bounds):
        compare, limit = {">=": operator.ge, ">": operator.gt}[m[1]], float(m[2])
        return lambda v: compare(v, limit)
    if m := _INTERVAL.match(bounds):
        low, high = float(m[1]), float(m[2])
        return lambda v: low <= v < high
    raise ValueError(f"bounds must read '>= N', '> N' or '[A, B)', got {bounds!r}")


def setting(default: Any = MISSING, *, help: str, kind: str, default_factory: Any = MISSING,
            flags: Optional[tuple[str, ...]] = None, cli: bool = True, show_default: bool = True,
            bounds: Optional[str] = None, choices: Optional[tuple[Any, ...]] = None) -> Any:
    """A dataclass field declared with its help text and kind (and flags: a bool's on/off pair).

    Args:
        cli: False for a field that is not a flag of its own (set by the program, or given
            through other flags).
        show_default: False where the field's default is not what a run gets (the image
            shape follows the domains).
        bounds: the numbers it admits, as ">= N", "> N" or "[A, B)" (None, where a field may be
            None, is always admitted); `check_declared` enforces them.
        choices: the only values it admits.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if bounds is not None:
        _bounds_test(bounds)  # a misspelt bound fails when the config module is imported
    metadata = {"help": help, "kind": kind, "flags": flags, "cli": cli, "show_default": show_default,
                "bounds": bounds, "choices": choices}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Setting:
    """One declared setting as the command line sees it."""

    name: str
    type: type  # int, float, str or bool (an Optional field's inner type)
    default: Any  # None where none is shown
    help: str
    kind: str
    flags: tuple[str, ...]  # "--name" or, for a bool, ("--on", "--off")


def _base_type(annotation: Any) -> type:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Union and len(args) == 1:
        return _base_type(args[0])
    if typing.get_origin(annotation) in (list, tuple):
        return str  # lists come as comma-separated text
    return annotation


def settings_of(cls: type) -> list[Setting]:
    """The settings a dataclass declares (with `setting`) that are flags of their own, in field order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if not meta.get("cli", False):
            continue
        kind_type = _base_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        flags = meta["flags"] or ((f"{flag}/--no-{f.name.replace('_', '-')}",) if kind_type is bool else (flag,))
        default = f.default if f.default is not MISSING and meta["show_default"] else None
        out.append(Setting(f.name, kind_type, default, meta["help"], meta["kind"], tuple(flags)))
    return out


def flag_of(name: str) -> str:
    """The command-line flag of a setting, for messages (betas is given as --beta1/--beta2)."""
    return "--beta1/--beta2" if name == "betas" else "--" + name.replace("_", "-")


def check_declared(config: Any) -> None:
    """Raise ValueError, in one line naming the flag, for the first field of the dataclass `config`
    whose value its declaration does not admit (`bounds`, `choices`); None is admitted.

    Config classes turn it into their own error type (config.py raises LgenError).
    """
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if value is None:
            continue
        choices, bounds = f.metadata.get("choices"), f.metadata.get("bounds")
        if choices is not None and value not in choices:
            raise ValueError(f"{flag_of(f.name)} {value!r} is not supported "
                             f"(choose one of {', '.join(map(str, choices))})")
        # NaN fails every comparison, so "> 0" also refuses a NaN learning rate.
        if bounds is not None and not _bounds_test(bounds)(value):
            within = "in " if bounds.startswith("[") else ""
            raise ValueError(f"{flag_of(f.name)} must be {within}{bounds}, got {value}")
