"""Smoke test: build the trainer from configs/smoke.yaml, collect a few short trajectories, do one
update of the chosen algorithm (RAGEN by default), print a small stats dict and an OK line.
Well under a minute on 2 CPU cores.

    python scripts/run_smoke.py
    python scripts/run_smoke.py algorithm.name=grpo           # any config key, as in train.py
    python scripts/run_smoke.py task.name=countdown

It checks that the pipeline runs end to end (base model, rollouts, rewards, the algorithm's loss,
one optimizer step with finite loss and gradients). It does not check learning: the smoke base model
is pre-trained for 40 steps and one update cannot teach it anything, so success 0.0 is expected.
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tinyzero.errors import require_packages, run_cli  # noqa: E402 - stdlib only: works before any install


def main() -> int:
    require_packages()  # one line naming what to install, instead of a ModuleNotFoundError
    from tinyzero.cli import _Parser
    from tinyzero.config import load_config
    from tinyzero.trainer import TinyZeroTrainer

    parser = _Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. algorithm.name=grpo")
    args = parser.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        # A temporary run directory: the smoke test never leaves a run behind (the base model is cached).
        cfg = load_config(
            ROOT / "configs" / "smoke.yaml", ["algorithm.name=ragen", *args.overrides, f"run.out_dir={tmp}"]
        )
        trainer = TinyZeroTrainer(cfg, progress=False)
        loss, metrics, grad_norm = trainer.update()
    stats = {
        "algorithm": cfg.algorithm.name,
        "task": cfg.task.name,
        "loss": round(float(loss.detach()), 4),
        "grad_norm": round(grad_norm, 4),
        "reward_mean": round(metrics["reward/mean"], 3),
        "success": round(metrics["success"], 3),
        "v_star_mean": round(metrics["v_star/mean"], 3) if "v_star/mean" in metrics else None,
        "kl": round(metrics["kl"], 4) if "kl" in metrics else None,
        "entropy": round(metrics["entropy"], 3),
        "trajectories": cfg.astarpo.num_trajectories,
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(stats)
    if not (math.isfinite(stats["loss"]) and math.isfinite(stats["grad_norm"])):
        print(f"FAILED: the {cfg.algorithm.name} update gave a non-finite loss or gradient", file=sys.stderr)
        return 1
    print(
        f"OK: {cfg.algorithm.name} on {cfg.task.name}: base model, {stats['trajectories']} rollouts, "
        f"rewards, loss and one optimizer step all ran (finite loss and gradient norm). Success "
        f"{stats['success']} is expected at this budget (a 40-step base, one update); "
        f"`python train.py --config configs/default.yaml` is the run that learns."
    )
    return 0


if __name__ == "__main__":
    run_cli(main)
