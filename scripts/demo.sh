#!/usr/bin/env bash
# The main job, end to end (what `make demo` runs after setup):
#  1. sample from the embedded default model (torch-free, instant);
#  2. train MNIST -> Fashion-MNIST with the quick preset (about 3 minutes on 2 CPU cores);
#  3. export it to ONNX (checked against PyTorch), evaluate it, sample and traverse from it.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
OUT=runs/demo-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
$BIN/lgen sample --n 64 --out "$OUT/embedded-samples.png"
$BIN/lgen interpolate --vary d --out "$OUT/embedded-dc-grid.png"
$BIN/lgen train --preset mnist-fashion --quick --out "$OUT/run"
$BIN/lgen export "$OUT/run"
$BIN/lgen evaluate "$OUT/run"
$BIN/lgen sample --model "$OUT/run" --n 64 --out "$OUT/samples.png"
$BIN/lgen interpolate --model "$OUT/run" --vary c1 --out "$OUT/traversal-c1.png"
echo "demo: outputs in $OUT (report: $OUT/run/report.md)"
