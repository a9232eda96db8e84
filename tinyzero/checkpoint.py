"""Checkpoints that resume exactly: weights (safetensors) + optimizer + RNG + data-iterator state.

Layout under ``runs/<name>/checkpoints/``::

    iter_000050/  model.safetensors model.json tokenizer.json   (a loadable model directory)
                  extra.safetensors                              (algorithm state, e.g. PPO's critic)
                  optimizer.pt state.json
    latest        text file naming the newest complete checkpoint

Why this shape: a checkpoint is written into a temporary directory and renamed into place (rename
is atomic), and ``latest`` is replaced atomically afterwards, so a crash at any moment leaves the
previous checkpoint intact and ``latest`` always names a complete one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from tinyzero.errors import UserError
from tinyzero.models.io import load_model_dir, save_model_dir


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_checkpoint(
    ckpt_root: Path,
    iteration: int,
    model: torch.nn.Module,
    tok: Any,
    optimizer: torch.optim.Optimizer | dict,
    state: dict,
    extra_tensors: dict[str, torch.Tensor] | None = None,
    keep_last: int = 3,
) -> Path:
    """Write checkpoint ``iter_<iteration>`` atomically, point ``latest`` at it, prune old ones."""
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"iter_{iteration:06d}"
    tmp = ckpt_root / f".tmp_iter_{iteration:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model_dir(model, tok, tmp)
    if extra_tensors:
        # clone(): safetensors refuses tensors that share memory, e.g. a critic's tied embeddings.
        save_file(
            {k: v.detach().cpu().clone().contiguous() for k, v in extra_tensors.items()},
            str(tmp / "extra.safetensors"),
        )
    opt_state = optimizer if isinstance(optimizer, dict) else optimizer.state_dict()
    torch.save(opt_state, tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps({**state, "iteration": iteration}))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    _atomic_write_text(ckpt_root / "latest", final.name)
    for old in sorted(ckpt_root.glob("iter_*"))[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def resolve_checkpoint(path: str | Path) -> Path:
    """Accept a checkpoint dir, a run's ``checkpoints/`` dir, its ``latest`` file or the run dir itself."""
    p = Path(path)
    if p.is_dir() and (p / "checkpoints").is_dir():
        p = p / "checkpoints"
    if p.name == "latest" or (p.is_dir() and (p / "latest").is_file()):
        pointer = p if p.name == "latest" else p / "latest"
        if not pointer.is_file():
            raise UserError(f"no checkpoint found at '{path}' ('latest' is missing)")
        p = pointer.parent / pointer.read_text().strip()
    if not p.is_dir():
        raise UserError(
            f"checkpoint '{path}' not found (expected runs/<name>/checkpoints/latest or iter_NNNNNN)"
        )
    return p


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict:
    """Everything needed to resume: model, tokenizer, optimizer state, training state, extra tensors."""
    p = resolve_checkpoint(path)
    model, tok = load_model_dir(p, device)
    try:
        state = json.loads((p / "state.json").read_text())
        opt_state = torch.load(p / "optimizer.pt", map_location=device, weights_only=True)
        extra = (
            load_file(str(p / "extra.safetensors"), device=str(device))
            if (p / "extra.safetensors").exists()
            else {}
        )
    except FileNotFoundError as e:
        raise UserError(f"checkpoint '{p}' is incomplete: {Path(e.filename).name} is missing") from None
    except Exception as e:  # noqa: BLE001 - torch.load/json raise many types on corrupt files
        raise UserError(f"checkpoint '{p}' is corrupt: {str(e).splitlines()[0][:200]}") from None
    return {
        "path": p,
        "model": model,
        "tokenizer": tok,
        "optimizer": opt_state,
        "state": state,
        "extra": extra,
    }
