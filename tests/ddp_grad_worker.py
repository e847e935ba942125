"""Worker for tests/test_distributed.py: DDP's averaged gradients vs per-rank gradients
averaged by hand, through the trainer's real steps (critic with gradient penalty, G + S,
replay alignment in domain 2).

Usage: torchrun --nproc_per_node 2 tests/ddp_grad_worker.py OUT_DIR [--shared]
Two trainers with the same seed live in each rank: A trains through the DDP wrappers
(the product path), B through the bare networks, its gradients all-reduced by hand in
a patched optimizer step. Every optimizer step of both records its gradients; rank 0
writes OUT_DIR/grads.json with the largest difference between A and B per step.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
from conftest import TINY  # noqa: E402
from lifelong_gen.config import resolve_run_config  # noqa: E402
from lifelong_gen.train import distributed  # noqa: E402
from lifelong_gen.train.domains import load_domain  # noqa: E402
from lifelong_gen.train.trainer import Trainer  # noqa: E402


def record_steps(opt: torch.optim.Optimizer, log: list, spread: list | None) -> None:
    """Patch opt.step to log its gradients; with `spread`, average them by hand first and
    log how far this rank's own gradient was from the mean (the ranks' data differ)."""
    step = opt.step
    params = [p for g in opt.param_groups for p in g["params"]]

    def patched(*a, **kw):
        grads = [p.grad for p in params if p.grad is not None]
        if spread is not None:
            local = [g.clone() for g in grads]
            for g in grads:
                dist.all_reduce(g)
                g /= dist.get_world_size()
            spread.append(max(float((x - g).abs().max() / g.abs().max().clamp(min=1e-12))
                              for x, g in zip(local, grads)))
        log.append([g.clone() for g in grads])
        return step(*a, **kw)

    opt.step = patched


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--shared", action="store_true")
    args = ap.parse_args()
    ctx = distributed.init_from_env()
    data = [load_domain(s, 1, 28) for s in ("synthetic:bars", "synthetic:rings")]
    settings = {**TINY, "domains": [d.spec for d in data], "steps_per_domain": 3, "d_per_domain": 2,
                "replay_alignment": 0.1, "encoder_shares_critic": args.shared, "checkpoint_every": 100}
    logs, spread = {}, []
    wrap = distributed.wrap_for_training
    for name in ("ddp", "by_hand"):
        # B must never build DDP wrappers: their hooks would average its gradients too.
        distributed.wrap_for_training = wrap if name == "ddp" else (
            lambda G, D, S, ctx: wrap(G, D, S, distributed.DistContext()))
        t = Trainer(resolve_run_config(settings), args.out / name, data=data, progress=False)
        assert isinstance(t.fw.G, torch.nn.parallel.DistributedDataParallel) == (name == "ddp")
        logs[name] = []
        for opt in (t.opt_d, t.opt_g):
            record_steps(opt, logs[name], spread if name == "by_hand" else None)
        t.train()
    a, b = logs["ddp"], logs["by_hand"]
    assert len(a) == len(b) > 0 and all(len(x) == len(y) for x, y in zip(a, b))
    diffs = [max(float((x - y).abs().max() / y.abs().max().clamp(min=1e-12)) for x, y in zip(sa, sb))
             for sa, sb in zip(a, b)]
    if ctx.is_main:
        (args.out / "grads.json").write_text(json.dumps({"relative_max_diff": diffs, "rank_spread": spread}))
    distributed.shutdown()


if __name__ == "__main__":
    main()
