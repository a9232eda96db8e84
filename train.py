"""Train a tiny LM with RL on a checkable task.

    python train.py --config configs/default.yaml                      # A*PO on FrozenLake
    python train.py --config configs/countdown.yaml algorithm.name=grpo # any key can be overridden
    python train.py --config configs/default.yaml --resume             # continue an interrupted run
    torchrun --nproc_per_node=2 train.py --config configs/default.yaml # data-parallel (docs/scaling.md)

The first run of a task pre-trains its base model (cached under .cache/base_models/).
"""

from __future__ import annotations

import sys
from typing import Any

from tinyzero.errors import Interrupted, require_packages, run_cli

require_packages()  # one line naming the fix (e.g. activate .venv) instead of a ModuleNotFoundError

from tinyzero.cli import config_from_args, config_parser, rerun_command  # noqa: E402
from tinyzero.pretrain import format_report  # noqa: E402
from tinyzero.resume import resume_config  # noqa: E402
from tinyzero.rollout import Episode  # noqa: E402


def compute_reward(task: Any, episode: Episode) -> float:
    """The reward every algorithm optimises. Edit this to change shaping.

    ``episode.reward`` is the environment's reward summed over turns (countdown/multiplication:
    1.0 correct, 0.1 well-formed but wrong, 0.0 otherwise; FrozenLake: +1 at the goal, minus
    ``task.invalid_penalty`` per unparseable turn). Other useful fields: ``episode.success``,
    ``episode.format_ok``, ``len(episode.turns)``, ``episode.actions`` (the texts the model wrote).
    """
    return episode.reward


def main() -> int:
    parser = config_parser(__doc__)
    parser.add_argument("--resume", action="store_true", help="continue from runs/<name>/checkpoints/latest")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    args = parser.parse_args()
    if args.resume:  # the run's saved config, not the command line's: the same run goes on
        cfg, notes = resume_config(args.config, args.overrides)
        for note in notes:
            print(note)
    else:
        cfg = config_from_args(args)

    from tinyzero.trainer import TinyZeroTrainer  # heavy imports after the config is known to be valid

    trainer = TinyZeroTrainer(
        cfg, reward_fn=compute_reward, resume=args.resume, progress=not args.no_progress
    )
    if trainer.dist.is_main:  # under torchrun only rank 0 reports
        print(format_report(trainer.base_report))
        if trainer.resumed_from is not None:
            print(f"resuming from {trainer.resumed_from} (iteration {trainer.iteration})")
    try:
        summary = trainer.train()
    except Interrupted as e:  # Ctrl-C: say exactly what continues the run
        command = rerun_command(sys.argv, trainer.dist.world_size, extra="--resume")
        raise Interrupted(f"{str(e).split(';')[0]}; continue with: {command}") from None
    if not trainer.dist.is_main:
        return 0
    base, final = summary["base/greedy_success"], summary.get("eval/greedy_success")
    print(
        f"done: {cfg.algorithm.name} on {cfg.task.name}, {summary['iterations']} iterations in "
        f"{summary['elapsed_s']:.0f}s; held-out greedy success {base:.3f} (base) -> {final:.3f}; "
        f"sampled {summary.get('eval/sampled_success', float('nan')):.3f}; run dir {summary['run']}"
    )
    return 0


if __name__ == "__main__":
    try:
        run_cli(main)
    finally:  # under torchrun: leave the process group even when this rank failed (NCCL can hang)
        from tinyzero.distributed import teardown

        teardown()
