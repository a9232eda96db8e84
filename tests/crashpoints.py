"""Run train.py and SIGKILL it at an exact point of its file writes (used by tests/test_reliability.py).

    python tests/crashpoints.py POINT N train.py-arguments...

Random-time kills mostly land in sampling, where the disk is not being touched; the points below are
the moments where a kill could damage what is on disk, so the tests hit each of them on purpose. The
process kills itself with a real SIGKILL (no cleanup, no finally blocks, no flushing of Python buffers):

    mid_weights   the Nth checkpoint: half of model.safetensors written
    mid_optimizer the Nth checkpoint: model written, half of optimizer.pt written
    renamed       the Nth checkpoint renamed into place, ``latest`` not yet updated
    pruning       after the Nth checkpoint: an old checkpoint half deleted while pruning
    mid_metrics   the Nth metrics.jsonl line half written
    optimizer     inside the Nth optimizer step, after the parameters were updated
"""

from __future__ import annotations

import io
import os
import runpy
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install(point: str, n: int) -> None:
    import torch

    import tinyzero.checkpoint as ckpt
    import tinyzero.metrics as metrics
    import tinyzero.models.io as model_io

    calls = {"count": 0}

    def nth() -> bool:
        calls["count"] += 1
        return calls["count"] == n

    def write_half(path: str | os.PathLike, data: bytes) -> None:
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
        die()

    if point == "mid_weights":
        original_save_model = model_io.save_model

        def save_model(model, filename, *args, **kwargs):
            if ".tmp_iter_" in str(filename) and nth():
                tmp = str(filename) + ".full"
                original_save_model(model, tmp, *args, **kwargs)
                write_half(filename, Path(tmp).read_bytes())
            return original_save_model(model, filename, *args, **kwargs)

        model_io.save_model = save_model
    elif point == "mid_optimizer":
        original_torch_save = torch.save

        def torch_save(obj, f, *args, **kwargs):
            if str(f).endswith("optimizer.pt") and nth():
                buf = io.BytesIO()
                original_torch_save(obj, buf, *args, **kwargs)
                write_half(f, buf.getvalue())
            return original_torch_save(obj, f, *args, **kwargs)

        torch.save = torch_save
    elif point == "renamed":
        original_write = ckpt._atomic_write_text

        def atomic_write_text(path, text):
            if nth():
                die()
            return original_write(path, text)

        ckpt._atomic_write_text = atomic_write_text
    elif point == "pruning":
        original_rmtree = ckpt.shutil.rmtree

        def rmtree(path, *args, **kwargs):
            p = Path(path)
            if p.name.startswith("iter_") and p.is_dir() and nth():
                files = sorted(p.iterdir())
                for f in files[: len(files) // 2]:
                    f.unlink()
                die()
            return original_rmtree(path, *args, **kwargs)

        ckpt.shutil.rmtree = rmtree
    elif point == "mid_metrics":
        original_log = metrics.MetricsLogger.log

        def log(self, record):
            if nth():
                line = metrics.json.dumps(record) + "\n"
                self._file.write(line[: len(line) // 2])
                self._file.flush()
                die()
            return original_log(self, record)

        metrics.MetricsLogger.log = log
    elif point == "optimizer":
        original_step = torch.optim.AdamW.step

        def step(self, *args, **kwargs):
            out = original_step(self, *args, **kwargs)
            if nth():
                die()
            return out

        torch.optim.AdamW.step = step
    else:
        raise SystemExit(f"unknown crash point {point!r}")


def main() -> None:
    point, n, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    install(point, n)
    sys.argv = [str(ROOT / "train.py"), *args]
    sys.path.insert(0, str(ROOT))
    runpy.run_path(str(ROOT / "train.py"), run_name="__main__")


if __name__ == "__main__":
    main()
