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
# torch first, pinned to a CPU build, so that nothing pulls the CUDA wheels
# (torchvision is not needed: robnas reads the official data formats itself)
.venv/bin/python -m pip install -q "torch==2.13.*"
.venv/bin/python -m pip install -q -e ".[dev]"
echo "robnas installed in $(pwd)/.venv"
