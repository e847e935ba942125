"""Worker for tests/test_distributed.py, launched by torchrun: a tiny two-domain run whose
every generator step checks that all ranks hold bit-identical weights.

Usage: torchrun --nproc_per_node 2 tests/ddp_worker.py OUT_DIR [--shared] [--steps N]
Rank 0 writes OUT_DIR/hashes.json: one weight hash per step (the same on every rank,
asserted here) and, per step, whether the ranks' data/code generators differed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
from conftest import TINY  # noqa: E402
from lifelong_gen.config import resolve_run_config  # noqa: E402
from lifelong_gen.train import distributed  # noqa: E402
from lifelong_gen.train.callbacks import StepFunction  # noqa: E402
from lifelong_gen.train.domains import load_domain  # noqa: E402
from lifelong_gen.train.trainer import Trainer  # noqa: E402


def weights_hash(trainer: Trainer) -> str:
    h = hashlib.sha256()
    for module in (trainer.G, trainer.G_ema, trainer.D, trainer.S):
        for name, t in module.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().contiguous().numpy().tobytes())
    for opt in (trainer.opt_g, trainer.opt_d):
        for state in opt.state.values():
            for v in state.values():
                if torch.is_tensor(v):
                    h.update(v.contiguous().numpy().tobytes())
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--shared", action="store_true")
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args()
    ctx = distributed.init_from_env()
    assert ctx.world_size == 2, ctx
    data = [load_domain(s, 1, 28) for s in ("synthetic:bars", "synthetic:rings")]
    settings = {**TINY, "domains": [d.spec for d in data], "steps_per_domain": args.steps, "d_per_domain": 2,
                "replay_alignment": 0.1, "encoder_shares_critic": args.shared, "checkpoint_every": 3}
    trainer = Trainer(resolve_run_config(settings), args.out / "run", data=data, progress=False)
    records = []

    def on_step(t: Trainer, losses: dict) -> None:
        gathered = [None] * ctx.world_size
        # What the ranks' generators draw next (their states could differ yet draw alike).
        probe = torch.Generator()
        probe.set_state(t.rng.get_state())
        rng = hashlib.sha256(torch.rand(16, generator=probe).numpy().tobytes()).hexdigest()
        dist.all_gather_object(gathered, (weights_hash(t), rng))
        hashes = {g[0] for g in gathered}
        assert len(hashes) == 1, f"ranks differ after global step {t.global_step}: {gathered}"
        records.append({"step": t.global_step, "hash": gathered[0][0],
                        "rng_differs": len({g[1] for g in gathered}) == ctx.world_size})

    trainer.callbacks.append(StepFunction(on_step))
    trainer.train()
    if ctx.is_main:
        (args.out / "hashes.json").write_text(json.dumps(records))
    distributed.shutdown()


if __name__ == "__main__":
    main()
