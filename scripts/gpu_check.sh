#!/usr/bin/env bash
# The GPU measurements in one run of about 8 minutes on a GPU machine (prepare with
# scripts/gpu_carry.sh). Writes into $OUT (or out/gpu):
#   device_step-cuda.json  eager vs the whole step in one CUDA graph (--cuda-graph): ms/step, images/s,
#                          GPU-busy share, launches
#   seeds-cuda.json        1 against 8 seeds side by side, graphed: ms per model-step
#   sampling-cuda.json     torch CUDA (and onnxruntime-gpu's CUDA provider when installed) images/s
#   train.log, metrics.jsonl, train.json   the reference preset trained on the GPU, timed
# GPU_CHECK_DEVICE=cpu runs the same steps on the CPU with tiny settings (a dry run of the script).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
mkdir -p "$OUT"
PY=python3
if [ "$DEVICE" = cuda ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
    source scripts/gpu_setup.sh  # the project and the carried wheels; sets PY
    STEPS=100; WARMUP=20; PRESET_ARGS=(--preset mnist-fashion)
else
    PY=${PYTHON:-.venv/bin/python}
    STEPS=3; WARMUP=2; PRESET_ARGS=(--preset mnist-fashion --quick --steps-per-domain 20)
fi
$PY -c "import torch, lifelong_gen; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), lifelong_gen.__file__)"

# 1. The step: eager against the whole step in one CUDA graph (--cuda-graph), deterministic and
# fastest kernels. GPU_CHECK_VARIANTS changes the list, e.g. eager,whole-graph,compiled,graphed
# (torch.compile's variants take minutes to compile; their figures are in benchmarks/device_step-cuda.json).
timeout 330 $PY benchmarks/device_step.py --device "$DEVICE" --steps $STEPS --warmup $WARMUP \
    --variants "${GPU_CHECK_VARIANTS:-eager,whole-graph,whole-graph-fastest}" \
    --out "$OUT/device_step-$DEVICE.json" 2>&1 | grep -v "^W1" | tail -8

# 1b. Seeds side by side on the GPU, each step one CUDA graph on a stream of its own: 1 against 8
# (target: 8 seeds <= 1.5 ms per model-step).
if [ "$DEVICE" = cuda ]; then
    timeout 150 $PY benchmarks/seeds.py --device cuda --cuda-graph --counts 1,8 --steps 50 --warmup 5 --rounds 2 \
        --out "$OUT/seeds-cuda.json" 2>&1 | grep -v "^W1" | tail -3
fi

# 2. Sampling on the GPU (torch CUDA; onnxruntime-gpu only if the image has it).
if [ "$DEVICE" = cuda ]; then SAMPLING_ARGS=(); else SAMPLING_ARGS=(--rounds 1 --seconds 0.2 --cold-runs 1 --batches 1,64); fi
timeout 60 $PY benchmarks/sampling.py --device "$DEVICE" "${SAMPLING_ARGS[@]}" --out "$OUT/sampling-$DEVICE.json" 2>&1 | tail -4

# 3. The reference preset end to end with the fastest variant of step 1, on real data when carried.
BEST=($($PY -c "import json,sys; v=json.load(open(sys.argv[1]))['variants']; b=min(v.values(), key=lambda r: r['ms_per_generator_step']); print('--compile', b['compile'], '' if b['cuda_deterministic'] else '--cuda-fastest', '--cuda-graph' if b.get('cuda_graph') else '')" "$OUT/device_step-$DEVICE.json" 2>/dev/null || echo --compile off))
DATA=()
[ -d .gpu_carry/data ] && DATA=(--data-root .gpu_carry/data)
rm -rf /tmp/gpu-run  # a fresh run each time (a dry run here leaves one)
start=$(date +%s.%N)
# -P: without it `python -m` puts the checkout first on sys.path, whose lifelong_gen/ lacks the
# cli package (pyproject maps the top-level cli/ into it), so the installed copy must win.
# GPU_CHECK_TRAIN_ARGS adds flags (e.g. a shorter --steps-per-domain), GPU_CHECK_TRAIN_S the limit.
# Eager, the whole preset took about 12.5 minutes on an H200; the target graphed is 3 minutes, so the
# default 200 s shows whether it holds (a cut-off run's metrics.jsonl still gives its seconds per step).
timeout "${GPU_CHECK_TRAIN_S:-200}" $PY -P -m lifelong_gen.cli train "${PRESET_ARGS[@]}" --device "$DEVICE" "${BEST[@]}" ${GPU_CHECK_TRAIN_ARGS:-} \
    "${DATA[@]}" --no-download --no-progress --out /tmp/gpu-run > "$OUT/train.log" 2>&1
rc=$?
end=$(date +%s.%N)
cp /tmp/gpu-run/metrics.jsonl "$OUT/" 2>/dev/null
$PY -c "import json,sys; print(json.dumps({'exit_code': int(sys.argv[1]), 'wall_s': round(float(sys.argv[3]) - float(sys.argv[2]), 1), 'args': sys.argv[4:]}))" \
    $rc "$start" "$end" "${PRESET_ARGS[@]}" "${BEST[@]}" ${GPU_CHECK_TRAIN_ARGS:-} "${DATA[@]}" | tee "$OUT/train.json"
tail -3 "$OUT/train.log"
