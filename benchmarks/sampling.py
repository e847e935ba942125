"""Sampling speed: onnxruntime vs PyTorch eager for the same generator (CPU or CUDA), and a cold `lgen sample`.

Usage: python benchmarks/sampling.py [--device cpu|cuda] [--batches 1,64,1024] [--threads 1,N] [--seconds S]
           [--set key=value ...] [--out FILE]

Builds untrained networks from ModelConfig (default: the InfoGAN 28x28 size, g_width
64, fc_width 1024; speed does not depend on the weights), saves them as a bundle in a
temp dir and exports it with `export_bundle` (parity-checked). Then, in one process and
with the same thread count, times G_ema under torch.inference_mode against
OnnxModel.sample (the runtime's public path, input checks included) at each batch size
and thread count, alternating the two for several rounds and keeping each one's best
rate. On a shared machine the multi-threaded figures suffer most (a busy core stalls
every parallel region), hence the sweep over thread counts, and the load average is
recorded with the results. Batch 1 is also reported as per-call latency. Finally times
`lgen sample --n 1` cold in fresh interpreters where torch cannot be imported, and, as the
torch-based equivalent, a cold script that imports torch, rebuilds G_ema from the bundle's
safetensors and writes a PNG. Prints a table and writes JSON with a machine description to
benchmarks/sampling.json.

--device cuda (needs a GPU that torch sees and onnxruntime-gpu in place of onnxruntime;
otherwise one line and exit 2): on the GPU, fp32 with each library's default TF32 and cuDNN
settings (recorded), images/s at each batch of
  torch_eager             G on the GPU, inputs and output on the GPU, torch.cuda.synchronize() after each call;
  onnxruntime_iobinding   CUDA provider with I/O binding: inputs as CUDA OrtValues, output left on the GPU
                          (the like-for-like comparison with torch_eager);
  onnxruntime_numpy       OnnxModel.sample, numpy in and out (what `lgen sample` does: host copies included);
the max |onnxruntime - torch| on the GPU, and `lgen sample --n 1 --provider cuda` cold. Writes
benchmarks/sampling-cuda.json with the GPU's name (torch.cuda.get_device_name).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

# The torch-based equivalent of `lgen sample --n 1`: import torch, rebuild G_ema from the
# bundle's safetensors, sample one image, write a PNG.
TORCH_SAMPLE = """import sys, torch
from PIL import Image
from lifelong_gen.train.checkpoint import load_bundle
run, nets = load_bundle(sys.argv[1], which=("G_ema",))
m = run.model
with torch.inference_mode():
    z, c = torch.randn(1, m.z_dim), torch.randn(1, m.c_dim)
    d = torch.nn.functional.one_hot(torch.zeros(1, dtype=torch.long), m.d_dim).float()
    x = nets["G_ema"](z, c, d)[0]
img = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).squeeze(-1).numpy()
Image.fromarray(img).save(sys.argv[2])
"""

SITECUSTOMIZE = "import sys\nfor _m in ('torch', 'torchvision', 'onnx', 'onnxscript', 'safetensors'):\n" \
                "    sys.modules[_m] = None\n"


def images_per_second(fn, batch: int, seconds: float, warmup: int = 1) -> float:
    """Calls fn() repeatedly for about `seconds` (after `warmup` calls); images per second."""
    for _ in range(warmup):
        fn()
    calls, t0 = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and calls >= 3:
            return batch * calls / elapsed


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cuda_problem() -> str | None:
    """Why --device cuda cannot run here (one line), or None."""
    if not torch.cuda.is_available():
        return (f"--device cuda: torch sees no CUDA device (torch {torch.__version__}, "
                f"CUDA build {torch.version.cuda or 'none'})")
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        return (f"--device cuda: onnxruntime {onnxruntime.__version__} offers no CUDAExecutionProvider: install "
                f"onnxruntime-gpu in place of onnxruntime (pip install 'lifelong-gen[gpu]')")
    return None


def cold_lgen_sample(bundle: Path, tmp: str, runs: int, *extra: str) -> list[float]:
    """Seconds of `lgen sample --n 1 EXTRA`, each in a fresh interpreter where torch cannot be imported."""
    site = Path(tmp) / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)}
    lgen = [sys.executable, "-m", "lifelong_gen.cli", "sample", "--model", str(bundle), "--n", "1",
            "--out", str(Path(tmp) / "one.png"), *extra]
    cold = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = subprocess.run(lgen, capture_output=True, text=True, env=env)
        cold.append(time.perf_counter() - t0)
        if r.returncode != 0:
            raise SystemExit(f"lgen sample failed: {r.stderr.strip()}")
    return cold


def cuda_benchmark(G, bundle: Path, batches: list[int], args, tmp: str) -> dict:
    """torch eager vs onnxruntime's CUDA provider on the GPU (see the module docstring)."""
    import onnxruntime

    from lifelong_gen import runtime
    from lifelong_gen.errors import LgenError
    from lifelong_gen.export import spec
    from lifelong_gen.runtime.codes import random_codes

    try:
        model = runtime.OnnxModel(bundle, provider="cuda")
        session = model.generator  # starts the CUDA provider: a one-line LgenError when it cannot
    except LgenError as e:
        print(f"sampling.py: {e}", file=sys.stderr)
        raise SystemExit(2)
    G_cuda = G.cuda().eval()
    results = []
    for batch in batches:
        codes = random_codes(model, batch, np.random.default_rng(batch))
        zt, ct, dt = (torch.from_numpy(a).cuda() for a in (codes.z, codes.c, codes.d))
        values = [onnxruntime.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(a, np.float32), "cuda", 0)
                  for a in (codes.z, codes.c, codes.d)]
        binding = session.io_binding()
        for name, value in zip(spec.GENERATOR_INPUTS, values):
            binding.bind_ortvalue_input(name, value)
        binding.bind_output(spec.GENERATOR_OUTPUTS[0], "cuda", 0)  # onnxruntime allocates it on the GPU

        def eager():
            with torch.inference_mode():
                G_cuda(zt, ct, dt)
            torch.cuda.synchronize()

        def bound():
            session.run_with_iobinding(binding)
            binding.synchronize_outputs()

        def numpy_path():
            model.sample(codes.z, codes.c, codes.d, batch_size=batch)

        fns = {"torch_eager": eager, "onnxruntime_iobinding": bound, "onnxruntime_numpy": numpy_path}
        rates = {k: [] for k in fns}
        torch.cuda.synchronize()
        for _ in range(args.rounds):  # alternate, as on the CPU
            for k, fn in fns.items():
                rates[k].append(images_per_second(fn, batch, args.seconds, warmup=3))
        with torch.inference_mode():
            expected = G_cuda(zt, ct, dt).cpu().numpy()
        session.run_with_iobinding(binding)
        got = binding.copy_outputs_to_cpu()[0]
        best = {k: max(v) for k, v in rates.items()}
        results.append({"batch": batch, "images_per_s": {k: round(v, 1) for k, v in best.items()},
                        **({"latency_ms": {k: round(1000 / v, 3) for k, v in best.items()}} if batch == 1 else {}),
                        "iobinding_over_eager": round(best["onnxruntime_iobinding"] / best["torch_eager"], 3),
                        "numpy_over_eager": round(best["onnxruntime_numpy"] / best["torch_eager"], 3),
                        "max_abs_diff_vs_torch": float(np.abs(got - expected).max()),
                        "all_rounds": {k: [round(x, 1) for x in v] for k, v in rates.items()}})
    cuda_options = session.get_provider_options().get("CUDAExecutionProvider", {})
    cold = cold_lgen_sample(bundle, tmp, args.cold_runs, "--provider", "cuda")
    return {
        "device": "cuda",
        "gpu": torch.cuda.get_device_name(0),
        "results": results,
        "settings": {"torch_cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                     "torch_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                     "torch_cudnn_benchmark": torch.backends.cudnn.benchmark,
                     "onnxruntime_cuda_options": {k: cuda_options[k] for k in
                                                  ("use_tf32", "cudnn_conv_algo_search", "cudnn_conv_use_max_workspace")
                                                  if k in cuda_options}},
        "cold_lgen_sample_n1_cuda_s": {"median": round(statistics.median(cold), 3), "runs": [round(c, 3) for c in cold],
                                       "torch_importable": False},
        "torch_cuda_version": torch.version.cuda,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="cpu (default): thread sweep on the CPU; cuda: on the GPU (exit 2 without one)")
    ap.add_argument("--batches", default="1,64,1024")
    ap.add_argument("--threads", default=None, help="thread counts to sweep, same for torch and onnxruntime "
                                                    "(default: 1 and the usable cores)")
    ap.add_argument("--seconds", type=float, default=1.0, help="timing window per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="alternating torch/onnx rounds; best rate kept")
    ap.add_argument("--cold-runs", type=int, default=3)
    ap.add_argument("--set", nargs="*", default=[], help="ModelConfig overrides key=value (ints)")
    ap.add_argument("--out", type=Path, default=None,
                    help="JSON report (default: benchmarks/sampling.json; with --device cuda: sampling-cuda.json)")
    args = ap.parse_args()
    if args.out is None:
        args.out = Path(__file__).with_name("sampling.json" if args.device == "cpu" else "sampling-cuda.json")
    if args.device == "cuda" and (problem := cuda_problem()) is not None:
        print(f"sampling.py: {problem}", file=sys.stderr)
        raise SystemExit(2)

    from lifelong_gen import runtime
    from lifelong_gen.config import ModelConfig, RunConfig, TrainConfig
    from lifelong_gen.export.onnx_export import export_bundle
    from lifelong_gen.runtime.codes import random_codes
    from lifelong_gen.runtime.sessions import usable_cores
    from lifelong_gen.train import checkpoint as ckpt
    from lifelong_gen.train.networks import build_networks

    cores = usable_cores()
    thread_counts = [int(t) for t in args.threads.split(",")] if args.threads else sorted({1, cores})
    cfg = ModelConfig(**{"g_width": 64, "fc_width": 1024, **{k: int(v) for k, v in (s.split("=") for s in args.set)}})
    batches = [int(b) for b in args.batches.split(",")]
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "bundle"
        torch.manual_seed(0)
        G, _, S = build_networks(cfg)
        ckpt.save_bundle(bundle, RunConfig(model=cfg, train=TrainConfig(domains=["mnist"])),
                         {"G_ema": G, "S": S})
        t0 = time.perf_counter()
        exported = export_bundle(bundle)
        export_seconds = time.perf_counter() - t0
        G.eval()
        if args.device == "cuda":
            import onnxruntime

            report = {"model": cfg.__dict__, **cuda_benchmark(G, bundle, batches, args, tmp),
                      "export_seconds": round(export_seconds, 2), "parity_max_abs_diff_cpu": exported.max_abs_diff,
                      "machine": {"cpu": cpu_model(), "os": platform.platform(), "python": platform.python_version(),
                                  "torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
                      "command": " ".join([Path(sys.executable).name, *sys.argv])}
            print(f"{report['gpu']}: images/s (torch eager | onnxruntime I/O binding | onnxruntime numpy in/out)")
            for r in report["results"]:
                rate = r["images_per_s"]
                print(f"  batch {r['batch']:>5}: {rate['torch_eager']:>10.1f} | {rate['onnxruntime_iobinding']:>10.1f} | "
                      f"{rate['onnxruntime_numpy']:>10.1f}   max |diff| {r['max_abs_diff_vs_torch']:.1e}")
            print(f"cold `lgen sample --n 1 --provider cuda`: median {report['cold_lgen_sample_n1_cuda_s']['median']:.2f} s")
            args.out.write_text(json.dumps(report, indent=2) + "\n")
            print(f"wrote {args.out}")
            return
        results = []
        for threads, batch in ((t, b) for t in thread_counts for b in batches):
            torch.set_num_threads(threads)
            model = runtime.OnnxModel(bundle, provider="cpu", threads=threads)
            codes = random_codes(model, batch, np.random.default_rng(batch))
            zt, ct, dt = (torch.from_numpy(a) for a in (codes.z, codes.c, codes.d))

            def eager():
                with torch.inference_mode():
                    G(zt, ct, dt)

            def onnx():
                model.sample(codes.z, codes.c, codes.d)

            rates = {"torch_eager": [], "onnxruntime": []}
            for _ in range(args.rounds):  # alternate, so background load hits both alike
                rates["torch_eager"].append(images_per_second(eager, batch, args.seconds))
                rates["onnxruntime"].append(images_per_second(onnx, batch, args.seconds))
            best = {k: max(v) for k, v in rates.items()}
            results.append({"threads": threads, "batch": batch, "provider": "cpu",
                            "images_per_s": {k: round(v, 1) for k, v in best.items()},
                            # batch 1: one image per call, so the call latency
                            **({"latency_ms": {k: round(1000 / v, 3) for k, v in best.items()}} if batch == 1 else {}),
                            "onnx_over_eager": round(best["onnxruntime"] / best["torch_eager"], 3),
                            "all_rounds": {k: [round(x, 1) for x in v] for k, v in rates.items()}})

        import onnxruntime

        # Cold start: a fresh interpreter per run, torch unimportable (proves the path is torch-free).
        cold = cold_lgen_sample(bundle, tmp, args.cold_runs)
        # The same job the torch way, also cold (torch importable, normal environment).
        script = Path(tmp) / "torch_sample.py"
        script.write_text(TORCH_SAMPLE)
        cold_torch = []
        for _ in range(args.cold_runs):
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, str(script), str(bundle), str(Path(tmp) / "one_torch.png")],
                               capture_output=True, text=True)
            cold_torch.append(time.perf_counter() - t0)
            if r.returncode != 0:
                raise SystemExit(f"torch sampling script failed: {r.stderr.strip()}")

    report = {
        "model": cfg.__dict__,
        "thread_counts": thread_counts,
        "results": results,
        "cold_lgen_sample_n1_s": {"median": round(statistics.median(cold), 3), "runs": [round(c, 3) for c in cold],
                                  "torch_importable": False},
        "cold_torch_script_n1_s": {"median": round(statistics.median(cold_torch), 3),
                                   "runs": [round(c, 3) for c in cold_torch],
                                   "what": "python script: import torch, load_bundle(G_ema) from safetensors, one PNG"},
        "torch_script_over_lgen_cold": round(statistics.median(cold_torch) / statistics.median(cold), 2),
        "cuda": {"skipped": "measured by `python benchmarks/sampling.py --device cuda` (sampling-cuda.json)"},
        "export_seconds": round(export_seconds, 2),
        "parity_max_abs_diff": exported.max_abs_diff,
        "machine": {"cpu": cpu_model(), "usable_cores": usable_cores(), "os": platform.platform(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "onnxruntime": onnxruntime.__version__, "numpy": np.__version__,
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    print(f"{'threads':>7}  {'batch':>6}  {'torch eager img/s':>18}  {'onnxruntime img/s':>18}  {'onnx/eager':>10}")
    for r in results:
        rate = r["images_per_s"]
        print(f"{r['threads']:>7}  {r['batch']:>6}  {rate['torch_eager']:>18.1f}  {rate['onnxruntime']:>18.1f}  "
              f"{r['onnx_over_eager']:>10.2f}")
    for r in results:
        if "latency_ms" in r:
            lat = r["latency_ms"]
            print(f"batch-1 latency, {r['threads']} thread(s): torch eager {lat['torch_eager']:.2f} ms, "
                  f"onnxruntime {lat['onnxruntime']:.2f} ms")
    print(f"cold torch script (import torch + load safetensors + PNG): median "
          f"{report['cold_torch_script_n1_s']['median']:.2f} s ({report['torch_script_over_lgen_cold']:.1f}x lgen)")
    print(f"cold `lgen sample --n 1` (torch unimportable): median {report['cold_lgen_sample_n1_s']['median']:.2f} s "
          f"over {len(cold)} runs (default threads: {cores}); load average {load_before[0]:.2f} on {cores} cores")
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
