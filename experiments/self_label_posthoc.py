"""Issue 20's screening of SCAN self-labelling (train/self_label.py) on finished study runs.

`python experiments/self_label_posthoc.py --root exp/study23-fashion --domain fashion-mnist
 --source fast-sub2 --seeds 0,1,2 --steps 1000` takes each study run ROOT/SOURCE-sSEED (one domain
learned alone, experiments/study.py), makes its self-labelling pass with the trainer's own
function, writes the result as a new bundle ROOT/SOURCE+slSTEPS-sSEED, evaluates it as study.py
does and appends its row to ROOT/results.jsonl (so `study.py --table` shows both side by side).

On the one-domain protocol this is what `--self-label-steps STEPS` does inside training: the pass
comes after the domain's last generator step and moves S alone. Two differences, neither in
what the pass sees: its random stream starts fresh from the seed (a run's continues), and each
pair of rows shares G, so FID, d-purity and c1 change are equal by construction and the
comparison of S's clustering is paired. `minutes` is the source's training plus the pass.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study import evaluated_row  # noqa: E402

from lifelong_gen.bundle import NETWORK_FILES  # noqa: E402
from lifelong_gen.config import read_run_config  # noqa: E402
from lifelong_gen.train.checkpoint import load_state_strict  # noqa: E402
from lifelong_gen.train.self_label import self_label_pass  # noqa: E402
from lifelong_gen.train.trainer import Trainer  # noqa: E402


def posthoc(source_dir: Path, out_dir: Path, steps: int, threshold: float, lr: float) -> dict:
    """The pass on SOURCE_DIR's networks, written as the bundle OUT_DIR; its statistics and minutes."""
    run = read_run_config(source_dir)
    run = dataclasses.replace(run, train=dataclasses.replace(
        run.train, self_label_steps=steps, self_label_threshold=threshold, self_label_lr=lr))
    trainer = Trainer(run, out_dir, progress=False)
    for key, module in trainer.networks.items():
        load_state_strict(module, source_dir / NETWORK_FILES[key])
    t0 = time.time()
    stats = self_label_pass(trainer, trainer.phases[0])
    stats["minutes"] = (time.time() - t0) / 60
    out_dir.mkdir(parents=True, exist_ok=True)
    trainer.write_bundle()
    return stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--domain", default="fashion-mnist")
    ap.add_argument("--source", default="fast-sub2")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--threshold", type=float, default=0.99)
    ap.add_argument("--lr", type=float, default=1e-4)
    args = ap.parse_args()
    results = args.root / "results.jsonl"
    rows = [json.loads(x) for x in results.read_text().splitlines() if x.strip()]
    tag = f"{args.source}+sl{args.steps}" + ("" if args.threshold == 0.99 else f"-t{args.threshold}") + (
        "" if args.lr == 1e-4 else f"-lr{args.lr}")
    done = {r["seed"] for r in rows if r["setting"] == tag}
    for seed in map(int, args.seeds.split(",")):
        if seed in done:
            continue
        source_row = next(r for r in rows if r["setting"] == args.source and r["seed"] == seed)
        out_dir = args.root / f"{tag}-s{seed}"
        stats = posthoc(args.root / f"{args.source}-s{seed}", out_dir, args.steps, args.threshold, args.lr)
        flags = [*source_row["flags"], "--self-label-steps", str(args.steps), "--self-label-threshold",
                 str(args.threshold), "--self-label-lr", str(args.lr)]
        row = evaluated_row(out_dir, tag, seed, source_row["steps"], args.domain,
                            source_row["minutes"] + stats["minutes"], flags)
        row["self_label"] = stats
        with open(results, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
