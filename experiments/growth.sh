#!/usr/bin/env bash
# The growth study (experiments/growth.md): how a later domain is added, compared on one protocol.
#   bash experiments/growth.sh study       a quick two-domain parent (--preset mnist-fashion --quick),
#                                          continued onto animal-mnist for 1,000 steps, seeds 0-2, per setting
#   bash experiments/growth.sh reference   the embedded model continued onto animal-mnist at the reference
#                                          budget (the preset's 8,000 steps) with the default growth
#   bash experiments/growth.sh preset      the quick preset from scratch, its MNIST -> Fashion boundary by
#                                          adapters against the replay parent of the study, 3 seeds
#   bash experiments/growth.sh alone       the same, the new domain alone from the parent's start (no replay)
# One training at a time (two on 2 cores slow each other far more than 2x); every step skips what is
# done, so the script can be re-run after an interruption. Tabulate: python experiments/growth_table.py
set -euo pipefail
cd "$(dirname "$0")/.."
LGEN=${LGEN:-.venv/bin/lgen}
R=runs/growth
SEEDS=${SEEDS:-0 1 2}
# adapters-r16-sfrozen (--s-frozen-trunk) ran too; the flag is retired (experiments/README.md has the
# last commit with it).
SETTINGS=${SETTINGS:-replay align adapters-r0 adapters-r16 adapters-r48 alone}
mkdir -p "$R"

source experiments/runs.sh  # train, evaluate
flags() {  # the growth flags of a setting
  case $1 in
    replay) echo "--growth replay" ;;
    align) echo "--growth replay --replay-alignment 1" ;;   # MeRGAN-RA (Wu et al. 2018)
    adapters-r*) echo "--growth adapters --adapter-rank ${1#adapters-r}" ;;
    alone) echo "--growth replay --no-replay" ;;            # the new domain alone, from the parent's start
    *) echo "unknown setting $1" >&2; exit 2 ;;
  esac
}

for part in "${@:-study}"; do
  case $part in
    study)
      train "$R/parent-quick" --preset mnist-fashion --quick
      for seed in $SEEDS; do
        for s in $SETTINGS; do
          # shellcheck disable=SC2046
          train "$R/$s-s$seed" --from "$R/parent-quick" --domains animal-mnist --seed "$seed" $(flags "$s")
          evaluate "$R/$s-s$seed" 2000
        done
      done ;;
    reference)
      # shellcheck disable=SC2086
      train "$R/reference" --from mnist-fashion --domains animal-mnist ${REFERENCE_FLAGS:-}
      evaluate "$R/reference" 5000 ;;
    preset)
      for seed in $SEEDS; do
        [ "$seed" = 0 ] || train "$R/preset-replay-s$seed" --preset mnist-fashion --quick --growth replay --seed "$seed"
        train "$R/preset-adapters-s$seed" --preset mnist-fashion --quick --growth adapters --seed "$seed"
      done
      ln -sfn parent-quick "$R/preset-replay-s0"  # the study's parent is the replay run of seed 0
      for seed in $SEEDS; do
        for g in replay adapters; do evaluate "$R/preset-$g-s$seed" 2000; done
      done ;;
    alone)
      train "$R/reference-alone" --from mnist-fashion --domains animal-mnist $(flags alone)
      evaluate "$R/reference-alone" 5000 ;;
    *) echo "unknown part $part" >&2; exit 2 ;;
  esac
done
