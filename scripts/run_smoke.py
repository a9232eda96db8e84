"""Smoke test: build the trainer from configs/smoke.yaml, collect a few short trajectories, do one
RAGEN update and print a small stats dict. Well under a minute on 2 CPU cores.

    python scripts/run_smoke.py
"""

from __future__ import annotations

import importlib
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REQUIRED = {  # import name → pip package
    "torch": "torch",
    "numpy": "numpy",
    "gymnasium": "gymnasium",
    "omegaconf": "omegaconf",
    "safetensors": "safetensors",
    "tqdm": "tqdm",
}


def check_imports() -> list[str]:
    """Names of missing packages (so we can say what to install instead of printing a traceback)."""
    missing = []
    for module, package in REQUIRED.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(package)
    return missing


def main() -> int:
    missing = check_imports()
    if missing:
        print(
            f"error: missing package(s): {', '.join(missing)}; install with `bash install.sh` "
            f"(or `pip install -e .` in an environment that already has torch)",
            file=sys.stderr,
        )
        return 2
    from tinyzero.algorithms import ragen_astarpo
    from tinyzero.config import load_config
    from tinyzero.trainer import TinyZeroTrainer

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(ROOT / "configs" / "smoke.yaml", [f"run.out_dir={tmp}", "algorithm.name=ragen"])
        trainer = TinyZeroTrainer(cfg, progress=False)
        loss, metrics = ragen_astarpo.step(trainer)
        grad_norm = trainer.optimize(loss)
    stats = {
        "loss": round(float(loss.detach()), 4),
        "grad_norm": round(grad_norm, 4),
        "reward_mean": round(metrics["reward/mean"], 3),
        "success": round(metrics["success"], 3),
        "v_star_mean": round(metrics["v_star/mean"], 3),
        "kl": round(metrics["kl"], 4),
        "entropy": round(metrics["entropy"], 3),
        "trajectories": cfg.astarpo.num_trajectories,
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(stats)
    return 0


if __name__ == "__main__":
    from tinyzero.errors import run_cli

    run_cli(main)
