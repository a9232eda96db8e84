"""One rank of tests/test_distributed.py, started by torchrun (not collected by pytest on its own).

    torchrun --nproc_per_node=2 tests/dist_worker.py OUT CACHE STRATEGY ALGORITHM [stage1] [key=value ...]

On every rank it (1) trains run "a" for two iterations, recording the prompts and episodes this rank
sampled, (2) trains run "b" for one iteration, then resumes it to two, and (3) with ``stage1`` as a
fifth argument builds a fresh A*PO V* table. It saves what the test compares into OUT/rank<r>.pt.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import distributed as dist

from tinyzero import distributed
from tinyzero.config import load_config
from tinyzero.trainer import TinyZeroTrainer

ROOT = Path(__file__).resolve().parents[1]


class RecordingTrainer(TinyZeroTrainer):
    """Keeps, per iteration, the prompts this rank drew and the policy episodes it sampled."""

    def __init__(self, *args, **kwargs) -> None:
        self.recorded: list[dict] = []
        super().__init__(*args, **kwargs)

    def sample_problems(self, n: int) -> list:
        problems = super().sample_problems(n)
        self.recorded.append({"problems": problems, "episodes": []})
        return problems

    def rollout(self, problems, model, generator=None, greedy=False):
        episodes = super().rollout(problems, model, generator, greedy)
        if model is self.policy:
            self.recorded[-1]["episodes"] = episodes
        return episodes


def overrides(out: Path, cache: Path, strategy: str, algorithm: str, *extra: str) -> list[str]:
    return [
        f"run.out_dir={out}",
        f"pretrain.cache_dir={cache}",
        "run.device=cpu",
        "run.threads=1",
        f"algorithm.name={algorithm}",
        f"distributed.strategy={strategy}",
        "training.entropy_coef=0.05",  # large enough that the token-level mean's normalisation matters
        *extra,
    ]


def main() -> None:
    out, cache, strategy, algorithm = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    smoke = ROOT / "configs" / "smoke.yaml"

    settings = [a for a in sys.argv[5:] if "=" in a]  # extra config overrides for every run

    def cfg(*extra: str):
        return load_config(smoke, overrides(out, cache, strategy, algorithm, *settings, *extra))

    a = RecordingTrainer(cfg("run.name=a"), progress=False)
    a.train()
    trainer_b = TinyZeroTrainer(cfg("run.name=b", "training.total_iterations=1"), progress=False)
    trainer_b.train()
    b = TinyZeroTrainer(cfg("run.name=b"), resume=True, progress=False)
    b.train()
    result = {
        "world_size": a.dist.world_size,
        "strategy": a.dist.strategy,
        "weights_a": distributed.full_state_dict(a.policy),
        "weights_b": distributed.full_state_dict(b.policy),
        "gen_a": a.gen.get_state(),
        "gen_b": b.gen.get_state(),
        "resumed_from": 1,
        "recorded": a.recorded,
    }
    if "stage1" in sys.argv[5:]:
        s1 = TinyZeroTrainer(
            load_config(
                smoke,
                overrides(out, cache, strategy, "astarpo", "run.name=s1", "astarpo.beta=0.3"),
            ),
            progress=False,
        )
        from tinyzero.algorithms.astarpo import build_v_star_table

        # 64 prompts: 4 chunks dealt to the ranks; the tokens are those of both ranks
        result["v_star"], result["stage1_tokens"] = build_v_star_table(s1.cfg, s1.preparation(), chunk=16)
    torch.save(result, out / f"rank{a.dist.rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
