"""The evaluation's vocabulary: the JSON document's keys, the failure kinds, and how tables print a figure.

Every other module of ``tinyzero.evaluation`` imports these, so they sit at the package's bottom; the
JSON schema itself is described in the package docstring (``tinyzero/evaluation/__init__.py``).
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 2  # 2: the key exact (evaluate.py --exact)
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
    "exact",
    "elapsed_s",
)
FAILURE_KINDS = (
    "no_answer",  # no <answer>…</answer>, or its content is not an expression / integer
    "wrong_numbers",  # countdown: a well-formed expression over the wrong numbers
    "wrong_value",  # a well-formed answer with the wrong value
    "hole",  # FrozenLake: fell in a hole
    "out_of_turns",  # FrozenLake, countdown_turns: every turn valid, but not solved in max_turns
    "invalid_action",  # FrozenLake: out of turns after an unparseable turn; countdown_turns: an illegal move
    "context_full",  # the prompt no longer fit the model's context window
    "other",  # anything else (should not happen)
)
FAILURE_TITLES = {
    "no_answer": "no answer",
    "wrong_numbers": "wrong numbers",
    "wrong_value": "wrong value",
    "hole": "fell in a hole",
    "out_of_turns": "ran out of turns",
    "invalid_action": "invalid action",
    "context_full": "context full",
    "other": "other",
}


def _f(v: Any, digits: int = 3) -> str:
    """A figure as every table prints it (n/a for a missing one), so reports and --compare agree."""
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)
