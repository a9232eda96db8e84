#!/usr/bin/env bash
# Creates .venv (or $VENV) and installs tinyzero with its dev tools (tests, linter, HF/Modal extras).
#
# Which PyTorch it installs (only when the venv has none yet; an existing torch, CUDA or not, is kept):
#   - no NVIDIA GPU: the CPU build of torch==$TORCH_VERSION (~200 MB) from PyTorch's CPU wheel index
#     ($TORCH_INDEX_URL). If that index cannot be reached, one line says so and torch comes from your
#     default package index instead: on Linux x86-64 that is the CUDA build (~3 GB with its CUDA
#     libraries), elsewhere (macOS, Windows, Linux ARM) the CPU build.
#   - an NVIDIA GPU (nvidia-smi lists one): torch==$TORCH_VERSION from your default index, the CUDA build.
#
#   bash install.sh
#   VENV=myenv bash install.sh
#   TORCH_INDEX_URL=https://my.mirror/whl/cpu bash install.sh     # another CPU wheel index
#   INSTALL_DRY_RUN=1 bash install.sh    # print the torch install command it would run, install nothing
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
TORCH_INDEX_URL=${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}

# Succeeds when the index answers within a few seconds; an unreachable one must not stall pip's retries.
reachable() {
  "$PYTHON" - "$1" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(sys.argv[1].rstrip("/") + "/torch/", timeout=5)
EOF
}

# The pip arguments that install torch on this machine (see the header).
torch_args() {
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "torch==$TORCH_VERSION"
  elif reachable "$TORCH_INDEX_URL"; then
    echo "torch==$TORCH_VERSION --index-url $TORCH_INDEX_URL"
  else
    echo "install.sh: PyTorch's CPU wheel index ($TORCH_INDEX_URL) cannot be reached; installing" \
      "torch==$TORCH_VERSION from the default index (on Linux x86-64 usually the ~3 GB CUDA build)" >&2
    echo "torch==$TORCH_VERSION"
  fi
}

if [ -n "${INSTALL_DRY_RUN:-}" ]; then
  echo "pip install $(torch_args)"
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@"; }
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  # shellcheck disable=SC2046  # torch_args is a list of words on purpose
  pip install -q $(torch_args)
fi
pip install -q -e ".[dev]"
"$VENV/bin/python" -c "import torch, tinyzero; print(f'installed tinyzero with torch {torch.__version__} in $VENV')"
