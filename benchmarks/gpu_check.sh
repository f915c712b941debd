#!/usr/bin/env bash
# One-GPU check of the engine (<= 5 min on one H100, offline): ~120M-parameter LitGPT model,
# 50 steps in bf16-mixed on a demo-style plan and on an empty plan; prints tokens/s, MFU and
# the demo/empty ratio, then checks FSDP save/resume on the one GPU.
#
#   benchmarks/gpu_check.sh [--workdir DIR] [--compile] [--no-fsdp]
#   benchmarks/gpu_check.sh --cpu-smoke      # tiny model, few steps, CPU (the tests run this)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-$here/../.venv/bin/python}"
[ -x "$python" ] || python="$(command -v python3)"
exec "$python" "$here/gpu_check.py" "$@"
