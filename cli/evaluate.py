"""`lgen evaluate`: metrics, report and figures for a run or bundle, or a comparison of runs.

Registers its command on the app of cli/app.py; the torch-side evaluation is imported in
the command body, so importing this module stays torch-free. A run is named as any model is
(lifelong_gen/bundle/resolve.py: a directory, an embedded model's name, `ORG/NAME[@REV]`), and
its config and the weights evaluated are checked before any data or classifier work. Owns
`output_dir`, the rule for where an evaluation is written: into the run itself (other code
reads RUN/metrics.json), except for an installed or cached bundle (resolve.installed_location),
which is never written into: its evaluation goes to --out or ./lgen-evaluate/<bundle name>. The d -> class
table (d_classes.json) belongs to the bundle, since `lgen sample --class` reads it there: it is
written into the bundle (and its manifest) whatever --out says, except into an installed one,
and beside metrics.json as well when that is elsewhere. A directory of `lgen train --seeds` is
evaluated seed by seed, then summarised over the seeds (eval/seed_summary.py).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import typer

from lifelong_gen.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from lifelong_gen.bundle import (
    COMPARE_NAME,
    CONFIG_NAME,
    D_CLASSES_NAME,
    FIGURES_DIR,
    METRICS_NAME,
    NETWORK_FILES,
    REPORT_NAME,
)
from lifelong_gen.bundle.resolve import installed_location, resolve_bundle
from lifelong_gen.cli.app import _setup_logging, app
from lifelong_gen.errors import LgenError
from lifelong_gen.seed_list import SUMMARY_NAME, read_seeds

log = logging.getLogger("lifelong_gen")

# Where the evaluation of an installed or cached bundle goes without --out (relative to the cwd).
DEFAULT_OUT_ROOT = Path("lgen-evaluate")
# What the evaluation reads of a bundle: checked against its manifest before any work.
EVALUATED_FILES = (CONFIG_NAME, NETWORK_FILES["G_ema"], NETWORK_FILES["S"])


def bundle_label(run: Path) -> str:
    """A bundle's short name: its folder's, or `org--name` for an HF snapshot (models--org--name/snapshots/REV)."""
    resolved = Path(run).resolve()
    for part in reversed(resolved.parts):
        if part.startswith("models--") and len(part) > len("models--"):
            return part[len("models--"):]
    return resolved.name or "bundle"


def check_out(out: Path) -> None:
    """--out must not lie inside an installed or cached location (one-line LgenError)."""
    where = installed_location(out)
    if where is not None:
        raise LgenError(f"--out {out} is in {where}, which lgen evaluate never writes into: "
                        f"choose a directory outside it")


def output_dir(run: Path, out: Optional[Path]) -> tuple[Path, Optional[str]]:
    """Where the evaluation of `run` writes metrics.json, report.md and figures/, and a note to log.

    Args:
        run: the run directory or bundle evaluated.
        out: --out, or None: the run itself, unless it is an installed or cached bundle (the
            package's embedded models, site-packages, the HF cache): then
            ./lgen-evaluate/<bundle name>, with a note saying so.

    Raises:
        LgenError: `out` lies inside an installed or cached location.
    """
    if out is not None:
        check_out(out)
        return Path(out), None
    where = installed_location(run)
    if where is None:
        return Path(run), None
    target = DEFAULT_OUT_ROOT / bundle_label(run)
    return target, (f"{run} is in {where}, which lgen evaluate never writes into: writing {METRICS_NAME}, "
                    f"{REPORT_NAME} and {FIGURES_DIR}/ to {target} (--out DIR to choose)")


def _evaluate_one(run: Path, out: Path, note: Optional[str], num_samples: int, seed: int, inception: Optional[Path],
                  progress: bool) -> dict:
    from lifelong_gen.cli.guards import require_torch_side

    require_torch_side("evaluate")
    if note:  # where the results go, once the evaluation can run
        log.info(note)
    from lifelong_gen.eval.metrics import evaluate
    from lifelong_gen.eval.report import run_report

    figures_dir = out / FIGURES_DIR
    metrics = evaluate(run, num_samples=num_samples, seed=seed, inception_weights=inception,
                       figures_dir=figures_dir, progress=progress)
    figures = sorted(str(p.relative_to(out)) for p in figures_dir.glob("*.png"))
    metrics["figures"] = figures
    atomic_write_json(out / METRICS_NAME, metrics)
    atomic_write_text(out / REPORT_NAME, run_report(metrics, figures))
    _write_d_classes(run, out, metrics)
    log.info(timing_line(metrics["timings_s"]))
    return metrics


def timing_line(timings: dict[str, float]) -> str:
    """Where the evaluation's time went, largest first (metrics.json keeps the whole table)."""
    parts = ", ".join(f"{name} {sec:.0f} s" for name, sec in sorted(timings.items(), key=lambda kv: -kv[1])
                      if sec >= 0.5)
    return f"evaluated in {sum(timings.values()):.0f} s: {parts}"


def _write_d_classes(run: Path, out: Path, metrics: dict) -> None:
    """The d -> class table: into the bundle itself (sampling reads it there), listed in its manifest,
    unless the bundle is installed or cached; beside metrics.json too when that is elsewhere."""
    from lifelong_gen.bundle import d_classes, manifest

    purity = metrics["interpretability"]["d_purity"]
    rows = [{"d": r["d"], "domain": r["domain"], "class": r["name"], "share": r["purity"],
             "runner_up": r["runner_up"]} for r in purity["per_d"]]
    measured = {"by": "lgen evaluate", "lifelong_gen": metrics["versions"]["lifelong_gen"], "seed": metrics["seed"],
                "samples_per_d": purity["samples_per_d"],
                "classifier_test_accuracy": metrics["classifier"].get("test_accuracy")}
    table = d_classes.build(rows, metrics["class_names"], weights_sha256=d_classes.recorded_weights_sha256(run),
                            measured=measured)
    data = (json.dumps(table, indent=2) + "\n").encode()
    if Path(out).resolve() != Path(run).resolve():
        atomic_write_bytes(Path(out) / D_CLASSES_NAME, data)
    if installed_location(run) is not None:
        return
    try:
        manifest.write_files(run, {D_CLASSES_NAME: data})
    except OSError as e:  # a read-only run directory: the copy beside metrics.json is the table
        log.warning("could not write %s into %s (%s): it is in %s only", D_CLASSES_NAME, run,
                    e.strerror or e, out / D_CLASSES_NAME)




def _evaluate_seeds(root: Path, out: Optional[Path], num_samples: int, seed: int, inception: Optional[Path],
                   progress: bool) -> None:
    """A seeds directory (`lgen train --seeds`): each seed's bundle evaluated as a single run is (the same
    evaluation seed for all), then each headline metric's mean ± sd over the seeds in seeds-summary.json."""
    from lifelong_gen.eval.seed_summary import summarise, summary_table

    if out is not None:
        check_out(out)
    meta = read_seeds(root)
    dirs = {k: root / meta.get("dirs", {}).get(str(k), f"seed-{k}") for k in meta["seeds"]}
    bundles = {k: resolve_bundle(str(d), EVALUATED_FILES).path for k, d in dirs.items()}  # all checked first
    per_seed = {}
    for k, bundle in bundles.items():
        dest, note = output_dir(bundle, None if out is None else out / dirs[k].name)
        log.info("seed %d: evaluating %s", k, bundle)
        per_seed[k] = _evaluate_one(bundle, dest, note, num_samples, seed, inception, progress)
    summary = {**summarise(per_seed), "num_samples": num_samples, "evaluation_seed": seed}
    dest_root = root if out is None else out
    atomic_write_json(dest_root / SUMMARY_NAME, summary)
    typer.echo(summary_table(summary))
    typer.echo(f"wrote {dest_root / SUMMARY_NAME} and each seed's {METRICS_NAME}")


@app.command(short_help="FID/KID, memory, interpretability and forgetting, offline.")
def evaluate(
    runs: Optional[list[str]] = typer.Argument(None, help="Run directory or bundle, an embedded model's name or a "
                                                          "Hub repo ORG/NAME[@REV] (several with --compare); a "
                                                          "directory of `lgen train --seeds`: each seed, and the "
                                                          "metrics' mean ± sd over them"),
    out: Optional[Path] = typer.Option(None, help="Where metrics.json, report.md, figures/ go (default: the run; "
                                                  "./lgen-evaluate/NAME for an installed or cached bundle)"),
    compare: bool = typer.Option(False, "--compare",
                                 help="Tabulate the runs side by side (evaluating those without metrics.json)"),
    num_samples: int = typer.Option(5000, help="Generated samples for quality and memory metrics"),
    seed: int = typer.Option(0),
    inception_weights: Optional[Path] = typer.Option(None, help="torch-fidelity Inception weights: also report Inception FID"),
    reuse: bool = typer.Option(True, "--reuse/--recompute", help="--compare: reuse a run's metrics.json when present"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Quality (FID/KID), memory, interpretability and forgetting, measured offline."""
    _setup_logging()
    from lifelong_gen.eval.report import compare_table

    runs = runs or []
    if compare and len(runs) < 2:
        raise LgenError("--compare needs at least two runs")
    if not compare and len(runs) != 1:
        raise LgenError("name one run directory or bundle to evaluate (several only with --compare)")
    seeds_dirs = [r for r in runs if read_seeds(Path(r)) is not None]
    if seeds_dirs and compare:
        raise LgenError(f"{seeds_dirs[0]} holds several seeds: `lgen evaluate {seeds_dirs[0]}` evaluates each "
                        f"and their mean ± sd; --compare takes single runs (e.g. {seeds_dirs[0]}/seed-0)")
    if seeds_dirs:
        _evaluate_seeds(Path(runs[0]), out, num_samples, seed, inception_weights, progress)
        return
    named_runs = [(r, resolve_bundle(r, EVALUATED_FILES).path) for r in runs]
    if compare:
        if out is not None:
            check_out(out)  # before any work
        named = []
        for label, r in named_runs:
            dest, note = output_dir(r, None)
            # An installed bundle's own metrics.json is the shipped one; a re-measure of it sits in dest.
            cached = next((p for p in (dest / METRICS_NAME, r / METRICS_NAME) if p.is_file()), None)
            if reuse and cached is not None:
                metrics = json.loads(cached.read_text())
            else:
                metrics = _evaluate_one(r, dest, note, num_samples, seed, inception_weights, progress)
            named.append((label, metrics))
        text = compare_table(named)
        if out:
            atomic_write_text(out / COMPARE_NAME, text + "\n")
        typer.echo(text)
        return
    run = named_runs[0][1]
    dest, note = output_dir(run, out)
    metrics = _evaluate_one(run, dest, note, num_samples, seed, inception_weights, progress)
    from lifelong_gen.eval.report import summary_rows, table

    typer.echo(table(["metric", "value"], [list(r) for r in summary_rows(metrics)]))
    typer.echo(f"wrote {dest / METRICS_NAME} and {REPORT_NAME}")
