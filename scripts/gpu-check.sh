#!/usr/bin/env bash
# GPU readiness on a machine with CUDA: the capture contract tests, then the LoCE fit on the CPU vs the GPU
# (time per LoCE, CPU/GPU ratio, largest vector difference, the fit's peak GPU memory, the chunk budget chosen
# from the free GPU memory). Exits 2 with a message where there is no CUDA.
#   scripts/gpu-check.sh            # uses .venv/bin/python, or $PYTHON
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu-check: no CUDA device here (torch.cuda.is_available() is False); run this on a machine with a GPU" >&2
    exit 2
fi
"$PYTHON" -c "import torch; print('CUDA device:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
echo "== capture contract tests"
"$PYTHON" -m pytest tests/test_capture.py tests/test_layouts.py -q -p no:cacheprovider
echo "== fit: CPU vs CUDA"
"$PYTHON" benchmarks/fit_devices.py --device cuda
