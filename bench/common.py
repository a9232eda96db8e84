"""What every benchmark shares: the machine's matmul ceiling, a description of the machine, the JSON.

Kept in one place so that every ``bench/*.py`` measures the peak the same way and records the same
machine facts beside its figures (results from different scripts then compare).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import torch


def matmul_peak_gflops(n: int = 2048, tries: int = 5, dtype: torch.dtype = torch.float32) -> float:
    """Best GFLOP/s of an (n × n) @ (n × n) matmul in ``dtype`` over ``tries`` runs (after one warm-up).

    The machine's practical compute ceiling: achieved GFLOP/s are reported as a fraction of it.
    """
    a, b, c = (torch.randn(n, n).to(dtype) for _ in range(3))
    torch.mm(a, b, out=c)
    best = float("inf")
    for _ in range(tries):
        start = time.perf_counter()
        torch.mm(a, b, out=c)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def memory_read_gbps(mib: int = 256, tries: int = 5) -> float:
    """Best GB/s of summing a ``mib`` MiB fp32 tensor (far larger than the caches): the read bandwidth
    one process gets from memory here, the ceiling of a step that has to stream its data once."""
    x = torch.randn(mib * 2**20 // 4)
    x.sum()
    best = float("inf")
    for _ in range(tries):
        start = time.perf_counter()
        x.sum()
        best = min(best, time.perf_counter() - start)
    return x.numel() * 4 / best / 1e9


def machine_info(**extra: str) -> dict:
    """torch version, threads, CPU count and platform, plus any ``extra`` versions (e.g. transformers)."""
    return dict(
        torch=torch.__version__,
        **extra,
        threads=torch.get_num_threads(),
        cpu_count=os.cpu_count(),
        platform=platform.platform(),
        processor=platform.processor() or platform.machine(),
        python=platform.python_version(),
    )


def write_results(results: dict, out: str | Path) -> Path:
    """Write the JSON (parents created) and say where."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {path}")
    return path


def isolate_base(base: Path, work: Path) -> str:
    """Copy the base model directory ``base`` into a cache of its own under ``work``; its path, for
    ``pretrain.cache_dir``.

    Why: a run on that cache computes (and pays) A*PO's stage 1 instead of reading the V* table an
    earlier run left in the user's cache, and leaves the user's cached tables alone.
    """
    own = work / "base_models"
    shutil.copytree(base, own / base.name)
    return str(own)


def shown_path(path: Path, root: Path) -> str:
    """``path`` relative to the repository ``root`` when it lies inside it (as results name configs)."""
    path = path.resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def require_cpp_compiler(flag: str = "--compile") -> None:
    """Exit in one line (status 2) where ``flag`` asks for torch.compile on CPU and no C++ compiler is
    installed: inductor would otherwise fail minutes later with a long traceback."""
    from tinyzero.trainer import has_cpp_compiler

    if not has_cpp_compiler():
        print(
            f"error: {flag} needs a C++ compiler (g++/clang++) for torch.compile's CPU backend: "
            f"install one (e.g. apt-get install g++) or leave out {flag}",
            file=sys.stderr,
        )
        sys.exit(2)
