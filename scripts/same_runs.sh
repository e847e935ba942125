#!/usr/bin/env bash
# Five tiny trainings whose weights, metrics.jsonl and checkpoint state a refactor must not change.
#
#   bash scripts/same_runs.sh OUT [CHECKOUT]      # CHECKOUT: another tree (default: this one)
#   python scripts/compare_runs.py OUT_BEFORE OUT_AFTER
#
# A lifelong run with both interpretability levers and checkpoints, the reference preset's settings
# at a tiny size (per-domain d's, clustering by domain, SCAN's neighbours, CBN, a subsampled penalty),
# a run with a replay ratio and replay alignment, a `--from` continuation of the first onto
# animal-mnist with a fresh critic, and a joint run. LGEN_EXTRA adds flags to every training (a tree
# whose defaults differ can be given the flags that make it run the same settings). CHECKOUT is imported through
# a staged package (as scripts/identity_under_load.sh does: the editable install maps cli/ and
# export/ to the tree it was installed from), so `git worktree add --detach /tmp/old HEAD~1` gives
# the before side.
set -euo pipefail
OUT=$(realpath -m "$1")
HERE=$(cd "$(dirname "$0")/.." && pwd)
TREE=$(cd "${2:-$HERE}" && pwd)
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir "$STAGE/lifelong_gen"
for entry in "$TREE"/lifelong_gen/*; do ln -s "$entry" "$STAGE/lifelong_gen/"; done
for sub in cli export model_cards; do ln -s "$TREE/$sub" "$STAGE/lifelong_gen/$sub"; done
export PYTHONPATH="$STAGE" PYTHONSAFEPATH=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
LGEN=("${PYTHON:-$HERE/.venv/bin/python}" -m lifelong_gen.cli)
read -r -a EXTRA <<< "${LGEN_EXTRA:-}"
T=("${EXTRA[@]}" --g-width 8 --d-width 8 --fc-width 32 --z-dim 8 --batch-size 8 --n-critic 2 --log-every 5 --no-download --no-progress)
rm -rf "$OUT"; mkdir -p "$OUT"
"${LGEN[@]}" train --domains synthetic:bars,synthetic:rings --steps-per-domain 30 --checkpoint-every 10 "${T[@]}" \
  --info-augment-weight 0.5 --s-real-weight 0.5 --out "$OUT/a" 2> "$OUT/a.log"
"${LGEN[@]}" train --from "$OUT/a" --domains animal-mnist --steps-per-domain 20 --checkpoint-every 10 \
  --critic fresh --no-progress --out "$OUT/b" 2> "$OUT/b.log"
"${LGEN[@]}" train --domains synthetic:bars,synthetic:rings --steps-per-domain 20 --checkpoint-every 10 "${T[@]}" \
  --d-per-domain 3 --g-conditioning cbn --info-augment-weight 1 --s-real-weight 1 --s-real-reuse --s-real-by-domain \
  --s-neighbour-weight 0.2 --s-neighbours 4 --gp-subsample 2 --z-scale 0.1 --c-scale 0.1 --out "$OUT/p" 2> "$OUT/p.log"
"${LGEN[@]}" train --domains synthetic:bars,synthetic:rings --steps-per-domain 15 "${T[@]}" \
  --d-per-domain 2 --replay-ratio 0.3 --replay-alignment 0.5 --out "$OUT/r" 2> "$OUT/r.log"
"${LGEN[@]}" train --domains synthetic:bars,synthetic:rings --joint --steps-per-domain 15 "${T[@]}" --out "$OUT/c" 2> "$OUT/c.log"
echo "$OUT: a (lifelong + levers), b (--from a), c (joint), p (the preset's settings), r (replay ratio + alignment) from $TREE"
