"""Tasks with checkable rewards, as text episodes (see ``base`` for the protocol).

    task = make_task(cfg.task)              # countdown | countdown_turns | multiplication | frozenlake
    problem = task.problems("train")[0]
    ep = task.episode(problem)
    result = ep.step("<answer>25+3*7</answer>")   # StepResult(observation, reward, done, info)

Importing this package also registers ``tinyzero/FrozenLakeText-v0`` and ``tinyzero/CountdownTurns-v0``
with Gymnasium.
"""

from __future__ import annotations

import importlib
from typing import Any

from tinyzero.config import TASKS
from tinyzero.environments.base import StepResult, Task, TextEpisode
from tinyzero.environments.countdown import CountdownProblem, CountdownTask
from tinyzero.environments.countdown_turns import CountdownTurnsEnv, CountdownTurnsTask
from tinyzero.environments.frozenlake_env import FrozenLakeTask, FrozenLakeTextEnv
from tinyzero.environments.multiplication import MultiplicationProblem, MultiplicationTask


def make_task(cfg: Any) -> Task:
    """The Task named by ``cfg.name`` (a ``TaskConfig``) in the registry ``tinyzero.config.TASKS``;
    unknown names raise ValueError."""
    if cfg.name not in TASKS:
        raise ValueError(f"unknown task '{cfg.name}'; choose one of {', '.join(sorted(TASKS))}")
    module, cls = TASKS[cfg.name].split(":")
    return getattr(importlib.import_module(module), cls)(cfg)


__all__ = [
    "CountdownProblem",
    "CountdownTask",
    "CountdownTurnsEnv",
    "CountdownTurnsTask",
    "FrozenLakeTask",
    "FrozenLakeTextEnv",
    "MultiplicationProblem",
    "MultiplicationTask",
    "StepResult",
    "Task",
    "TextEpisode",
    "make_task",
]
