"""A small Llama-style decoder, its log-prob helpers and a fast batched sampler, in one file.

Architecture (Llama, minus everything a ~1M-parameter char model does not need): pre-norm RMSNorm,
rotary position embeddings, SwiGLU MLP, no biases, causal attention through
``F.scaled_dot_product_attention``, optionally tied input/output embeddings.

Why the sampler matters: in RL almost all wall-clock time is spent generating. Batches of 16-256
short sequences on a CPU are dominated by per-step overhead, not FLOPs, so ``generate`` prefills
the prompts once into a preallocated KV cache and then runs one cheap (B, 1) step per new token:
the attention mask of a step is a slice of a bias tensor kept in the cache, RoPE angles are a
gather into precomputed buffers, and only the last position goes through the LM head.

Padding convention: a batch of prompts is LEFT-padded, with an attention mask (True/1 = real
token). Positions are counted per sequence from its first real token, so a sequence gets exactly
the same logits alone or inside a padded batch. Training batches may be right-padded; positions
are derived from the mask either way.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PRESETS: dict[str, dict] = {
    "nano": dict(d_model=64, n_layers=4, n_heads=4),  # ~0.2M parameters: the default job, tests, smoke runs
    "tiny": dict(d_model=128, n_layers=4, n_heads=4),  # ~0.8M
    "small": dict(d_model=256, n_layers=6, n_heads=8),  # ~4.8M
}


@dataclass
class ModelConfig:
    vocab_size: int = 100
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 0  # 0 → Llama's rule: 8/3 * d_model rounded up to a multiple of 32
    max_seq_len: int = 512
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ValueError(f"d_model={self.d_model} must split into {self.n_heads} heads of even size")

    @property
    def ff_dim(self) -> int:
        if self.d_ff > 0:
            return self.d_ff
        return 32 * math.ceil(8 * self.d_model / 3 / 32)


def model_config(preset: str, **overrides) -> ModelConfig:
    """The named preset's architecture with ``overrides`` (e.g. vocab_size, max_seq_len) applied."""
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset '{preset}'; choose one of: {', '.join(PRESETS)}")
    return ModelConfig(**{**PRESETS[preset], **overrides})


# ----------------------------------------------------------------------------------------------
# Model


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate pairs (x[i], x[i + hd/2]) by the angles of each token's position ("rotate-half" RoPE).

    ``cos`` = (cos θ, cos θ) and ``sin`` = (−sin θ, sin θ) over the full head width, so the rotation
    (x1·cos θ − x2·sin θ, x2·cos θ + x1·sin θ) is x·cos + (x2, x1)·sin: two multiplies, one add and one
    concatenation instead of four, two and one (the same bits: a − b·s equals a + b·(−s) exactly).
    Elementwise ops are a large share of a step of the small presets on CPU.
    """
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((x2, x1), dim=-1) * sin


def _cpu_bf16_autocast(x: Tensor) -> bool:
    """Whether ``x`` is on CPU inside a bfloat16 autocast region (``run.dtype=bfloat16``)."""
    return (
        x.device.type == "cpu"
        and torch.is_autocast_enabled("cpu")
        and torch.get_autocast_dtype("cpu") == torch.bfloat16
    )


# Longest rows (tokens) for which a float32 training forward on CPU writes attention out as matmuls:
# PyTorch's CPU flash-attention kernel, its backward above all, costs more than two batched matmuls
# and a (T, T) softmax for rows this short. bench/attention.py (forward+backward, 2 threads, two runs):
# at 27 tokens (FrozenLake's Markov turns) the matmuls are 1.09-1.16x / 1.05-1.08x / 1.05-1.11x faster
# on nano / tiny / small, at 48 the two are even (0.98-1.05x), from 64 on the kernel wins and its lead
# grows with T (the matmuls at 0.43-0.77x of it at 256).
MATMUL_ATTENTION_MAX_LEN = 48

# A decode step's attention reads the whole KV-cache buffer, not only its written slots, once this
# fraction of the buffer is written (``TransformerLM.decode_step``): a batched matmul over a slice of
# the buffer (rows a stride apart) runs slower than over the whole contiguous buffer, while reading
# unwritten slots costs memory traffic. bench/decode.py (tiny, 2 threads, batch 64 / 256, speed-up of
# generate over the general forward): prompts of 20-60 tokens + 64 new, only the written slots
# 0.93 / 1.04x, this rule 1.11 / 1.48x, always the whole buffer 1.24 / 1.55x; prompts of 8-16 + 128
# new (mostly under half written), 1.01 / 1.08x, 1.13 / 1.29x and 1.13 / 1.21x.
DECODE_FULL_READ_FROM = 0.5


def causal_attention_matmul(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """softmax(q·kᵀ/√hd + causal mask)·v as explicit matmuls, q, k, v: (B, H, T, hd); softmax in float32.

    Why it exists, twice over on CPU:
    * short rows in float32 (T ≤ ``MATMUL_ATTENTION_MAX_LEN``): the flash-attention kernel's per-row
      overhead dominates; the matmuls made the nano model's forward+backward on FrozenLake turns
      10-15 % faster;
    * bfloat16 at any length: on a CPU with native bfloat16 (AVX512-BF16, AMX) a bf16 training step
      runs its matmuls ~2x faster than float32, but PyTorch's CPU flash-attention *backward* in bf16 is
      ~3x slower than in float32 and ate the whole gain (bench/train_step.py --bf16, docs/scaling.md).
    The (T, T) scores of these short sequences are cheap to hold. Sampling (KV cache, masks), masked
    forwards and GPUs keep ``scaled_dot_product_attention``.
    """
    T = q.shape[-2]
    scores = (q @ k.transpose(-1, -2)).float() * q.shape[-1] ** -0.5  # (B, H, T, T)
    future = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)
    weights = torch.softmax(scores.masked_fill_(future, float("-inf")), dim=-1)
    return weights.to(v.dtype) @ v  # (B, H, T, hd)


def _matmul_attention(q: Tensor) -> bool:
    """Whether a causal, unmasked, uncached attention over ``q`` (B, H, T, hd) takes the explicit matmuls."""
    if q.device.type != "cpu":
        return False
    return _cpu_bf16_autocast(q) or (q.dtype == torch.float32 and q.shape[-2] <= MATMUL_ATTENTION_MAX_LEN)


class KVCache:
    """Per-layer keys/values preallocated for ``max_len`` slots and written in place.

    ``bias`` holds, for every slot already written, 0 (a real token) or -inf (padding): the mask of
    a one-token decode step is just ``bias[:, :L]``, never rebuilt. ``seen`` counts the real tokens
    of each sequence, i.e. the RoPE position of its next token.
    """

    def __init__(self, config: ModelConfig, batch_size: int, max_len: int, device, dtype) -> None:
        hd = config.d_model // config.n_heads
        shape = (batch_size, config.n_heads, max_len, hd)
        # torch.empty, not zeros: a slot is always written before it is read, and zero-filling tens of
        # MB of cache costs as much as several decode steps.
        self.k = [torch.empty(shape, device=device, dtype=dtype) for _ in range(config.n_layers)]
        self.v = [torch.empty(shape, device=device, dtype=dtype) for _ in range(config.n_layers)]
        self.bias = torch.empty((batch_size, 1, 1, max_len), device=device, dtype=dtype)  # (B, 1, 1, L)
        self.seen = torch.zeros(batch_size, dtype=torch.long, device=device)  # (B,)
        self.max_len = max_len
        self.pos = 0  # slots filled so far (same for every sequence: padding takes slots too)
        self.cleared = False  # whether the slots from pos on are zeroed (clear_tail)

    def clear_tail(self) -> None:
        """Zero keys and values and set the bias to -inf in every slot not yet written (once).

        Then attention may read the whole buffer (``TransformerLM.decode_step``): unwritten slots get
        weight exactly 0 and add exactly 0, where the memory ``torch.empty`` left there could hold NaN or
        inf (and 0 · NaN is NaN).
        """
        if not self.cleared:
            for layer in (*self.k, *self.v):
                layer[:, :, self.pos :].zero_()
            self.bias[..., self.pos :] = float("-inf")
            self.cleared = True

    def take(self, rows: Tensor) -> KVCache:
        """A cache whose sequence i is this cache's sequence ``rows[i]`` (rows may repeat): the filled
        slots are copied, the rest left unwritten as in a new cache."""
        out = object.__new__(KVCache)
        out.max_len, out.pos, out.cleared = self.max_len, self.pos, False
        out.seen = self.seen.index_select(0, rows)
        out.bias = self.bias.new_empty((len(rows), *self.bias.shape[1:]))
        out.bias[..., : self.pos] = self.bias[..., : self.pos].index_select(0, rows)
        out.k, out.v = [], []
        for src, dst in ((self.k, out.k), (self.v, out.v)):
            for layer in src:
                new = layer.new_empty((len(rows), *layer.shape[1:]))
                new[:, :, : self.pos] = layer[:, :, : self.pos].index_select(0, rows)
                dst.append(new)
        return out


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.d_model // cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(
        self,
        x: Tensor,
        cos: Tensor,
        sin: Tensor,
        mask: Tensor | None,
        cache: tuple[Tensor, Tensor] | None,
        start: int,
    ) -> Tensor:
        B, T, C = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.n_heads, self.head_dim)  # (B, T, 3, H, hd)
        qk = apply_rope(qkv[:, :, :2], cos, sin)  # (B, T, 2, H, hd): q and k rotated in one go
        q = qk[:, :, 0].transpose(1, 2)  # (B, H, T, hd)
        k = qk[:, :, 1].transpose(1, 2)  # (B, H, T, hd)
        v = qkv[:, :, 2].transpose(1, 2)  # (B, H, T, hd)
        if cache is not None:
            ck, cv = cache
            ck[:, :, start : start + T] = k
            cv[:, :, start : start + T] = v
            k, v = ck[:, :, : start + T], cv[:, :, : start + T]  # (B, H, L, hd)
        if cache is None and mask is None and _matmul_attention(q):
            y = causal_attention_matmul(q, k, v)
        else:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=mask is None
            )  # (B, H, T, hd)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)

    def decode(
        self, h: Tensor, cos: Tensor, sin: Tensor, ck: Tensor, cv: Tensor, bias: Tensor, slot: int | Tensor
    ) -> Tensor:
        """``forward`` for one new token per row, h (B, C) → (B, C), against a KV cache.

        The token's key and value go to cache slot ``slot`` (an int, or a one-element long tensor
        when the step is compiled: ``TransformerLM.decode_layers``); it attends over the first
        ``bias.shape[-1]`` slots, masked by ``bias`` (B, 1, 1, W) (0 or -inf).
        """
        B, C = h.shape
        qkv = self.qkv(h).view(B, 3, self.n_heads, self.head_dim)  # (B, 3, H, hd)
        qk = apply_rope(qkv[:, :2], cos, sin)  # (B, 2, H, hd)
        if isinstance(slot, Tensor):  # compiled: a tensor, which torch.compile does not specialise on
            ck.index_copy_(2, slot, qk[:, 1, :, None])
            cv.index_copy_(2, slot, qkv[:, 2, :, None])
        else:  # eager: an int index writes 3-5x faster than index_copy_
            ck[:, :, slot] = qk[:, 1]
            cv[:, :, slot] = qkv[:, 2]
        W = bias.shape[-1]
        scores = torch.matmul(qk[:, 0, :, None], ck[:, :, :W].transpose(-1, -2))  # (B, H, 1, W)
        weights = torch.softmax(torch.add(bias, scores, alpha=self.head_dim**-0.5), dim=-1)
        y = torch.matmul(weights, cv[:, :, :W])  # (B, H, 1, hd)
        return self.proj(y.view(B, C))  # (B, C)


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.w13 = nn.Linear(cfg.d_model, 2 * cfg.ff_dim, bias=False)  # gate and up projections fused
        self.w2 = nn.Linear(cfg.ff_dim, cfg.d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        gate, up = self.w13(x).chunk(2, dim=-1)  # (B, T, F) each
        return self.w2(F.silu(gate) * up)  # (B, T, C)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, self.weight.shape, self.weight, self.eps)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = SwiGLU(cfg)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None, cache, start: int) -> Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, mask, cache, start)
        return x + self.mlp(self.mlp_norm(x))  # (B, T, C)

    def decode(
        self, x: Tensor, cos: Tensor, sin: Tensor, ck: Tensor, cv: Tensor, bias: Tensor, slot: int | Tensor
    ) -> Tensor:
        """``forward`` for one token per row, x (B, C), against a KV cache: the sampler's inner loop."""
        x = x + self.attn.decode(self.attn_norm(x), cos, sin, ck, cv, bias, slot)
        return x + self.mlp(self.mlp_norm(x))  # (B, C)


def _attention_mask(valid: Tensor, start: int, T: int) -> Tensor:
    """Bool (B, 1, T, L) mask for T queries at slots start..start+T-1 over keys 0..L-1 (L = start+T).

    A query sees earlier-or-equal slots that hold real tokens. It always sees itself too, so that a
    padding query (left padding) is not fully masked: that would give NaNs, which then leak through
    0 * NaN in later matmuls. Padding rows' outputs are never used.
    """
    L = start + T
    q_slot = torch.arange(start, L, device=valid.device)[:, None]  # (T, 1)
    k_slot = torch.arange(L, device=valid.device)[None, :]  # (1, L)
    mask = (k_slot <= q_slot) & valid[:, None, None, :L]  # (B, 1, T, L)
    return mask | (k_slot == q_slot)


class TransformerLM(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight
        hd = config.d_model // config.n_heads
        inv_freq = 1.0 / config.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd)  # (hd/2,)
        angles = torch.arange(config.max_seq_len, dtype=torch.float64)[:, None] * inv_freq  # (S, hd/2)
        # Not saved in checkpoints: they are a function of the config.
        # Full head width, laid out for apply_rope: cos = (cos θ, cos θ), sin = (−sin θ, sin θ).
        cos, sin = angles.cos().float(), angles.sin().float()
        self.register_buffer("rope_cos", torch.cat((cos, cos), dim=-1), persistent=False)
        self.register_buffer("rope_sin", torch.cat((-sin, sin), dim=-1), persistent=False)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: shrink the residual-branch outputs with depth
            if name.endswith(("attn.proj.weight", "mlp.w2.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * config.n_layers))

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def num_params(self) -> int:
        """Trainable parameters (a tied embedding counted once)."""
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, batch_size: int, max_len: int) -> KVCache:
        p = self.tok_emb.weight
        return KVCache(self.config, batch_size, max_len, p.device, p.dtype)

    def hidden_states(
        self,
        idx: Tensor,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        kv_cache: KVCache | None = None,
    ) -> Tensor:
        """Final-normed hidden states (B, T, C); ``forward`` without the LM head (the critic uses it).

        With ``kv_cache`` the T tokens are appended after the cache's filled slots and attend to them.
        """
        B, T = idx.shape
        start = kv_cache.pos if kv_cache is not None else 0
        limit = kv_cache.max_len if kv_cache is not None else self.config.max_seq_len
        if start + T > limit:
            raise ValueError(
                f"{start + T} tokens exceed the {'cache' if kv_cache else 'model'} length {limit}"
            )
        valid = None if attention_mask is None else attention_mask.bool()  # (B, T)
        if position_ids is None:
            offset = kv_cache.seen[:, None] if kv_cache is not None else 0
            if valid is None:
                position_ids = torch.arange(T, device=idx.device)[None, :] + offset  # (B, T)
            else:
                position_ids = (valid.cumsum(1) - 1).clamp(min=0) + offset  # (B, T)
        cos = self.rope_cos[position_ids][:, :, None, None, :]  # (B, T, 1, 1, hd)
        sin = self.rope_sin[position_ids][:, :, None, None, :]  # (B, T, 1, 1, hd)

        if kv_cache is not None:
            slots = kv_cache.bias[:, 0, 0, start : start + T]  # (B, T)
            if valid is None:
                slots.zero_()
                kv_cache.seen += T
            else:
                slots.copy_(torch.zeros_like(slots).masked_fill_(~valid, float("-inf")))
                kv_cache.seen += valid.sum(1)
            if T == 1 and valid is None:  # decode step: a slice of the running bias, nothing to build
                mask = kv_cache.bias[:, :, :, : start + 1]  # (B, 1, 1, L)
            else:
                mask = _attention_mask(kv_cache.bias[:, 0, 0] == 0, start, T)  # (B, 1, T, L)
            kv_cache.pos = start + T
        else:
            mask = None if valid is None else _attention_mask(valid, 0, T)  # None → plain causal

        x = self.tok_emb(idx)  # (B, T, C)
        for i, block in enumerate(self.blocks):
            cache = (kv_cache.k[i], kv_cache.v[i]) if kv_cache is not None else None
            x = block(x, cos, sin, mask, cache, start)
        return self.norm(x)  # (B, T, C)

    def decode_step(self, tokens: Tensor, cache: KVCache) -> Tensor:
        """Final-normed hidden states (B, C) after appending one real token per row, tokens (B,).

        The function of ``hidden_states(tokens[:, None], kv_cache=cache)[:, 0]`` (equal up to float
        rounding), written for the sampler's inner loop: (B, C) rows, positions read from the cache,
        no mask to build, attention as two batched matmuls. What pays is how attention reads the
        cache: once ``DECODE_FULL_READ_FROM`` of it is written, the whole contiguous buffer (the
        unwritten slots, zeros with bias -inf, weigh exactly 0), which made ``generate`` 1.1-1.5x
        faster at batch 64-256 (tiny); the fewer ops alone bought nothing measurable (bench/decode.py,
        docs/results.md). bench/generation.py compares the sampler with Hugging Face ``generate``.
        """
        slot = cache.pos
        if slot >= cache.max_len:
            raise ValueError(f"{slot + 1} tokens exceed the cache length {cache.max_len}")
        cos = self.rope_cos[cache.seen][:, None, None, :]  # (B, 1, 1, hd)
        sin = self.rope_sin[cache.seen][:, None, None, :]
        cache.bias[:, 0, 0, slot] = 0.0
        cache.seen += 1
        cache.pos = slot + 1
        width = cache.pos
        if cache.pos >= DECODE_FULL_READ_FROM * cache.max_len:  # read the whole buffer (see above)
            cache.clear_tail()
            width = cache.max_len
        bias = cache.bias[:, :, :, :width]  # (B, 1, 1, W)
        return self.decode_layers(tokens, cos, sin, cache.k, cache.v, bias, slot)

    def decode_layers(
        self,
        tokens: Tensor,
        cos: Tensor,
        sin: Tensor,
        ks: list[Tensor],
        vs: list[Tensor],
        bias: Tensor,
        slot: int | Tensor,
    ) -> Tensor:
        """The tensor work of ``decode_step`` (its Python bookkeeping done): embed, every block, norm.

        Apart so it can be handed to ``torch.compile`` as it is: only tensors in, cache slots written
        in place, nothing to specialise on but shapes. bench/generation.py ``--compile`` measures that
        (static shapes, whole-buffer reads); the sampler keeps it eager (docs/results.md says why).
        """
        x = self.tok_emb(tokens)  # (B, C)
        for block, ck, cv in zip(self.blocks, ks, vs, strict=True):
            x = block.decode(x, cos, sin, ck, cv, bias, slot)
        return self.norm(x)  # (B, C)

    def forward(
        self,
        idx: Tensor,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        kv_cache: KVCache | None = None,
    ) -> Tensor:
        """idx (B, T) long, attention_mask (B, T) 1 = real token → logits (B, T, V) float."""
        return self.head(self.hidden_states(idx, attention_mask, position_ids, kv_cache))

    def head(self, h: Tensor) -> Tensor:
        """Logits (..., V) from hidden states, in float32 even under bf16 autocast.

        Why: every RL loss reads log-probs (β·log π/π_ref, the per-character KL, the trust region's
        check), and bf16 keeps 8 significant bits: a logit of 20 is rounded to a multiple of 0.125, an
        error of up to ±0.06 nats per token, summed over an episode's ~70 tokens (with bf16 logits the
        default job's seed 0 stayed near 0.23 for 200 iterations and then collapsed; with this head it
        climbs, though still later than in float32: docs/results.md). The head is a d_model × vocab
        matmul, a few per cent of the model's work.
        """
        with torch.autocast(h.device.type, enabled=False):
            return self.lm_head(h.float())


# ----------------------------------------------------------------------------------------------
# Log-probs of given sequences (differentiable: the RL losses are built on these)


# Per-bucket overhead of the bucketed log-prob pass, in padded tokens: one more forward+backward costs
# a few hundred op dispatches (~5-10 ms on CPU, about what ~100-500 tokens of the tiny/small presets
# cost) and smaller matmuls run a little slower. On accelerators a call costs far more tokens'
# worth, so padding is cheaper than an extra bucket there (a guess: not measured on GPU).
BUCKET_COST_TOKENS = {"cpu": 512}
BUCKET_COST_TOKENS_OTHER = 1 << 15


def length_buckets(lengths: list[int], cost: int) -> list[list[int]]:
    """Row indices grouped into buckets minimising Σ rows·(longest row) + cost·(number of buckets).

    Exact dynamic programme over the distinct lengths (sorted, so a bucket is a run of consecutive
    lengths); a few hundred distinct lengths at most, so plain Python is fast enough.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    hist = Counter(lengths)
    values = sorted(hist)
    count = [0] * (len(values) + 1)  # count[j] = rows with one of the j shortest lengths
    for j, v in enumerate(values):
        count[j + 1] = count[j] + hist[v]
    best = [0] * (len(values) + 1)  # best[j]: cheapest split of the rows with the j shortest lengths
    cut = [0] * (len(values) + 1)
    for j in range(1, len(values) + 1):
        best[j], cut[j] = min((best[i] + (count[j] - count[i]) * values[j - 1] + cost, i) for i in range(j))
    buckets, j = [], len(values)
    while j > 0:
        buckets.append(order[count[cut[j]] : count[j]])
        j = cut[j]
    return buckets[::-1]


def _right_padded(valid: Tensor) -> bool:
    """True when every row's real tokens form a prefix (right padding, or none)."""
    return bool((valid[:, 1:] <= valid[:, :-1]).all())


def _logprob_terms(
    model: nn.Module, input_ids: Tensor, valid: Tensor, entropy: bool, causal_only: bool, dist: bool = False
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """log p(x_t | x_<t), the entropy (optional) and the whole log-distribution (optional) for one block.

    Shapes (B, T), (B, T) and (B, T, V), zeros as documented in ``token_logprobs_and_entropy``.
    ``causal_only``: the block is right-padded, so real tokens never see padding under a plain causal
    mask, and positions are 0..T-1; the model then runs without a mask (SDPA's causal fast path, no
    (B, 1, T, T) mask built). Padding rows see earlier padding, but their outputs are zeroed below.
    """
    logits = model(input_ids, attention_mask=None if causal_only else valid)[:, :-1]  # (B, T-1, V)
    keep = valid[:, 1:] & valid[:, :-1]  # (B, T-1)
    # One log-softmax serves every term: log p of the target is a gather of it, and the entropy is
    # -Σ p·log p with p = exp(log-softmax); no second softmax or logsumexp over the vocabulary.
    logsm = torch.log_softmax(logits, dim=-1)  # (B, T-1, V)
    logp = F.pad(logsm.gather(-1, input_ids[:, 1:, None]).squeeze(-1) * keep, (1, 0))  # (B, T)
    ent = F.pad(-(logsm.exp() * logsm).sum(-1) * keep, (1, 0)) if entropy else None  # (B, T)
    full = F.pad(logsm * keep[..., None], (0, 0, 1, 0)) if dist else None  # (B, T, V)
    return logp, ent, full


def _sequence_logprobs(
    model: nn.Module, input_ids: Tensor, attention_mask: Tensor, entropy: bool, dist: bool = False
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """The shared body of ``token_logprobs[_and_entropy]``: bucket right-padded rows by length.

    RL batches mix short and long sequences (FrozenLake episodes of 26-205 tokens), so padding
    everything to the longest row wastes about half the matmul work. Right-padded rows are sorted into
    length buckets (``length_buckets``), each trimmed to its own longest row and run separately; the
    results go back in the original row order. Left-padded batches take the one-block masked path.
    """
    valid = attention_mask.bool()
    B, T = input_ids.shape
    if B == 0 or T < 2 or not _right_padded(valid):
        return _logprob_terms(model, input_ids, valid, entropy, causal_only=False, dist=dist)
    lengths = valid.sum(1).tolist()
    cost = BUCKET_COST_TOKENS.get(input_ids.device.type, BUCKET_COST_TOKENS_OTHER)
    parts: list[tuple[Tensor, Tensor | None, Tensor | None]] = []
    rows = []
    for bucket in length_buckets(lengths, cost):
        idx = torch.tensor(bucket, device=input_ids.device)
        width = max(max(lengths[i] for i in bucket), 1)
        block = (input_ids, valid) if len(bucket) == B else (input_ids[idx], valid[idx])
        terms = _logprob_terms(model, block[0][:, :width], block[1][:, :width], entropy, True, dist)
        parts.append(tuple(None if t is None else _pad_time(t, T) for t in terms))  # type: ignore[misc]
        rows.append(idx)
    if len(parts) == 1 and len(rows[0]) == B:
        return parts[0]  # one bucket holding every row in the caller's order: no gather needed
    inverse = torch.empty(B, dtype=torch.long, device=input_ids.device)
    inverse[torch.cat(rows)] = torch.arange(B, device=input_ids.device)

    def merged(i: int) -> Tensor | None:  # back to the caller's row order
        return None if parts[0][i] is None else torch.cat([p[i] for p in parts]).index_select(0, inverse)

    return merged(0), merged(1), merged(2)  # type: ignore[return-value]


def _pad_time(x: Tensor, T: int) -> Tensor:
    """Right-pad dimension 1 (time) of a (B, t) or (B, t, V) tensor with zeros to length T."""
    pad = (0, T - x.shape[1]) if x.dim() == 2 else (0, 0, 0, T - x.shape[1])
    return F.pad(x, pad)


def token_logprobs_and_entropy(
    model: nn.Module, input_ids: Tensor, attention_mask: Tensor
) -> tuple[Tensor, Tensor]:
    """(B, T) ids → log p(x_t | x_<t) (B, T) and the entropy of the distribution that predicts x_t (B, T).

    Column 0, padding tokens and a sequence's first real token (nothing real before it) get 0 in
    both. Works for left- or right-padded batches (positions come from ``attention_mask``);
    right-padded batches are run in length buckets (see ``_sequence_logprobs``; bench/train_step.py
    measures the gain). One log-softmax per position serves both outputs.
    """
    logp, ent, _ = _sequence_logprobs(model, input_ids, attention_mask, entropy=True)
    assert ent is not None
    return logp, ent


def token_logprobs_entropy_and_dist(
    model: nn.Module, input_ids: Tensor, attention_mask: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """As ``token_logprobs_and_entropy``, plus the whole predictive log-distribution (B, T, V).

    Position t holds log p(· | x_<t), zeros where ``token_logprobs`` has zeros. The full
    distribution is what an exact per-position KL(π_θ ‖ π_ref) needs (``astarpo.kl_coef``): the
    sampled-token estimate only sees characters that happened to be sampled.
    """
    logp, ent, dist = _sequence_logprobs(model, input_ids, attention_mask, entropy=True, dist=True)
    assert ent is not None and dist is not None
    return logp, ent, dist


def token_logprobs(model: nn.Module, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """(B, T) ids → (B, T) log p(x_t | x_<t); see ``token_logprobs_and_entropy`` for the zeros."""
    return _sequence_logprobs(model, input_ids, attention_mask, entropy=False)[0]


# ----------------------------------------------------------------------------------------------
# Sampling


@dataclass
class GenerationOutput:
    tokens: Tensor  # (B, N) long, pad_id after EOS; N = steps actually run (≤ max_new_tokens)
    logprobs: Tensor  # (B, N) float, log-prob under the sampling distribution; 0 where mask is False
    mask: Tensor  # (B, N) bool, True for generated tokens including the EOS that stopped a sequence
    lengths: Tensor  # (B,) generated tokens per sequence, EOS included


def _filter_logits(logits: Tensor, top_k: int, top_p: float) -> Tensor:
    """Top-k, then nucleus (top-p) filtering of (B, V) logits: removed tokens get -inf."""
    if 0 < top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
        probs = torch.softmax(sorted_logits, dim=-1)
        # Drop a token when the mass strictly before it already reaches top_p (the top token always stays).
        drop = (probs.cumsum(-1) - probs) >= top_p
        drop[:, 0] = False
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    return logits


@torch.no_grad()
def generate(
    model: TransformerLM,
    prompts: list[list[int]],
    max_new_tokens: int,
    *,
    eos_id: int,
    pad_id: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    greedy: bool = False,
    use_cache: bool = True,
    share_prefill: bool = True,
    generator: torch.Generator | None = None,
) -> GenerationOutput:
    """Continue each prompt by up to ``max_new_tokens`` tokens, stopping a sequence at its EOS.

    Sampling draws from softmax(filter(logits / temperature)) with top-k then top-p filtering, using
    ``generator`` (torch.multinomial) for reproducibility. ``greedy=True`` takes the argmax and
    reports its log-prob under the temperature-1 distribution after the top-k/top-p filters.
    An ``eos_id`` outside the vocabulary (e.g. -1) never matches: every sequence then runs exactly
    ``max_new_tokens`` steps (benchmarks use this). The loop stops as soon as every sequence has
    emitted EOS, so N = max(lengths).

    ``use_cache=False`` is the naive baseline: a full forward over the whole sequence per step, with
    the same masking. It gives the same greedy tokens, and the same samples for the same generator
    state, as the KV-cache path; it exists for tests and the benchmark.

    ``share_prefill``: identical prompts are prefilled once and their cache rows copied. A*PO's stage 1
    asks for N samples of every prompt (and in a Markov multi-turn episode the samples that reach the
    same state share the next prompt too): there the prompts' forward was ~70 % of the sampling time,
    and the default job's 103,256 prompts hold 26,333 distinct ones (bench/stage1.py: stage 1 in half
    the time). A row's activations do not depend on the other rows of its batch beyond float rounding,
    so the samples are those drawn without sharing (on the CPU measured, the identical stage-1 table;
    tests/test_transformer.py compares the tokens with the cache-free sampler's).
    """
    cfg = model.config
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if not greedy and temperature <= 0:
        raise ValueError(f"temperature must be > 0 (got {temperature}); use greedy=True for argmax decoding")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token (e.g. BOS)")
    device = model.tok_emb.weight.device
    B = len(prompts)
    P = max((len(p) for p in prompts), default=0)
    total = P + max_new_tokens
    if total > cfg.max_seq_len:
        raise ValueError(
            f"longest prompt ({P} tokens) + max_new_tokens ({max_new_tokens}) = {total} exceeds the "
            f"model's max_seq_len ({cfg.max_seq_len}); shorten the prompt or generate fewer tokens"
        )
    if B == 0 or max_new_tokens == 0:
        empty = torch.zeros((B, 0), dtype=torch.long, device=device)
        return GenerationOutput(
            empty.fill_(pad_id), empty.float(), empty.bool(), torch.zeros(B, dtype=torch.long, device=device)
        )

    # inference_mode (not just no_grad) trims per-op dispatch overhead (~10% at batch 16); the
    # results are cloned out of it at the end so callers may use them freely, autograd included.
    with torch.inference_mode():
        # Left-padded sequence buffer, validity mask and per-sequence positions for all slots, built once.
        ids = torch.full((B, total), pad_id, dtype=torch.long)
        ids[:, :P] = torch.tensor([[pad_id] * (P - len(p)) + list(p) for p in prompts], dtype=torch.long)
        ids = ids.to(device)  # (B, S)
        lens = torch.tensor([len(p) for p in prompts], device=device)  # (B,)
        slot = torch.arange(total, device=device)[None, :]  # (1, S)
        valid = slot >= (P - lens)[:, None]  # (B, S): every slot after the prompt holds a real token
        positions = (slot - (P - lens)[:, None]).clamp(min=0)  # (B, S)

        tokens = torch.full((B, max_new_tokens), pad_id, dtype=torch.long, device=device)
        logprobs = torch.zeros((B, max_new_tokens), device=device)
        mask = torch.zeros((B, max_new_tokens), dtype=torch.bool, device=device)
        finished = torch.zeros(B, dtype=torch.bool, device=device)
        if use_cache and share_prefill:
            h, cache = _shared_prefill(model, prompts, ids[:, :P], valid[:, :P], positions[:, :P], total)
        else:
            cache = model.new_cache(B, total) if use_cache else None
            h = model.hidden_states(ids[:, :P], valid[:, :P], positions[:, :P], kv_cache=cache)  # (B, P, C)
        steps = 0
        for t in range(max_new_tokens):
            logits = model.head(h[:, -1])  # (B, V): only the last position is needed
            if not greedy and temperature != 1.0:
                logits = logits / temperature
            logp = torch.log_softmax(_filter_logits(logits, top_k, top_p), dim=-1)  # (B, V)
            if greedy:
                nxt = logp.argmax(dim=-1)  # (B,)
            else:
                nxt = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(1)  # (B,)
            lp = logp.gather(-1, nxt[:, None]).squeeze(1)  # (B,)
            tokens[:, t] = nxt.masked_fill(finished, pad_id)
            logprobs[:, t] = lp.masked_fill(finished, 0.0)
            mask[:, t] = ~finished  # the step that emits EOS still counts
            finished |= nxt == eos_id
            steps = t + 1
            if steps == max_new_tokens or bool(finished.all()):
                break
            if use_cache:  # one new token per sequence against the cached prefix
                h = model.decode_step(tokens[:, t], cache)[:, None]  # (B, 1, C)
            else:  # naive: recompute the whole sequence
                ids[:, P + t] = tokens[:, t]
                s = slice(0, P + t + 1)
                h = model.hidden_states(ids[:, s], valid[:, s], positions[:, s])  # (B, P+t+1, C)
    tokens, logprobs, mask = tokens[:, :steps].clone(), logprobs[:, :steps].clone(), mask[:, :steps].clone()
    return GenerationOutput(tokens, logprobs, mask, mask.sum(1))


def _shared_prefill(
    model: TransformerLM, prompts: list[list[int]], ids: Tensor, valid: Tensor, positions: Tensor, total: int
) -> tuple[Tensor, KVCache]:
    """Prefill each distinct prompt once; hidden states (B, 1, C) of the last position and a B-row cache."""
    distinct: dict[tuple[int, ...], int] = {}  # a prompt → its index among the distinct prompts
    rows: list[int] = []  # the batch row where each distinct prompt first appears
    inverse: list[int] = []  # batch row i holds distinct prompt inverse[i]
    for i, prompt in enumerate(prompts):
        key = tuple(prompt)
        if key not in distinct:
            distinct[key] = len(rows)
            rows.append(i)
        inverse.append(distinct[key])
    if len(rows) == len(prompts):  # nothing shared: prefill the batch as it is
        cache = model.new_cache(len(prompts), total)
        return model.hidden_states(ids, valid, positions, kv_cache=cache)[:, -1:], cache
    first = torch.tensor(rows, device=ids.device)
    cache = model.new_cache(len(rows), total)
    h = model.hidden_states(ids[first], valid[first], positions[first], kv_cache=cache)[:, -1:]  # (U, 1, C)
    back = torch.tensor(inverse, device=ids.device)  # (B,)
    return h.index_select(0, back), cache.take(back)
