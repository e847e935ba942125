"""Sampling speed: onnxruntime (CPU) vs PyTorch eager for the same generator, and a cold `lgen sample`.

Usage: python benchmarks/sampling.py [--batches 1,64,1024] [--threads 1,N] [--seconds S] [--set key=value ...]

Builds untrained networks from ModelConfig (default: the InfoGAN 28x28 size, g_width
64, fc_width 1024; speed does not depend on the weights), saves them as a bundle in a
temp dir and exports it with `export_bundle` (parity-checked). Then, in one process and
with the same thread count, times G_ema under torch.inference_mode against
OnnxModel.sample (the runtime's public path, input checks included) at each batch size
and thread count, alternating the two for several rounds and keeping each one's best
rate. On a shared machine the multi-threaded figures suffer most (a busy core stalls
every parallel region), hence the sweep over thread counts, and the load average is
recorded with the results. Batch 1 is also reported as per-call latency. A CUDA
row (onnxruntime CUDA provider vs torch eager on the GPU) runs when both exist and is
recorded as skipped, with the reason, otherwise. Finally times `lgen sample --n 1` cold
in fresh interpreters where torch cannot be imported, and, as the torch-based
equivalent, a cold script that imports torch, rebuilds G_ema from the bundle's
safetensors and writes a PNG. Prints a table and writes JSON with a machine description to
benchmarks/sampling.json.
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


def images_per_second(fn, batch: int, seconds: float) -> float:
    """Calls fn() repeatedly for about `seconds` (after one warm-up call); images per second."""
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="1,64,1024")
    ap.add_argument("--threads", default=None, help="thread counts to sweep, same for torch and onnxruntime "
                                                    "(default: 1 and the usable cores)")
    ap.add_argument("--seconds", type=float, default=1.0, help="timing window per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="alternating torch/onnx rounds; best rate kept")
    ap.add_argument("--cold-runs", type=int, default=3)
    ap.add_argument("--set", nargs="*", default=[], help="ModelConfig overrides key=value (ints)")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("sampling.json"))
    args = ap.parse_args()

    from lifelong_gen.train import checkpoint as ckpt
    from lifelong_gen.config import ModelConfig, RunConfig, TrainConfig
    from lifelong_gen.export import runtime
    from lifelong_gen.export.onnx_export import export_bundle
    from lifelong_gen.train.networks import build_networks

    cores = runtime.usable_cores()
    thread_counts = [int(t) for t in args.threads.split(",")] if args.threads else sorted({1, cores})
    cfg = ModelConfig(g_width=64, fc_width=1024, **{k: int(v) for k, v in (s.split("=") for s in args.set)})
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
        results = []
        for threads, batch in ((t, b) for t in thread_counts for b in batches):
            torch.set_num_threads(threads)
            model = runtime.OnnxModel(bundle, provider="cpu", threads=threads)
            codes = runtime.random_codes(model, batch, np.random.default_rng(batch))
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

        # CUDA row: onnxruntime-gpu's CUDA provider against torch eager on the GPU, when both exist.
        cuda = {"provider": "cuda"}
        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers() or not torch.cuda.is_available():
            cuda["skipped"] = ("no GPU here" if not torch.cuda.is_available() else
                               "onnxruntime offers no CUDAExecutionProvider (install onnxruntime-gpu in place of it)")
        else:
            G_cuda = G.cuda()
            model = runtime.OnnxModel(bundle, provider="cuda")
            cuda["results"] = []
            for batch in batches:
                codes = runtime.random_codes(model, batch, np.random.default_rng(batch))
                zt, ct, dt = (torch.from_numpy(a).cuda() for a in (codes.z, codes.c, codes.d))

                def eager_cuda():
                    with torch.inference_mode():
                        G_cuda(zt, ct, dt)
                    torch.cuda.synchronize()

                rate_t = images_per_second(eager_cuda, batch, args.seconds)
                rate_o = images_per_second(lambda: model.sample(codes.z, codes.c, codes.d), batch, args.seconds)
                cuda["results"].append({"batch": batch, "images_per_s": {"torch_eager": round(rate_t, 1),
                                                                          "onnxruntime": round(rate_o, 1)},
                                        "onnx_over_eager": round(rate_o / rate_t, 3)})
            G_cuda.cpu()

        # Cold start: a fresh interpreter per run, torch unimportable (proves the path is torch-free).
        site = Path(tmp) / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)}
        lgen = [sys.executable, "-m", "lifelong_gen.cli", "sample", "--model", str(bundle), "--n", "1",
                "--out", str(Path(tmp) / "one.png")]
        cold = []
        for _ in range(args.cold_runs):
            t0 = time.perf_counter()
            r = subprocess.run(lgen, capture_output=True, text=True, env=env)
            cold.append(time.perf_counter() - t0)
            if r.returncode != 0:
                raise SystemExit(f"lgen sample failed: {r.stderr.strip()}")
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
        "cuda": cuda,
        "export_seconds": round(export_seconds, 2),
        "parity_max_abs_diff": exported.max_abs_diff,
        "machine": {"cpu": cpu_model(), "usable_cores": runtime.usable_cores(), "os": platform.platform(),
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
    print("cuda: " + (cuda["skipped"] if "skipped" in cuda else json.dumps(cuda["results"])))
    print(f"cold torch script (import torch + load safetensors + PNG): median "
          f"{report['cold_torch_script_n1_s']['median']:.2f} s ({report['torch_script_over_lgen_cold']:.1f}x lgen)")
    print(f"cold `lgen sample --n 1` (torch unimportable): median {report['cold_lgen_sample_n1_s']['median']:.2f} s "
          f"over {len(cold)} runs (default threads: {cores}); load average {load_before[0]:.2f} on {cores} cores")
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
