#!/usr/bin/env bash
# Issue 19's measurements, one training at a time (two on 2 cores slow each other far more than 2x).
#   bash experiments/continuation.sh reference   the embedded model continued onto animal-mnist + its evaluation
#   bash experiments/continuation.sh critic      critic starts on a quick parent: parent / fresh + warm-up / fresh, 2 seeds
#   bash experiments/continuation.sh single      one quick run of all three domains (vs the quick continuation)
#   bash experiments/continuation.sh noreplay    the no-replay continuation of the embedded model (the baseline)
#   bash experiments/continuation.sh lr          the quick parent continued with 5x lower learning rates (after critic)
# The two reference runs keep --critic-warmup 200, the default when they were made (it is 0 now).
# Every step skips what is already done, so the script can be re-run after an interruption.
# Tabulate with: python experiments/continuation_table.py
set -euo pipefail
cd "$(dirname "$0")/.."
LGEN=${LGEN:-.venv/bin/lgen}
R=runs/continuation
mkdir -p "$R"

source experiments/runs.sh  # train, evaluate

for what in "${@:-reference critic single noreplay}"; do
  for w in $what; do
    case $w in
      reference)
        train runs/mnist-fashion-animals --from mnist-fashion --domains animal-mnist --critic-warmup 200
        evaluate runs/mnist-fashion-animals ;;
      critic)
        [ -f "$R/parent-quick/critic.safetensors" ] || train_parent=1
        if [ -n "${train_parent:-}" ]; then
          "$LGEN" train --preset mnist-fashion --quick --out "$R/parent-quick" --no-progress > "$R/parent-quick.log" 2>&1
        fi
        for seed in 0 1; do
          train "$R/parent-critic-s$seed" --from "$R/parent-quick" --domains animal-mnist --critic parent --seed "$seed"
          train "$R/fresh-warmup200-s$seed" --from "$R/parent-quick" --domains animal-mnist --critic fresh --critic-warmup 200 --seed "$seed"
          train "$R/fresh-warmup0-s$seed" --from "$R/parent-quick" --domains animal-mnist --critic fresh --critic-warmup 0 --seed "$seed"
          for v in parent-critic fresh-warmup200 fresh-warmup0; do evaluate "$R/$v-s$seed" 2000; done
        done ;;
      single)
        train "$R/single-quick" --preset mnist-fashion --quick --domains mnist,fashion-mnist,animal-mnist
        evaluate "$R/single-quick" 2000 ;;
      noreplay)
        train runs/mnist-fashion-animals-noreplay --from mnist-fashion --domains animal-mnist --no-replay --critic-warmup 200
        evaluate runs/mnist-fashion-animals-noreplay ;;
      lr)
        for seed in 0 1; do
          train "$R/parent-critic-lr1e-4-s$seed" --from "$R/parent-quick" --domains animal-mnist --critic parent --lr-g 1e-4 --lr-d 1e-4 --seed "$seed"
          evaluate "$R/parent-critic-lr1e-4-s$seed" 2000
        done ;;
      *) echo "unknown part $w" >&2; exit 2 ;;
    esac
  done
done
