#!/usr/bin/env bash
# The lifelong study protocol (experiments/study.py) on a lent GPU machine: one process per
# (setting, seed), all at once, since one training keeps an H200 about 7% busy (its step is
# bound by the host: benchmarks/device_step-cuda.json). Prepare with scripts/gpu_carry.sh, then
# the device tool's run with carry [".gpu_carry"] and command
#   GPU_STUDY_SETTINGS=a,b GPU_STUDY_SEEDS=3,4,5 bash scripts/gpu_study.sh
# Each run's results.jsonl row comes back in $OUT/results.jsonl (and its log in $OUT/logs/).
# Rows from here pair with each other, not with the CPU's: another device, other kernels.
# The evaluation uses the classifier carried from this machine's cache (same data sources, so
# the same cache key), so its FID and purity read G with the same classifier as the CPU rows.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu-study}
mkdir -p "$OUT/logs"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
source scripts/gpu_setup.sh  # the project and the carried wheels; sets PY
# Fashion-MNIST where Debian's package puts it, so its recorded source (and the classifier's
# cache key) is the one this machine's rows have.
mkdir -p /usr/share/datasets/fashion-mnist && cp .gpu_carry/data/FashionMNIST/raw/*.gz /usr/share/datasets/fashion-mnist/
export LGEN_DATA_HOME=/tmp/lgen-home
mkdir -p "$LGEN_DATA_HOME" && cp -r .gpu_carry/classifiers "$LGEN_DATA_HOME/" 2>/dev/null
# The checkout's lifelong_gen/ lacks the cli package (pyproject maps cli/ into it), so the
# installed copy must come first on every `python -m lifelong_gen.cli` the study starts.
export PYTHONSAFEPATH=1 OMP_NUM_THREADS=2
pids=()
for setting in ${GPU_STUDY_SETTINGS//,/ }; do
    for seed in ${GPU_STUDY_SEEDS//,/ }; do
        timeout "${GPU_STUDY_S:-480}" $PY experiments/study.py --settings "$setting" --seeds "$seed" \
            --domain mnist,fashion-mnist --steps "${GPU_STUDY_STEPS:-2000}" --root "/tmp/study/$setting-$seed" \
            > "$OUT/logs/$setting-$seed.log" 2>&1 &
        pids+=($!)
    done
done
wait "${pids[@]}"
cat /tmp/study/*/results.jsonl > "$OUT/results.jsonl" 2>/dev/null
wc -l "$OUT/results.jsonl"; tail -n 2 "$OUT"/logs/*.log
