"""Save and load a model directory: ``model.safetensors`` + ``model.json`` + ``tokenizer.json``.

Why a directory and not a pickle: safetensors cannot execute code on load, and the JSON files make
a checkpoint self-describing (architecture and tokenizer travel with the weights).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from tinyzero.errors import UserError
from tinyzero.files import readable_by_all
from tinyzero.models.hf import load_hf_model_dir
from tinyzero.models.tokenizer import CharTokenizer
from tinyzero.models.transformer import ModelConfig, TransformerLM, model_config


def weights_sha256(modules: list[torch.nn.Module | None]) -> str:
    """One SHA-256 over every tensor of ``modules`` (names and bytes, in a fixed order; None skipped):
    equal for two modules only when their weights are equal bit for bit."""
    h = hashlib.sha256()
    for module in modules:
        if module is None:
            continue
        for name, tensor in sorted(module.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def build_model(preset: str, vocab_size: int, max_seq_len: int) -> TransformerLM:
    """A freshly initialised model of the named preset (init is seeded by the caller's torch seed)."""
    return TransformerLM(model_config(preset, vocab_size=vocab_size, max_seq_len=max_seq_len))


def save_model_dir(model: TransformerLM, tok: CharTokenizer, out: str | Path) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not isinstance(model, TransformerLM):  # a Hugging Face model (model.source: hf): its own format
        model.save_dir(out)
        tok.save_dir(out)
        return
    save_model(model, str(out / "model.safetensors"))  # handles tied embeddings
    readable_by_all(out / "model.safetensors")
    (out / "model.json").write_text(json.dumps(dataclasses.asdict(model.config), indent=1))
    tok.save(out / "tokenizer.json")


def load_model_dir(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[TransformerLM, CharTokenizer]:
    """Load what ``save_model_dir`` wrote; a missing or corrupt file is a UserError naming it.

    A transformers directory (config.json, no model.json: a run with ``model.source: hf``) loads as
    ``tinyzero.models.hf.HFCausalLM`` + ``HFTokenizer``, which the rest of the code uses unchanged.
    """
    path = Path(path)
    if (path / "config.json").is_file() and not (path / "model.json").is_file():
        return load_hf_model_dir(path, device)  # type: ignore[return-value]
    for name in ("model.safetensors", "model.json", "tokenizer.json"):
        if not (path / name).is_file():
            raise UserError(f"'{path}' is not a model directory: {name} is missing")
    try:
        cfg = ModelConfig(**json.loads((path / "model.json").read_text()))
        tok = CharTokenizer.load(path / "tokenizer.json")
    except (ValueError, TypeError, json.JSONDecodeError) as e:
        raise UserError(f"corrupt model description in '{path}': {e}") from None
    model = TransformerLM(cfg)
    try:
        load_model(model, str(path / "model.safetensors"), strict=True, device=str(device))
    except (SafetensorError, RuntimeError, OSError) as e:
        raise UserError(f"corrupt weights in '{path}/model.safetensors': {str(e).splitlines()[0]}") from None
    return model.to(device), tok
