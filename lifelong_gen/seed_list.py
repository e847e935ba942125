"""A seeds directory on disk (`lgen train --seeds`): the seed list a user gives, and where each seed lives.

Owns `parse_seeds` (`0,1,2,3`, ranges `0-3`, mixed `0-2,7`), the directory layout
(OUT/seeds.json, OUT/seed-K/ holding seed K's complete run), `read_seeds`, which
`lgen train --resume`, `lgen evaluate` and experiments/study.py use to tell a seeds directory
from a single run, and `SeedJob` with the jobs of a new or resumed seeds directory (train/seeds.py
trains them). Torch-free: the CLI checks `--seeds` and every seed's config before it imports torch,
so a typo costs nothing, and `lgen evaluate` recognises the layout before any evaluation work.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from lifelong_gen.bundle import CHECKPOINTS_DIR
from lifelong_gen.config import RunConfig, apply_execution_settings, read_run_config
from lifelong_gen.errors import LgenError

SEEDS_NAME = "seeds.json"  # OUT/seeds.json: the seeds, their directories, the thread layout, timings
SUMMARY_NAME = "seeds-summary.json"  # OUT/seeds-summary.json: `lgen evaluate OUT`'s mean ± sd over the seeds
_ITEM = re.compile(r"^(\d+)(?:-(\d+))?$")


def parse_seeds(text: str) -> list[int]:
    """The seeds of `--seeds`, in the order given: comma-separated non-negative integers or
    ranges A-B (both ends included). One-line LgenError on anything else or a repeated seed."""
    seeds: list[int] = []
    for item in text.split(","):
        m = _ITEM.match(item.strip())
        if m is None:
            raise LgenError(f"--seeds {text!r}: {item.strip()!r} is not a seed or a range A-B "
                            f"(e.g. --seeds 0,1,2,3 or --seeds 0-3)")
        low, high = int(m[1]), int(m[2] if m[2] is not None else m[1])
        if high < low:
            raise LgenError(f"--seeds {text!r}: the range {item.strip()} runs backwards (write {high}-{low})")
        seeds.extend(range(low, high + 1))
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise LgenError(f"--seeds {text!r} names seed {', '.join(map(str, repeated))} more than once")
    return seeds


def seed_dir(out: Path, seed: int) -> Path:
    """Seed `seed`'s run directory inside a seeds directory."""
    return Path(out) / f"seed-{seed}"


def read_seeds(out: Path) -> Optional[dict[str, Any]]:
    """OUT/seeds.json as a dict, or None when OUT is not a seeds directory (one-line LgenError
    when the file is there but unreadable)."""
    path = Path(out) / SEEDS_NAME
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LgenError(f"{path} is not readable JSON: {e}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("seeds"), list):
        raise LgenError(f"{path} is not a lifelong-gen seeds file")
    return raw


@dataclass
class SeedJob:
    """One seed's run inside a seeds directory."""

    seed: int
    run: RunConfig  # its config: train.seed is `seed`
    run_dir: Path  # OUT/seed-K
    parent: Optional[Path] = None  # a continued run that has not checkpointed yet: the parent's bundle
    resume: bool = False  # continue from run_dir's newest checkpoint (if any)
    changed: dict[str, list[Any]] = field(default_factory=dict)  # execution settings the resume changes


def new_jobs(run: RunConfig, seeds: list[int], out: Path, parent: Optional[Path] = None) -> list[SeedJob]:
    """A new seeds directory's jobs: `run` with each seed (and nothing else) changed."""
    return [SeedJob(k, dataclasses.replace(run, train=dataclasses.replace(run.train, seed=k)), seed_dir(out, k), parent)
            for k in seeds]


def resume_jobs(out: Path, execution: dict[str, Any]) -> list[SeedJob]:
    """The jobs that resume every seed of the seeds directory `out`, with `--resume`'s execution
    settings applied to each (one-line LgenError where a seed's config is missing or cannot resume)."""
    meta = read_seeds(out)
    if meta is None:
        raise LgenError(f"no {SEEDS_NAME} in {out}: not a seeds directory")
    parent = meta.get("parent")
    jobs = []
    for seed in meta["seeds"]:
        run_dir = Path(out) / meta.get("dirs", {}).get(str(seed), f"seed-{seed}")
        run = read_run_config(run_dir)
        run.require_current("resume it")
        changed = apply_execution_settings(run, execution)
        checkpoints = run_dir / CHECKPOINTS_DIR
        started = checkpoints.is_dir() and any(checkpoints.iterdir())
        if run.train.inherited_domains and not started and parent is None:
            raise LgenError(f"{run_dir} continued a parent and stopped before its first checkpoint, and {out}/"
                            f"{SEEDS_NAME} does not name the parent: remove {out} and run the --from command again")
        jobs.append(SeedJob(seed, run, run_dir, Path(parent) if run.train.inherited_domains and not started else None,
                            resume=True, changed=changed))
    return jobs
