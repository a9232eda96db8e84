"""``evaluate.py --compare``: one markdown table of several runs, from what each run logged itself."""

from __future__ import annotations

from pathlib import Path

from tinyzero.evaluation.schema import _f
from tinyzero.runs import run_info

COMPARE_COLUMNS = (
    "run",
    "algorithm",
    "task",
    "iterations",
    "greedy success (base → final)",
    "sampled success (1 try per problem)",
    "wall-clock (s)",
    "generated tokens",
    "KL to π_ref (last training batch)",
)
# Why --compare and evaluate.py --checkpoint can disagree on the same checkpoint: say it under the table.
COMPARE_NOTE = (
    "Figures from each run's own held-out evaluations during training (metrics.jsonl / summary.json): "
    "greedy and ONE sampled try per problem, on `training.eval_problems` problems; the KL is the last "
    "training batch's (on training rollouts). `evaluate.py --checkpoint` samples K tries per problem "
    "(`--samples`, 8) with its own seed and measures the KL on held-out sampled episodes, so its sampled "
    "success and KL differ from these."
)


def compare_runs(run_dirs: list[str | Path]) -> tuple[list[dict], str]:
    """(one info dict per run, a markdown table of them)."""
    infos = [run_info(r) for r in run_dirs]
    lines = ["| " + " | ".join(COMPARE_COLUMNS) + " |", "|" + "---|" * len(COMPARE_COLUMNS)]
    for i in infos:
        tokens = (
            f"{i['generated_tokens']:,}"
            if isinstance(i["generated_tokens"], int)
            else _f(i["generated_tokens"])
        )
        cells = [
            i["run"] + ("" if i["finished"] else " (running)"),
            _f(i["algorithm"]),
            _f(i["task"]),
            _f(i["iterations"]),
            f"{_f(i['base_greedy'])} → {_f(i['final_greedy'])}",
            _f(i["final_sampled"]),
            _f(i["elapsed_s"], 1),
            tokens,
            _f(i["kl"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return infos, "\n".join([*lines, "", COMPARE_NOTE]) + "\n"
