"""Many seeds of one configuration trained in one process: `lgen train --seeds 0,1,2,3`.

Owns `train_seeds` (train or resume the seeds' runs, seed_list.SeedJob, and write
OUT/seeds.json) and `run_in_workers` (the threads that train them). OUT/seed-K/ is a complete run of its own: `lgen train --resume
OUT/seed-K --threads T`, `lgen export` and `lgen evaluate` work on it alone.

How: the domains' data is loaded once and shared, read-only, by every seed. Every Trainer is
built in the main thread, one after the other: building initialises the networks from the
process's global RNG (reseeded under fork_rng), which threads would race on. Then W worker
threads each train their seeds to the end, one after the other (worker w: seeds w, w + W, ...),
at T intra-op threads each (cpu_threads.py says why threads, and how W and T are chosen). A
seed draws only from its own torch.Generator, so it ends bit-identical to a single run of that
seed at T threads (tests/test_seeds.py).

Process-wide state, and who touches it while the seeds train:
- the global RNG: network building and a checkpoint's restore, both here in the main thread;
  a step draws nothing from it;
- torch's thread count: set here before the workers start, restored after they end;
- the deterministic-kernels switch: every Trainer sets the same value when it is built;
- signal handlers: the main thread's, which set one stop flag that every seed checks after
  each step (Trainer.train(stop=...));
- the umask: atomic.py reads it without changing it;
- log lines: each is prefixed with the seed of the thread that logs it.

A signal, or a seed that raises, stops every running seed after its step with a checkpoint;
seeds not yet started stay so; `lgen train --resume OUT` continues them all (finished seeds are
skipped), each at the thread count its config.json records, so results stay bit-identical.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from lifelong_gen import cpu_sharing
from lifelong_gen.atomic import atomic_write_json
from lifelong_gen.config import RunConfig
from lifelong_gen.errors import LgenError, TrainingInterrupted, one_line
from lifelong_gen.runlock import run_lock
from lifelong_gen.seed_list import SEEDS_NAME, SeedJob, read_seeds
from lifelong_gen.settings import flag_of
from lifelong_gen.train import checkpoint as ckpt
from lifelong_gen.train.callbacks import Callback, PlainProgress
from lifelong_gen.train.cpu_threads import intra_op_threads, thread_layout
from lifelong_gen.train.domains import DomainData, load_domain
from lifelong_gen.train.process import StopFlag, stop_on_signals
from lifelong_gen.train.trainer import Trainer

log = logging.getLogger("lifelong_gen")
_current = threading.local()  # .seed: the seed this thread is training, for the log prefix


@dataclass
class TaskResult:
    started: bool = False
    wall_s: float = 0.0
    error: Optional[BaseException] = None  # TrainingInterrupted when stopped by the flag


def run_in_workers(tasks: Sequence[tuple[int, Callable[[], None]]], workers: int, stop: StopFlag,
                   device: Optional[torch.device] = None) -> list[TaskResult]:
    """Run (seed, fn) tasks on `workers` threads, worker w the tasks w, w + workers, ... in turn.

    A task that raises (other than TrainingInterrupted) sets `stop`, so the others stop after their
    step; a task not started by then is not started. The calling thread waits with timed joins,
    so the main thread keeps running its signal handlers meanwhile; one worker is the calling
    thread itself.
    """
    results = [TaskResult() for _ in tasks]

    def work(w: int) -> None:
        with _own_stream(device):
            train_tasks(w)

    def train_tasks(w: int) -> None:
        for i in range(w, len(tasks), workers):
            if stop.signum is not None:
                return
            seed, fn = tasks[i]
            _current.seed = seed
            results[i].started = True
            t0 = time.perf_counter()
            try:
                fn()
            except TrainingInterrupted as e:
                results[i].error = e
            except BaseException as e:  # reported by the caller, in the main thread
                results[i].error = e
                if stop.signum is None:
                    stop.signum = signal.SIGTERM  # the other seeds checkpoint and stop
            finally:
                results[i].wall_s = time.perf_counter() - t0
                _current.seed = None

    if workers == 1:
        # In the calling thread, as a single run: measured on 2 cores, one training at 2 intra-op
        # threads ran 1.4x slower in a thread of its own than in the main thread (its OpenMP team
        # beside the main thread's idle one), while at 1 thread the two were equally fast.
        work(0)
        return results
    threads = [threading.Thread(target=work, args=(w,), name=f"lgen-seeds-{w}") for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.25)
    return results


@contextlib.contextmanager
def _own_stream(device: Optional[torch.device]):
    """On a GPU, a worker's kernels (or graph replays: --cuda-graph) go to a CUDA stream of its own,
    so the seeds' small kernels can run side by side instead of queueing on one stream; it starts
    after the work already queued (the networks built in the main thread) and the main thread's
    stream waits for it at the end. A no-op on the CPU. (Not yet measured on a GPU.)"""
    if device is None or device.type != "cuda":
        yield
        return
    main = torch.cuda.current_stream(device)
    stream = torch.cuda.Stream(device)
    stream.wait_stream(main)
    with torch.cuda.stream(stream):
        yield
    main.wait_stream(stream)


class _SeedPrefix(logging.Filter):
    """`seed K: ` before each line a seed's thread logs (the seeds' lines interleave); the process's
    wait-policy notice, which every Trainer.train() logs, is said once, by the main thread."""

    def filter(self, record: logging.LogRecord) -> bool:
        seed = getattr(_current, "seed", None)
        if seed is not None:
            message = record.getMessage()
            if message == cpu_sharing.notice():
                return False
            record.msg, record.args = f"seed {seed}: {message}", None
        return True


@contextlib.contextmanager
def _prefixed_logs():
    prefix = _SeedPrefix()
    log.addFilter(prefix)
    try:
        yield
    finally:
        log.removeFilter(prefix)


def load_data(run: RunConfig) -> list[DomainData]:
    """The domains a run learns, loaded once for all its seeds (as inputs.load_run_inputs would)."""
    cfg, tc = run.model, run.train
    return [load_domain(spec, cfg.img_channels, cfg.img_resolution, tc.data_root, tc.download)
            for spec in tc.domains[tc.inherited_domains:]]


def train_seeds(jobs: list[SeedJob], out: Path, *, device: str = "cpu", progress: bool = True,
                data: Optional[list[DomainData]] = None, available_threads: Optional[int] = None,
                parent: Optional[Path] = None, callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """Train (or resume) every seed's run in this process; writes OUT/seeds.json and returns it.

    Args:
        jobs: the seeds' runs (same config but the seed). A run whose `train.threads` is None gets
            its share of the cores (cpu_threads.thread_layout); all must agree on it.
        out: the seeds directory.
        device: as Trainer's.
        progress: a log line per seed at most every 10 s (PlainProgress), prefixed with its seed.
        data: already loaded domains (tests, benchmarks); loaded once here otherwise.
        available_threads: the intra-op threads to share out (default: torch.get_num_threads()).
        parent: a continued run's parent, recorded in seeds.json for a resume before the first checkpoint.
        callbacks: extra `Callback`s given to every seed's Trainer (one object for all: called from
            several threads at once, so it keeps no state of its own).

    Raises:
        TrainingInterrupted: SIGINT / SIGTERM; every running seed wrote a checkpoint.
        LgenError: a seed failed on a user-fixable problem (its message, naming the seed); any
            other error of a seed is raised as it was. Either way the other seeds stopped with a checkpoint.
    """
    out = Path(out)
    available = torch.get_num_threads() if available_threads is None else available_threads
    recorded = {job.run.train.threads for job in jobs}
    if len(recorded) > 1:
        raise LgenError(f"the seeds of {out} record different --threads ({', '.join(sorted(map(str, recorded)))}): "
                        f"resume them with one --threads N")
    per_run = thread_layout(len(jobs), recorded.pop(), available).threads_per_run
    for job in jobs:  # config.json records it: a resume, or a single run, at that count is bit-identical
        job.run = dataclasses.replace(job.run, train=dataclasses.replace(job.run.train, threads=per_run))
    if data is None:
        data = load_data(jobs[0].run)
    # The thread count is in force from the build on: a restore compares it with the checkpoint's.
    with _prefixed_logs(), intra_op_threads(per_run), contextlib.ExitStack() as locks:
        pending, finished = _build(jobs, data, device, progress, callbacks, locks)
        layout = thread_layout(len(pending), per_run, available)
        report = _report_head(out, jobs, per_run, parent)
        atomic_write_json(out / SEEDS_NAME, report)
        if finished:
            log.info("seed %s finished already", ", ".join(str(job.seed) for job, _ in finished))
        if pending and (line := cpu_sharing.notice()) is not None:
            log.info(line)
        if pending:
            log.info("training seed %s: %d at a time, %d intra-op thread(s) each",
                     ", ".join(str(job.seed) for job, _ in pending), layout.workers, layout.threads_per_run)
        with stop_on_signals(True) as stop:
            steps_before = [trainer.global_step for _, trainer in pending]
            t0 = time.perf_counter()
            results = run_in_workers([(job.seed, _train_call(trainer, stop)) for job, trainer in pending],
                                     layout.workers, stop, pending[0][1].device if pending else None)
            wall = time.perf_counter() - t0
    session = _session(pending, finished, results, steps_before, layout, wall)
    report["sessions"].append(session)
    atomic_write_json(out / SEEDS_NAME, report)
    _raise_outcome(out, pending, results, stop)
    return report


def _train_call(trainer: Trainer, stop: StopFlag) -> Callable[[], None]:
    return lambda: trainer.train(stop=stop)


def _build(jobs: list[SeedJob], data: list[DomainData], device: str, progress: bool, extra: Sequence[Callback],
           locks: contextlib.ExitStack) -> tuple[list[tuple[SeedJob, Trainer]], list[tuple[SeedJob, Trainer]]]:
    """Every seed's Trainer, built (and restored) in the main thread; (to train, finished already)."""
    pending, finished = [], []
    for job in jobs:
        locks.enter_context(run_lock(job.run_dir))  # no second process trains a seed on its own meanwhile
        callbacks = [*([PlainProgress(lambda line: log.info("%s", line))] if progress else []), *extra]
        _current.seed = job.seed  # the build's own log lines (precision, resume) name their seed
        try:
            trainer = Trainer(job.run, job.run_dir, data=data, progress=False, device=device,
                              callbacks=callbacks, parent=job.parent)
            if job.resume and not trainer.restore():
                log.info("no checkpoint in %s yet: starting from the beginning", job.run_dir)
            if job.changed:
                log.info("resuming with changed execution settings: %s",
                         ", ".join(f"{flag_of(k)} {old} -> {new}" for k, (old, new) in job.changed.items()))
                trainer.run.record_execution_changes(trainer.global_step, job.changed)
        finally:
            _current.seed = None
        if trainer.phase_position >= len(trainer.phases):
            finished.append((job, trainer))
            continue
        # Written now, not when the seed starts: a seed that a stop finds not yet started resumes too.
        ckpt.write_config(job.run_dir, trainer.run)
        pending.append((job, trainer))
    return pending, finished


def _report_head(out: Path, jobs: list[SeedJob], per_run: int, parent: Optional[Path]) -> dict[str, Any]:
    """seeds.json without this session: what the directory holds, and the sessions before this one."""
    before = read_seeds(out) or {}
    return {"seeds": [job.seed for job in jobs],
            "dirs": {str(job.seed): str(job.run_dir.relative_to(out)) for job in jobs},
            "threads_per_run": per_run,
            "parent": str(parent) if parent is not None else before.get("parent"),
            "sessions": list(before.get("sessions", []))}


def _session(pending, finished, results: list[TaskResult], steps_before: list[int], layout, wall: float) -> dict:
    """This process's share of the seeds' training: the thread layout, wall time and images/s."""
    per_seed: dict[str, dict[str, Any]] = {str(job.seed): {"status": "finished before"} for job, _ in finished}
    images_total = 0
    for (job, trainer), result, before in zip(pending, results, steps_before):
        steps = trainer.global_step - before
        images = steps * trainer.tc.batch_size  # images/s as the benchmarks count it: batch x generator steps/s
        images_total += images
        if not result.started:
            status = "not started"
        elif result.error is None:
            status = "finished"
        else:
            status = "stopped" if isinstance(result.error, TrainingInterrupted) else "failed"
        per_seed[str(job.seed)] = {"status": status, "steps": steps, "wall_s": round(result.wall_s, 2),
                                   "images_per_s": round(images / result.wall_s, 1) if result.wall_s > 0 else None}
    return {"started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join([_program(), *sys.argv[1:]]),
            "workers": layout.workers, "threads_per_run": layout.threads_per_run,
            "threads_available": layout.available, "wall_s": round(wall, 2),
            "images_per_s": round(images_total / wall, 1) if wall > 0 else None, "seeds": per_seed}


def _program() -> str:
    name = Path(sys.argv[0]).name
    return "lgen" if name in ("lgen", "__main__.py") else name


def _raise_outcome(out: Path, pending, results: list[TaskResult], stop: StopFlag) -> None:
    """The one error a stopped or failed session ends with (nothing when every seed finished)."""
    failed = [(job, r.error) for (job, _), r in zip(pending, results)
              if r.error is not None and not isinstance(r.error, TrainingInterrupted)]
    resume = f"continue them with `lgen train --resume {out}`"
    if failed:
        job, error = failed[0]
        if len(failed) > 1:
            log.info("seed %s failed too", ", ".join(str(j.seed) for j, _ in failed[1:]))
        if isinstance(error, LgenError):
            raise LgenError(f"seed {job.seed}: {one_line(error, 400)} (the other seeds stopped with a checkpoint: "
                            f"{resume} once it is fixed)") from None
        log.error("seed %d failed; the other seeds stopped with a checkpoint: %s once it is fixed", job.seed, resume)
        raise error
    if stop.signum is not None and any(r.error is not None or not r.started for r in results):
        raise TrainingInterrupted(stop.signum, f"stopped by {signal.Signals(stop.signum).name}: every seed in training "
                                               f"wrote a checkpoint; {resume}")
