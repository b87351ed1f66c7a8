#!/usr/bin/env bash
# The accelerator check (benchmarks/device_check.py): on a GPU or TPU machine, the device-relevant
# tests, the benchmarks, a GPT-style bf16 step's MFU and a Transformer LM trained to its target
# loss, within about 8 minutes. `--cpu`: the short mode CI runs (under a minute).
#
#   scripts/device_check.sh [--cpu] [--json report.json] [--skip tests,bench] [--peak-tflops F]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec timeout 480 "$PYTHON" -m benchmarks.device_check "$@"
