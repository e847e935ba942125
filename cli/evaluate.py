"""`lgen evaluate`: metrics, report and figures for a run or bundle, or a comparison of runs.

Registers its command on the app of cli/app.py; the torch-side evaluation is imported in
the command body, so importing this module stays torch-free.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from lifelong_gen.atomic import atomic_write_json, atomic_write_text
from lifelong_gen.bundle import COMPARE_NAME, FIGURES_DIR, METRICS_NAME, REPORT_NAME
from lifelong_gen.cli.app import _setup_logging, app
from lifelong_gen.errors import LgenError


def _evaluate_one(run: Path, out: Optional[Path], num_samples: int, seed: int, inception: Optional[Path],
                  progress: bool) -> dict:
    from lifelong_gen.cli.app import require_torch_side

    require_torch_side("evaluate")
    from lifelong_gen.eval.metrics import evaluate
    from lifelong_gen.eval.report import run_report

    out = out or run
    figures_dir = out / FIGURES_DIR
    metrics = evaluate(run, num_samples=num_samples, seed=seed, inception_weights=inception,
                       figures_dir=figures_dir, progress=progress)
    figures = sorted(str(p.relative_to(out)) for p in figures_dir.glob("*.png"))
    metrics["figures"] = figures
    atomic_write_json(out / METRICS_NAME, metrics)
    atomic_write_text(out / REPORT_NAME, run_report(metrics, figures))
    return metrics


@app.command(short_help="FID/KID, memory, interpretability and forgetting, offline.")
def evaluate(
    runs: Optional[list[Path]] = typer.Argument(None, help="Run directory or bundle (several with --compare)"),
    out: Optional[Path] = typer.Option(None, help="Where metrics.json, report.md, figures/ go (default: the run)"),
    compare: bool = typer.Option(False, "--compare", help="Tabulate the runs side by side (evaluating those without metrics.json)"),
    num_samples: int = typer.Option(5000, help="Generated samples for quality and memory metrics"),
    seed: int = typer.Option(0),
    inception_weights: Optional[Path] = typer.Option(None, help="torch-fidelity Inception weights: also report Inception FID"),
    reuse: bool = typer.Option(True, "--reuse/--recompute", help="--compare: reuse a run's metrics.json when present"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Quality (FID/KID), memory, interpretability and forgetting, measured offline."""
    _setup_logging()
    from lifelong_gen.eval.report import compare_table

    runs = list(runs or [])
    for r in runs:
        if not r.is_dir():
            raise LgenError(f"run directory not found: {r}")
    if compare:
        if len(runs) < 2:
            raise LgenError("--compare needs at least two runs")
        named = []
        for r in runs:
            cached = r / METRICS_NAME
            if reuse and cached.is_file():
                metrics = json.loads(cached.read_text())
            else:
                metrics = _evaluate_one(r, None, num_samples, seed, inception_weights, progress)
            named.append((str(r), metrics))
        text = compare_table(named)
        if out:
            atomic_write_text(out / COMPARE_NAME, text + "\n")
        typer.echo(text)
        return
    if len(runs) != 1:
        raise LgenError("name one run directory or bundle to evaluate (several only with --compare)")
    run = runs[0]
    metrics = _evaluate_one(run, out, num_samples, seed, inception_weights, progress)
    from lifelong_gen.eval.report import summary_rows, table

    typer.echo(table(["metric", "value"], [list(r) for r in summary_rows(metrics)]))
    typer.echo(f"wrote {(out or run) / METRICS_NAME} and {REPORT_NAME}")
