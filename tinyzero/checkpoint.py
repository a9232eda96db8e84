"""Checkpoints that resume exactly: weights (safetensors) + optimizer + RNG + data-iterator state.

Layout under ``runs/<name>/checkpoints/``::

    iter_000050/  model.safetensors model.json tokenizer.json   (a loadable model directory)
                  extra.safetensors                              (algorithm state, e.g. PPO's critic)
                  optimizer.pt state.json
                  manifest.json                                  (sha256 + size of every file above)
    latest        text file naming the newest complete checkpoint

Why this shape: a checkpoint is written into a temporary directory, its files are fsynced, the
manifest is written last, and the directory is renamed into place (rename is atomic); ``latest`` is
replaced atomically afterwards. So a crash (SIGKILL, power loss) at any moment leaves every earlier
checkpoint intact, and a checkpoint damaged later (truncated copy, bit rot) fails its checksum:
``find_resumable`` then reports it in one line and falls back to the newest one that verifies.
A failed write (disk full) removes the temporary directory and leaves the previous checkpoints as
they were. docs/reliability.md lists what is tested.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from tinyzero.errors import UserError
from tinyzero.files import readable_by_all
from tinyzero.models.hf import export_model
from tinyzero.models.io import load_model_dir, save_model_dir
from tinyzero.models.transformer import TransformerLM

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1


class CheckpointWriteError(UserError):
    """Writing a checkpoint failed (disk full, quota, permissions); the earlier checkpoints are intact."""


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _digest(path: Path, fsync: bool = False) -> dict:
    """sha256 and size of one file; ``fsync`` also flushes it to disk (one pass over the bytes)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
        if fsync:
            os.fsync(f.fileno())
    return {"sha256": h.hexdigest(), "bytes": path.stat().st_size}


def write_manifest(directory: Path) -> None:
    """Checksum every file of ``directory`` into manifest.json, written last (its presence = complete)."""
    files = {p.name: _digest(p, fsync=True) for p in sorted(directory.iterdir()) if p.name != MANIFEST}
    text = json.dumps({"format": MANIFEST_FORMAT, "algorithm": "sha256", "files": files}, indent=1)
    with open(directory / MANIFEST, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(directory)


def verify_checkpoint(path: Path) -> None:
    """Raise UserError (one line) unless every file listed in the manifest is present and intact."""
    manifest = path / MANIFEST
    if not manifest.is_file():
        raise UserError(f"checkpoint '{path}' is incomplete: {MANIFEST} is missing")
    try:
        files = json.loads(manifest.read_text())["files"]
        expected = {str(name): (str(d["sha256"]), int(d["bytes"])) for name, d in files.items()}
    except Exception:  # noqa: BLE001 - any damage to the manifest means "cannot be trusted"
        raise UserError(f"checkpoint '{path}' is corrupt: {MANIFEST} is unreadable") from None
    for name, (sha, size) in expected.items():
        f = path / name
        if not f.is_file():
            raise UserError(f"checkpoint '{path}' is incomplete: {name} is missing")
        if f.stat().st_size != size:
            raise UserError(
                f"checkpoint '{path}' is corrupt: {name} has {f.stat().st_size} bytes, expected {size} "
                f"(truncated or overwritten)"
            )
        if _digest(f)["sha256"] != sha:
            raise UserError(f"checkpoint '{path}' is corrupt: {name} fails its sha256 checksum")


def _iteration_of(path: Path) -> int:
    return int(path.name.removeprefix("iter_"))


def find_resumable(ckpt_root: Path, report: Any = None) -> Path | None:
    """The newest checkpoint under ``ckpt_root`` whose files verify, or None if none does.

    Newest by iteration, not by the ``latest`` pointer: a crash between renaming a finished checkpoint
    into place and updating ``latest`` leaves a complete checkpoint that the pointer does not name yet.
    Each checkpoint that fails is reported in one line (``report``, default stderr) before falling back.
    """
    report = report or (lambda line: print(line, file=sys.stderr))
    candidates = sorted(
        (p for p in ckpt_root.glob("iter_*") if p.is_dir() and p.name[5:].isdigit()),
        key=_iteration_of,
        reverse=True,
    )
    for i, path in enumerate(candidates):
        try:
            verify_checkpoint(path)
            return path
        except UserError as e:
            after = f"falling back to {candidates[i + 1].name}" if i + 1 < len(candidates) else "none left"
            report(f"warning: {e}; {after}")
    return None


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
    """Write checkpoint ``iter_<iteration>`` atomically, point ``latest`` at it, prune old ones.

    Raises CheckpointWriteError (a UserError) if the files cannot be written, e.g. the disk is full:
    the partial temporary directory is removed and every earlier checkpoint is left untouched.
    """
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"iter_{iteration:06d}"
    tmp = ckpt_root / f".tmp_iter_{iteration:06d}"
    for stale in ckpt_root.glob(".tmp_iter_*"):  # left by a run killed mid-write: never complete
        shutil.rmtree(stale, ignore_errors=True)
    try:
        save_model_dir(model, tok, tmp)
        if extra_tensors:
            # clone(): safetensors refuses tensors that share memory, e.g. a critic's tied embeddings.
            save_file(
                {k: v.detach().cpu().clone().contiguous() for k, v in extra_tensors.items()},
                str(tmp / "extra.safetensors"),
            )
            readable_by_all(tmp / "extra.safetensors")
        opt_state = optimizer if isinstance(optimizer, dict) else optimizer.state_dict()
        torch.save(opt_state, tmp / "optimizer.pt")
        (tmp / "state.json").write_text(json.dumps({**state, "iteration": iteration}))
        write_manifest(tmp)
    except (OSError, RuntimeError, SafetensorError) as e:  # ENOSPC/EDQUOT/EFBIG surface as all three
        shutil.rmtree(tmp, ignore_errors=True)
        kept = find_resumable(ckpt_root, report=lambda line: None)
        raise CheckpointWriteError(
            f"cannot write checkpoint {final.name} in '{ckpt_root}' ({str(e).splitlines()[0][:160]}); "
            f"{'the previous checkpoint ' + kept.name + ' is intact' if kept else 'no earlier checkpoint'}"
            f": free disk space, then continue with --resume"
        ) from None
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    _fsync_dir(ckpt_root)
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
    verify_checkpoint(p)
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


def export_hf(checkpoint_dir: str | Path, out_dir: str | Path) -> Path:
    """Export a checkpoint (anything ``resolve_checkpoint`` accepts) or a plain model directory as a
    transformers directory (scripts/export_hf.py). It lives here, above ``models``, because it needs
    both the checkpoint layout and the model loaders; ``models.hf.export_model`` does the writing."""
    model, tok = load_model_dir(resolve_checkpoint(checkpoint_dir))
    if not isinstance(model, TransformerLM):
        raise UserError(f"'{checkpoint_dir}' already holds a Hugging Face model: copy it instead")
    return export_model(model, tok, out_dir)
