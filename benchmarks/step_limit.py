"""The reference preset's training step against the machine's own limit (issue 23, item 1), in one run.

Usage: python benchmarks/step_limit.py [--preset mnist-fashion] [--before] [--steps 20] [--rounds 3]
                                       [--profile-steps 5] [--out benchmarks/step_limit.json]

`--before`: the preset as it was before issue 23's speed settings (fp32, two critic forwards,
the full penalty, S's own real batch), as benchmarks/step_candidates.py's baseline.

Times the real `Trainer.train_step` of the preset (its networks, batch, n_critic and levers) on
its second domain (replay on: the more expensive step), on synthetic domains of the preset's
shape (speed does not depend on the pixels; benchmarks/step_candidates.py builds the trainer).
Reports, in one run on one machine:

- ms per generator step and images/s (best of `--rounds` rounds of `--steps` steps);
- FLOPs per generator step, counted: torch.utils.flop_counter over one whole critic update and
  one whole generator update (benchmarks/training.py's GlobalFlopCounter, which survives the
  penalty's autograd.grad), the step being n_critic of the first plus one of the second. It
  counts the matmul-like aten ops (mm/addmm/bmm, convolution, convolution_backward) of forward,
  backward and the penalty's double backward, 2 FLOPs a multiply-add; elementwise work
  (BatchNorm, activations, Adam, EMA) is not counted, so the share of peak is of useful FLOPs;
- the fp32 GEMM peak (and bf16 where the CPU has bf16 instructions), measured here, with the
  same threads: the best rate of a 2048^3 matmul;
- the share of peak: counted FLOPs per second / fp32 peak;
- where the time goes: torch.profiler over `--profile-steps` steps, the step's parts wrapped in
  record_function ranges from outside the trainer (nothing in the library changes): critic and
  generator forwards (D, G, S), the gradient penalty, backward passes, the levers, replay
  sampling, the optimizers and the EMA, each in the critic or the generator update it ran in;
  each part's exclusive wall time (a nested range's time is its own) and share of the step;
- what bounds it: the profiled self time of the GEMM-like ops (convolutions, matmuls: where
  every counted FLOP runs) against all other ops (elementwise, batch norm, copies, Adam), and
  the counted FLOPs' rate inside the GEMM-like ops alone;
- the machine: CPU model, ISA (torch's CPU capability and the bf16/AMX flags), threads, load.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from sampling import cpu_model  # noqa: E402
from step_candidates import BEFORE, build  # noqa: E402
from training import GlobalFlopCounter, matmul_gflops  # noqa: E402

from lifelong_gen.train.process import NATIVE_BF16_FLAGS, cpu_flags  # noqa: E402

UPDATES = ("critic update", "generator update")
PARTS = ("critic update", "generator update", "forward D", "forward G", "forward S", "gradient penalty", "backward",
         "levers", "replay sampling", "optimizer", "EMA")


def _ranged(name: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.profiler.record_function(name):
            return fn(*args, **kwargs)
    return wrapper


@contextlib.contextmanager
def labelled(trainer):
    """The step's parts in record_function ranges, patched onto this trainer and the trainer module only."""
    import lifelong_gen.train.trainer as trainer_module

    saved_module = {k: getattr(trainer_module, k) for k in ("gradient_penalty", "lever_terms", "update_ema")}
    saved_backward = torch.Tensor.backward
    fw = trainer.fw
    saved_fw = {k: getattr(fw, k) for k in ("D", "D_frozen", "D_penalty", "G", "G_fakes", "S")}
    saved = {k: getattr(trainer, k) for k in ("critic_step", "generator_step")}
    try:
        trainer_module.gradient_penalty = _ranged("gradient penalty", saved_module["gradient_penalty"])
        trainer_module.lever_terms = _ranged("levers", saved_module["lever_terms"])
        trainer_module.update_ema = _ranged("EMA", saved_module["update_ema"])
        torch.Tensor.backward = _ranged("backward", saved_backward)
        for key, part in (("D", "forward D"), ("D_frozen", "forward D"), ("D_penalty", "forward D"), ("G", "forward G"),
                          ("G_fakes", "forward G"), ("S", "forward S")):
            setattr(fw, key, _ranged(part, saved_fw[key]))
        trainer.critic_step = _ranged("critic update", saved["critic_step"])
        trainer.generator_step = _ranged("generator update", saved["generator_step"])
        for opt in (trainer.opt_d, trainer.opt_g):
            opt.step = _ranged("optimizer", opt.step)
        if trainer.snapshot is not None:
            trainer.snapshot.sample = _ranged("replay sampling", trainer.snapshot.sample)
        yield
    finally:
        for k, v in saved_module.items():
            setattr(trainer_module, k, v)
        torch.Tensor.backward = saved_backward
        for k, v in saved_fw.items():
            setattr(fw, k, v)
        for k in saved:
            delattr(trainer, k)  # back to the class's methods
        for opt in (trainer.opt_d, trainer.opt_g):
            del opt.step
        if trainer.snapshot is not None:
            del trainer.snapshot.sample


def breakdown(trainer, phase, steps: int) -> dict:
    """Exclusive wall ms per step of each part (a range's time minus the parts nested in it)."""
    from torch.profiler import ProfilerActivity, profile

    with labelled(trainer), profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for _ in range(steps):
            trainer.train_step(phase)
        wall_ms = (time.perf_counter() - t0) * 1e3 / steps
    exclusive: dict[str, float] = {}
    for event in prof.events():
        if event.name not in PARTS:
            continue
        nested = sum(c.cpu_time_total for c in _part_children(event))
        key = event.name if event.name in UPDATES else f"{_update_of(event)}: {event.name}"
        exclusive[key] = exclusive.get(key, 0.0) + (event.cpu_time_total - nested) / 1e3 / steps
    rest = wall_ms - sum(exclusive.values())
    rows = {k: {"ms_per_step": round(v, 2), "share": round(v / wall_ms, 3)}
            for k, v in sorted(exclusive.items(), key=lambda kv: -kv[1])}
    rows["the rest (between the parts)"] = {"ms_per_step": round(rest, 2), "share": round(rest / wall_ms, 3)}
    return {"profiled_ms_per_step": round(wall_ms, 2), "parts": rows, "ops": op_classes(prof, steps, wall_ms)}


def is_gemm_like(op: str) -> bool:
    """The ops whose FLOPs the counter counts: convolutions (forward, transposed, backward) and matmuls."""
    return "conv" in op or op.endswith(("::mm", "::addmm", "::bmm", "::baddbmm"))


def op_classes(prof, steps: int, wall_ms: float) -> dict:
    """Self time per step of the GEMM-like ops against all the others (the ten largest by name).

    The split says what bounds the step: the counted FLOPs run only inside the GEMM-like ops,
    so their own rate (counted GFLOP / their time) against the peak tells how well the
    convolutions use the cores, and the others' share is time no FLOP is counted in.
    """
    self_ms: dict[str, float] = {}
    for avg in prof.key_averages():
        if avg.key.startswith("aten::") or avg.key.startswith("mkldnn"):
            self_ms[avg.key] = self_ms.get(avg.key, 0.0) + avg.self_cpu_time_total / 1e3 / steps
    gemm = {k: v for k, v in self_ms.items() if is_gemm_like(k)}
    other = {k: v for k, v in self_ms.items() if not is_gemm_like(k)}
    top = dict(sorted(other.items(), key=lambda kv: -kv[1])[:10])
    return {"gemm_like_ms_per_step": round(sum(gemm.values()), 2),
            "gemm_like_share": round(sum(gemm.values()) / wall_ms, 3),
            "gemm_like": {k: round(v, 2) for k, v in sorted(gemm.items(), key=lambda kv: -kv[1])},
            "other_ms_per_step": round(sum(other.values()), 2),
            "other_share": round(sum(other.values()) / wall_ms, 3),
            "other_largest": {k: round(v, 2) for k, v in top.items()}}


def _update_of(event) -> str:
    """The update (critic or generator) a part ran in."""
    parent = event.cpu_parent
    while parent is not None and parent.name not in UPDATES:
        parent = parent.cpu_parent
    return parent.name if parent is not None else "outside the updates"


def _part_children(event):
    """The outermost part ranges below `event` (ops in between are searched through)."""
    for child in event.cpu_children:
        if child.name in PARTS:
            yield child
        else:
            yield from _part_children(child)


def count_flops(trainer, phase) -> dict:
    """Counted FLOPs of one critic update and one generator update; the step is n_critic + 1 of them."""
    trainer.G.train()
    trainer.S.train()
    with GlobalFlopCounter(display=False) as counter:
        trainer.critic_step(phase)
    critic = counter.get_total_flops()
    with GlobalFlopCounter(display=False) as counter:
        trainer.generator_step(phase)
    generator = counter.get_total_flops()
    n = trainer.tc.n_critic
    return {"critic_update_gflop": round(critic / 1e9, 4), "generator_update_gflop": round(generator / 1e9, 4),
            "n_critic": n, "gflop_per_generator_step": round((n * critic + generator) / 1e9, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="mnist-fashion")
    ap.add_argument("--steps", type=int, default=20, help="generator steps per timing round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile-steps", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("step_limit.json"))
    ap.add_argument("--before", action="store_true", help="the preset as it was before issue 23's speed settings")
    args = ap.parse_args()

    flags = cpu_flags()
    has_bf16 = bool(NATIVE_BF16_FLAGS & flags)
    load_before = os.getloadavg()
    peak = {"fp32_gflops": round(matmul_gflops(torch.float32), 1)}
    if has_bf16:
        peak["bf16_gflops"] = round(matmul_gflops(torch.bfloat16), 1)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build(args.preset, {} if args.before else None, "", Path(tmp), "limit")
        phase = trainer.phases[1]
        for _ in range(3):  # warm-up: oneDNN's primitive caches
            trainer.train_step(phase)
        flops = count_flops(trainer, phase)
        rounds = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            for _ in range(args.steps):
                trainer.train_step(phase)
            rounds.append((time.perf_counter() - t0) / args.steps)
        best = min(rounds)
        parts = breakdown(trainer, phase, args.profile_steps)
        tc = trainer.tc
    rate = flops["gflop_per_generator_step"] / best
    report = {
        "preset": args.preset + (" (before issue 23)" if args.before else ""), "batch_size": tc.batch_size,
        "n_critic": tc.n_critic, "precision": tc.precision,
        "levers": {"info_augment_weight": tc.info_augment_weight, "s_real_weight": tc.s_real_weight},
        "speed_settings": {k: getattr(tc, k) for k in BEFORE},
        "ms_per_generator_step": round(best * 1e3, 2), "ms_per_round": [round(r * 1e3, 2) for r in rounds],
        "images_per_s": round(tc.batch_size / best, 1),
        "flops": flops, "peak": peak, "counted_gflops_per_s": round(rate, 1),
        "share_of_fp32_peak": round(rate / peak["fp32_gflops"], 3),
        **({"share_of_bf16_peak": round(rate / peak["bf16_gflops"], 3)} if tc.precision == "bf16" else {}),
        # The counted FLOPs over the GEMM-like ops' own (profiled) time: how near the peak the
        # convolutions themselves run, apart from the time spent outside them.
        "gemm_like_gflops_per_s": round(flops["gflop_per_generator_step"] / parts["ops"]["gemm_like_ms_per_step"]
                                        * 1e3, 1),
        "breakdown": parts,
        "machine": {"cpu": cpu_model(), "isa": torch.backends.cpu.get_cpu_capability(),
                    "bf16": has_bf16, "amx": "amx_tile" in flags, "threads": torch.get_num_threads(),
                    "cpus": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("ms_per_generator_step", "images_per_s", "counted_gflops_per_s",
                                              "share_of_fp32_peak")}))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
