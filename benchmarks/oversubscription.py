"""Step time alone and beside a second training, under each OpenMP wait policy (issue 23).

Usage: python benchmarks/oversubscription.py [--rounds 3] [--steps 8] [--only NAME ...]

torch's CPU kernels (ATen, MKL, oneDNN) share one GNU OpenMP pool. After each parallel
region its threads spin (GOMP_SPINCOUNT, 300,000 spins when OMP_WAIT_POLICY is unset)
before they sleep. Alone that saves a wake-up per region; beside another busy process the
spinning threads take the cores the other process's threads need, and both crawl. Each
policy is timed in fresh interpreters (the variables are read when libgomp loads): one
training alone, then two at once, rounds alternating the policies so all see the same
machine. `Trainer.train_step` of the reference preset (replay on, synthetic 28x28
domains; cpu_regression.py's timer); then a default-policy training beside a PASSIVE one, the
pair lifelong_gen.cpu_sharing makes. Writes benchmarks/oversubscription.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

POLICIES = {
    "unset (libgomp default: spin 300,000)": {},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
    "GOMP_SPINCOUNT=1000": {"GOMP_SPINCOUNT": "1000"},
    "GOMP_SPINCOUNT=100": {"GOMP_SPINCOUNT": "100"},
    "OMP_NUM_THREADS=1": {"OMP_NUM_THREADS": "1"},
}

# The reference preset's real step, timed in a fresh interpreter (the same timer as the
# regression benchmark's).
from cpu_regression import TIMER  # noqa: E402  (benchmarks/ is this script's folder)


def timed(env_extra: dict | list[dict], copies: int, steps: int, warmup: int) -> list[float]:
    """ms per step of each of `copies` trainings started together (`env_extra`: one for all, or one each)."""
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    extras = env_extra if isinstance(env_extra, list) else [env_extra] * copies
    procs = [subprocess.Popen([sys.executable, "-c", TIMER, str(steps), str(warmup)],
                              cwd=ROOT, env={**base, **extra}, stdout=subprocess.PIPE, text=True) for extra in extras]
    out = []
    for p in procs:
        stdout, _ = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"timer failed ({p.returncode})")
        out.append(json.loads(stdout.strip().splitlines()[-1])["ms"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", nargs="*", help="policy names to time (default: all)")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "oversubscription.json"))
    args = ap.parse_args()
    steps = args.steps
    policies = {k: v for k, v in POLICIES.items() if not args.only or any(o in k for o in args.only)}
    results = {name: {"alone": [], "pair": []} for name in policies}
    for r in range(args.rounds):
        order = list(policies) if r % 2 == 0 else list(reversed(policies))
        for name in order:
            results[name]["alone"] += timed(policies[name], 1, steps, args.warmup)
            results[name]["pair"] += timed(policies[name], 2, steps, args.warmup)
            print(f"round {r + 1} {name}: alone {results[name]['alone'][-1]:.1f} ms, "
                  f"pair {results[name]['pair'][-2]:.1f} / {results[name]['pair'][-1]:.1f} ms", flush=True)
    # What lifelong_gen.cpu_sharing makes of two trainings: the first keeps libgomp's default,
    # the one started beside it sleeps its threads (PASSIVE).
    mixed = {"default": [], "PASSIVE": []}
    for r in range(args.rounds):
        first, second = timed([{}, POLICIES["OMP_WAIT_POLICY=PASSIVE"]], 2, steps, args.warmup)
        mixed["default"].append(first)
        mixed["PASSIVE"].append(second)
        print(f"round {r + 1} default beside PASSIVE: {first:.1f} / {second:.1f} ms", flush=True)
    base = statistics.median(results[list(policies)[0]]["alone"])
    summary = {}
    for name, res in results.items():
        alone, pair = statistics.median(res["alone"]), statistics.median(res["pair"])
        summary[name] = {"alone_ms": round(alone, 1), "pair_ms": round(pair, 1),
                         "pair_over_alone": round(pair / alone, 2), "alone_over_default_alone": round(alone / base, 3)}
        print(f"{name:40s} alone {alone:7.1f} ms  pair {pair:7.1f} ms  pair/alone {pair / alone:5.2f}  "
              f"alone vs default {alone / base:.3f}")
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    flags = next((l for l in lscpu.splitlines() if l.startswith("Flags")), "")
    model = next((l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith("Model name")), "?")
    isa = "AMX" if "amx" in flags else "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "?"
    Path(args.out).write_text(json.dumps({
        "command": f"python benchmarks/oversubscription.py --rounds {args.rounds} --steps {args.steps}"
                   + (f" --only {' '.join(args.only)}" if args.only else ""),
        "net": "preset", "steps_timed": steps, "machine": {"cpu": model, "isa": isa, "cores": os.cpu_count(),
                                                            "python": platform.python_version()},
        "summary": summary,
        "default_beside_passive_ms": {k: round(statistics.median(v), 1) for k, v in mixed.items()},
        "raw_ms": {**results, "default beside PASSIVE": mixed}}, indent=2) + "\n")


if __name__ == "__main__":
    main()
