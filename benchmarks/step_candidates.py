"""Issue 23's speed candidates for the reference preset's step, each against the preset before them, in one run.

Usage: python benchmarks/step_candidates.py [--preset mnist-fashion] [--steps 10] [--rounds 5]
                                            [--only NAME,...] [--out benchmarks/step_candidates.json]

Every candidate is the preset's real `Trainer.train_step` on its second domain (replay on),
built on synthetic domains of the preset's shape (benchmarks/step_limit.py times the same
step), changed in one way from the preset as it was before issue 23 (`before`: every speed
setting at its default, fp32). The candidates are timed in turns, round after round in one
process, so a change of machine load falls on all of them alike; each candidate's figure is
its best round (the median is reported too), and its ratio is its images/s over `before`'s.

Candidates (settings are `lgen train` flags; the others change only how this process runs):
- s-real-reuse:   --s-real-reuse (S clusters the critic's last real batch);
- gp-subsample-2: --gp-subsample 2 (the penalty on every other interpolate);
- channels-last:  the networks' weights and inputs in channels-last memory format (oneDNN);
- 1-thread:       torch.set_num_threads(1) (the default is one thread per core);
- batch-128:      --batch-size 128 (ratio per image: the same images in half the steps);
- bf16:           --precision bf16 (CPU autocast; only where the CPU has bf16 instructions);
- combined-fp32:  s-real-reuse + gp-subsample-2;
- combined+bf16:  the same with bf16;
- preset-now:     the preset as it is (its --precision auto resolved on this machine).

The critic scores [real; fake] in one forward in every candidate: the two-forward step and
--gp-every were measured here too, and are retired (experiments/README.md; the JSON files
beside this script hold those rounds). The preset has SCAN's neighbour term (--s-neighbour-weight 0.2: one more S
forward, of the new images' mined neighbours; the one-off mining falls in the warm-up), so
neighbour-off (--s-neighbour-weight 0) is the preset as it was before: its cost is preset-now's
ratio to neighbour-off.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from sampling import cpu_model  # noqa: E402

from lifelong_gen.train.process import NATIVE_BF16_FLAGS, cpu_flags  # noqa: E402

# The preset as it was before issue 23 (every speed setting at its default): the baseline.
BEFORE = {"s_real_reuse": False, "gp_subsample": 1, "precision": "fp32"}
COMBINED = {"s_real_reuse": True, "gp_subsample": 2}
# name -> (setting overrides on top of BEFORE, how the process runs it); None: the preset as it is now.
CANDIDATES: dict[str, tuple[dict | None, str]] = {
    "before": ({}, ""),
    "s-real-reuse": ({"s_real_reuse": True}, ""),
    "gp-subsample-2": ({"gp_subsample": 2}, ""),
    "channels-last": ({}, "channels_last"),
    "1-thread": ({}, "one_thread"),
    "batch-128": ({"batch_size": 128}, ""),
    "bf16": ({"precision": "bf16"}, ""),
    "combined-fp32": (COMBINED, ""),
    "combined+bf16": ({**COMBINED, "precision": "bf16"}, ""),
    "preset-now": (None, ""),
}
# name -> settings on top of the preset as it is (not BEFORE).
ON_PRESET: dict[str, dict] = {
    "neighbour-off": {"s_neighbour_weight": 0.0},
}


def build(preset: str, overrides: dict | None, mode: str, tmp: Path, name: str, on_preset: bool = False):
    """The preset's trainer on synthetic domains of its shape, on its second domain (replay on).

    overrides: settings on top of BEFORE (the preset before issue 23), or None for the preset as
    it is; with `on_preset`, settings on top of the preset as it is.
    """
    from lifelong_gen.config import preset_settings, resolve_run_config
    from lifelong_gen.train.domains import load_domain
    from lifelong_gen.train.trainer import Trainer

    settings = preset_settings(preset, False)
    shape = resolve_run_config(settings).model
    kind = "synthetic" if shape.img_resolution == 28 else "synthetic64"
    settings.update(domains=[f"{kind}:{k}" for k in ("bars", "rings")][:len(settings["domains"])])
    if overrides is not None:
        settings.update(overrides if on_preset else {**BEFORE, **overrides})
    run = resolve_run_config(settings)
    data = [load_domain(s, run.model.img_channels, run.model.img_resolution) for s in run.train.domains]
    trainer = Trainer(run, tmp / name, data=data, progress=False, device="cpu")
    trainer.advance_domain(trainer.phases[0])
    if mode == "channels_last":
        to_channels_last(trainer)
    return trainer


def to_channels_last(trainer) -> None:
    """Weights, the domain images and the replay snapshot in channels-last (NHWC) memory format."""
    for module in (*trainer.networks.values(), trainer.snapshot.G):
        module.to(memory_format=torch.channels_last)
    for phase in trainer.phases:
        phase.images = phase.images.contiguous(memory_format=torch.channels_last)


@contextlib.contextmanager
def process_mode(mode: str):
    threads = torch.get_num_threads()
    if mode == "one_thread":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def time_steps(trainer, phase, steps: int, mode: str) -> float:
    with process_mode(mode):
        t0 = time.perf_counter()
        for _ in range(steps):
            trainer.train_step(phase)
        return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="mnist-fashion")
    ap.add_argument("--steps", type=int, default=10, help="generator steps per candidate and round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default="", help="comma-separated candidates ('before' is always timed)")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("step_candidates.json"))
    args = ap.parse_args()

    flags = cpu_flags()
    chosen = args.only.split(",") if args.only else list(CANDIDATES)
    names = [n for n in [*CANDIDATES, *ON_PRESET] if n == "before" or n in chosen]
    unknown = set(chosen) - set(names)
    if unknown:
        sys.exit(f"unknown candidate(s) {', '.join(sorted(unknown))}: choose from {', '.join([*CANDIDATES, *ON_PRESET])}")
    settings_of = {n: ON_PRESET[n] if n in ON_PRESET else CANDIDATES[n][0] for n in names}
    mode_of = {n: "" if n in ON_PRESET else CANDIDATES[n][1] for n in names}
    if not NATIVE_BF16_FLAGS & flags:
        names = [n for n in names if "bf16" not in n]  # emulated bf16 would only measure the emulation
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {n: build(args.preset, settings_of[n], mode_of[n], Path(tmp), n, on_preset=n in ON_PRESET)
                    for n in names}
        rounds: dict[str, list[float]] = {n: [] for n in names}
        for n in names:  # warm-up: oneDNN's primitive caches
            time_steps(trainers[n], trainers[n].phases[1], 3, mode_of[n])
        for r in range(args.rounds):
            for n in names:
                rounds[n].append(time_steps(trainers[n], trainers[n].phases[1], args.steps, mode_of[n]))
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {rounds[n][-1] * 1e3:.1f}" for n in names),
                  flush=True)
        batch = {n: trainers[n].tc.batch_size for n in names}
        trainers_precision = {n: trainers[n].tc.precision for n in names}
    best = {n: min(v) for n, v in rounds.items()}
    rate = {n: batch[n] / best[n] for n in names}
    report = {
        "preset": args.preset, "steps_per_round": args.steps, "rounds": args.rounds,
        "candidates": {n: {"settings": settings_of[n], "on_preset": n in ON_PRESET, "process": mode_of[n] or None,
                           "batch_size": batch[n], "ms_per_generator_step": round(best[n] * 1e3, 2),
                           "images_per_s": round(rate[n], 1),
                           "images_per_s_over_before": round(rate[n] / rate["before"], 3),
                           **({"images_per_s_over_preset_now": round(rate[n] / rate["preset-now"], 3)}
                              if "preset-now" in rate else {}),
                           "median_ms_per_generator_step": round(statistics.median(rounds[n]) * 1e3, 2),
                           "precision": trainers_precision[n],
                           "ms_per_round": [round(x * 1e3, 2) for x in rounds[n]]} for n in names},
        "machine": {"cpu": cpu_model(), "isa": torch.backends.cpu.get_cpu_capability(),
                    "bf16": bool(NATIVE_BF16_FLAGS & flags), "amx": "amx_tile" in flags,
                    "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "python": platform.python_version(),
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for n in names:
        print(f"{n:15s} {best[n] * 1e3:7.1f} ms/step {rate[n]:7.1f} img/s  x{rate[n] / rate['before']:.3f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
