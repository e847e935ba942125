#!/usr/bin/env bash
# A 10-task class-incremental sequence, two classes per task: MNIST 0-1, 2-3, ..., 8-9, then
# Fashion-MNIST 0-1, ..., 8-9 (the setting of Multiband GAN, Cong et al.'s class-incremental
# MNIST -> Fashion). The labels only choose each task's images; training is unsupervised.
#   bash benchmarks/class_incremental.sh          the lifelong run (default growth) and the joint run
#                                                 of the same nets and total budget, both evaluated
#   python benchmarks/class_incremental_table.py  the table (experiments/class-incremental.md)
# STEPS (per task, default 300) and GROWTH (default adapters, the default growth) may be set.
set -euo pipefail
cd "$(dirname "$0")/.."
LGEN=${LGEN:-.venv/bin/lgen}
R=${R:-runs/class-incremental}
STEPS=${STEPS:-300}
TASKS=mnist:0-1,mnist:2-3,mnist:4-5,mnist:6-7,mnist:8-9
TASKS=$TASKS,fashion-mnist:0-1,fashion-mnist:2-3,fashion-mnist:4-5,fashion-mnist:6-7,fashion-mnist:8-9
# The quick preset's nets (widths 32, fc 256, batch 32) with two d's per task.
COMMON=(--preset mnist-fashion --quick --domains "$TASKS" --d-per-domain 2 --steps-per-domain "$STEPS" --no-progress)
mkdir -p "$R"
run() {  # run NAME ARGS...: train (resumed if interrupted), then evaluate
  local out=$R/$1; shift
  if [ ! -f "$out.done" ]; then
    if [ -f "$out/config.json" ]; then
      /usr/bin/time -f "%e s wall" -o "$out.time" "$LGEN" train --resume "$out" --no-progress >> "$out.log" 2>&1
    else
      /usr/bin/time -f "%e s wall" -o "$out.time" "$LGEN" train "${COMMON[@]}" "$@" --out "$out" > "$out.log" 2>&1
    fi
    touch "$out.done"
  fi
  [ -f "$out/metrics.json" ] || /usr/bin/time -f "%e s wall" -o "$out.eval-time" \
    "$LGEN" evaluate "$out" --num-samples 2000 --no-progress > "$out.eval.log" 2>&1
}
run lifelong --growth "${GROWTH:-adapters}"  # the preset itself keeps replay (presets.py)
run joint --joint
