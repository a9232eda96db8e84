"""Evaluation of a saved checkpoint (or a base model) on held-out problems, and comparison of runs.

    python evaluate.py --checkpoint runs/fl/checkpoints/latest --json eval.json --report eval.md
    python evaluate.py --checkpoint .cache/base_models/frozenlake-tiny-ab8a4049f7cc   # a base model
    python evaluate.py --plot runs/fl-ragen runs/fl-grpo --out plots/                  # learning curves
    python evaluate.py --compare runs/fl-ragen runs/fl-grpo                            # markdown table
    python evaluate.py --checkpoint runs/fl --episodes 6 --samples 1 --gif fl.gif       # animated episodes

``from tinyzero import evaluation as E`` gives every public name of the modules below, which split
it by concern, each importing only modules listed before it:

    schema     the JSON keys, ``FAILURE_KINDS`` and how tables print a figure
    source     what to evaluate: ``load_source`` (checkpoint or base model), ``load_reference`` (π_ref)
    episodes   figures and analyses of episodes: fixed plan, ``reads_map``, failure kinds and reasons
    running    ``evaluate_source``: plays the held-out episodes and builds the JSON document
    reports    ``console_table``, ``write_json``, ``markdown_report``, ``write_episode_pictures``
    animation  ``write_evaluation_gif`` (``evaluate.py --gif``): animated greedy episodes of frozenlake
               and countdown_turns; ``gif_frames`` gives the state each frame draws
    compare    ``compare_runs`` (run reading itself, ``read_metrics`` / ``run_info``, is ``tinyzero.runs``,
               shared with ``tinyzero.plots``, which imports nothing from this package)

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

JSON schema (``SCHEMA_VERSION`` = 2; every key is always present, ``null`` where it does not apply)::

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
    exact            null, or with evaluate.py --exact (FrozenLake, Markov context) per group
                       [{name, problems, exact_greedy_success, optimum, ratio}]: the greedy policy's
                       success computed from the transition table (tinyzero.evaluation.exact)
    elapsed_s        seconds spent evaluating
"""

from __future__ import annotations

from tinyzero.evaluation.animation import (
    GIF_TASKS,
    HOLD_FRAMES,
    CountdownFrame,
    LakeFrame,
    check_gif_task,
    countdown_frames,
    gif_frames,
    lake_frames,
    pick_animated,
    write_episode_gif,
    write_evaluation_gif,
)
from tinyzero.evaluation.compare import COMPARE_COLUMNS, COMPARE_NOTE, compare_runs
from tinyzero.evaluation.episodes import (
    Record,
    count_failures,
    episode_figures,
    episode_path,
    explain_failure,
    failure_kind,
    fixed_plan,
    normalize_action,
    reads_map,
    replay_plan,
    turn_cells,
)
from tinyzero.evaluation.exact import check_exact, exact_figures, exact_greedy_success
from tinyzero.evaluation.reports import (
    console_table,
    map_text,
    markdown_report,
    pick_pictured,
    source_name,
    write_episode_pictures,
    write_json,
)
from tinyzero.evaluation.running import CHUNK, Evaluation, evaluate_source, kl_to_reference
from tinyzero.evaluation.schema import (
    EPISODE_KEYS,
    EPISODE_LABELS,
    FAILURE_KINDS,
    FAILURE_TITLES,
    GROUP_KEYS,
    READS_MAP_KEYS,
    SCHEMA_VERSION,
    TOP_KEYS,
)
from tinyzero.evaluation.source import Source, load_reference, load_source, pick_device
from tinyzero.runs import read_metrics, run_info

__all__ = [
    "check_exact",
    "exact_figures",
    "exact_greedy_success",
    "CHUNK",
    "COMPARE_COLUMNS",
    "COMPARE_NOTE",
    "CountdownFrame",
    "EPISODE_KEYS",
    "EPISODE_LABELS",
    "Evaluation",
    "FAILURE_KINDS",
    "FAILURE_TITLES",
    "GIF_TASKS",
    "GROUP_KEYS",
    "HOLD_FRAMES",
    "LakeFrame",
    "READS_MAP_KEYS",
    "Record",
    "SCHEMA_VERSION",
    "Source",
    "TOP_KEYS",
    "check_gif_task",
    "compare_runs",
    "console_table",
    "count_failures",
    "countdown_frames",
    "episode_figures",
    "episode_path",
    "evaluate_source",
    "explain_failure",
    "failure_kind",
    "fixed_plan",
    "gif_frames",
    "kl_to_reference",
    "lake_frames",
    "load_reference",
    "load_source",
    "map_text",
    "markdown_report",
    "normalize_action",
    "pick_animated",
    "pick_device",
    "pick_pictured",
    "read_metrics",
    "reads_map",
    "replay_plan",
    "run_info",
    "source_name",
    "turn_cells",
    "write_episode_gif",
    "write_episode_pictures",
    "write_evaluation_gif",
    "write_json",
]
