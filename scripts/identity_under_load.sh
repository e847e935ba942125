#!/usr/bin/env bash
# The bit-identity tests, N passes in a row, while another training loads the cores (issue 21).
#
#   bash scripts/identity_under_load.sh [N] [LOG]
#
# The competing load is a second `lgen train` (default widths, synthetic data, 2 threads),
# restarted whenever it ends. Stops at the first failing pass.
# Run it from a checkout nobody edits meanwhile (`git worktree add --detach DIR HEAD`, with
# DIR/.venv a link to a set-up venv): every process imports this checkout's code. Not the
# venv's editable install: that maps lifelong_gen.cli, .export and .model_cards to the folders
# of the checkout it was installed from (pyproject's package-dir), so a second checkout would
# import its own lifelong_gen/ but the first one's cli/ and export/. A staged package of links
# into this checkout, first on PYTHONPATH with PYTHONSAFEPATH (no cwd entry ahead of it), is
# what every process imports; the log names the files it resolved to.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20}
LOG=${2:-identity_under_load.log}
PY=${PYTHON:-.venv/bin/python}
STAGE=$(mktemp -d)
mkdir "$STAGE/lifelong_gen"
for entry in lifelong_gen/*; do ln -s "$PWD/$entry" "$STAGE/lifelong_gen/"; done
for sub in cli export model_cards; do ln -s "$PWD/$sub" "$STAGE/lifelong_gen/$sub"; done
export PYTHONPATH="$STAGE${PYTHONPATH:+:$PYTHONPATH}" PYTHONSAFEPATH=1
IMPORTED=$("$PY" -c 'import os, lifelong_gen.cli, lifelong_gen.export.onnx_export as e, lifelong_gen.train.trainer as t
print(" ".join(os.path.realpath(m.__file__) for m in (lifelong_gen.cli, e, t)))')
for f in $IMPORTED; do
  case "$f" in "$PWD"/*) ;; *) echo "imports $f, outside $PWD: refusing to measure a mixed tree" >&2; exit 1;; esac
done
LOAD_DIR=$(mktemp -d)
(
  while true; do
    rm -rf "$LOAD_DIR/run"
    "$PY" -m lifelong_gen.cli train --domains synthetic:bars --steps-per-domain 100000 --no-download \
      --no-progress --out "$LOAD_DIR/run" >/dev/null 2>&1 || true
  done
) &
LOAD=$!
trap 'kill $LOAD 2>/dev/null; pkill -f "$LOAD_DIR/run"; rm -rf "$LOAD_DIR" "$STAGE"' EXIT
# Every test that compares a run's weights with an uninterrupted run's (test_faults.py's
# one-line and image-input tests compare none), the slow 12-moment kill -9 variant included.
TESTS=(tests/test_resume.py tests/test_trainer.py tests/test_legacy.py tests/test_faults.py
       "tests/test_continuation.py::test_continued_run_kill9_then_resume_is_bit_identical"
       "tests/test_cpu_sharing.py::test_a_training_beside_a_busy_process_sleeps_its_threads_with_the_same_weights")
SELECT="not test_faults.py or falls_back or signal or kill9"
echo "$(date -Is) $N passes of: ${TESTS[*]} (slow included); load: lgen train beside them; $(nproc) cores;" \
     "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- lifelong_gen cli export tests || echo ' + changes');" \
     "imports $IMPORTED" | tee -a "$LOG"
for i in $(seq 1 "$N"); do
  start=$(date +%s)
  if "$PY" -m pytest -q -p no:cacheprovider --durations=10 -m "" -k "$SELECT" "${TESTS[@]}" > "$LOG.pass$i" 2>&1; then
    echo "pass $i: ok, $(tail -1 "$LOG.pass$i"), $(( $(date +%s) - start )) s, load average $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$LOG"
  else
    echo "pass $i: FAILED after $(( $(date +%s) - start )) s (see $LOG.pass$i)" | tee -a "$LOG"
    exit 1
  fi
done
echo "$(date -Is) all $N passes ok" | tee -a "$LOG"
