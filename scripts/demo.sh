#!/usr/bin/env bash
# The main job, end to end (what `make demo` runs after setup): teach the shipped model a new domain.
#  1. sample the embedded default model (MNIST -> Fashion-MNIST, 20 d; torch-free, instant);
#  2. continue it onto a third real domain, animal-mnist, without MNIST's or Fashion's data
#     (`lgen train --from`: the old domains' parameters stay frozen and animal-mnist learns its own,
#     docs/training.md; a demo budget of DEMO_STEPS steps);
#  3. export the grown 30-d model to ONNX (checked against PyTorch), evaluate every domain of its
#     lineage (each old domain's FID before and after, each domain's share of samples), sample it.
# The from-scratch quick preset stays available: lgen train --preset mnist-fashion --quick
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
STEPS=${DEMO_STEPS:-300}
BATCH=${DEMO_BATCH:-32}  # half the parent's batch: twice the steps in the same time (the demo's budget: docs/installing.md)
OUT=runs/demo-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
$BIN/lgen sample --n 64 --out "$OUT/embedded-samples.png"
$BIN/lgen interpolate --vary d --out "$OUT/embedded-dc-grid.png"
start=$(date +%s)
$BIN/lgen train --from mnist-fashion --domains animal-mnist --steps-per-domain "$STEPS" --batch-size "$BATCH" --out "$OUT/run"
echo "demo: training took $(( $(date +%s) - start )) s"
$BIN/lgen export "$OUT/run"
start=$(date +%s)
$BIN/lgen evaluate "$OUT/run" --num-samples 2000
echo "demo: evaluation took $(( $(date +%s) - start )) s"
$BIN/lgen sample --model "$OUT/run" --n 64 --out "$OUT/samples.png"
$BIN/lgen interpolate --model "$OUT/run" --vary d --out "$OUT/dc-grid.png"
$BIN/python - "$OUT/run/metrics.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
f, doms = m["forgetting"], m["training"]["domains"]
k = m["training"]["inherited_domains"]
# Retention: the FID of each old domain's own d's, same codes before and after (the evaluation's
# per-domain FID also counts the new domain's samples its classifier takes for that domain).
own, fid = f["fid_own_d"], f["fid"]
for j, d in enumerate(doms[:k]):
    print(f"demo: {d} (its own d's) FID before {own[k - 1][j]:.1f}, after {own[-1][j]:.1f} "
          f"({own[-1][j] / own[k - 1][j]:.2f}x); on the samples the classifier gives it "
          f"{fid[k - 1][j]:.1f} -> {fid[-1][j]:.1f}")
new = m["per_domain"][doms[-1]]
print(f"demo: {doms[-1]} FID {new['fid']:.1f}, {new['covered_classes']}/{new['num_classes']} classes, "
      f"share {new['sample_share']:.2f}")
PY
echo "demo: the old domains before | after (same codes): $OUT/run/figures/before_after.png;"
echo "      the new domain: $OUT/run/figures/samples_domain-3.png; the report: $OUT/run/report.md"
echo "demo: outputs in $OUT"
