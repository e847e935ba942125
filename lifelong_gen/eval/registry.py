"""The registry of `lgen evaluate`'s metrics: adding a metric is one decorated function.

Owns `register_metric` (StyleGAN2-ADA's `metric_main.register_metric` idea: a name -> function
table), `run_metrics` and `timed` (where an evaluation's time goes). Each metric declares its
name, the offset of its random seed (its samples come from a generator seeded
`seed * 1000 + offset`, so a new metric changes no other's numbers) and where metrics.json
puts its result: under "interpretability" (its own key, in the report's summary when it is a
mean) or "core" (the quality, clustering and forgetting results that evaluate() arranges per
domain). Metrics run in registration order.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import torch

from lifelong_gen.config import RunConfig


@dataclass
class Context:
    """What a metric may read: the evaluated networks, the run's config and its directory."""

    G: torch.nn.Module  # the EMA generator, eval mode
    S: torch.nn.Module
    run: RunConfig
    bundle: Path
    progress: Any = None  # a rich Progress, or None


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[..., Optional[dict]]  # fn(evaluator, context, seed) -> result, or None when it does not apply
    seed_offset: int
    section: str  # "core" or "interpretability"


METRICS: dict[str, Metric] = {}
SECTIONS = ("core", "interpretability")


def register_metric(name: str, *, seed_offset: int, section: str = "interpretability"):
    """Register `fn(evaluator, context, seed) -> dict | None` as the metric `name`.

    Two metrics share an offset only to share samples on purpose (the forgetting matrix's rows
    draw what the quality metric draws, so its last row is the bundle's own quality).

    Raises:
        ValueError: the name is taken, or the section is unknown.
    """
    if section not in SECTIONS:
        raise ValueError(f"section must be one of {SECTIONS}, got {section!r}")

    def decorate(fn):
        if name in METRICS:
            raise ValueError(f"metric {name!r} is registered already")
        METRICS[name] = Metric(name, fn, seed_offset, section)
        return fn

    return decorate


@contextlib.contextmanager
def timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Adds the wall seconds of the block to timings[name] (metrics.json's "timings_s")."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - t0, 2)


def run_metrics(evaluator, context: Context, timings: Optional[dict[str, float]] = None) -> dict[str, Optional[dict]]:
    """Every registered metric's result by name (None for one that does not apply to this bundle).

    Args:
        timings: where each metric's wall seconds go, under "metric:NAME".
    """
    bar = context.progress
    task = bar.add_task("metrics", total=len(METRICS)) if bar else None
    timings = {} if timings is None else timings
    results = {}
    for metric in METRICS.values():
        with timed(timings, f"metric:{metric.name}"):
            results[metric.name] = metric.fn(evaluator, context, evaluator.seed * 1000 + metric.seed_offset)
        if bar:
            bar.advance(task)
    return results
