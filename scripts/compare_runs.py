"""Compare the runs of two `scripts/same_runs.sh` outputs; exit 1 if anything the method computes differs.

Compared: the sample grids (samples/*.png) byte for byte; every .safetensors tensor by tensor,
with its metadata as a dict (the files' bytes
differ between processes: safetensors writes the metadata map in hash order); metrics.jsonl
without sec_per_step; each checkpoint's state.json without metrics_offset (the byte length of
metrics.jsonl, whose sec_per_step floats vary in length). Not compared: `rng.torch`, torch's
global random state, which differs between two processes of the same code and which no step
draws from (the run's own stream is `rng.train`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors import safe_open

IGNORED_TENSORS = {"rng.torch"}


def _metrics(path: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "sec_per_step"} for line in path.read_text().splitlines()]


def _differences(pa: Path, pb: Path) -> list[str]:
    if not pb.exists():
        return ["missing"]
    if pa.suffix == ".png":
        return [] if pa.read_bytes() == pb.read_bytes() else ["pixels"]
    if pa.name == "metrics.jsonl":
        return [] if _metrics(pa) == _metrics(pb) else ["lines"]
    if pa.name == "state.json":
        load = lambda p: {k: v for k, v in json.loads(p.read_text()).items() if k != "metrics_offset"}  # noqa: E731
        return [] if load(pa) == load(pb) else ["state"]
    fa, fb = safe_open(str(pa), "pt"), safe_open(str(pb), "pt")
    if set(fa.keys()) != set(fb.keys()) or fa.metadata() != fb.metadata():
        return ["keys or metadata"]
    return [k for k in fa.keys() if k not in IGNORED_TENSORS and not torch.equal(fa.get_tensor(k), fb.get_tensor(k))]


def main(argv: list[str]) -> int:
    a, b = Path(argv[0]), Path(argv[1])
    files = [p for p in sorted(a.rglob("*")) if p.is_file()
             and (p.suffix in (".safetensors", ".png") or p.name in ("metrics.jsonl", "state.json"))]
    bad = 0
    for pa in files:
        diff = _differences(pa, b / pa.relative_to(a))
        if diff:
            bad += 1
            print(f"DIFFERS {pa.relative_to(a)}: {', '.join(diff[:6])}")
    print(f"{len(files)} files compared, {bad} differ")
    return 1 if bad or not files else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
