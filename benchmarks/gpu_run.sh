#!/usr/bin/env bash
# Seed presets x classification losses x AMP on/off on one CUDA GPU (benchmarks/gpu_presets.py),
# sized for ~8 minutes of an H200: 8 presets x 4 losses x 2 = 64 cases of 2 untimed + 5 timed
# training iterations and as many inference images; no new case starts after BUDGET_S seconds,
# so the section is written even when the GPU is slower than expected (skipped cases say so).
#
#   bash benchmarks/gpu_run.sh                  # from anywhere; the repository's .venv
#   PY=/path/to/python ITERS=10 bash benchmarks/gpu_run.sh
#   DEVICE=cpu bash benchmarks/gpu_run.sh --tiny     # the script's own check, without a GPU
#
# Installs nothing and downloads nothing (random weights). Writes the gpu_presets section of
# benchmarks/RESULTS.md, then prints it. CKPT_DIR=DIR also times the published models whose
# checkpoint files DIR holds (the published_inference section).
set -euo pipefail

cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
ITERS=${ITERS:-5}
WARMUP=${WARMUP:-2}
BUDGET_S=${BUDGET_S:-420}
DEVICE=${DEVICE:-cuda}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's lvisnb, installed or not

if [[ $DEVICE == cuda* ]]; then
    "$PY" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"; print(torch.cuda.get_device_name(0), "torch", torch.__version__)'
    nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv || true
fi

"$PY" benchmarks/gpu_presets.py --device "$DEVICE" --iters "$ITERS" --warmup "$WARMUP" \
    --budget-s "$BUDGET_S" --write "$@"

# mmdetection's published models (benchmarks/published_inference.py): only with their files at
# hand (CKPT_DIR=folder of the published .pth files), as a device machine has no network
if [[ -n "${CKPT_DIR:-}" ]]; then
    "$PY" benchmarks/published_inference.py --device "$DEVICE" --checkpoint-dir "$CKPT_DIR" --write
fi

echo
echo "---- benchmarks/RESULTS.md, section gpu_presets ----"
"$PY" -c 'import sys; sys.path.insert(0, "benchmarks"); from _results import read_section; print(read_section("gpu_presets"))'
