"""Small, dependency-free metric helpers shared by pre-training, training and evaluation."""

from __future__ import annotations

import json
from collections.abc import Sequence
from math import comb


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c successes: 1 − C(n−c, k) / C(n, k) (Chen et al., 2021)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else 0.0


def std(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    m = mean(values)
    return float((sum((v - m) ** 2 for v in values) / len(values)) ** 0.5)


def _iteration(line: str) -> float:
    """A logged line's iteration; +inf for a blank or torn line (a run killed mid-write), so it is dropped."""
    try:
        return float(json.loads(line).get("iteration", 0))
    except (ValueError, AttributeError):
        return float("inf")


class MetricsLogger:
    """One place every metric goes: ``metrics.jsonl`` (always), TensorBoard and wandb (optional).

    The same names are used by every algorithm (``reward/mean``, ``success``, ``kl``, ``entropy``,
    ...) so runs compare directly, in TensorBoard and in ``evaluate.py --plot``.
    """

    def __init__(
        self, run_dir, tensorboard: bool = True, wandb_cfg: dict | None = None, resume_from: int = 0
    ):
        import json
        from pathlib import Path

        self._json = json
        self.path = Path(run_dir) / "metrics.jsonl"
        if self.path.exists():  # drop lines logged after the checkpoint we resume from: no duplicates
            kept = [ln for ln in self.path.read_text().splitlines() if _iteration(ln) <= resume_from]
            self.path.write_text("".join(ln + "\n" for ln in kept))
        self._file = open(self.path, "a")  # noqa: SIM115 - closed in close()
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))
        self._wandb = None
        if wandb_cfg is not None:
            import wandb  # optional extra: pip install -e .[wandb]

            self._wandb = wandb.init(dir=str(run_dir), **wandb_cfg)

    def log(self, record: dict) -> None:
        self._file.write(self._json.dumps(record) + "\n")
        self._file.flush()
        step = int(record.get("iteration", 0))
        scalars = {k: v for k, v in record.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log(scalars, step=step)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
