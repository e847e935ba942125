"""Build the embedded default model lifelong_gen/pretrained/<name>/ from an exported run.

    lgen train --preset mnist-fashion --quick --out runs/quick
    lgen export runs/quick
    python scripts/build_pretrained.py runs/quick            # -> lifelong_gen/pretrained/mnist-fashion/

Copies what the torch-free runtime needs (config.json, onnx/generator.onnx, onnx/encoder.onnx)
plus the run's sample grids and, when the run was evaluated, metrics.json and figures/, renders the model card (README.md, marked as the quick-preset
demo model) and records the sha256 of every file in checksums.json, which `lgen sample`
checks before using the model. No safetensors: the embedded model is for sampling only.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from lifelong_gen import hub
from lifelong_gen.export import spec
from lifelong_gen.model_card import read_run_config, write_card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="exported run directory (config.json + onnx/)")
    parser.add_argument("--name", default=hub.DEFAULT_MODEL, help="folder under lifelong_gen/pretrained/")
    args = parser.parse_args(argv)

    run = read_run_config(args.run)
    for rel in (spec.GENERATOR_FILE, spec.ENCODER_FILE):
        if not (args.run / rel).is_file():
            sys.exit(f"{args.run} has no {rel}: run `lgen export {args.run}` first")
    weights = [p.stat().st_mtime for p in args.run.glob("*.safetensors")]
    if weights and max(weights) > min((args.run / r).stat().st_mtime for r in (spec.GENERATOR_FILE, spec.ENCODER_FILE)):
        sys.exit(f"the ONNX files of {args.run} are older than its weights: re-run `lgen export {args.run}`")

    target = hub.PRETRAINED_ROOT / args.name
    if target.exists():
        shutil.rmtree(target)
    files = ["config.json", spec.GENERATOR_FILE, spec.ENCODER_FILE]
    files += [p.relative_to(args.run).as_posix() for p in sorted((args.run / "samples").glob("*.png"))]
    # The evaluation (`lgen evaluate RUN`), when present: the card shows its numbers and figures.
    if (args.run / "metrics.json").is_file():
        files += ["metrics.json"] + [p.relative_to(args.run).as_posix() for p in sorted((args.run / "figures").glob("*.png"))]
    for rel in files:
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.run / rel, target / rel)  # copyfile: the run's 0600 modes stay behind

    steps = run.train.steps_per_domain
    note = (f"This is the quick-preset demo model (`lgen train --preset mnist-fashion --quick`: {steps:,} "
            f"generator steps per domain, narrow networks, a few minutes on 2 CPU cores), shipped inside the "
            f"package so that `lgen sample` works offline with no arguments. It is **not** the reference model "
            f"of the paper's experiment (`lgen train --preset mnist-fashion`); expect rough samples.")
    write_card(target, notes=[note], embedded=True,
               title=f"{' → '.join(run.train.domains)} demo generator (embedded in lifelong-gen)")
    hub.write_checksums(target)
    total = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    for p in sorted(target.rglob("*")):
        if p.is_file():
            print(f"{p.stat().st_size:>10,}  {p.relative_to(target)}")
    print(f"{total:>10,}  total in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
