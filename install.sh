#!/usr/bin/env bash
# Creates .venv (or $VENV) and installs tinyzero with its dev tools.
# CPU machines get the CPU build of PyTorch first, so pip never pulls a multi-GB CUDA build;
# on a machine with an NVIDIA GPU, or a venv that already has torch (CUDA or not), torch is left to the user.
#   bash install.sh            # CPU: torch==2.13.0 (set TORCH_INDEX_URL to PyTorch's CPU wheel index if your
#                              # default index only serves CUDA builds)
#   VENV=myenv bash install.sh
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@"; }
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    pip install -q "torch>=2.4"
  else
    pip install -q "torch==${TORCH_VERSION:-2.13.0}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
  fi
fi
pip install -q -e ".[dev]"
"$VENV/bin/python" -c "import torch, tinyzero; print(f'installed tinyzero with torch {torch.__version__} in $VENV')"
