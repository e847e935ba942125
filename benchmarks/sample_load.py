"""Load on `lgen sample`, measured: one large --out-dir call, many concurrent calls, every file checked.

Usage: python benchmarks/sample_load.py [--n 10000] [--procs 100] [--per-proc 100]
           [--threads-per-proc T] [--timeout S] [--work-dir DIR] [--keep] [--write]

(a) one `lgen sample --n N --out GRID --out-dir DIR` with the embedded default model (no
    --model): wall time and peak RSS;
(b) K processes `lgen sample --n PER_PROC --seed i --out GRID_i --out-dir DIR_i` started
    together (all K at once, each with its own timeout): total wall time, each process's
    peak RSS (the largest reported), the sum of the peaks (what all K would hold if they
    peaked together) and the largest total RSS actually sampled while they overlapped
    (every ~50 ms from /proc/PID/status VmRSS), with the most processes alive at once;
    failures (exit code, timeout, last stderr line);
(c) every written file is whole: each PNG decodes fully with Pillow (`Image.open(p).load()`),
    has the model's size (28x28 grey for the embedded model), every DIR holds exactly
    sample-0000.png ... of its count, every grid has the size its n implies, and no temp
    file (`.*.tmp`) or other hidden file is left anywhere under the work directory.

Peak RSS is the kernel's own figure for each finished process, `ru_maxrss` from wait4()
(no psutil, no /usr/bin/time needed). `lgen sample` has no thread option: its onnxruntime
session takes one intra-op thread per core in its CPU affinity (lifelong_gen/runtime/sessions.py
usable_cores), so --threads-per-proc T pins each process to T cores (round-robin over the
usable cores) and sets OMP_NUM_THREADS=T; without it each process sees every core.

Prints one JSON object with the machine (lscpu model name, avx2 / avx512f / avx512_bf16 /
amx flags, cores, memory, load average before and after: the machine may be shared) and,
with --write, writes it to benchmarks/sample_load.json. Exit code 1 when any process failed
or any file is not whole. The work directory (a temp dir by default) is removed unless --keep.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

POLL_S = 0.05  # RSS sampling period while processes run (each sample reads /proc of every live one)
RESULT = Path(__file__).resolve().parent / "sample_load.json"


# ---------------------------------------------------------------- machine


def machine() -> dict:
    """lscpu model name and SIMD flags, cores, memory, versions: what the figures depend on."""
    info: dict = {}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}
    except (OSError, subprocess.TimeoutExpired):
        fields = {}
    flags = set(fields.get("Flags", "").split())
    if not flags and Path("/proc/cpuinfo").exists():  # lscpu missing: the kernel's list
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.partition(":")[2].split())
                break
    info["cpu"] = fields.get("Model name") or platform.processor() or platform.machine()
    info["flags"] = {"avx2": "avx2" in flags, "avx512f": "avx512f" in flags, "avx512_bf16": "avx512_bf16" in flags,
                     "amx": sorted(f for f in flags if f.startswith("amx"))}
    info["cpus"] = os.cpu_count()
    info["usable_cores"] = len(os.sched_getaffinity(0))
    info["cores_per_socket"] = fields.get("Core(s) per socket")
    info["sockets"] = fields.get("Socket(s)")
    info["threads_per_core"] = fields.get("Thread(s) per core")
    info["hypervisor"] = fields.get("Hypervisor vendor")
    try:
        meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        info["mem_total_gb"] = round(int(meminfo["MemTotal"].split()[0]) / 2 ** 20, 1)
    except (OSError, KeyError, ValueError):
        pass
    info["os"] = platform.platform()
    info["python"] = platform.python_version()
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    try:
        from importlib.metadata import version

        info["lifelong_gen"] = version("lifelong-gen")
    except Exception:  # not installed as a distribution (a bare checkout)
        info["lifelong_gen"] = None
    info["omp_num_threads_env"] = os.environ.get("OMP_NUM_THREADS")
    return info


# ---------------------------------------------------------------- processes


def lgen_command() -> list[str]:
    """The `lgen` console script beside this interpreter (what a user runs), else `python -m lifelong_gen.cli`."""
    script = Path(sys.executable).parent / "lgen"
    return [str(script)] if script.exists() else [sys.executable, "-m", "lifelong_gen.cli"]


def rss_kb(pid: int) -> int:
    """Current resident set size of a live process (VmRSS, kB); 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class Job:
    """One `lgen sample` process: started with Popen, reaped with wait4 for its peak RSS."""

    def __init__(self, index: int, n: int, root: Path, seed: int, cores: Optional[list[int]], threads: int):
        self.index, self.n = index, n
        self.out = root / f"grid-{index:03d}.png"
        self.out_dir = root / f"images-{index:03d}"
        self.args = [*lgen_command(), "sample", "--n", str(n), "--seed", str(seed),
                     "--out", str(self.out), "--out-dir", str(self.out_dir)]
        env = dict(os.environ)
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        self.stderr_path = root / f"stderr-{index:03d}.txt"
        preexec = (lambda: os.sched_setaffinity(0, cores)) if cores else None
        with open(self.stderr_path, "wb") as err:
            self.start = time.perf_counter()
            self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=err, env=env,
                                         preexec_fn=preexec)
        self.wall_s: Optional[float] = None
        self.returncode: Optional[int] = None
        self.max_rss_kb = 0
        self.timed_out = False

    def poll(self, timeout: float) -> bool:
        """Reap the process if it ended (kill it past `timeout` s); True once it is done."""
        if self.returncode is not None:
            return True
        pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
        if pid == 0:
            if time.perf_counter() - self.start > timeout:
                self.timed_out = True
                self.proc.kill()
                pid, status, usage = os.wait4(self.proc.pid, 0)
            else:
                return False
        self.wall_s = time.perf_counter() - self.start
        self.returncode = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.returncode  # reaped here: Popen must not wait for it again
        self.max_rss_kb = usage.ru_maxrss  # kB on Linux
        return True

    def failure(self) -> Optional[dict]:
        if self.returncode == 0 and not self.timed_out:
            return None
        lines = self.stderr_path.read_text(errors="replace").strip().splitlines()
        return {"index": self.index, "returncode": self.returncode, "timed_out": self.timed_out,
                "stderr_last_line": lines[-1] if lines else ""}


def run_jobs(specs: list[tuple[int, int]], root: Path, threads: int, timeout: float) -> dict:
    """Start every (index, n) job at once, sample their total RSS until all have ended."""
    usable = sorted(os.sched_getaffinity(0))
    jobs = []
    t0 = time.perf_counter()
    for k, (index, n) in enumerate(specs):
        cores = [usable[(k * threads + j) % len(usable)] for j in range(threads)] if threads else None
        jobs.append(Job(index, n, root, seed=index, cores=cores, threads=threads))
    peak_total_kb, peak_alive = 0, 0
    while True:
        alive = [j for j in jobs if not j.poll(timeout)]
        if not alive:
            break
        peak_alive = max(peak_alive, len(alive))
        peak_total_kb = max(peak_total_kb, sum(rss_kb(j.proc.pid) for j in alive))
        time.sleep(POLL_S)
    wall = time.perf_counter() - t0
    return {"wall_s": round(wall, 3), "jobs": jobs, "peak_total_rss_kb": peak_total_kb, "peak_alive": peak_alive}


# ---------------------------------------------------------------- files


def grid_size(n: int, resolution: int, padding: int = 2) -> tuple[int, int]:
    """(width, height) of the grid `lgen sample --n n` writes (columns = ceil(sqrt(n)), as cli/infer.py)."""
    columns = max(1, min(math.ceil(math.sqrt(n)), n))
    rows = math.ceil(n / columns)
    return columns * (resolution + padding) + padding, rows * (resolution + padding) + padding


def check_png(path: Path, size: tuple[int, int], mode: str) -> Optional[str]:
    """None when `path` decodes fully with the given size and mode, else what is wrong."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()  # every byte decoded: a truncated file fails here
            if im.size != size or im.mode != mode:
                return f"{path.name}: {im.size[0]}x{im.size[1]} {im.mode}, expected {size[0]}x{size[1]} {mode}"
    except Exception as e:  # noqa: BLE001 (any decoder failure is the finding)
        return f"{path.name}: {type(e).__name__}: {e}"
    return None


def check_files(jobs: list[Job], root: Path, channels: int, resolution: int) -> dict:
    """Every PNG whole, of the right size, the right count per directory, no hidden/temp file anywhere."""
    mode = "L" if channels == 1 else "RGB"
    problems: list[str] = []
    checked = 0
    for job in jobs:
        if job.returncode != 0:
            continue  # a failed process: already counted as a failure; its files are not expected
        expected = [f"sample-{i:04d}.png" for i in range(job.n)]
        present = sorted(p.name for p in job.out_dir.iterdir()) if job.out_dir.is_dir() else []
        if present != expected:
            missing, extra = sorted(set(expected) - set(present)), sorted(set(present) - set(expected))
            problems.append(f"{job.out_dir.name}: {len(present)} files, expected {job.n} "
                            f"(missing {missing[:3]}, extra {extra[:3]})")
        for name in present:
            problem = check_png(job.out_dir / name, (resolution, resolution), mode)
            checked += 1
            if problem:
                problems.append(f"{job.out_dir.name}/{problem}")
        problem = check_png(job.out, grid_size(job.n, resolution), mode)
        checked += 1
        if problem:
            problems.append(problem)
    hidden = sorted(str(p.relative_to(root)) for p in root.rglob(".*"))
    return {"pngs_checked": checked, "temp_files_left": len(hidden), "temp_files_first": hidden[:5],
            "problems": len(problems), "problems_first": problems[:10], "all_whole": not problems and not hidden}


# ---------------------------------------------------------------- main


def summary(run: dict) -> dict:
    jobs: list[Job] = run["jobs"]
    peaks = [j.max_rss_kb for j in jobs]
    walls = [j.wall_s for j in jobs if j.wall_s is not None]
    failures = [f for f in (j.failure() for j in jobs) if f]
    return {"processes": len(jobs), "images_per_process": jobs[0].n, "wall_s": run["wall_s"],
            "process_wall_s": {"min": round(min(walls), 3), "max": round(max(walls), 3)},
            "peak_rss_mb_per_process": {"max": round(max(peaks) / 1024, 1), "min": round(min(peaks) / 1024, 1)},
            "sum_of_peak_rss_mb": round(sum(peaks) / 1024, 1),
            "peak_sampled_total_rss_mb": round(run["peak_total_rss_kb"] / 1024, 1),
            "peak_processes_alive": run["peak_alive"],
            "failures": len(failures), "failures_first": failures[:5]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10000, help="images of the single --out-dir call (a)")
    parser.add_argument("--procs", type=int, default=100, help="concurrent lgen sample processes (b)")
    parser.add_argument("--per-proc", type=int, default=100, help="images per concurrent process")
    parser.add_argument("--threads-per-proc", type=int, default=0,
                        help="pin each process to T cores and set OMP_NUM_THREADS=T (0: every core, the default)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds each process may run")
    parser.add_argument("--work-dir", type=Path, default=None, help="where the images go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--write", action="store_true", help=f"write the result to {RESULT}")
    args = parser.parse_args()
    if min(args.n, args.procs, args.per_proc) < 1 or args.threads_per_proc < 0:
        parser.error("--n, --procs and --per-proc must be >= 1, --threads-per-proc >= 0")

    from lifelong_gen.bundle import embedded

    config = json.loads((embedded.pretrained_path() / "config.json").read_text())["model"]
    channels, resolution = config["img_channels"], config["img_resolution"]

    root = Path(args.work_dir or tempfile.mkdtemp(prefix="lgen-sample-load-"))
    root.mkdir(parents=True, exist_ok=True)
    single_root, many_root = root / "single", root / "concurrent"
    single_root.mkdir(exist_ok=True)
    many_root.mkdir(exist_ok=True)
    load_before = os.getloadavg()
    try:
        single = run_jobs([(0, args.n)], single_root, args.threads_per_proc, args.timeout)
        many = run_jobs([(i, args.per_proc) for i in range(args.procs)], many_root, args.threads_per_proc,
                        args.timeout)
        single_files = check_files(single["jobs"], single_root, channels, resolution)
        many_files = check_files(many["jobs"], many_root, channels, resolution)
        job = single["jobs"][0]
        result = {
            "benchmark": "sample_load",
            "command": " ".join(Path(a).name if i == 0 else a for i, a in enumerate(job.args)),
            "model": f"embedded default ({embedded.DEFAULT_MODEL}, {channels}x{resolution}x{resolution})",
            "threads_per_proc": args.threads_per_proc or "all usable cores",
            "single": {"n": args.n, "wall_s": round(job.wall_s, 3), "peak_rss_mb": round(job.max_rss_kb / 1024, 1),
                       "images_per_s": round(args.n / job.wall_s, 1), "failure": job.failure(),
                       "files": single_files},
            "concurrent": {**summary(many), "files": many_files},
            "load_average": {"before": [round(x, 2) for x in load_before],
                             "after": [round(x, 2) for x in os.getloadavg()]},
            "machine": machine(),
        }
        if args.keep:
            result["work_dir"] = str(root)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    ok = (result["single"]["failure"] is None and result["concurrent"]["failures"] == 0
          and single_files["all_whole"] and many_files["all_whole"])
    result["ok"] = ok
    text = json.dumps(result, indent=2)
    print(text)
    if args.write:
        RESULT.write_text(text + "\n")
        print(f"wrote {RESULT}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
