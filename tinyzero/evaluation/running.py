"""Running the held-out evaluation: one greedy and K sampled episodes per problem, then the figures.

``evaluate_source`` turns a ``Source`` into the JSON document described in the package docstring
(figures, pass@k, groups, the fixed-plan check, KL, failure counts) and keeps the episodes for reports.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from tinyzero.config import Config
from tinyzero.environments import make_task
from tinyzero.environments.base import Task
from tinyzero.errors import UserError
from tinyzero.evaluation.episodes import Record, count_failures, episode_figures, reads_map
from tinyzero.evaluation.schema import SCHEMA_VERSION
from tinyzero.evaluation.source import Source, load_reference
from tinyzero.metrics import mean, pass_at_k
from tinyzero.rollout import Episode, SamplingSettings, run_episodes

CHUNK = 256  # episodes per batched rollout call: bounds the KV cache's memory


@dataclass
class Evaluation:
    """The figures and the episodes behind them: the report's failure examples need both."""

    figures: dict  # the JSON document (see the package docstring)
    records: list[Record]
    source: Source


def _group_tasks(cfg: Config, sizes: list[int] | None, slippery: list[bool] | None) -> list[tuple[str, Task]]:
    """(group name, task) for every (map size, slipperiness) asked for; one group for other tasks."""
    if cfg.task.name != "frozenlake":
        if sizes or slippery:
            raise UserError(f"--sizes/--slippery apply to frozenlake only, this is a {cfg.task.name} model")
        return [(cfg.task.name, make_task(cfg.task))]
    out = []
    trained = make_task(dataclasses.replace(cfg.task, sizes=[]))  # its horizon rule scales the turns
    for size in sizes or cfg.task.sizes or [cfg.task.size]:
        if not 2 <= size <= 12:
            raise UserError(f"--sizes {size}: map sizes must be 2..12")
        turns = trained.turns_for(size)
        for slip in slippery if slippery is not None else [cfg.task.is_slippery]:
            tcfg = dataclasses.replace(cfg.task, size=size, sizes=[], is_slippery=slip, max_turns=turns)
            name = f"{size}x{size} {'slippery' if slip else 'not slippery'}"
            if turns != cfg.task.max_turns:
                name += f", {turns} turns"
            out.append((name, make_task(tcfg)))
    return out


def _chunked_episodes(
    model: torch.nn.Module,
    tok: Any,
    task: Task,
    problems: list,
    sampling: SamplingSettings,
    gen: torch.Generator,
    bar: tqdm | None = None,
) -> list[Episode]:
    out: list[Episode] = []
    for i in range(0, len(problems), CHUNK):
        out += run_episodes(model, tok, task, problems[i : i + CHUNK], sampling, gen)
        if bar is not None:
            bar.update(len(problems[i : i + CHUNK]))
    return out


def _pass_ks(k: int) -> list[int]:
    ks, p = [], 1
    while p < k:
        ks.append(p)
        p *= 2
    return [*ks, k]


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


@torch.no_grad()
def kl_to_reference(src: Source, ref: torch.nn.Module, episodes: list[Episode]) -> float:
    """Mean over ``episodes`` of Σ_t log π(a_t|·) − log π_ref(a_t|·) over the policy's tokens."""
    from tinyzero.algorithms.common import make_batch, trajectory_logprobs

    episodes = [e for e in episodes if e.turns]  # an episode with no turn has no policy token
    device = next(src.model.parameters()).device
    total = 0.0
    for i in range(0, len(episodes), CHUNK // 2):
        batch = make_batch(src.tok, episodes[i : i + CHUNK // 2], src.cfg.rollout.history, device)
        diff = trajectory_logprobs(src.model, batch).traj - trajectory_logprobs(ref, batch).traj
        total += float(diff.sum())
    return total / len(episodes) if episodes else 0.0


def evaluate_source(
    src: Source,
    problems: int | None = None,
    samples: int = 8,
    seed: int | None = None,
    sizes: list[int] | None = None,
    slippery: list[bool] | None = None,
    ref_dir: str | Path | None = None,
    progress: bool = False,
) -> Evaluation:
    """Run the held-out evaluation of ``src`` and return its figures (JSON schema above) and episodes.

    ``progress`` shows a bar over the episodes (greedy + sampled): the default evaluation plays
    200 × (1 + 8) of them, which takes minutes on a CPU.
    """
    cfg = src.cfg
    n = cfg.training.eval_problems if problems is None else problems
    if n < 1:
        raise UserError(f"--episodes {n}: evaluate at least 1 held-out problem (e.g. --episodes 100)")
    if samples < 1:
        raise UserError(f"--samples {samples}: need at least 1 sample per problem (e.g. --samples 8)")
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    seed = cfg.run.seed + 7 if seed is None else seed
    start = time.perf_counter()
    model, tok = src.model.eval(), src.tok
    r = cfg.rollout
    greedy_s = SamplingSettings(r.max_new_tokens, r.history, True, r.temperature, r.top_k, r.top_p)
    sample_s = dataclasses.replace(greedy_s, greedy=False)
    gen = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    records: list[Record] = []
    groups_to_run = _group_tasks(cfg, sizes, slippery)
    bar = tqdm(
        total=len(groups_to_run) * n * (1 + samples),
        desc="evaluating",
        unit="episode",
        disable=not progress,
        mininterval=1.0,
    )
    for name, task in groups_to_run:
        try:
            probs = task.problems("test", n)
        except ValueError as e:
            bar.close()
            raise UserError(f"cannot draw {n} held-out problems: {e}") from None
        greedy = _chunked_episodes(model, tok, task, probs, greedy_s, gen, bar)
        sampled = _chunked_episodes(
            model, tok, task, [q for q in probs for _ in range(samples)], sample_s, gen, bar
        )
        for i, q in enumerate(probs):
            sampled_i = sampled[i * samples : (i + 1) * samples]
            records.append(Record(name, task, q, float(task.optimum(q)), greedy[i], sampled_i))

    bar.close()
    all_greedy = [rec.greedy for rec in records]
    all_sampled = [e for rec in records for e in rec.sampled]
    wins = [sum(e.success for e in rec.sampled) for rec in records]
    mean_opt = mean([rec.optimum for rec in records])
    greedy_fig, sampled_fig = episode_figures(all_greedy), episode_figures(all_sampled)

    groups = []
    for name in dict.fromkeys(rec.group for rec in records):
        rs = [rec for rec in records if rec.group == name]
        tcfg = rs[0].task.cfg
        g_succ = mean([rec.greedy.success for rec in rs])
        s_succ = mean([e.success for rec in rs for e in rec.sampled])
        g_opt = mean([rec.optimum for rec in rs])
        fl = tcfg.name == "frozenlake"
        groups.append(
            {
                "name": name,
                "size": tcfg.size if fl else None,
                "is_slippery": tcfg.is_slippery if fl else None,
                "problems": len(rs),
                "greedy_success": g_succ,
                "sampled_success": s_succ,
                "mean_optimum": g_opt,
                "greedy_success_over_optimum": _ratio(g_succ, g_opt),
                "sampled_success_over_optimum": _ratio(s_succ, g_opt),
            }
        )

    ref, ref_path, kl_note = load_reference(src, ref_dir)
    # computed even for a base model (its own reference): 0 by computation, so a broken KL shows there too
    kl_value = kl_to_reference(src, ref, all_sampled) if ref is not None else None

    figures = {
        "schema_version": SCHEMA_VERSION,
        "source": {
            "path": str(src.path),
            "kind": src.kind,
            "iteration": src.iteration,
            "base_key": src.base_key,
            "run_dir": str(src.run_dir) if src.run_dir else None,
            "algorithm": cfg.algorithm.name if src.kind == "checkpoint" else None,
        },
        "task": {"name": cfg.task.name, "config": dataclasses.asdict(cfg.task)},
        "settings": {
            "problems": n,
            "samples": samples,
            "seed": seed,
            "temperature": r.temperature,
            "top_k": r.top_k,
            "top_p": r.top_p,
            "max_new_tokens": r.max_new_tokens,
            "history": r.history,
            "device": str(next(model.parameters()).device),
        },
        "greedy": greedy_fig,
        "sampled": sampled_fig,
        "pass_at_k": {str(k): mean([pass_at_k(samples, c, k) for c in wins]) for k in _pass_ks(samples)},
        "mean_optimum": mean_opt,
        "greedy_success_over_optimum": _ratio(greedy_fig["success"], mean_opt),
        "sampled_success_over_optimum": _ratio(sampled_fig["success"], mean_opt),
        "groups": groups,
        "reads_map": reads_map(records) if cfg.task.name == "frozenlake" else None,
        "kl": {"value": kl_value, "reference": ref_path or None, "note": kl_note},
        "failures": {
            "greedy": count_failures(all_greedy, records, sampled=False),
            "sampled": count_failures(all_sampled, records, sampled=True),
        },
        "notes": list(src.notes),
        "exact": None,  # evaluate.py --exact fills it in (tinyzero.evaluation.exact)
        "elapsed_s": round(time.perf_counter() - start, 2),
    }
    return Evaluation(figures, records, src)
