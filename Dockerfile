# TinyZero-AStarPO on CPU: PyTorch's CPU build, the package with its runtime dependencies only (no
# tests, linters, HF or Modal extras: install.sh is the development setup), then the smoke test.
#   docker build -t tinyzero .
#   docker run --rm tinyzero              # one tiny RAGEN + A*PO update, prints a stats dict
#   docker run --rm tinyzero python train.py --config configs/default.yaml
# torch comes from PyTorch's CPU wheel index: the default of TORCH_INDEX_URL in install.sh (read from
# there, so the two never disagree), or --build-arg TORCH_INDEX_URL=<another CPU wheel index>. From the
# default package index pip would install the CUDA build on x86-64 Linux (GBs this image never uses),
# so the build stops if no index is found, and refuses a torch that turns out to be a CUDA build.
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=""
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/app/.venv/bin:$PATH

WORKDIR /app
COPY . .
RUN set -eu; \
    url="${TORCH_INDEX_URL:-$(sed -n 's/^TORCH_INDEX_URL=[$][{]TORCH_INDEX_URL:-\(.*\)[}]$/\1/p' install.sh)}"; \
    if [ -z "$url" ]; then echo "error: no CPU wheel index for torch: pass --build-arg TORCH_INDEX_URL=<PyTorch's CPU wheel index>" >&2; exit 2; fi; \
    python -m venv .venv; \
    .venv/bin/python -m pip install -q "torch==${TORCH_VERSION}" --index-url "$url"; \
    .venv/bin/python -m pip install -q .; \
    .venv/bin/python -c "import sys, torch; sys.exit(f'error: torch {torch.__version__} is a CUDA build: use a CPU wheel index' if torch.version.cuda else 0)"

CMD ["python", "scripts/run_smoke.py"]
