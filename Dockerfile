# TinyZero-AStarPO on CPU: the README's install (bash install.sh), then the smoke test.
#   docker build -t tinyzero .            (add --build-arg TORCH_INDEX_URL=<PyTorch's CPU wheel index>
#                                          if your default index only serves CUDA builds of torch)
#   docker run --rm tinyzero              # one tiny RAGEN + A*PO update, prints a stats dict
#   docker run --rm tinyzero python train.py --config configs/default.yaml
FROM python:3.11-slim

ARG TORCH_INDEX_URL=""
ENV TORCH_INDEX_URL=${TORCH_INDEX_URL} \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/app/.venv/bin:$PATH

WORKDIR /app
COPY . .
RUN bash install.sh

CMD ["python", "scripts/run_smoke.py"]
