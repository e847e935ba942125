"""Data-parallel training throughput: `torchrun --nproc_per_node N` vs one process, same machine.

Usage: python benchmarks/distributed.py [--nproc 2] [--steps 150] [--preset mnist-fashion]
                                        [--out benchmarks/distributed.json]

Runs the same short training (the preset's networks and batch size per process, first
domain only, MNIST) twice: one process with all the cores' threads, and N processes under
torchrun (DDP over gloo) with cores / N threads each. Images per second = processes x batch
size / seconds per generator step, where seconds per step is the mean over the logged
windows after the first (warm-up). The ratio is measured in one run of this script;
run it on an otherwise idle machine (two trainings side by side on 2 cores slow each
other far more than 2x).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def seconds_per_step(run: Path) -> float:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    timed = records[1:] or records  # the first window includes start-up and warm-up
    return sum(r["sec_per_step"] for r in timed) / len(timed)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--preset", default="mnist-fashion")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "distributed.json")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    common = ["train", "--preset", args.preset, "--domains", "mnist", "--steps-per-domain", str(args.steps),
              "--log-every", str(max(1, args.steps // 5)), "--checkpoint-every", str(10 * args.steps),
              "--no-progress", "--device", "cpu"]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, nproc in (("single", 1), ("torchrun", args.nproc)):
            out = Path(tmp) / name
            threads = max(1, cores // nproc)
            env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
            if nproc == 1:
                cmd = [sys.executable, "-m", "lifelong_gen.cli", *common, "--out", str(out)]
            else:
                cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
                       "-m", "lifelong_gen.cli", *common, "--out", str(out)]
            subprocess.run(cmd, check=True, env=env, cwd=ROOT, capture_output=True)
            batch = json.loads((out / "config.json").read_text())["train"]["batch_size"]
            sps = seconds_per_step(out)
            results[name] = {"processes": nproc, "threads_each": threads, "batch_per_process": batch,
                             "sec_per_step": round(sps, 4), "images_per_s": round(nproc * batch / sps, 1)}
            print(f"{name:9s} {nproc} x {threads} threads: {sps:.3f} s/step, {results[name]['images_per_s']:.0f} images/s",
                  flush=True)
    ratio = results["torchrun"]["images_per_s"] / results["single"]["images_per_s"]
    print(f"torchrun {args.nproc} processes / 1 process: {ratio:.2f}x images/s")
    record = {"command": "python benchmarks/distributed.py " + " ".join(sys.argv[1:]), "preset": args.preset,
              "steps": args.steps, "results": results, "torchrun_over_single": round(ratio, 3),
              "machine": {"cpus": cores, "platform": platform.platform(), "processor": platform.processor(),
                          "loadavg_after": os.getloadavg()}}
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
