"""Evaluation of a saved checkpoint (or a base model) on held-out problems, and comparison of runs.

    python evaluate.py --checkpoint runs/fl/checkpoints/latest --json eval.json --report eval.md
    python evaluate.py --checkpoint .cache/base_models/frozenlake-tiny-ab8a4049f7cc   # a base model
    python evaluate.py --plot runs/fl-ragen runs/fl-grpo --out plots/                  # learning curves
    python evaluate.py --compare runs/fl-ragen runs/fl-grpo                            # markdown table

What is measured, on the first ``problems`` held-out (test-split) problems of the task, the same
problems the trainer evaluates on (``task.problems("test")`` is a prefix-stable list):

- one greedy episode per problem (the headline figure) and ``samples`` = K sampled episodes per
  problem at the run's rollout temperature/top-k/top-p; pass@k is the unbiased estimator
  1 − C(K−c, k)/C(K, k) from the c successes of those K samples;
- format rate, mean reward (the environment's, summed over turns), response length (the policy's
  tokens per episode, EOS included), turns per episode;
- the ceiling: each problem's best achievable success (``task.optimum``: value iteration for
  FrozenLake, 1.0 otherwise) and success / optimum, overall and per (map size, slipperiness) group;
- FrozenLake "reads the map": the policy's *fixed plan* is its most common greedy action sequence
  (built turn by turn: the most common greedy action at turn t among the maps still playing at t,
  so episodes cut short by a hole do not split the vote). The plan is replayed open-loop on every
  evaluated map without slipping; on the maps where it fails, a policy that ignores the map fails
  too, so its greedy success there measures how much it actually reads the grid;
- KL(π‖π_ref) on the sampled episodes: mean over trajectories of log π(τ) − log π_ref(τ), summed
  over the policy's tokens (the same estimator the trainer logs as ``kl``). π_ref is the base model
  named by the checkpoint's ``base_key`` under ``pretrain.cache_dir`` (or ``--ref DIR``);
- failures by kind (``FAILURE_KINDS``) with examples and a one-line reason each.

JSON schema (``SCHEMA_VERSION`` = 1; every key is always present, ``null`` where it does not apply)::

    schema_version   int
    source           {path, kind: "checkpoint" | "base_model", iteration, base_key, run_dir, algorithm}
    task             {name, config: the task section of the config}
    settings         {problems, samples, seed, temperature, top_k, top_p, max_new_tokens, history, device}
    greedy, sampled  {success, format_rate, mean_reward, response_length, turns}    (EPISODE_KEYS)
    pass_at_k        {"1": p, "2": p, "4": p, ..., "K": p}   (powers of two below K, and K)
    mean_optimum     mean best achievable success of the evaluated problems
    greedy_success_over_optimum, sampled_success_over_optimum     (null when mean_optimum is 0)
    groups           [{name, size, is_slippery, problems, greedy_success, sampled_success,
                       mean_optimum, greedy_success_over_optimum, sampled_success_over_optimum}]
                     one per (map size, slipperiness) for FrozenLake, one group for other tasks
    reads_map        null, or for FrozenLake {fixed_plan: [turn texts], fixed_plan_share,
                       fixed_plan_success, maps_where_plan_fails, greedy_success_where_plan_fails,
                       greedy_success_where_plan_succeeds}
    kl               {value: float | null, reference: path | null, note}
    failures         {greedy: {kind: count}, sampled: {kind: count}} over FAILURE_KINDS
    notes            [str]
    elapsed_s        seconds spent evaluating
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from tinyzero.checkpoint import MANIFEST, resolve_checkpoint, verify_checkpoint
from tinyzero.config import TASKS, Config, load_config
from tinyzero.environments import make_task
from tinyzero.environments.arith import evaluate_tree, numbers_used, parse_expression
from tinyzero.environments.base import Task
from tinyzero.environments.countdown import CLOSE, OPEN, extract_answer
from tinyzero.environments.frozenlake_env import (
    _DELTAS,
    ACTION_NAMES,
    FrozenLakeTextEnv,
    parse_actions,
    render_grid,
)
from tinyzero.errors import UserError
from tinyzero.metrics import mean, pass_at_k
from tinyzero.models.io import load_model_dir
from tinyzero.rollout import Episode, SamplingSettings, run_episodes

SCHEMA_VERSION = 1
EPISODE_KEYS = ("success", "format_rate", "mean_reward", "response_length", "turns")
# How the tables name them (JSON keeps the plain keys): the length is the policy's own tokens per episode.
EPISODE_LABELS = {"response_length": "response_length (tokens)", "turns": "turns per episode"}
GROUP_KEYS = (
    "name",
    "size",
    "is_slippery",
    "problems",
    "greedy_success",
    "sampled_success",
    "mean_optimum",
    "greedy_success_over_optimum",
    "sampled_success_over_optimum",
)
READS_MAP_KEYS = (
    "fixed_plan",
    "fixed_plan_share",
    "fixed_plan_success",
    "maps_where_plan_fails",
    "greedy_success_where_plan_fails",
    "greedy_success_where_plan_succeeds",
)
TOP_KEYS = (
    "schema_version",
    "source",
    "task",
    "settings",
    "greedy",
    "sampled",
    "pass_at_k",
    "mean_optimum",
    "greedy_success_over_optimum",
    "sampled_success_over_optimum",
    "groups",
    "reads_map",
    "kl",
    "failures",
    "notes",
    "elapsed_s",
)
FAILURE_KINDS = (
    "no_answer",  # no <answer>…</answer>, or its content is not an expression / integer
    "wrong_numbers",  # countdown: a well-formed expression over the wrong numbers
    "wrong_value",  # a well-formed answer with the wrong value
    "hole",  # FrozenLake: fell in a hole
    "out_of_turns",  # FrozenLake: valid moves, but the goal was not reached in max_turns
    "invalid_action",  # FrozenLake: ran out of turns after at least one unparseable turn
    "context_full",  # the prompt no longer fit the model's context window
    "other",  # anything else (should not happen)
)
FAILURE_TITLES = {
    "no_answer": "no answer",
    "wrong_numbers": "wrong numbers",
    "wrong_value": "wrong value",
    "hole": "fell in a hole",
    "out_of_turns": "ran out of turns",
    "invalid_action": "invalid action (then ran out of turns)",
    "context_full": "context full",
    "other": "other",
}
CHUNK = 256  # episodes per batched rollout call: bounds the KV cache's memory


# ---------------------------------------------------------------------------------------------- loading
@dataclass
class Source:
    """A model to evaluate, with the config that describes its task and sampling."""

    path: Path
    kind: str  # "checkpoint" | "base_model"
    cfg: Config
    model: torch.nn.Module
    tok: Any
    iteration: int | None = None
    base_key: str | None = None
    run_dir: Path | None = None
    notes: list[str] = field(default_factory=list)


def _check_task_name(task: str | None) -> None:
    if task is not None and task not in TASKS:
        raise UserError(f"unknown task '{task}': choose one of {', '.join(TASKS)}")


def _is_base_model_dir(p: Path) -> bool:
    return p.is_dir() and (p / "report.json").is_file() and not (p / "state.json").exists()


def _config_from_yaml(yaml_text: str, where: str, overrides: list[str]) -> Config:
    """load_config on YAML text (a checkpoint's saved config); errors name ``where``, not a temp file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml_text)
        try:
            return load_config(path, overrides)
        except UserError as e:
            raise UserError(str(e).replace(str(path), where)) from None


def pick_device(name: str) -> torch.device:
    """auto → CUDA when available, else CPU (evaluation runs anywhere, whatever the run trained on)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda but no CUDA device is available (use --device cpu or auto)")
    if name not in ("cpu", "cuda"):
        raise UserError(f"--device {name!r}: expected auto, cpu or cuda")
    return torch.device(name)


def load_source(
    path: str | Path,
    task: str | None = None,
    config_file: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    device: str = "auto",
) -> Source:
    """A checkpoint (iter dir, ``latest``, ``checkpoints/`` or the run dir) or a base-model directory.

    A checkpoint's config is the one saved in its ``state.json`` (+ ``overrides``); a base model has
    none, so its config is ``config_file`` / defaults with ``task.name`` = ``task`` or its report's task.
    """
    _check_task_name(task)
    overrides = list(overrides)
    p = Path(path)
    if not p.exists():
        raise UserError(
            f"'{path}' not found: pass a checkpoint (runs/<name>/checkpoints/latest, iter_NNNNNN, the run "
            f"directory) or a base-model directory (.cache/base_models/<key>)"
        )
    dev = pick_device(device)
    if _is_base_model_dir(p):
        try:
            report = json.loads((p / "report.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(
                f"base model '{p}' has a corrupt report.json ({e}); delete the directory"
            ) from None
        trained_on = report.get("task")
        if task is not None and trained_on is not None and task != trained_on:
            raise UserError(
                f"base model '{p}' was trained on task '{trained_on}', not '{task}': drop --task or pick a "
                f"base model of that task"
            )
        cfg = load_config(config_file, [f"task.name={task or trained_on or 'frozenlake'}", *overrides])
        if trained_on is not None and cfg.task.name != trained_on:
            raise UserError(
                f"base model '{p}' is for task '{trained_on}', the overrides say '{cfg.task.name}'"
            )
        model, tok = load_model_dir(p, dev)
        src = Source(p, "base_model", cfg, model, tok, base_key=p.name)
        from tinyzero.pretrain import base_model_key  # heavy-ish import, only needed here

        if base_model_key(cfg) != p.name:
            src.notes.append(
                f"the task/model settings given do not hash to this base model's key ({p.name}): if the "
                f"figures look off, pass the --config it was built with"
            )
        return src
    if config_file is not None:
        raise UserError(
            "--config applies to base-model directories only: a checkpoint carries its own config "
            "(change settings with key=value overrides)"
        )
    ckpt = resolve_checkpoint(p)
    if (ckpt / MANIFEST).is_file():  # checkpoints written by the trainer carry checksums: check them first
        verify_checkpoint(ckpt)
    if not (ckpt / "state.json").is_file():
        raise UserError(
            f"'{ckpt}' is not a checkpoint (state.json is missing) nor a base model (report.json is missing)"
        )
    try:
        state = json.loads((ckpt / "state.json").read_text())
        yaml_text = state["config_yaml"]
        if not isinstance(state, dict) or not isinstance(yaml_text, str):
            raise ValueError("config_yaml is not text")
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as e:
        raise UserError(
            f"checkpoint '{ckpt}' is corrupt: state.json unreadable ({type(e).__name__}: {e}); "
            f"use another iter_* checkpoint"
        ) from None
    trained_on = state.get("task")
    if task is not None and task != trained_on:
        raise UserError(
            f"checkpoint '{ckpt}' was trained on task '{trained_on}', not '{task}': drop --task or pick a "
            f"checkpoint of that task"
        )
    cfg = _config_from_yaml(yaml_text, f"{ckpt}/state.json", overrides)
    if cfg.task.name != trained_on:
        raise UserError(
            f"checkpoint '{ckpt}' is for task '{trained_on}', the overrides say '{cfg.task.name}'"
        )
    model, tok = load_model_dir(ckpt, dev)
    run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else None
    return Source(
        ckpt,
        "checkpoint",
        cfg,
        model,
        tok,
        iteration=state.get("iteration"),
        base_key=state.get("base_key"),
        run_dir=run_dir,
    )


def load_reference(src: Source, ref_dir: str | Path | None = None) -> tuple[torch.nn.Module | None, str, str]:
    """(π_ref or None, its path or "", a note) for the KL figure."""
    if src.kind == "base_model" and ref_dir is None:
        return src.model, str(src.path), "the model is its own reference (a base model): KL = 0"
    if ref_dir is None:
        if not src.base_key:
            return None, "", "skipped: the checkpoint does not name its base model (no base_key)"
        ref_dir = Path(src.cfg.pretrain.cache_dir) / src.base_key
    ref_dir = Path(ref_dir)
    if (ref_dir / "report.json").is_file() and not (ref_dir / "model.safetensors").is_file():
        ref_dir = Path(
            json.loads((ref_dir / "report.json").read_text()).get("path") or ref_dir
        )  # model.source=hf
    if not (ref_dir / "model.safetensors").is_file():
        return (
            None,
            "",
            f"skipped: reference base model '{ref_dir}' not found (pass --ref DIR or "
            f"pretrain.cache_dir=... where the base model is cached)",
        )
    device = next(src.model.parameters()).device
    ref, ref_tok = load_model_dir(ref_dir, device)
    if ref_tok.alphabet != src.tok.alphabet:
        return None, str(ref_dir), f"skipped: '{ref_dir}' has another tokenizer than the policy"
    return ref.eval(), str(ref_dir), "mean over sampled episodes of log π(τ) − log π_ref(τ)"


# ---------------------------------------------------------------------------------------------- running
@dataclass
class Record:
    """One held-out problem: its group, its greedy episode and its K sampled episodes."""

    group: str
    task: Task
    problem: Any
    optimum: float
    greedy: Episode
    sampled: list[Episode]


@dataclass
class Evaluation:
    figures: dict  # the JSON document (see the module docstring)
    records: list[Record]
    source: Source


def _group_tasks(cfg: Config, sizes: list[int] | None, slippery: list[bool] | None) -> list[tuple[str, Task]]:
    """(group name, task) for every (map size, slipperiness) asked for; one group for other tasks."""
    if cfg.task.name != "frozenlake":
        if sizes or slippery:
            raise UserError(f"--sizes/--slippery apply to frozenlake only, this is a {cfg.task.name} model")
        return [(cfg.task.name, make_task(cfg.task))]
    out = []
    for size in sizes or [cfg.task.size]:
        if not 2 <= size <= 12:
            raise UserError(f"--sizes {size}: map sizes must be 2..12")
        for slip in slippery if slippery is not None else [cfg.task.is_slippery]:
            tcfg = dataclasses.replace(cfg.task, size=size, is_slippery=slip)
            name = f"{size}x{size} {'slippery' if slip else 'not slippery'}"
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


def episode_figures(episodes: list[Episode]) -> dict:
    return {
        "success": mean([e.success for e in episodes]),
        "format_rate": mean([e.format_ok for e in episodes]),
        "mean_reward": mean([e.reward for e in episodes]),
        "response_length": mean([e.num_action_tokens for e in episodes]),
        "turns": mean([len(e.turns) for e in episodes]),
    }


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
        "elapsed_s": round(time.perf_counter() - start, 2),
    }
    return Evaluation(figures, records, src)


# ---------------------------------------------------------------------------------------------- FrozenLake
def normalize_action(text: str, max_actions: int) -> str:
    """A turn's text in canonical form ("Down Right"), or the stripped raw text if it does not parse."""
    ids = parse_actions(text, max_actions)
    return " ".join(ACTION_NAMES[i] for i in ids) if ids is not None else text.strip()


def fixed_plan(records: list[Record]) -> list[str]:
    """The most common greedy action at each turn among the maps still playing at that turn."""
    plan: list[str] = []
    for t in range(max((len(rec.greedy.actions) for rec in records), default=0)):
        votes = Counter(
            normalize_action(rec.greedy.actions[t], rec.task.cfg.max_actions_per_turn)
            for rec in records
            if len(rec.greedy.actions) > t
        )
        plan.append(votes.most_common(1)[0][0])
    return plan


def replay_plan(desc: tuple[str, ...], plan: list[str], task_cfg: Any) -> bool:
    """Does ``plan`` (turn texts, played open-loop without slipping) reach the goal of map ``desc``?"""
    env = FrozenLakeTextEnv(
        desc=desc,
        is_slippery=False,
        max_turns=task_cfg.max_turns,
        max_actions_per_turn=task_cfg.max_actions_per_turn,
        invalid_penalty=task_cfg.invalid_penalty,
    )
    env.reset(seed=0)
    try:
        for text in plan:
            _, _, terminated, truncated, info = env.step(text)
            if terminated or truncated:
                return bool(info["success"])
        return False
    finally:
        env.close()


def reads_map(records: list[Record]) -> dict:
    """Figures that tell a map-reading policy from one that plays a memorised fixed plan."""
    plan = fixed_plan(records)

    def follows(rec: Record) -> bool:
        k = rec.task.cfg.max_actions_per_turn
        return all(normalize_action(a, k) == plan[t] for t, a in enumerate(rec.greedy.actions))

    plan_ok = [replay_plan(tuple(rec.problem), plan, rec.task.cfg) for rec in records]
    fails = [rec for rec, ok in zip(records, plan_ok) if not ok]
    wins = [rec for rec, ok in zip(records, plan_ok) if ok]
    return {
        "fixed_plan": plan,
        "fixed_plan_share": mean([follows(rec) for rec in records]),
        "fixed_plan_success": mean(plan_ok),
        "maps_where_plan_fails": len(fails),
        "greedy_success_where_plan_fails": mean([r.greedy.success for r in fails]) if fails else None,
        "greedy_success_where_plan_succeeds": mean([r.greedy.success for r in wins]) if wins else None,
    }


def _player(observation: str) -> tuple[int, int] | None:
    for r, line in enumerate(observation.strip("\n").split("\n")):
        for c, ch in enumerate(line):
            if ch in "PXW":
                return r, c
    return None


def episode_path(desc: tuple[str, ...], episode: Episode, task_cfg: Any) -> list[tuple[int, int]]:
    """Cells visited, start first. Non-slippery: every move, replayed exactly. Slippery: the positions
    seen at the start of each turn, and a last cell inferred from the outcome (hole / goal) next to it."""
    n = len(desc)
    flat = "".join(desc)
    s = flat.index("S")
    path = [divmod(s, n)]
    k = task_cfg.max_actions_per_turn

    def move(pos: tuple[int, int], a: int) -> tuple[int, int]:
        r, c = pos[0] + _DELTAS[a][0], pos[1] + _DELTAS[a][1]
        return (r, c) if 0 <= r < n and 0 <= c < n else pos

    for t, (turn, text) in enumerate(zip(episode.turns, episode.actions)):
        seen = _player(turn.observation)
        if seen is not None and seen != path[-1]:
            path.append(seen)  # a slip moved the player somewhere else than intended
        last = t == len(episode.turns) - 1
        if task_cfg.is_slippery and not last:
            continue  # the next turn's observation says where the player really went
        pos, steps = path[-1], []
        for a in parse_actions(text, k) or []:
            pos = move(pos, a)
            steps.append(pos)
            if desc[pos[0]][pos[1]] in "HG":
                break
        want = {"hole": "H", "solved": "G"}.get(episode.reason)
        if task_cfg.is_slippery and want and (not steps or desc[steps[-1][0]][steps[-1][1]] != want):
            near = [move(path[-1], a) for a in range(4)]
            steps = [p for p in near if desc[p[0]][p[1]] == want][:1]  # where it must have slipped to
        path += steps
    return path


# ---------------------------------------------------------------------------------------------- failures
def failure_kind(task: Task, episode: Episode) -> str | None:
    """Why ``episode`` failed (one of FAILURE_KINDS), or None if it succeeded."""
    if episode.success:
        return None
    if episode.reason == "context_full" and (not episode.turns or task.name == "frozenlake"):
        return "context_full"
    if task.name == "frozenlake":
        if episode.reason == "hole":
            return "hole"
        if episode.reason == "out_of_turns":
            return "out_of_turns" if episode.format_ok else "invalid_action"
        return episode.reason if episode.reason in FAILURE_KINDS else "other"
    text = episode.actions[-1] if episode.actions else ""
    q = episode.problem
    if task.name == "countdown":
        from tinyzero.environments.countdown import score_and_reason

        _, reason = score_and_reason(text, q.target, q.numbers)
    elif task.name == "multiplication":
        from tinyzero.environments.multiplication import score_and_reason

        _, reason = score_and_reason(text, q.a, q.b)
    else:
        reason = episode.reason
    if reason == "solved":  # the reward function said otherwise: trust the episode
        reason = episode.reason
    return reason if reason in FAILURE_KINDS else "other"


def count_failures(episodes: list[Episode], records: list[Record], sampled: bool) -> dict[str, int]:
    tasks = [rec.task for rec in records for _ in (rec.sampled if sampled else [rec.greedy])]
    counts = Counter(failure_kind(t, e) for t, e in zip(tasks, episodes))
    return {kind: counts.get(kind, 0) for kind in FAILURE_KINDS}


def _fmt_value(v: Any) -> str:
    return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"


def explain_failure(task: Task, episode: Episode) -> str:
    """One line saying what went wrong, in the problem's own terms."""
    kind = failure_kind(task, episode)
    if kind is None:
        return "solved"
    q = episode.problem
    text = episode.actions[-1] if episode.actions else ""
    if kind == "context_full":
        return f"the prompt no longer fit the model's context window after {len(episode.turns)} turns"
    if task.name == "countdown":
        answer = extract_answer(text)
        if kind == "no_answer":
            if answer is None:
                return f"no complete `{OPEN}…{CLOSE}` in the output"
            return f"answer {answer!r} is not an arithmetic expression"
        if kind == "wrong_numbers":
            return f"uses {sorted(numbers_used(answer))} but must use {sorted(q.numbers)}, each exactly once"
        value = evaluate_tree(parse_expression(answer))
        shown = "undefined (division by zero or too large)" if value is None else _fmt_value(value)
        return f"{answer} = {shown}, the target is {q.target}"
    if task.name == "multiplication":
        answer = extract_answer(text)
        if kind == "no_answer":
            if answer is None:
                return f"no complete `{OPEN}…{CLOSE}` in the output"
            return f"answer {answer!r} is not a plain integer"
        got = int(answer.strip())
        return f"answered {got}, but {q.a}*{q.b} = {q.a * q.b} (off by {got - q.a * q.b:+d})"
    if task.name == "frozenlake":
        path = episode_path(tuple(q), episode, task.cfg)
        r, c = path[-1]
        where = f"row {r + 1}, column {c + 1}"
        k = task.cfg.max_actions_per_turn
        if kind == "hole":
            return f"fell in the hole at {where} on turn {len(episode.turns)}"
        if kind == "out_of_turns":
            return f"still on the ice at {where} after {len(episode.turns)} turns (max_turns)"
        if kind == "invalid_action":
            bad = [(t, a) for t, a in enumerate(episode.actions) if parse_actions(a, k) is None]
            t, a = bad[0]
            return (
                f"{len(bad)} of {len(episode.actions)} turns unparseable, e.g. turn {t + 1}: {a!r} (expected "
                f"1..{k} of Left/Down/Right/Up); ran out of turns at {where}"
            )
    return f"episode ended with reason {episode.reason!r}"


# ---------------------------------------------------------------------------------------------- output
def _f(v: Any, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def console_table(figures: dict) -> str:
    """A readable plain-text summary of ``figures``."""
    src, s = figures["source"], figures["settings"]
    head = f"{src['kind']} {src['path']}" + (f" (iteration {src['iteration']})" if src["iteration"] else "")
    lines = [
        head,
        f"task {figures['task']['name']}: {s['problems']} held-out problems, {s['samples']} samples each, "
        f"seed {s['seed']}, {s['device']}",
        "",
        f"{'figure':<28}{'greedy':>10}{'sampled':>10}   (sampled: {s['samples']} per problem)",
    ]
    for key in EPISODE_KEYS:
        label = EPISODE_LABELS.get(key, key)
        lines.append(f"{label:<28}{_f(figures['greedy'][key]):>10}{_f(figures['sampled'][key]):>10}")
    lines.append(
        f"{'success / optimum':<28}{_f(figures['greedy_success_over_optimum']):>10}"
        f"{_f(figures['sampled_success_over_optimum']):>10}"
    )
    lines.append("")
    lines.append("  ".join(f"pass@{k}={_f(v)}" for k, v in figures["pass_at_k"].items()))
    lines.append(
        f"mean optimum {_f(figures['mean_optimum'])}   KL(π‖π_ref) {_f(figures['kl']['value'])} "
        f"(nats per episode, on the sampled held-out episodes)"
    )
    if len(figures["groups"]) > 1 or figures["groups"][0]["size"] is not None:
        lines.append("")
        lines.append(f"{'group':<22}{'problems':>9}{'greedy':>9}{'sampled':>9}{'optimum':>9}{'g/opt':>8}")
        for g in figures["groups"]:
            lines.append(
                f"{g['name']:<22}{g['problems']:>9}{_f(g['greedy_success']):>9}{_f(g['sampled_success']):>9}"
                f"{_f(g['mean_optimum']):>9}{_f(g['greedy_success_over_optimum'], 2):>8}"
            )
    rm = figures["reads_map"]
    if rm is not None:
        lines.append("")
        lines.append(
            f"fixed plan [{', '.join(rm['fixed_plan'])}]: followed on {_f(rm['fixed_plan_share'], 2)} "
            f"of maps, solves {_f(rm['fixed_plan_success'], 2)} open-loop"
        )
        lines.append(
            f"greedy success where the fixed plan fails ({rm['maps_where_plan_fails']} maps): "
            f"{_f(rm['greedy_success_where_plan_fails'])}  (0 = the policy ignores the map)"
        )
    fails = {k: v for k, v in figures["failures"]["greedy"].items() if v}
    if fails:
        lines.append("")
        lines.append("greedy failures: " + ", ".join(f"{FAILURE_TITLES[k]} {v}" for k, v in fails.items()))
    for note in [figures["kl"]["note"] if figures["kl"]["value"] is None else None, *figures["notes"]]:
        if note:
            lines.append(f"note: {note}")
    return "\n".join(lines)


def _json_safe(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    return x


def write_json(figures: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_json_safe(figures), indent=1, allow_nan=False) + "\n")
    return path


def _transcript(task: Task, episode: Episode) -> str:
    """The episode as the model saw and wrote it (observations, then "> action" lines)."""
    if not episode.turns:
        return task.episode(episode.problem).prompt.rstrip("\n") + "\n> (no room left to answer)"
    if task.name != "frozenlake":
        return f"{episode.turns[0].observation.rstrip()}\n{episode.actions[0]}"
    parts = []
    for t, (turn, action) in enumerate(zip(episode.turns, episode.actions), 1):
        parts.append(f"turn {t}:\n{turn.observation.rstrip()}\n> {action!r}")
    # The grid after the last move: where the episode ended (X in a hole, W on the goal, P on the ice).
    desc = tuple(episode.problem)
    r, c = episode_path(desc, episode, task.cfg)[-1]
    parts.append(f"after turn {len(episode.turns)} ({episode.reason}):\n{render_grid(desc, r, c)}")
    return "\n\n".join(parts)


def map_text(task: Task, problem: Any) -> str:
    """The problem in the notation the model sees: FrozenLake maps as rows of P _ O G joined by '/'."""
    if task.name != "frozenlake":
        return task.describe(problem)
    desc = tuple(problem)
    start = "".join(desc).index("S")
    return render_grid(desc, *divmod(start, len(desc))).replace("\n", "/")


def markdown_report(ev: Evaluation, examples: int = 3, picture: str | None = None) -> str:
    """The report: figures, groups, the fixed-plan check, KL, and failure examples grouped by kind."""
    f = ev.figures
    src, s = f["source"], f["settings"]
    out = [f"# Evaluation of `{src['path']}`", ""]
    out.append(
        f"{src['kind'].replace('_', ' ')}"
        + (f", iteration {src['iteration']}" if src["iteration"] is not None else "")
        + (f", algorithm `{src['algorithm']}`" if src["algorithm"] else "")
        + f", task `{f['task']['name']}`, base `{src['base_key']}`. {s['problems']} held-out problems"
        f" (test split), {s['samples']} samples each at temperature {s['temperature']}"
        f" (top-k {s['top_k']}, top-p {s['top_p']}), seed {s['seed']}, {f['elapsed_s']:.1f} s."
    )
    out += ["", "## Figures", "", "| figure | greedy | sampled |", "|---|---|---|"]
    for key in EPISODE_KEYS:
        out.append(f"| {EPISODE_LABELS.get(key, key)} | {_f(f['greedy'][key])} | {_f(f['sampled'][key])} |")
    out.append(
        f"| success / optimum | {_f(f['greedy_success_over_optimum'])} | "
        f"{_f(f['sampled_success_over_optimum'])} |"
    )
    out += ["", "| " + " | ".join(f"pass@{k}" for k in f["pass_at_k"]) + " | mean optimum | KL(π‖π_ref) |"]
    out.append("|" + "---|" * (len(f["pass_at_k"]) + 2))
    out.append(
        "| "
        + " | ".join(_f(v) for v in f["pass_at_k"].values())
        + f" | {_f(f['mean_optimum'])} | {_f(f['kl']['value'])} |"
    )
    out += [
        "",
        f"KL: {f['kl']['note']}" + (f" (reference `{f['kl']['reference']}`)" if f["kl"]["reference"] else ""),
    ]
    if f["groups"][0]["size"] is not None:
        out += ["", "## By map size and slipperiness", ""]
        out += [
            "| group | problems | greedy | sampled | optimum | greedy / optimum |",
            "|---|---|---|---|---|---|",
        ]
        for g in f["groups"]:
            out.append(
                f"| {g['name']} | {g['problems']} | {_f(g['greedy_success'])} | {_f(g['sampled_success'])} | "
                f"{_f(g['mean_optimum'])} | {_f(g['greedy_success_over_optimum'])} |"
            )
    rm = f["reads_map"]
    if rm is not None:
        out += ["", "## Does the policy read the map?", ""]
        out.append(
            f"Fixed plan (most common greedy action per turn): `{' | '.join(rm['fixed_plan']) or '(none)'}`."
            f" Greedy episodes that follow it: {_f(rm['fixed_plan_share'])}. Played open-loop without"
            f" slipping it solves {_f(rm['fixed_plan_success'])} of the maps. On the"
            f" {rm['maps_where_plan_fails']} maps where it fails the policy's greedy success is"
            f" **{_f(rm['greedy_success_where_plan_fails'])}** "
            f"(a policy that ignores the map scores 0 there; where the plan succeeds: "
            f"{_f(rm['greedy_success_where_plan_succeeds'])})."
        )
    if picture:
        out += ["", f"![evaluated episodes]({picture})"]
    if f["notes"]:
        out += ["", *[f"Note: {n}" for n in f["notes"]]]
    out += ["", "## Failure cases", ""]
    counts_g, counts_s = f["failures"]["greedy"], f["failures"]["sampled"]
    n_greedy, n_sampled = len(ev.records), sum(len(r.sampled) for r in ev.records)
    out += ["| kind | greedy | sampled |", "|---|---|---|"]
    for kind in FAILURE_KINDS:
        if counts_g[kind] or counts_s[kind]:
            out.append(
                f"| {FAILURE_TITLES[kind]} | {counts_g[kind]} / {n_greedy} | {counts_s[kind]} / {n_sampled} |"
            )
    by_kind: dict[str, list[tuple[Record, Episode]]] = {}
    pairs = [(rec, rec.greedy) for rec in ev.records] + [
        (rec, ep) for rec in ev.records for ep in rec.sampled
    ]
    for rec, ep in pairs:  # greedy failures first (deterministic), sampled ones after
        kind = failure_kind(rec.task, ep)
        if kind is not None:
            by_kind.setdefault(kind, []).append((rec, ep))
    for kind in FAILURE_KINDS:
        items = by_kind.get(kind, [])
        if not items:
            continue
        out += ["", f"### {FAILURE_TITLES[kind]} (greedy {counts_g[kind]}, sampled {counts_s[kind]})", ""]
        for rec, ep in items[:examples]:
            mode = "greedy" if ep is rec.greedy else "sampled"
            out.append(
                f"- `{map_text(rec.task, rec.problem)}` ({mode}, reward {ep.reward:+.2f}, "
                f"optimum {rec.optimum:.2f}): {explain_failure(rec.task, ep)}"
            )
            out += ["", "  ```", *[f"  {line}" for line in _transcript(rec.task, ep).split("\n")], "  ```"]
    if not by_kind:
        out += ["", "No failures."]
    return "\n".join(out) + "\n"


def pick_pictured(records: list[Record], n: int) -> list[Record]:
    """Up to ``n`` records to draw: one greedy failure of each kind, then successes, then the rest."""
    chosen: list[Record] = []
    seen: set[str] = set()
    for rec in records:
        kind = failure_kind(rec.task, rec.greedy)
        if kind is not None and kind not in seen:
            seen.add(kind)
            chosen.append(rec)
    chosen += [rec for rec in records if rec.greedy.success][:2]
    chosen += [rec for rec in records if rec not in chosen]
    return chosen[:n]


def write_episode_pictures(ev: Evaluation, n: int, path: str | Path) -> Path | None:
    """Draw ``n`` greedy FrozenLake episodes (a failure of each kind first) into ``path``; None otherwise."""
    if n < 1 or ev.figures["task"]["name"] != "frozenlake":
        return None
    from tinyzero.plots import plot_frozenlake_episodes  # matplotlib only when pictures are asked for

    items = []
    for rec in pick_pictured(ev.records, n):
        kind = failure_kind(rec.task, rec.greedy)
        outcome = "solved" if kind is None else kind
        slip = ", slippery" if rec.task.cfg.is_slippery else ""
        cells = episode_path(tuple(rec.problem), rec.greedy, rec.task.cfg)
        moves = sum(
            len(parse_actions(a, rec.task.cfg.max_actions_per_turn) or []) for a in rec.greedy.actions
        )
        stuck = sum(a == b for a, b in zip(cells, cells[1:]))
        turns = len(rec.greedy.turns)
        detail = f"{turns} turn{'s' * (turns != 1)}, {moves} move{'s' * (moves != 1)}"
        if stuck and not slip:
            detail += f" ({stuck} into the wall)"
        items.append(
            {
                "desc": tuple(rec.problem),
                "path": cells,
                "outcome": outcome,
                "caption": f"{'solved' if kind is None else FAILURE_TITLES[kind]}{slip}\n{detail}\n"
                f"reward {rec.greedy.reward:+.2f}, optimum {rec.optimum:.2f}",
            }
        )
    src = ev.figures["source"]
    name = Path(src["run_dir"]).name if src["run_dir"] else Path(src["path"]).name
    title = f"Greedy held-out episodes of {name}" + (
        f" (iteration {src['iteration']})" if src["iteration"] is not None else ""
    )
    return plot_frozenlake_episodes(items, path, title)


# ---------------------------------------------------------------------------------------------- runs
def read_metrics(run_dir: str | Path) -> list[dict]:
    """The run's metrics.jsonl as a list of dicts; UserError if missing or unreadable."""
    run = Path(run_dir)
    path = run / "metrics.jsonl"
    if not path.is_file():
        raise UserError(
            f"'{run}' has no metrics.jsonl: pass a run directory written by train.py (runs/<name>)"
        )
    rows = []
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines):  # the last line of a live run may be half-written: skip it
                continue
            raise UserError(f"'{path}' line {i} is not JSON: the file is corrupt") from None
    return rows


def run_info(run_dir: str | Path) -> dict:
    """algorithm / task / summary of a run dir (summary.json if finished, else config.yaml + metrics)."""
    run = Path(run_dir)
    rows = read_metrics(run)
    summary: dict = {}
    if (run / "summary.json").is_file():
        try:
            summary = json.loads((run / "summary.json").read_text())
        except json.JSONDecodeError:
            summary = {}
    cfg: dict = {}
    if (run / "config.yaml").is_file():
        from omegaconf import OmegaConf

        try:
            cfg = OmegaConf.to_container(OmegaConf.load(run / "config.yaml")) or {}  # type: ignore[assignment]
        except Exception:  # noqa: BLE001 - a broken config only costs the labels
            cfg = {}
    evals = [m for m in rows if "eval/greedy_success" in m]
    kls = [m["kl"] for m in rows if isinstance(m.get("kl"), int | float)]
    last = rows[-1] if rows else {}
    return {
        "run": run.name,
        "path": str(run),
        "algorithm": summary.get("algorithm") or cfg.get("algorithm", {}).get("name"),
        "task": summary.get("task") or cfg.get("task", {}).get("name"),
        "iterations": summary.get("iterations", last.get("iteration")),
        "base_greedy": summary.get("base/greedy_success", evals[0]["eval/greedy_success"] if evals else None),
        "final_greedy": summary.get(
            "eval/greedy_success", evals[-1]["eval/greedy_success"] if evals else None
        ),
        "final_sampled": summary.get(
            "eval/sampled_success", evals[-1].get("eval/sampled_success") if evals else None
        ),
        "elapsed_s": summary.get("elapsed_s", last.get("elapsed_s")),
        "generated_tokens": summary.get("generated_tokens", last.get("generated_tokens")),
        "kl": kls[-1] if kls else None,
        "finished": bool(summary),
    }


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
