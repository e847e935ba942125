"""Build the embedded default model lifelong_gen/pretrained/<name>/ from an exported run.

    bash scripts/results.sh                                   # trains, exports, evaluates runs/mnist-fashion
    python scripts/build_pretrained.py runs/mnist-fashion     # -> lifelong_gen/pretrained/mnist-fashion/

Copies what the torch-free runtime needs (config.json, onnx/generator.onnx, onnx/encoder.onnx),
the EMA generator's and S's safetensors (small for this model: `lgen evaluate` and
`lifelong_gen.train.checkpoint.load_bundle` work on the embedded bundle too), the run's sample
grids and, when the run was evaluated, metrics.json, figures/ and the d -> class table
(d_classes.json, which must have been measured on these weights); renders the model card
(README.md) and records the size and sha256 of every file in manifest.json (the integrity
file of every bundle), which `lgen sample` checks before using the model. `--demo` marks a quick-preset run as a demo, not the
reference model.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from lifelong_gen.atomic import atomic_write_bytes
from lifelong_gen.bundle import (
    CONFIG_NAME,
    D_CLASSES_NAME,
    FIGURES_DIR,
    MANIFEST_NAME,
    METRICS_NAME,
    NETWORK_FILES,
    ONNX_FILES,
    SAMPLES_DIR,
    TRAINING_LOG_NAME,
    d_classes,
    embedded,
    manifest,
    stale_onnx,
)
from lifelong_gen.bundle.model_card import read_run_config, write_card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="exported run directory (config.json + onnx/)")
    parser.add_argument("--name", default=embedded.DEFAULT_MODEL, help="folder under lifelong_gen/pretrained/")
    parser.add_argument("--demo", action="store_true", help="a quick-preset run: say it is not the reference model")
    parser.add_argument("--minutes", type=float, help="training minutes for the card, where the run has no "
                                                      "metrics.jsonl (a rebuild from a copy of the embedded model)")
    parser.add_argument("--compare", type=Path, help="`lgen evaluate --compare` table (compare.md) to show in the card")
    parser.add_argument("--compare-title", default="Lifelong vs no replay vs joint training (same settings)",
                        help="heading of the --compare section")
    parser.add_argument("--compare-intro", default="Measured by `lgen evaluate --compare` (`bash scripts/results.sh`):",
                        help="sentence above the --compare table")
    args = parser.parse_args(argv)

    run = read_run_config(args.run)
    for rel in ONNX_FILES:
        if not (args.run / rel).is_file():
            sys.exit(f"{args.run} has no {rel}: run `lgen export {args.run}` first")
    stale = stale_onnx(args.run)
    if stale:
        sys.exit(stale)

    target = embedded.PRETRAINED_ROOT / args.name
    if target.exists():
        shutil.rmtree(target)
    # The weights before the ONNX graphs derived from them: the copy's mtimes then keep export
    # order, which bundle.stale_onnx reads (a slow copy of the weights after the graphs looked stale).
    files = [CONFIG_NAME, NETWORK_FILES["G_ema"], NETWORK_FILES["S"], *ONNX_FILES]
    files += [p.relative_to(args.run).as_posix() for p in sorted((args.run / SAMPLES_DIR).glob("*.png"))]
    # The evaluation (`lgen evaluate RUN`), when present: the card shows its numbers and figures.
    if (args.run / METRICS_NAME).is_file():
        files += [METRICS_NAME] + [p.relative_to(args.run).as_posix()
                                   for p in sorted((args.run / FIGURES_DIR).glob("*.png"))]
    table = d_classes.read(args.run)
    if table is not None:
        stale = table.stale_warning(args.run)
        if stale:
            sys.exit(stale)
        files.append(D_CLASSES_NAME)
    for rel in files:  # new files with default modes: the run's 0600 checkpoint modes stay behind
        atomic_write_bytes(target / rel, (args.run / rel).read_bytes())

    note, title = _card_words(run, args)
    sections = []
    if args.compare is not None:
        sections.append((args.compare_title, args.compare_intro + "\n\n" + args.compare.read_text()))
    write_card(target, notes=[note], embedded=True, title=title, sections=sections, opset=_graph_opset(target))
    # Every file shipped, previews and card included: a command checks what it reads, strictly.
    manifest.record(target, sorted(p.relative_to(target).as_posix() for p in target.rglob("*")
                                   if p.is_file() and p.name != MANIFEST_NAME and not p.name.startswith(".")))
    total = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    for p in sorted(target.rglob("*")):
        if p.is_file():
            print(f"{p.stat().st_size:>10,}  {p.relative_to(target)}")
    print(f"{total:>10,}  total in {target}")
    return 0


def _card_words(run, args: argparse.Namespace) -> tuple[str, str]:
    """The card's note and title: the reference model of the paper's first experiment, or a demo."""
    steps = run.train.steps_per_domain
    steps_words = f"{steps:,} generator steps per domain"
    domains = " → ".join(run.train.domains)
    if args.demo:
        note = (f"This is the quick-preset demo model (`lgen train --preset mnist-fashion --quick`: {steps_words}, "
                f"a few minutes on 2 CPU cores), shipped inside the package so that "
                f"`lgen sample` works offline with no arguments. It is **not** the reference model of the paper's "
                f"experiment (`lgen train --preset mnist-fashion`); expect rough samples.")
        title = f"{domains} demo generator (embedded in lifelong-gen)"
    else:
        minutes = args.minutes if args.minutes is not None else _training_minutes(args.run / TRAINING_LOG_NAME,
                                                                                   run.train.log_every)
        note = (f"This is lifelong-gen's reference model of the paper's first experiment, trained by "
                f"`lgen train --preset mnist-fashion` ({steps_words}, {minutes:.0f} minutes "
                f"of training on 2 CPU cores, no GPU) and shipped inside the package, so that `lgen sample` works "
                f"offline with no arguments. Its evaluation (`lgen evaluate`) is below; the lifelong-gen README's "
                f"Results section compares it with no-replay and joint-training runs and says which of the "
                f"project's targets it meets.")
        title = f"{domains} lifelong generator (reference model, embedded in lifelong-gen)"
    return note, title


def _graph_opset(bundle: Path) -> int | None:
    """The ai.onnx opset generator.onnx imports (graphs exported before the opset was recorded in their
    metadata lack it there; the card is torch- and onnx-free, this script has the onnx package)."""
    import onnx

    model = onnx.load(str(bundle / ONNX_FILES[0]), load_external_data=False)
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def _training_minutes(metrics: Path, log_every: int) -> float:
    """Training time from metrics.jsonl (seconds per step x steps in each logged window)."""
    import json

    total, last_step = 0.0, {}
    for line in metrics.read_text().splitlines():
        rec = json.loads(line)
        prev = last_step.get(rec["domain_index"], 0)
        total += rec["sec_per_step"] * (rec["step"] - prev)
        last_step[rec["domain_index"]] = rec["step"]
    return total / 60


if __name__ == "__main__":
    sys.exit(main())
