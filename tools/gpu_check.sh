#!/usr/bin/env bash
# The GPU check on a bare GPU machine (tools/gpu_check.py does the work; see its docstring).
#
#   bash tools/prepare_gpu_check.sh            # once, where pip can download: gpu_check/wheels
#   bash tools/gpu_check.sh                    # on the GPU machine; report in $OUT (or work_dirs/gpu_check)
#   bash tools/gpu_check.sh --device cpu --tiny --out /tmp/gpu_check    # the same path on a CPU
#
# Uses $PYTHON, else python3 (on the GPU machine: the preinstalled Python that holds PyTorch).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec "${PYTHON:-python3}" tools/gpu_check.py "$@"
