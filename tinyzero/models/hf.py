"""Hugging Face interop, both ways, local paths only (nothing is ever downloaded).

Export: ``export_model`` writes one of our models as a ``LlamaForCausalLM`` directory (config.json,
model.safetensors with HF key names, generation_config.json) plus a ``PreTrainedTokenizerFast`` that
gives exactly our character ids, so ``AutoModelForCausalLM`` / ``AutoTokenizer`` load it offline.
Our architecture *is* Llama's (RMSNorm, rotate-half RoPE, SwiGLU, no biases), so the export is a pure
renaming plus splitting our fused projections (qkv → q/k/v, w13 → gate/up): no weight is changed.

Import: ``model.source: hf`` trains a local ``transformers`` causal LM (Llama, Qwen2, ...) as policy
and reference with the same rollout and algorithm code. ``HFCausalLM`` is the thin adapter that
makes a transformers model look like ``TransformerLM`` to that code (``forward`` → float logits,
``hidden_states`` with a KV cache that ``transformers.generate``-free sampling can drive, ``config``
with ``max_seq_len`` and ``d_model``), and ``HFTokenizer`` makes its tokenizer look like
``CharTokenizer`` (``encode``/``decode``/``bos_id``/``eos_id``/``pad_id``). transformers is imported
only inside this module's functions, so the core package never needs it.

This module is part of the models layer: it imports nothing above it. Exporting a *checkpoint*
(``tinyzero.checkpoint.export_hf``) and building the reference of a ``model.source: hf`` run
(``tinyzero.pretrain.load_hf_reference``) need checkpoints, tasks and rollouts, so they live there.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from tinyzero.errors import UserError
from tinyzero.files import readable_by_all
from tinyzero.models.tokenizer import SPECIALS, CharTokenizer
from tinyzero.models.transformer import TransformerLM, _attention_mask

if TYPE_CHECKING:
    pass

SIDECAR = "tinyzero_hf.json"  # written next to an HF model we saved: the context length we trained with


# ---------------------------------------------------------------------------------------------- export
def _require_transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise UserError(
            "Hugging Face interop needs transformers: pip install -e '.[hf]' (or bash install.sh)"
        ) from None
    transformers.utils.logging.disable_progress_bar()  # per-file load/save bars would drown our own
    return transformers


def llama_config(model: TransformerLM) -> Any:
    """The ``LlamaConfig`` that describes our architecture exactly (MHA: as many KV heads as heads)."""
    from transformers import LlamaConfig

    c = model.config
    return LlamaConfig(
        vocab_size=c.vocab_size,
        hidden_size=c.d_model,
        intermediate_size=c.ff_dim,
        num_hidden_layers=c.n_layers,
        num_attention_heads=c.n_heads,
        num_key_value_heads=c.n_heads,
        hidden_act="silu",
        max_position_embeddings=c.max_seq_len,
        rms_norm_eps=c.norm_eps,
        rope_theta=c.rope_theta,
        tie_word_embeddings=c.tie_embeddings,
        attention_bias=False,
        mlp_bias=False,
        pad_token_id=CharTokenizer.pad_id,
        bos_token_id=CharTokenizer.bos_id,
        eos_token_id=CharTokenizer.eos_id,
    )


def to_hf_state_dict(model: TransformerLM) -> dict[str, Tensor]:
    """Our parameter names → ``LlamaForCausalLM``'s, splitting the fused qkv and gate/up matrices.

    Our qkv rows are [q; k; v] with heads contiguous inside each (the (3, H, hd) view in Attention),
    and RoPE rotates the pairs (i, i + hd/2) like HF's ``rotate_half``: no row permutation is needed.
    """
    sd = model.state_dict()
    out = {"model.embed_tokens.weight": sd["tok_emb.weight"], "model.norm.weight": sd["norm.weight"]}
    out["lm_head.weight"] = sd["lm_head.weight"]  # the same tensor as the embedding when tied
    for i in range(model.config.n_layers):
        p, q = f"blocks.{i}.", f"model.layers.{i}."
        wq, wk, wv = sd[p + "attn.qkv.weight"].chunk(3, dim=0)
        gate, up = sd[p + "mlp.w13.weight"].chunk(2, dim=0)
        out |= {
            q + "self_attn.q_proj.weight": wq,
            q + "self_attn.k_proj.weight": wk,
            q + "self_attn.v_proj.weight": wv,
            q + "self_attn.o_proj.weight": sd[p + "attn.proj.weight"],
            q + "mlp.gate_proj.weight": gate,
            q + "mlp.up_proj.weight": up,
            q + "mlp.down_proj.weight": sd[p + "mlp.w2.weight"],
            q + "input_layernorm.weight": sd[p + "attn_norm.weight"],
            q + "post_attention_layernorm.weight": sd[p + "mlp_norm.weight"],
        }
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


def to_hf_model(model: TransformerLM) -> Any:
    """A ``LlamaForCausalLM`` (float32, eval mode) holding exactly our weights."""
    from transformers import LlamaForCausalLM

    hf = LlamaForCausalLM(llama_config(model)).float()
    hf.load_state_dict(to_hf_state_dict(model), strict=True)
    hf.generation_config.pad_token_id = CharTokenizer.pad_id
    return hf.to(next(model.parameters()).device).eval()


def char_tokenizer_to_hf(tok: CharTokenizer) -> Any:
    """A ``PreTrainedTokenizerFast`` with our ids: one WordLevel token per character, specials 0..3.

    ``tok(text)`` prepends BOS (as Llama tokenizers do), ``add_special_tokens=False`` gives exactly
    ``CharTokenizer.encode(text)``. Special-token names typed inside text are split into characters
    (``split_special_tokens``), as ours does, so model output can never inject a control token.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {name: i for i, name in enumerate(SPECIALS)}
    vocab |= {ch: i + len(SPECIALS) for i, ch in enumerate(tok.alphabet)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every char alone
    core.decoder = decoders.Fuse()  # join characters without the WordLevel default spaces
    core.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", tok.bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        split_special_tokens=True,
        clean_up_tokenization_spaces=False,
        padding_side="left",
    )


def export_model(model: TransformerLM, tok: CharTokenizer, out_dir: str | Path) -> Path:
    """Write ``model`` + ``tok`` as a transformers directory (LlamaForCausalLM + fast tokenizer)."""
    _require_transformers()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    to_hf_model(model.float()).save_pretrained(out)
    char_tokenizer_to_hf(tok).save_pretrained(out)
    for weights in out.glob("*.safetensors"):
        readable_by_all(weights)
    return out


# ---------------------------------------------------------------------------------------------- import
@dataclass
class AdapterConfig:
    """The few architecture facts the rollout and algorithm code read from ``model.config``."""

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    max_seq_len: int


class HFCache:
    """A transformers cache plus the bookkeeping ``TransformerLM``'s ``KVCache`` keeps for ``generate``.

    ``valid`` records which slots hold real tokens (left padding does not), so every step's 4-D mask
    is built exactly as ours is; ``seen`` counts real tokens (the next RoPE position).
    """

    def __init__(self, hf_cache: Any, batch_size: int, max_len: int, device: torch.device) -> None:
        self.hf = hf_cache
        self.valid = torch.zeros((batch_size, max_len), dtype=torch.bool, device=device)  # (B, L)
        self.seen = torch.zeros(batch_size, dtype=torch.long, device=device)  # (B,)
        self.max_len = max_len
        self.pos = 0

    def take(self, rows: Tensor) -> HFCache:
        """As ``KVCache.take``: sequence i of the result is this cache's sequence ``rows[i]``. The
        transformers cache is reordered in place, so this cache is used up."""
        self.hf.reorder_cache(rows)
        out = HFCache(self.hf, len(rows), self.max_len, self.valid.device)
        out.valid, out.seen = self.valid.index_select(0, rows), self.seen.index_select(0, rows)
        out.pos = self.pos
        return out


class HFCausalLM(nn.Module):
    """A transformers causal LM behind ``TransformerLM``'s interface (what rollout/algorithms use).

    Masks are passed to transformers as explicit 4-D additive masks built by our ``_attention_mask``
    (a query always sees itself), and positions are counted per sequence from its first real token, so
    left-padded prompts behave exactly as with our own model and padding rows never produce NaNs.
    """

    def __init__(self, hf_model: nn.Module, max_seq_len: int) -> None:
        super().__init__()
        self.hf = hf_model
        c = hf_model.config
        self.config = AdapterConfig(
            vocab_size=hf_model.get_output_embeddings().weight.shape[0],
            d_model=c.hidden_size,
            n_layers=c.num_hidden_layers,
            n_heads=c.num_attention_heads,
            max_seq_len=max_seq_len,
        )
        params = inspect.signature(hf_model.base_model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"  # transformers 5 vs 4

    # Properties, not attributes: registering the HF embedding twice would duplicate it in state_dict.
    @property
    def tok_emb(self) -> nn.Module:
        return self.hf.get_input_embeddings()

    @property
    def lm_head(self) -> nn.Module:
        return self.hf.get_output_embeddings()

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, batch_size: int, max_len: int) -> HFCache:
        from transformers import DynamicCache

        try:
            hf_cache = DynamicCache(config=self.hf.config)
        except TypeError:  # older transformers: no config argument
            hf_cache = DynamicCache()
        return HFCache(hf_cache, batch_size, max_len, self.tok_emb.weight.device)

    def _additive(self, allowed: Tensor) -> Tensor:
        """Bool (B, 1, T, L) "may attend" → additive float mask in the model's dtype."""
        dtype = self.tok_emb.weight.dtype
        return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(
            ~allowed, torch.finfo(dtype).min
        )

    def hidden_states(
        self,
        idx: Tensor,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        kv_cache: HFCache | None = None,
    ) -> Tensor:
        """Final-normed hidden states (B, T, C), same contract as ``TransformerLM.hidden_states``."""
        B, T = idx.shape
        valid = (
            torch.ones((B, T), dtype=torch.bool, device=idx.device)
            if attention_mask is None
            else attention_mask.bool()
        )  # (B, T)
        if kv_cache is None:
            if self.config.max_seq_len < T:
                raise ValueError(f"{T} tokens exceed the model length {self.config.max_seq_len}")
            if position_ids is None:
                position_ids = (valid.cumsum(1) - 1).clamp(min=0)  # (B, T)
            mask = None if attention_mask is None else self._additive(_attention_mask(valid, 0, T))
            kwargs: dict = {}
        else:
            start = kv_cache.pos
            if start + T > kv_cache.max_len:
                raise ValueError(f"{start + T} tokens exceed the cache length {kv_cache.max_len}")
            if position_ids is None:
                position_ids = (valid.cumsum(1) - 1).clamp(min=0) + kv_cache.seen[:, None]
            kv_cache.valid[:, start : start + T] = valid
            kv_cache.seen += valid.sum(1)
            kv_cache.pos = start + T
            mask = self._additive(_attention_mask(kv_cache.valid[:, : start + T], start, T))  # (B,1,T,L)
            kwargs = {self._cache_kw: kv_cache.hf, "use_cache": True}
        out = self.hf.base_model(input_ids=idx, attention_mask=mask, position_ids=position_ids, **kwargs)
        return out.last_hidden_state  # (B, T, C)

    def decode_step(self, tokens: Tensor, cache: HFCache) -> Tensor:
        """Hidden states (B, C) after one real token per row, tokens (B,): ``TransformerLM.decode_step``."""
        return self.hidden_states(tokens[:, None], kv_cache=cache)[:, 0]

    def forward(
        self,
        idx: Tensor,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        kv_cache: HFCache | None = None,
    ) -> Tensor:
        """idx (B, T) long, attention_mask (B, T) → logits (B, T, V) float."""
        return self.head(self.hidden_states(idx, attention_mask, position_ids, kv_cache))

    def head(self, h: Tensor) -> Tensor:
        """Logits from hidden states. Unlike ``TransformerLM.head`` the matmul follows autocast: a
        hub model's vocabulary (~150k) makes a float32 head a large share of its work."""
        return self.lm_head(h).float()

    def save_dir(self, out: Path) -> None:
        """``save_pretrained`` plus the context length, so a checkpoint reloads with the same limits."""
        self.hf.save_pretrained(out)
        (out / SIDECAR).write_text(json.dumps({"max_seq_len": self.config.max_seq_len}))


class HFTokenizer:
    """A transformers tokenizer behind ``CharTokenizer``'s interface.

    Models without a BOS token (Qwen2) get EOS in its place: the context layout always starts with
    one token, and an end-of-text marker is what such models saw at document starts in pre-training.
    Models without a PAD token pad with EOS (padding is always masked out).
    """

    def __init__(self, hf_tokenizer: Any) -> None:
        self.hf = hf_tokenizer
        eos = hf_tokenizer.eos_token_id
        if eos is None:
            raise UserError(
                "the Hugging Face tokenizer has no eos_token: set one in its tokenizer_config.json"
            )
        self.eos_id = int(eos)
        self.bos_id = int(hf_tokenizer.bos_token_id if hf_tokenizer.bos_token_id is not None else eos)
        self.pad_id = int(hf_tokenizer.pad_token_id if hf_tokenizer.pad_token_id is not None else eos)
        self.unk_id = hf_tokenizer.unk_token_id
        self._memo: dict[str, list[int]] = {}  # observations repeat a lot across episodes

    @property
    def vocab_size(self) -> int:
        return len(self.hf)

    @property
    def alphabet(self) -> str:
        """A fingerprint of the vocabulary (evaluation compares tokenizers by this attribute)."""
        return hashlib.sha256(json.dumps(self.hf.get_vocab(), sort_keys=True).encode()).hexdigest()

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        ids = self._memo.get(text)
        if ids is None:
            ids = list(self.hf(text, add_special_tokens=False)["input_ids"])
            if len(self._memo) < 100_000:
                self._memo[text] = ids
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def decode(self, ids: list[int] | tuple[int, ...]) -> str:
        """Ids → text, stopping at the first EOS and dropping special tokens (like CharTokenizer)."""
        ids = [int(i) for i in ids]
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        return self.hf.decode(ids, skip_special_tokens=True)

    def save_dir(self, out: Path) -> None:
        self.hf.save_pretrained(out)


def is_hf_model_dir(path: str | Path) -> bool:
    """A transformers directory (config.json) that is not one of our own (model.json)."""
    p = Path(path)
    return (p / "config.json").is_file() and not (p / "model.json").is_file()


def load_hf_model_dir(
    path: str | Path, device: str | torch.device = "cpu", max_seq_len: int | None = None
) -> tuple[HFCausalLM, HFTokenizer]:
    """Load a local transformers causal LM + tokenizer (float32) as (HFCausalLM, HFTokenizer).

    ``max_seq_len`` caps the context the rollout may use (default: what the directory was saved with,
    else the model's ``max_position_embeddings``).
    """
    _require_transformers()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = Path(path)
    if not p.exists():
        raise UserError(
            f"model.path '{path}' does not exist: point it at a local transformers model directory"
        )
    if not (p / "config.json").is_file():
        raise UserError(
            f"model.path '{path}' is not a transformers model directory (no config.json): save one with "
            f"save_pretrained(), or export ours with scripts/export_hf.py"
        )
    try:
        hf = AutoModelForCausalLM.from_pretrained(p, local_files_only=True)
        hf_tok = AutoTokenizer.from_pretrained(p, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot load the transformers model in '{path}': {first[:300]}") from None
    sidecar = p / SIDECAR
    saved = json.loads(sidecar.read_text()).get("max_seq_len") if sidecar.is_file() else None
    limit = int(getattr(hf.config, "max_position_embeddings", 0) or 1 << 30)
    length = min(max_seq_len or saved or limit, limit)
    model = HFCausalLM(hf.float().to(device).eval(), length)
    return model, HFTokenizer(hf_tok)
