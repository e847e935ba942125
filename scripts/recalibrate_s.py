"""Give a run trained before `--s-bn-recalibration` existed the S statistics a retraining would have.

    python scripts/recalibrate_s.py RUN [--batches 100]

The command line of lifelong_gen/train/recalibrate_run.py (what it writes, and why it equals a
retraining, is said there). Then run `lgen export RUN` and `lgen evaluate RUN`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lifelong_gen.errors import LgenError
from lifelong_gen.train.recalibrate_run import recalibrate_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--batches", type=int, default=100)
    args = ap.parse_args()
    try:
        for target in recalibrate_run(args.run, args.batches):
            print(f"recalibrated S in {target}")
    except LgenError as e:
        sys.exit(f"recalibrate_s: {e}")


if __name__ == "__main__":
    main()
