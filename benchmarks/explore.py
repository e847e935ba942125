"""`lgen explore`'s speed and size: server time per image, HTTP round trip, what the wheel gains.

Usage: python benchmarks/explore.py [--repeats N] [--write]

Serves the embedded model in this process (lifelong_gen.explore, CPU provider, one
intra-op thread per usable core) and times, each as the median of --repeats calls:
  generator_ms     OnnxModel.sample of one image (G alone);
  image_ms         Explorer.image: parameters checked, G, the PNG with its text chunks (what
                   one slider move costs the server);
  http_image_ms    the same through the HTTP server over one keep-alive connection
                   (http.client; the browser's round trip is in tests/test_explore_browser.py);
  grid_ms, strip_ms, upload_strip_ms   the other views (the d x c grid of 20 x 7 images, a
                   strip of 8 between two classes, and between two uploaded PNGs, S included).
The c code changes on every call, as a dragged slider changes it. Also records the page's
size and the compressed size its files add to a wheel (a zip of exactly the files the wheel
gains: lifelong_gen/explore/ and cli/explore.py), and budget_ratio = image_ms / 100 ms (the
issue's target for a slider move). --write saves benchmarks/explore.json with the machine.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import statistics
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from sampling import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUDGET_MS = 100.0


def median_ms(fn, repeats: int) -> float:
    fn(0)  # warm-up: the first call opens nothing (sessions are open) but fills caches
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 3)


def c_value(i: int) -> str:
    return f"{-2 + 4 * (i % 50) / 49:.3f},0.5"


def wheel_gain() -> dict:
    """The page's bytes and the deflated size of every file the wheel gains for `lgen explore`."""
    files = sorted((ROOT / "lifelong_gen" / "explore").rglob("*.*")) + [ROOT / "cli" / "explore.py"]
    files = [f for f in files if f.is_file() and "__pycache__" not in f.parts]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for f in files:
            z.write(f, f.relative_to(ROOT))
    static = [f for f in files if f.parent.name == "static"]
    return {"files": [str(f.relative_to(ROOT)) for f in files], "page_bytes": sum(f.stat().st_size for f in static),
            "source_bytes": sum(f.stat().st_size for f in files), "zipped_bytes": len(buf.getvalue())}


def measure(repeats: int) -> dict:
    from lifelong_gen.explore.server import make_server
    from lifelong_gen.explore.views import Explorer
    from lifelong_gen.runtime import load_model
    from lifelong_gen.runtime.sessions import usable_cores

    explorer = Explorer(load_model("mnist-fashion", provider="cpu"), "mnist-fashion")
    m = explorer.model
    z, d = np.zeros((1, m.z_dim), np.float32), np.eye(m.d_dim, dtype=np.float32)[:1]
    q = lambda i, **extra: {"d": ["3"], "c": [c_value(i)], "seed": ["0"], **{k: [v] for k, v in extra.items()}}  # noqa: E731
    a, b = explorer.image(q(0))[0], explorer.image({**q(1), "d": ["15"]})[0]
    server = make_server(explorer, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1])

    def http_image(i: int) -> None:
        conn.request("GET", f"/api/image?d=3&c={c_value(i)}&seed=0")
        assert conn.getresponse().read()

    try:
        results = {
            "generator_ms": median_ms(lambda i: m.sample(z, np.full((1, m.c_dim), i % 3 - 1, np.float32), d), repeats),
            "image_ms": median_ms(lambda i: explorer.image(q(i)), repeats),
            "http_image_ms": median_ms(http_image, repeats),
            "grid_ms": median_ms(lambda i: explorer.grid({"c": [c_value(i)], "steps": ["7"]}), max(10, repeats // 10)),
            "strip_ms": median_ms(lambda i: explorer.strip({"from": ["3"], "to": ["15"], "c": [c_value(i)]}),
                                  max(10, repeats // 10)),
            "upload_strip_ms": median_ms(lambda i: explorer.upload_strip({"split": [str(len(a))]}, a + b),
                                         max(10, repeats // 10)),
        }
    finally:
        conn.close()
        server.shutdown()
        server.server_close()
    results["budget_ratio"] = round(results["image_ms"] / BUDGET_MS, 4)
    return {"model": "mnist-fashion (embedded, 28x28, 20 d, 2 c)", "provider": "CPUExecutionProvider",
            "threads": usable_cores(), "repeats": repeats, "budget_ms": BUDGET_MS, "results": results,
            "wheel": wheel_gain(),
            "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "load_average": [round(v, 2) for v in os.getloadavg()],
                        "python": platform.python_version()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--write", action="store_true", help="save benchmarks/explore.json")
    args = parser.parse_args()
    record = measure(args.repeats)
    print(json.dumps(record, indent=2))
    if args.write:
        (ROOT / "benchmarks" / "explore.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
