"""What ``--resume`` continues: the run's own saved config, with only the changes that keep it the same run.

Why: a resumed run must be the run it names. Rebuilding the config from the current command line
(as a plain ``train.py --config X`` would) lets a resume silently switch algorithm, learning rate or
iteration budget, and then overwrite ``config.yaml`` with the mix. So ``--resume`` starts from
``runs/<name>/config.yaml`` (the resolved config the run saved), applies an explicit command-line
override only when it is *safe* — it changes how long the run goes on, how it is evaluated, logged,
checkpointed or executed, not what it optimises — and refuses the others with one line. Keys the
``--config`` file sets differently from the run are ignored, and the user is told so.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from tinyzero.config import Config, load_config, parse_overrides
from tinyzero.errors import UserError

# Keys a resume may change: where the run lives, how long it goes on, how often it is evaluated and
# saved, what is logged, and how it executes. Everything else (task, model, base, algorithm and its
# coefficients, learning rate, seeds, rollout settings, precision) defines the run and is refused.
SAFE_KEYS = (
    "run.name",
    "run.out_dir",
    "run.threads",
    "run.device",
    "run.compile",
    "training.total_iterations",
    "training.eval_every",
    "training.eval_problems",
    "training.checkpoint_every",
    "training.keep_last",
    "training.max_bad_steps",
    "pretrain.cache_dir",
    "pretrain.eval_problems",
    "logging.",
    "distributed.",
)


def is_safe(key: str) -> bool:
    return any(key == s or (s.endswith(".") and key.startswith(s)) for s in SAFE_KEYS)


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"training.lr": 5e-4, ...}`` from a Config (or a nested dict)."""
    if dataclasses.is_dataclass(node):
        node = dataclasses.asdict(node)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def changed(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Keys present in both whose values differ: {key: (old, new)}."""
    return {k: (old[k], new[k]) for k in old.keys() & new.keys() if old[k] != new[k]}


def refuse_unsafe(diff: dict[str, tuple[Any, Any]], run: str, source: str) -> None:
    """One line naming every key that would change what the run is."""
    bad = sorted(k for k in diff if not is_safe(k))
    if bad:
        what = ", ".join(f"{k}={diff[k][1]!r} (the run has {diff[k][0]!r})" for k in bad)
        raise UserError(
            f"--resume: {source} changes what run '{run}' is: {what}; a resume keeps the run's settings "
            f"(only iterations, evaluation, checkpoints, logging and threads/device may change): drop the "
            f"override, or start a new run with another run.name"
        )


def resume_config(path: str | None, overrides: list[str]) -> tuple[Config, list[str]]:
    """(the config to resume with, notes for the user) for ``train.py [--config path] overrides --resume``.

    The command line only locates the run (``run.out_dir``/``run.name``) and may change safe keys.
    """
    located = load_config(path, overrides)  # validates the command line as a fresh run would
    run_dir = Path(located.run.out_dir) / located.run.name
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        raise UserError(
            f"--resume: no checkpoint in '{run_dir / 'checkpoints'}' and no '{saved}': run "
            f"'{located.run.name}' never started (start without --resume)"
        )
    run_cfg = load_config(saved)
    explicit = flatten(OmegaConf.to_container(parse_overrides(overrides)))
    # Only the keys the user typed are candidates for a change; the rest comes from the run.
    asked = {k: v for k, v in flatten(located).items() if k in explicit}
    diff = changed(flatten(run_cfg), asked)
    refuse_unsafe(diff, located.run.name, "the command line")
    notes = [f"--resume: {k} {old!r} -> {new!r}" for k, (old, new) in sorted(diff.items())]
    if "training.total_iterations" in diff and run_cfg.training.lr_schedule != "constant":
        notes.append(
            f"--resume: training.lr_schedule={run_cfg.training.lr_schedule} decays over "
            f"training.total_iterations: the rest of the run follows the curve of the new length"
        )
    if path is not None:
        ignored = changed(flatten(run_cfg), flatten(located))
        ignored = {k: v for k, v in ignored.items() if k not in explicit}
        if ignored:
            listed = ", ".join(
                f"{k} ({new!r}, the run has {old!r})" for k, (old, new) in sorted(ignored.items())
            )
            notes.append(f"--resume: using {saved}; ignored what {path} sets differently: {listed}")
    # Every explicit override now either equals the run's value or is safe: apply them as typed.
    return load_config(saved, overrides), notes
