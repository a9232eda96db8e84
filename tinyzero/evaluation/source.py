"""What to evaluate: a checkpoint or a base-model directory, the config it samples with, and π_ref.

One place shows how a path given to ``evaluate.py --checkpoint`` becomes a model, its tokenizer and its
config (a checkpoint carries its own; a base model borrows one), and which base model the KL is
measured against.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tinyzero.checkpoint import MANIFEST, resolve_checkpoint, verify_checkpoint
from tinyzero.config import TASKS, Config, load_config
from tinyzero.errors import UserError
from tinyzero.models.io import load_model_dir


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
