#!/usr/bin/env bash
# The reference model's results (issue 6), end to end: train MNIST -> Fashion-MNIST with
# the mnist-fashion preset three ways (lifelong with replay, without replay, joint upper
# bound), export, evaluate, tabulate, and copy the paper's figures into docs/results/.
#   bash scripts/results.sh [RUNS_DIR]       (about 1 hour on 2 CPU cores; `make results`)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
RUNS=${1:-runs}
declare -A FLAGS=([mnist-fashion]="" [mnist-fashion-noreplay]="--no-replay" [mnist-fashion-joint]="--joint")
for name in mnist-fashion mnist-fashion-noreplay mnist-fashion-joint; do
  if [ ! -f "$RUNS/$name/generator_ema.safetensors" ]; then
    # A run interrupted earlier continues from its last checkpoint.
    if [ -f "$RUNS/$name/config.json" ]; then
      $BIN/lgen train --resume "$RUNS/$name" --no-progress
    else
      $BIN/lgen train --preset mnist-fashion ${FLAGS[$name]} --out "$RUNS/$name" --no-progress
    fi
  fi
  $BIN/lgen export "$RUNS/$name"
  $BIN/lgen evaluate "$RUNS/$name" --no-progress
done
$BIN/lgen evaluate --compare "$RUNS/mnist-fashion" "$RUNS/mnist-fashion-noreplay" "$RUNS/mnist-fashion-joint" \
  --out docs/results
# The paper's figures from these runs: 2a (lifelong), 2b (no replay: forgetting),
# 3 (d along columns, one (z, c) per row), 4 (traversals of c1, c2 from -1 to 1).
cp "$RUNS/mnist-fashion/samples/domain-2.png" docs/results/fig2a_lifelong_grid.png
cp "$RUNS/mnist-fashion/figures/samples_domain-1.png" docs/results/fig2a_lifelong_mnist.png
cp "$RUNS/mnist-fashion/figures/samples_domain-2.png" docs/results/fig2a_lifelong_fashion.png
cp "$RUNS/mnist-fashion-noreplay/samples/domain-2.png" docs/results/fig2b_noreplay_grid.png
cp "$RUNS/mnist-fashion-noreplay/figures/samples_domain-2.png" docs/results/fig2b_noreplay_fashion.png
cp "$RUNS/mnist-fashion/figures/dc_grid.png" docs/results/fig3_d_by_c.png
cp "$RUNS/mnist-fashion/figures/traversal_c1.png" docs/results/fig4_traversal_c1.png
cp "$RUNS/mnist-fashion/figures/traversal_c2.png" docs/results/fig4_traversal_c2.png
cp "$RUNS/mnist-fashion/figures/forgetting_share.png" docs/results/forgetting_share.png
echo "results: docs/results/compare.md and figures"
