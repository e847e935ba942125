"""Find where two same-seed CPU trainings first part: every aten op's output, hashed.

Runs the tiny two-domain training of tests/test_resume.py in-process, `--steps` generator
steps per domain, under a TorchDispatchMode that hashes the bytes of every tensor each aten
op returns. Repeating the run gives one hash list per repetition; the first index where a
repetition differs from the first names the op (and its shapes) that produced the first
different bits, with every input identical up to there. Run it alone and beside a competing
load (e.g. `python experiments/determinism_probe.py --load 2`) to see what load changes.

    python experiments/determinism_probe.py --reps 6 --load 2 [--env MKL_DYNAMIC=FALSE]
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path


def _busy(kind: str) -> None:
    """A competing load: a pure-Python spin loop, or a 2-thread torch matmul loop."""
    if kind == "spin":
        while True:
            pass
    import torch

    a = torch.randn(512, 512)
    while True:
        a = torch.tanh(a @ a)


# Ops whose outputs hold uninitialised memory until something writes into them.
UNINITIALISED = {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "set_", "resize_"}


def _run_once(steps: int, seed: int) -> list[tuple[str, str]]:
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import TINY
    from lifelong_gen.config import resolve_run_config
    from lifelong_gen.train.domains import load_domain
    from lifelong_gen.train.trainer import Trainer

    log: list[tuple[str, str]] = []

    class Hashing(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func.__name__.split(".")[0] in UNINITIALISED:
                log.append((str(func), ""))  # their bytes are whatever memory held
                return out
            flat = out if isinstance(out, (tuple, list)) else (out,)
            h = hashlib.blake2b(digest_size=8)
            shapes = []
            for t in flat:
                if isinstance(t, torch.Tensor) and t.layout == torch.strided and t.device.type == "cpu":
                    h.update(t.detach().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                             if t.numel() and t.dtype != torch.bool else t.detach().to(torch.int8).numpy().tobytes())
                    shapes.append(tuple(t.shape))
            log.append((f"{func}{shapes}", h.hexdigest()))
            return out

    data = [load_domain(s, 1, 28) for s in ("synthetic:bars", "synthetic:rings")]
    settings = {**TINY, "domains": [d.spec for d in data], "steps_per_domain": steps, "seed": seed,
                "replay_alignment": 0.05}
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(resolve_run_config(settings), Path(tmp) / "run", data=data, progress=False)
        with Hashing():
            for phase in trainer.phases:
                trainer.step = 0
                for _ in range(steps):
                    trainer.train_step(phase)
                    trainer.step += 1
                trainer.advance_domain(phase)
    return log


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--load", type=int, default=0, help="competing processes during repetitions 2..")
    ap.add_argument("--load-kind", choices=["spin", "torch"], default="torch")
    args = ap.parse_args()

    t0 = time.perf_counter()
    ref = _run_once(args.steps, args.seed)
    print(f"reference: {len(ref)} ops, {time.perf_counter() - t0:.1f} s, load none", flush=True)
    loads = [mp.Process(target=_busy, args=(args.load_kind,), daemon=True) for _ in range(args.load)]
    for p in loads:
        p.start()
    differing = 0
    try:
        for rep in range(1, args.reps):
            t0 = time.perf_counter()
            log = _run_once(args.steps, args.seed)
            first = next((i for i, (a, b) in enumerate(zip(ref, log)) if a != b), None)
            took = time.perf_counter() - t0
            if first is None and len(log) == len(ref):
                print(f"rep {rep}: identical ({took:.1f} s)", flush=True)
                continue
            differing += 1
            i = first if first is not None else min(len(ref), len(log))
            print(f"rep {rep}: first difference at op {i} of {len(ref)} ({took:.1f} s)")
            for j in range(max(0, i - 3), min(i + 2, len(log))):
                mark = ">>" if j == i else "  "
                print(f"  {mark} {j}: {log[j][0]}  ref {ref[j][1] if j < len(ref) else '-'}  got {log[j][1]}")
    finally:
        for p in loads:
            p.terminate()
    print(f"{differing} of {args.reps - 1} repetitions differ; env: "
          + " ".join(f"{k}={os.environ[k]}" for k in sorted(os.environ)
                     if k.startswith(("OMP_", "MKL_", "KMP_", "GOMP_", "ONEDNN", "DNNL"))))


if __name__ == "__main__":
    main()
