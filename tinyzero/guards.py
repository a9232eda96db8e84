"""Run guards: Ctrl-C saves and exits, runaway non-finite steps stop the run, memory is measured.

Why a separate module: these are the pieces that keep an overnight run from being lost or silently
poisoned, and they are small enough to be read (and tested) on their own; the trainer only calls them.
docs/reliability.md says what each guarantees and how it is tested.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

import torch

from tinyzero.errors import Interrupted, UserError

try:  # Unix only; on other platforms the peak is simply not reported
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

__all__ = [
    "Interrupted",
    "StopOnInterrupt",
    "TrainingDiverged",
    "check_finite",
    "memory_metrics",
    "peak_rss_mb",
    "rss_mb",
]


class TrainingDiverged(UserError):
    """Too many consecutive non-finite steps, or non-finite weights: the run stops, nothing is saved."""


class StopOnInterrupt:
    """Context manager: the first Ctrl-C (SIGINT) asks the loop to stop after the current iteration.

    The loop then saves a checkpoint and raises ``Interrupted`` (exit code 130). Why not stop at once:
    mid-iteration the weights, optimizer and RNG are not at a consistent point, so the only state worth
    saving is the one at an iteration boundary. A second Ctrl-C stops immediately (KeyboardInterrupt);
    the previous checkpoint is then what ``--resume`` continues from. Outside the main thread (where
    Python cannot install handlers) this is a no-op.
    """

    def __init__(self, message: str = "stopping after this iteration; Ctrl-C again to stop now") -> None:
        self.requested = False
        self.message = message
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(f"\ninterrupt: {self.message}", file=sys.stderr, flush=True)

    def __enter__(self) -> StopOnInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False


def check_finite(modules: list[torch.nn.Module | None], what: str) -> None:
    """Raise TrainingDiverged if any parameter is NaN/inf: such weights must never reach a checkpoint."""
    for module in modules:
        if module is None:
            continue
        for name, p in module.named_parameters():
            if not bool(torch.isfinite(p).all()):
                raise TrainingDiverged(
                    f"{what}: parameter '{name}' is not finite (NaN/inf), so no checkpoint was written; "
                    f"lower training.lr and --resume from the last checkpoint"
                )


def rss_mb() -> float | None:
    """Current resident memory of this process in MiB (Linux /proc; None where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process in MiB since it started (``getrusage``)."""
    if resource is None:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def memory_metrics(device: torch.device) -> dict[str, float]:
    """The per-iteration memory figures: ``memory/rss_mb``, ``memory/peak_rss_mb``, on CUDA
    ``memory/cuda_peak_mb`` (peak allocated by torch since the run started)."""
    out: dict[str, float] = {}
    rss, peak = rss_mb(), peak_rss_mb()
    if peak is not None and rss is not None:
        peak = max(peak, rss)  # the kernel updates its high-water mark lazily: never report peak < now
    for key, value in (("memory/rss_mb", rss), ("memory/peak_rss_mb", peak)):
        if value is not None:
            out[key] = round(value, 1)
    if device.type == "cuda":
        out["memory/cuda_peak_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out
