"""The exact success of a FrozenLake model's greedy policy, without the noise of sampled dynamics.

On slippery ice one episode per held-out map measures a policy with binomial noise (± 0.034 on 200 maps
at success 0.35), as large as what RL changes there. With a Markov context (``rollout.history: 0``)
and one move a turn the greedy policy is a fixed map from state to move: ask the model once for every
cell the player can stand on, then evaluate that policy exactly on Gymnasium's transition table over
the episode's turn limit (``policy_value``). On non-slippery maps it equals the greedy episode's
success map by map (tested), on slippery maps the mean of many episodes.
"""

from __future__ import annotations

from typing import Any

import torch

from tinyzero.context import build_context
from tinyzero.environments.frozenlake_env import parse_actions, policy_value, render_grid
from tinyzero.errors import UserError
from tinyzero.models.transformer import generate


def check_exact(cfg: Any) -> None:
    """One line naming why the greedy policy is not a state → move map (so has no exact value)."""
    needs = (
        (cfg.task.name == "frozenlake", "task.name=frozenlake"),
        (cfg.rollout.history == 0, "rollout.history=0 (the model sees only the grid)"),
        (cfg.task.max_actions_per_turn == 1, "task.max_actions_per_turn=1"),
    )
    for ok, what in needs:
        if not ok:
            raise UserError(f"--exact needs {what}: only then is the greedy policy a fixed move per cell")


@torch.no_grad()
def greedy_moves(model: torch.nn.Module, tok: Any, desc: tuple[str, ...], max_new_tokens: int) -> list:
    """The model's greedy move (action id, or None for an unparseable turn) in every state of ``desc``;
    holes and the goal end the episode, so their entries are never used."""
    n = len(desc)
    # the observation the environment shows: the grid, then "\n" (the cue that the turn begins)
    contexts = [build_context(tok, [], render_grid(desc, s // n, s % n) + "\n", 0) for s in range(n * n)]
    out = generate(model, contexts, max_new_tokens, eos_id=tok.eos_id, pad_id=tok.pad_id, greedy=True)
    moves = []
    for row in range(n * n):
        parsed = parse_actions(tok.decode(out.tokens[row, : out.lengths[row]].tolist()), 1)
        moves.append(None if parsed is None else parsed[0])
    return moves


def exact_greedy_success(
    model: torch.nn.Module, tok: Any, task: Any, desc: tuple[str, ...], max_new_tokens: int
) -> float:
    """Probability that the greedy policy solves map ``desc`` within the task's turn limit for its size."""
    moves = greedy_moves(model.eval(), tok, desc, max_new_tokens)
    return policy_value(desc, moves, task.cfg.is_slippery, task.turns_for(len(desc)))


def exact_figures(model: torch.nn.Module, tok: Any, records: list, max_new_tokens: int) -> list[dict]:
    """Per evaluation group (map size, slipperiness) of ``records`` (``evaluate_source``'s): the mean
    exact greedy success, the mean optimum, and their ratio."""
    groups: dict[str, list] = {}
    for rec in records:
        groups.setdefault(rec.group, []).append(rec)
    out = []
    for name, recs in groups.items():
        values = [exact_greedy_success(model, tok, r.task, r.problem, max_new_tokens) for r in recs]
        exact = sum(values) / len(values)
        optimum = sum(r.optimum for r in recs) / len(recs)
        out.append(
            {
                "name": name,
                "problems": len(recs),
                "exact_greedy_success": exact,
                "optimum": optimum,
                "ratio": exact / optimum if optimum else None,
            }
        )
    return out
