"""A study's runs again, with S's batch-norm statistics recalibrated (train/bn_recalibration.py).

    python experiments/study_recalibrated.py exp/study-lifelong exp/study-recal

copies each run of SRC/results.jsonl to DST, gives it the statistics a training at this version
writes (lifelong_gen/train/recalibrate_run.py: no weight changes, so no retraining), evaluates it as study.py
does and appends its row to DST/results.jsonl with the same setting, seed, minutes and flags.
`python experiments/study.py --paired BASE --root DST` then compares the settings again. Rows
already in DST are kept. Why: every study row before session 14 measured S with the running
statistics training left, which at a domain's end were mostly those of G's batches.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from study import evaluated_row  # noqa: E402

from lifelong_gen.train.recalibrate_run import recalibrate_run  # noqa: E402


def main() -> None:
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    dst.mkdir(parents=True, exist_ok=True)
    out = dst / "results.jsonl"
    done = {(r["setting"], r["seed"], r["steps"], r["domain"])
            for r in map(json.loads, out.read_text().splitlines())} if out.exists() else set()
    for row in map(json.loads, (src / "results.jsonl").read_text().splitlines()):
        key = (row["setting"], row["seed"], row["steps"], row["domain"])
        if key in done:
            continue
        run = dst / f"{row['setting']}-s{row['seed']}"
        shutil.rmtree(run, ignore_errors=True)
        shutil.copytree(src / run.name, run, ignore=shutil.ignore_patterns("checkpoints"))
        recalibrate_run(run, 100)
        new = evaluated_row(run, row["setting"], row["seed"], row["steps"], row["domain"], row["minutes"],
                            row["flags"])
        with out.open("a") as f:
            f.write(json.dumps(new) + "\n")
        print(row["setting"], row["seed"], {k: round(new[k], 3) for k in ("mnist_acc", "fashion_acc", "mnist_acc_after_1")
                                            if k in new}, flush=True)


if __name__ == "__main__":
    main()
