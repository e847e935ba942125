"""The `lgen` command line (typer). Installed as `lifelong_gen.cli`.

Importing this module must not import torch: `lgen sample | encode | interpolate |
pull` run where torch is not installed. Commands that train import the torch-side
modules inside their bodies.

Every user-fixable problem (bad flag value, unknown domain, missing data) ends as one
line on stderr, `lgen: error: ...`, and exit code 2; `main()` owns that translation.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from lifelong_gen.cli.grouped_help import GroupedCommand
from lifelong_gen.cli.guards import refuse_existing, require_torch_side
from lifelong_gen.cli.seeds import resume_seeds, seeds_option, train_seeds
from lifelong_gen.config import ModelConfig, TrainConfig
from lifelong_gen.errors import LgenError, TrainingInterrupted
from lifelong_gen.runlock import run_lock
from lifelong_gen.settings import KINDS, Setting, settings_of
from lifelong_gen.worker_lifetime import bind_to_launcher

app = typer.Typer(
    name="lgen",
    help="Lifelong interpretable image generators: train, export, sample, encode, interpolate.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

log = logging.getLogger("lifelong_gen")


def _print_version(value: bool) -> None:
    if value:
        from lifelong_gen import __version__

        typer.echo(f"lgen (lifelong-gen) {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the package version and exit"),
) -> None:
    """Lifelong interpretable image generators: train, export, sample, encode, interpolate."""


def renamed_option(old: str, new: str, old_value: Any, new_value: Any) -> Any:
    """The value of an option given by its new name or by its old one, a hidden alias kept for one
    release (one name per idea across commands: --out for an output, --model for a model); the old
    spelling prints a one-line notice. Both at once: a one-line error."""
    if old_value is None:
        return new_value
    if new_value is not None:
        raise LgenError(f"give {new} once ({old} is its old spelling)")
    print(f"lgen: note: {old} is now {new}; {old} will be removed in the next release", file=sys.stderr)
    return old_value


def _setup_logging(verbose: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("lgen: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO if verbose else logging.WARNING)
    log.propagate = False


# ------------------------------------------------------------ lgen train: its options

# `lgen train --help`'s sections: a setting's by its kind (settings.KINDS), the model's apart.
_PANELS = {"method": "Method: schedule, optimisers, objective, replay", "model": "Networks and codes",
           "lever": "Interpretability levers (beyond the paper; off unless a preset sets them)", "data": "Data",
           "cadence": "Logging and checkpoints", "execution": "Execution (--resume may change these)"}
_RUN = "Run"
# The options of `lgen train` that are not settings of a run (config.py declares those, once).
_RUN_OPTIONS_HEAD = {
    "preset": (Optional[str], typer.Option(None, rich_help_panel=_RUN, help="Named settings: mnist-fashion, celeba-chairs")),
    "quick": (bool, typer.Option(False, "--quick", rich_help_panel=_RUN, help="The preset's small demo-sized variant")),
    "out": (Optional[Path], typer.Option(None, rich_help_panel=_RUN, help="Run directory (default: runs/<preset or 'run'>)")),
    "resume": (Optional[Path], typer.Option(None, rich_help_panel=_RUN, help="Continue the run in this directory with its stored config")),
    "from_model": (Optional[str], typer.Option(None, "--from", rich_help_panel=_RUN, help="Continue a trained model onto the new --domains, "
                                               "without its old data: a run or bundle directory, an embedded model "
                                               "(mnist-fashion) or a Hub repo ORG/NAME[@REV]")),
    "critic": (str, typer.Option("auto", "--critic", rich_help_panel=_RUN, help="With --from: auto (the parent's critic when it has one), "
                                                          "parent, or fresh")),
    "dry_run": (bool, typer.Option(False, "--dry-run", rich_help_panel=_RUN, help="Print the resolved config and exit")),
}
# betas is one setting given as two flags, each defaulting to its half of the declared default.
_BETAS = TrainConfig.__dataclass_fields__["betas"].default
_BETA_OPTIONS = {f"beta{i + 1}": (Optional[float], typer.Option(None, help=f"Adam beta{i + 1} [default: {b:g}]",
                                                                  rich_help_panel=_PANELS["method"]))
                 for i, b in enumerate(_BETAS)}
_RUN_OPTIONS_TAIL = {
    "device": (str, typer.Option("auto", rich_help_panel=_PANELS["execution"], help="auto (CUDA when torch sees a GPU), cpu or cuda; under torchrun each "
                                              "rank uses GPU LOCAL_RANK")),
    "progress": (bool, typer.Option(True, "--progress/--no-progress", rich_help_panel=_PANELS["cadence"],
                                    help="Progress bar on stderr")),
    "seeds": (Optional[str], typer.Option(None, "--seeds", rich_help_panel=_PANELS["execution"],
                                          help="Train these seeds of the config in one process, each into "
                                               "OUT/seed-K, the cores shared among them: 0,1,2,3 or 0-3 "
                                               "(--resume OUT continues them all)")),
}


def _default_text(s: Setting) -> str:
    """The setting's own default, as help shows it (a preset may override it: presets.py)."""
    if s.default is None or s.name == "domains":
        return ""
    if s.type is bool:
        on, _, off = s.flags[0].partition("/")
        return f" [default: {on if s.default else off}]"
    return f" [default: {s.default:g}]" if isinstance(s.default, float) else f" [default: {s.default}]"


def _train_parameters() -> tuple[list, tuple[str, ...]]:
    """`lgen train`'s parameters (generated from the settings' declarations) and the settings' names.

    Order: the run options, then the settings by kind (method, levers, data, cadence, execution),
    Adam's betas beside the learning rates, the model's settings after the loop's; `--help` shows
    them in those sections (_PANELS).
    """
    declared = settings_of(TrainConfig) + settings_of(ModelConfig)
    head = [s for s in declared if s.name == "domains"]
    rest = sorted((s for s in declared if s not in head), key=lambda s: KINDS.index(s.kind))  # stable: field order kept
    options: dict[str, tuple[Any, Any]] = {"domains": None, **_RUN_OPTIONS_HEAD}
    for s in rest:
        options[s.name] = None
        if s.name == "lr_d":
            options.update(_BETA_OPTIONS)
    options.update(_RUN_OPTIONS_TAIL)
    by_name = {s.name: s for s in declared}
    model_fields = {s.name for s in settings_of(ModelConfig)}
    params = []
    for name, spec in options.items():
        if spec is None:  # a declared setting: None unless given, so a preset's value is not overridden
            s = by_name[name]
            panel = _PANELS["model" if name in model_fields and s.kind == "method" else s.kind]
            if name == "domains":
                panel = _RUN
            spec = (Optional[s.type], typer.Option(None, *s.flags, help=s.help + _default_text(s), rich_help_panel=panel))
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=spec[1], annotation=spec[0]))
    return params, tuple(by_name)


def train(**options: Any) -> None:
    """Lifelong training over a list of domains; writes a model bundle into the run directory."""
    # First, before torch loads: a torchrun worker must not outlive a SIGKILLed launcher (worker_lifetime.py).
    bind_to_launcher()
    _setup_logging()
    preset, quick, out, resume = options["preset"], options["quick"], options["out"], options["resume"]
    from_model, critic, dry_run = options["from_model"], options["critic"], options["dry_run"]
    device, progress = options["device"], options["progress"]
    explicit = {k: v for k, v in options.items() if k in _SETTING_NAMES and v is not None}
    seeds = seeds_option(options["seeds"], explicit, resume)
    beta1, beta2 = options["beta1"], options["beta2"]
    if beta1 is not None or beta2 is not None:
        explicit["betas"] = (_BETAS[0] if beta1 is None else beta1, _BETAS[1] if beta2 is None else beta2)

    if from_model is not None:
        _continue(from_model, explicit, preset, quick, resume, critic, out, dry_run, progress, device, seeds)
        return
    if critic != "auto":
        raise LgenError("--critic applies to a continued run: add --from MODEL")
    if resume is not None:
        from lifelong_gen.config import EXECUTION_SETTINGS
        from lifelong_gen.settings import flag_of as _flag

        method = sorted(k for k in explicit if k not in EXECUTION_SETTINGS)
        given = method + (["preset"] if preset else []) + (["quick"] if quick else [])
        if given:
            allowed = ", ".join(_flag(k) for k in EXECUTION_SETTINGS)
            raise LgenError(f"--resume keeps the run's method settings: drop {', '.join(_flag(g) for g in given)} "
                            f"(it takes only execution settings: --device, --progress, {allowed})")
        _resume(resume, dry_run, progress, device, explicit)
        return

    from lifelong_gen.config import resolve_run_config  # torch-free: --dry-run works in an inference install

    run = resolve_run_config(explicit, preset=preset, quick=quick)
    run_dir = out if out is not None else Path("runs") / ((preset or "run") + ("-quick" if quick else ""))
    if seeds is not None:
        train_seeds(run, seeds, run_dir, dry_run, progress, device)
        return
    if dry_run:
        typer.echo(run.to_json(), nl=False)
        return
    require_torch_side("train")
    from lifelong_gen.train.cpu_threads import intra_op_threads

    with _process_group(device) as ctx, run_lock(run_dir, ctx.is_main), intra_op_threads(run.train.threads):
        refuse_existing(run_dir)
        ctx.barrier()  # every rank checked before rank 0 writes config.json
        from lifelong_gen.train.trainer import Trainer

        trainer = Trainer(run, run_dir, progress=progress, device=device)
        trainer.train()
        if ctx.is_main:
            typer.echo(str(run_dir))


_PARAMETERS, _SETTING_NAMES = _train_parameters()
train.__signature__ = inspect.Signature(_PARAMETERS)  # typer reads the options from it
app.command(short_help="Lifelong training over a list of domains; writes a model bundle.", cls=GroupedCommand,
            epilog="Defaults shown are the base settings; a --preset sets its own: see them all with "
                   "`lgen train --preset NAME --dry-run`.")(train)


@contextlib.contextmanager
def _process_group(device: str):
    """Join torchrun's process group when WORLD_SIZE > 1 (a no-op otherwise); leave it at the end."""
    from lifelong_gen.train import distributed

    ctx = distributed.init_from_env(device)
    if not ctx.is_main:
        log.setLevel(logging.WARNING)  # one rank narrates
    try:
        yield ctx
    finally:
        distributed.shutdown()


def _continue(value: str, explicit: dict[str, Any], preset: Optional[str], quick: bool, resume: Optional[Path],
              critic: str, out: Optional[Path], dry_run: bool, progress: bool, device: str,
              seeds: Optional[list[int]] = None) -> None:
    """`lgen train --from MODEL --domains NEW`: a new run that starts from a trained model (lineage.py)."""
    if resume is not None:
        raise LgenError("--from starts a new run from a model; --resume continues an existing run: give one of them")
    if preset or quick:
        raise LgenError("--from takes the parent model's settings; drop --preset/--quick")
    domains = explicit.pop("domains", None)
    if not domains:
        raise LgenError("--from needs the new domains to learn: --domains NEW[,NEW2...]")
    from lifelong_gen.bundle.lineage import continue_config, resolve_parent

    # The settings first (torch-free, no download of weights), so a bad flag costs nothing.
    parent = resolve_parent(value, weights=not dry_run)
    run = continue_config(parent, domains, explicit, critic=critic)
    new = run.train.domains[run.train.inherited_domains:]
    run_dir = out if out is not None else Path("runs") / f"{Path(value).name}+{'+'.join(s.replace(':', '-').replace('/', '-') for s in new)}"
    if seeds is not None:  # each seed continues the same parent
        if not dry_run:
            log.info("continuing %s (%s) onto %s with seeds %s", value, ", ".join(parent.run.train.domains),
                     ", ".join(new), ", ".join(map(str, seeds)))
        train_seeds(run, seeds, run_dir, dry_run, progress, device, parent=None if dry_run else parent.path)
        return
    if dry_run:
        typer.echo(run.to_json(), nl=False)
        return
    require_torch_side("train")
    from lifelong_gen.train.cpu_threads import intra_op_threads

    with _process_group(device) as ctx, run_lock(run_dir, ctx.is_main), intra_op_threads(run.train.threads):
        refuse_existing(run_dir)
        ctx.barrier()
        from lifelong_gen.train.trainer import Trainer

        trainer = Trainer(run, run_dir, progress=progress, device=device, parent=parent.path)
        log.info("continuing %s (%s) onto %s: d_dim %d -> %d, critic %s", value, ", ".join(parent.run.train.domains),
                 ", ".join(new), parent.run.model.d_dim, run.model.d_dim, run.parent["critic"])
        trainer.train()
        if ctx.is_main:
            typer.echo(str(run_dir))


def _resume(run_dir: Path, dry_run: bool, progress: bool, device: str, execution: dict[str, Any]) -> None:
    from lifelong_gen.bundle import CHECKPOINTS_DIR, NETWORK_FILES
    from lifelong_gen.config import apply_execution_settings, read_run_config
    from lifelong_gen.seed_list import SEEDS_NAME
    from lifelong_gen.settings import flag_of as _flag

    if (run_dir / SEEDS_NAME).is_file():
        resume_seeds(run_dir, dry_run, progress, device, execution)
        return
    run = read_run_config(run_dir)
    run.require_current("resume it")
    for r in run.retired.values():  # what is left is rounding only (retired.py)
        log.info("%s is retired: the resumed steps compute the same up to float rounding, not bit-identically",
                 r.flag)
    changed = apply_execution_settings(run, execution)
    if dry_run:
        typer.echo(run.to_json(), nl=False)
        return
    has_checkpoint = (run_dir / CHECKPOINTS_DIR).is_dir() and any((run_dir / CHECKPOINTS_DIR).iterdir())
    if not has_checkpoint:
        # Without a checkpoint a resume starts from random weights and would overwrite these ones
        # within its first checkpoint: a pulled or copied bundle is not a run to resume.
        weights = [name for name in NETWORK_FILES.values() if (run_dir / name).is_file()]
        if weights:
            raise LgenError(f"{run_dir} holds trained weights ({', '.join(weights)}) but no checkpoint to resume: "
                            f"to teach it a new domain, `lgen train --from {run_dir} --domains NEW`")
        if run.train.inherited_domains:
            raise LgenError(f"{run_dir} continued {run.parent.get('model') if run.parent else 'a parent'} and stopped "
                            f"before its first checkpoint: remove {run_dir} and run the --from command again")
    require_torch_side("train")
    from lifelong_gen.train.cpu_threads import intra_op_threads
    from lifelong_gen.train.trainer import Trainer

    with _process_group(device) as ctx, run_lock(run_dir, ctx.is_main), intra_op_threads(run.train.threads):
        trainer = Trainer(run, run_dir, progress=progress, device=device)
        if not trainer.restore():
            log.info("no checkpoint in %s yet: starting from the beginning", run_dir)
        if changed:  # recorded in config.json, which train() writes before its first step
            log.info("resuming with changed execution settings: %s",
                     ", ".join(f"{_flag(k)} {old} -> {new}" for k, (old, new) in changed.items()))
            trainer.run.record_execution_changes(trainer.global_step, changed)
        trainer.train()
        if ctx.is_main:
            typer.echo(str(run_dir))


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point of `lgen`: runs the app, turning user errors into one line and exit 2."""
    from lifelong_gen.bundle import hub

    hub.quiet_hub_output()  # huggingface_hub's own logs and bars would surround the one error line
    try:
        result = app(args=argv, standalone_mode=False, prog_name="lgen")
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        print("lgen: aborted", file=sys.stderr)
        sys.exit(130)
    except typer.TyperException as e:  # click's usage errors (typer vendors click)
        ctx = getattr(e, "ctx", None)
        if type(e).__name__ == "NoArgsIsHelpError" and ctx is not None:
            typer.echo(ctx.get_help())
            sys.exit(0)
        message = e.format_message() if hasattr(e, "format_message") else str(e)
        if type(e).__name__ == "NoSuchOption":
            from lifelong_gen.retired import retired_flag_note

            message = retired_flag_note(getattr(e, "option_name", "")) or message
        print(f"lgen: error: {' '.join(message.split())}", file=sys.stderr)
        sys.exit(2)
    except LgenError as e:
        print(f"lgen: error: {e}", file=sys.stderr)
        sys.exit(2)
    except TrainingInterrupted as e:
        print(f"lgen: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except OSError as e:  # a full disk or a read-only directory met outside the places that say more
        where = f" ({e.filename})" if e.filename else ""
        print(f"lgen: error: {e.strerror or e}{where}", file=sys.stderr)
        sys.exit(2)
    sys.exit(result if isinstance(result, int) else 0)
