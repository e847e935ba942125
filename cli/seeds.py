"""`lgen train --seeds` and the resume of a seeds directory, on the command line's side.

Owns `seeds_option` (the option parsed and checked against what it cannot go with), `train_seeds`
(every seed of a config into OUT/seed-K, in this process) and `resume_seeds`. The training itself
is lifelong_gen/train/seeds.py, imported only when a command trains (this module stays torch-free).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from lifelong_gen.cli.guards import refuse_existing, require_torch_side
from lifelong_gen.errors import LgenError
from lifelong_gen.runlock import run_lock


def seeds_option(text: Optional[str], explicit: dict[str, Any], resume: Optional[Path]) -> Optional[list[int]]:
    """--seeds as a list, checked against the options it cannot go with (one-line LgenError); None when not given."""
    if text is None:
        return None
    import os

    from lifelong_gen.seed_list import parse_seeds

    if resume is not None:
        raise LgenError(f"--resume {resume} continues every seed the directory holds: drop --seeds")
    if "seed" in explicit:
        raise LgenError("--seeds gives each run its seed: drop --seed (or give one run's seed as --seeds K)")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise LgenError("--seeds trains its seeds side by side in one process: run it without torchrun")
    return parse_seeds(text)


def train_seeds(run: Any, seeds: list[int], out: Path, dry_run: bool, progress: bool, device: str,
                 parent: Optional[Path] = None) -> None:
    """`lgen train --seeds`: every seed of `run` into OUT/seed-K, in this process (train/seeds.py)."""
    from lifelong_gen.seed_list import new_jobs

    jobs = new_jobs(run, seeds, out, parent)
    if dry_run:  # the seeds' configs differ in train.seed only
        typer.echo(jobs[0].run.to_json(), nl=False)
        return
    require_torch_side("train")
    from lifelong_gen.train.seeds import train_seeds

    with run_lock(out):
        refuse_existing(out)
        train_seeds(jobs, out, device=device, progress=progress, parent=parent)
    typer.echo(str(out))


def resume_seeds(out: Path, dry_run: bool, progress: bool, device: str, execution: dict[str, Any]) -> None:
    """`lgen train --resume OUT` of a seeds directory: every seed from its own checkpoint; finished ones skipped."""
    from lifelong_gen.seed_list import read_seeds, resume_jobs

    jobs = resume_jobs(out, execution)
    if dry_run:
        typer.echo(jobs[0].run.to_json(), nl=False)
        return
    require_torch_side("train")
    from lifelong_gen.train.seeds import train_seeds

    parent = read_seeds(out).get("parent")
    with run_lock(out):
        train_seeds(jobs, out, device=device, progress=progress, parent=Path(parent) if parent else None)
    typer.echo(str(out))
