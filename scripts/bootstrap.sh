#!/usr/bin/env bash
# Create ./.venv with a CPU build of PyTorch and robnas (editable, with test tools).
# Idempotent: a second run only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# torch pinned to its CPU build for every step, so that nothing pulls the CUDA wheels
.venv/bin/python -m pip install -q -c scripts/constraints-cpu.txt torch
.venv/bin/python -m pip install -q -c scripts/constraints-cpu.txt -e ".[dev,ray,postgres,onnx]"
echo "robnas installed in $(pwd)/.venv"
