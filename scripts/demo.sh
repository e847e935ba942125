#!/usr/bin/env bash
# The main job, end to end (what `make demo` runs after setup): teach the shipped model a new domain.
#  1. sample the embedded default model (MNIST -> Fashion-MNIST, 20 d; torch-free, instant);
#  2. continue it onto a third real domain, animal-mnist, without MNIST's or Fashion's data
#     (`lgen train --from`: the model replays what it learned; a demo budget of DEMO_STEPS steps);
#  3. export the grown 30-d model to ONNX (checked against PyTorch), evaluate every domain of its
#     lineage (each old domain's FID before and after, each domain's share of samples), sample it.
# The from-scratch quick preset stays available: lgen train --preset mnist-fashion --quick
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
STEPS=${DEMO_STEPS:-1200}
OUT=runs/demo-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
$BIN/lgen sample --n 64 --out "$OUT/embedded-samples.png"
$BIN/lgen interpolate --vary d --out "$OUT/embedded-dc-grid.png"
start=$(date +%s)
$BIN/lgen train --from mnist-fashion --domains animal-mnist --steps-per-domain "$STEPS" --out "$OUT/run"
echo "demo: training took $(( $(date +%s) - start )) s"
$BIN/lgen export "$OUT/run"
$BIN/lgen evaluate "$OUT/run" --num-samples 2000
$BIN/lgen sample --model "$OUT/run" --n 64 --out "$OUT/samples.png"
$BIN/lgen interpolate --model "$OUT/run" --vary d --out "$OUT/dc-grid.png"
echo "demo: the report, with the 30-row grid (a row per d), each domain's share and the old domains' FID"
echo "      before and after: $OUT/run/report.md"
echo "demo: outputs in $OUT"
