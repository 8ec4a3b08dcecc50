#!/usr/bin/env bash
# One short run of every GPU path (proxy scoring, pgd-at training with AMP and channels_last,
# evaluation with attacks and corruptions, torchrun with NCCL on two GPUs or more), one line per
# path with its figures; under ten minutes on one GPU.
#   bash scripts/gpu_check.sh [--out benchmarks/results/gpu_check.md]   # on a GPU machine
#   bash scripts/gpu_check.sh --device cpu                              # the smoke mode (tiny scale)
# Options: --device cuda|cuda:N|cpu, --scale full|tiny, --data SPEC, --nproc N, --work DIR, --out FILE.
# Exits 2 at once when --device cuda is asked for and no CUDA device exists; 1 when a path fails.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" scripts/gpu_check.py "$@"
