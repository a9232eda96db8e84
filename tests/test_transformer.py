"""The Llama-style model, its log-prob helpers and the KV-cache sampler, on real (random) models.

Run: ``pytest tests/test_transformer.py -q`` (a few seconds; nano-sized models, fixed seeds).
"""

from __future__ import annotations

import itertools
import math
import random

import pytest
import torch

import tinyzero.models.transformer as transformer
from tinyzero.models.transformer import (
    PRESETS,
    GenerationOutput,
    TransformerLM,
    generate,
    length_buckets,
    model_config,
    token_logprobs,
    token_logprobs_and_entropy,
    token_logprobs_entropy_and_dist,
)

V = 32
EOS, PAD = 2, 0


def make_model(seed: int = 0, vocab_size: int = V, spread: float = 3.0, **overrides) -> TransformerLM:
    """A nano model whose embeddings are scaled up so its logits are far from uniform (no argmax ties)."""
    torch.manual_seed(seed)
    model = TransformerLM(model_config("nano", vocab_size=vocab_size, max_seq_len=64, **overrides))
    with torch.no_grad():
        model.tok_emb.weight.mul_(spread)
    return model.eval()


def make_prompts(n: int, lo: int, hi: int, seed: int = 0, vocab_size: int = V) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(lo, hi + 1, (n,), generator=g).tolist()
    return [torch.randint(3, vocab_size, (length,), generator=g).tolist() for length in lengths]


def right_padded(seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), PAD, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.bool)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        attn[i, : len(s)] = True
    return ids, attn


def full_sequences(prompts: list[list[int]], out: GenerationOutput) -> list[list[int]]:
    return [p + out.tokens[i, : int(out.lengths[i])].tolist() for i, p in enumerate(prompts)]


# ---------------------------------------------------------------------------------------------- model


def test_forward_shapes_and_dtype():
    model = make_model()
    idx = torch.randint(0, V, (3, 7))
    logits = model(idx)
    assert logits.shape == (3, 7, V) and logits.dtype == torch.float32
    assert model.hidden_states(idx).shape == (3, 7, model.config.d_model)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize(
    ("preset", "lo", "hi"), [("nano", 0.1e6, 0.3e6), ("tiny", 0.5e6, 1.5e6), ("small", 3e6, 8e6)]
)
def test_preset_param_counts(preset, lo, hi):
    n = TransformerLM(model_config(preset, vocab_size=100)).num_params()
    assert lo <= n <= hi, n


def test_unknown_preset_names_choices():
    with pytest.raises(ValueError, match="tiny"):
        model_config("huge")
    assert set(PRESETS) >= {"nano", "tiny", "small"}
    assert model_config("tiny", max_seq_len=77).max_seq_len == 77


def test_untied_embeddings_have_separate_head():
    model = TransformerLM(model_config("nano", vocab_size=V, tie_embeddings=False))
    assert model.lm_head.weight is not model.tok_emb.weight
    assert model.num_params() == make_model().num_params() + V * model.config.d_model


def test_left_padding_invariance():
    """A sequence's logits alone equal its logits inside a left-padded batch."""
    model = make_model()
    prompts = make_prompts(4, 3, 12, seed=1)
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[PAD] * (width - len(p)) + p for p in prompts])
    attn = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])  # long mask works too
    batch_logits = model(ids, attention_mask=attn)
    for i, p in enumerate(prompts):
        alone = model(torch.tensor([p]))[0]
        torch.testing.assert_close(batch_logits[i, width - len(p) :], alone, atol=1e-5, rtol=0)


def test_right_padding_invariance_of_token_logprobs():
    model = make_model()
    seqs = make_prompts(4, 3, 12, seed=2)
    ids, attn = right_padded(seqs)
    batch = token_logprobs(model, ids, attn)
    for i, s in enumerate(seqs):
        alone = token_logprobs(model, torch.tensor([s]), torch.ones(1, len(s), dtype=torch.bool))[0]
        torch.testing.assert_close(batch[i, : len(s)], alone, atol=1e-5, rtol=0)
        assert (batch[i, len(s) :] == 0).all()
    assert (batch[:, 0] == 0).all()


def test_token_logprobs_gradient_and_entropy_range():
    model = make_model(spread=1.0)
    ids, attn = right_padded(make_prompts(3, 4, 10, seed=3))
    logp, ent = token_logprobs_and_entropy(model, ids, attn)
    assert logp.shape == ent.shape == ids.shape
    torch.testing.assert_close(logp, token_logprobs(model, ids, attn))
    assert (logp <= 0).all()
    assert (ent >= -1e-6).all() and (ent <= math.log(V) + 1e-5).all()
    (logp.sum() + ent.sum()).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.tok_emb.weight.grad.abs().sum() > 0


def _bucket_cost(buckets: list[list[int]], lengths: list[int], cost: int) -> int:
    return sum(len(b) * max(lengths[i] for i in b) + cost for b in buckets)


@pytest.mark.parametrize("seed", range(6))
def test_length_buckets_partition_rows_at_minimal_cost(seed):
    """Every row exactly once, and no split of the sorted lengths into runs is cheaper (brute force)."""
    rng = random.Random(seed)
    lengths = [rng.randint(1, 40) for _ in range(rng.randint(1, 12))]
    cost = rng.choice([0, 5, 30, 1000])
    buckets = length_buckets(lengths, cost)
    assert sorted(i for b in buckets for i in b) == list(range(len(lengths)))
    values = sorted(set(lengths))
    best = min(
        sum(sum(lengths.count(v) for v in run) * max(run) + cost for run in runs)
        for cuts in itertools.product([False, True], repeat=len(values) - 1)
        for runs in [_runs(values, cuts)]
    )
    assert _bucket_cost(buckets, lengths, cost) == best
    if cost >= 1000:
        assert len(buckets) == 1


def _runs(values: list[int], cuts: tuple[bool, ...]) -> list[list[int]]:
    runs, current = [], [values[0]]
    for v, cut in zip(values[1:], cuts, strict=True):
        if cut:
            runs.append(current)
            current = []
        current.append(v)
    return runs + [current]


def test_bucketed_logprobs_match_one_masked_block(monkeypatch):
    """Right-padded rows run in length buckets give the log-probs, entropies and gradients of the
    one-block masked path (the same rows left-padded, which is never bucketed)."""
    seqs = make_prompts(9, 2, 40, seed=11)
    ids, attn = right_padded(seqs)
    width = ids.shape[1]
    left_ids = torch.full_like(ids, PAD)
    left_attn = torch.zeros_like(attn)
    for i, s in enumerate(seqs):
        left_ids[i, width - len(s) :] = torch.tensor(s)
        left_attn[i, width - len(s) :] = True
    monkeypatch.setitem(transformer.BUCKET_COST_TOKENS, "cpu", 1)  # force one bucket per length
    assert len(length_buckets(attn.sum(1).tolist(), 1)) > 3
    results = []
    for x, a in ((ids, attn), (left_ids, left_attn)):
        model = make_model(spread=1.0)
        logp, ent = token_logprobs_and_entropy(model, x, a)
        (logp.sum() + 0.3 * ent.sum()).backward()
        results.append((logp, ent, [p.grad for p in model.parameters()]))
    (lp_b, ent_b, grads_b), (lp_m, ent_m, grads_m) = results
    for i, s in enumerate(seqs):  # same values, shifted by each row's left padding
        torch.testing.assert_close(lp_b[i, : len(s)], lp_m[i, width - len(s) :], atol=1e-5, rtol=0)
        torch.testing.assert_close(ent_b[i, : len(s)], ent_m[i, width - len(s) :], atol=1e-5, rtol=0)
        assert (lp_b[i, len(s) :] == 0).all() and (ent_b[i, len(s) :] == 0).all()
    for gb, gm in zip(grads_b, grads_m, strict=True):
        torch.testing.assert_close(gb, gm, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("cost", [1, 10**9], ids=["many-buckets", "one-bucket"])
def test_full_distributions_agree_with_logprobs_and_entropy(monkeypatch, cost):
    """The (B, T, V) log-distributions that the exact KL uses: rows sum to 1 on real positions, the
    target's entry is the token log-prob, −Σ p·log p is the entropy, zeros elsewhere, in the caller's
    row order whether the rows ran in one bucket or several."""
    seqs = make_prompts(9, 2, 40, seed=12)
    ids, attn = right_padded(seqs)
    monkeypatch.setitem(transformer.BUCKET_COST_TOKENS, "cpu", cost)
    model = make_model(spread=1.0)
    logp, ent, dist = token_logprobs_entropy_and_dist(model, ids, attn)
    assert dist.shape == (*ids.shape, V)
    logp2, ent2 = token_logprobs_and_entropy(model, ids, attn)
    torch.testing.assert_close(logp, logp2)
    torch.testing.assert_close(ent, ent2)
    torch.testing.assert_close(dist.gather(-1, ids[..., None]).squeeze(-1), logp)
    torch.testing.assert_close(-(dist.exp() * dist).sum(-1), ent)
    for i, s in enumerate(seqs):
        real = dist[i, 1 : len(s)]
        torch.testing.assert_close(real.exp().sum(-1), torch.ones(len(s) - 1), atol=1e-5, rtol=0)
        assert (dist[i, 0] == 0).all() and (dist[i, len(s) :] == 0).all()


# ---------------------------------------------------------------------------------------------- generate


@pytest.mark.parametrize("seed", [0, 1])
def test_cache_matches_nocache_greedy(seed):
    model = make_model(seed)
    prompts = make_prompts(6, 2, 15, seed=seed)
    kw = dict(eos_id=EOS, pad_id=PAD, greedy=True)
    a = generate(model, prompts, 20, use_cache=True, **kw)
    b = generate(model, prompts, 20, use_cache=False, **kw)
    assert (
        torch.equal(a.tokens, b.tokens) and torch.equal(a.mask, b.mask) and torch.equal(a.lengths, b.lengths)
    )
    torch.testing.assert_close(a.logprobs, b.logprobs, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "sampling", [dict(), dict(temperature=0.7, top_k=5), dict(temperature=1.3, top_p=0.8)], ids=str
)
def test_cache_matches_nocache_sampled(sampling):
    model = make_model(spread=1.0)
    prompts = make_prompts(8, 1, 12, seed=4)
    outs = [
        generate(
            model,
            prompts,
            16,
            eos_id=EOS,
            pad_id=PAD,
            use_cache=use_cache,
            generator=torch.Generator().manual_seed(7),
            **sampling,
        )
        for use_cache in (True, False)
    ]
    assert torch.equal(outs[0].tokens, outs[1].tokens)
    torch.testing.assert_close(outs[0].logprobs, outs[1].logprobs, atol=1e-5, rtol=0)
    again = generate(
        model, prompts, 16, eos_id=EOS, pad_id=PAD, generator=torch.Generator().manual_seed(7), **sampling
    )
    assert torch.equal(again.tokens, outs[0].tokens)  # reproducible from the generator


def repeated_prompts() -> list[list[int]]:
    """Five distinct prompts of different lengths (left padding), repeated out of order: 16 rows."""
    distinct = make_prompts(5, 2, 12, seed=8)
    return [distinct[i] for i in (0, 1, 0, 2, 3, 1, 0, 4, 4, 2, 0, 1, 3, 3, 0, 2)]


@pytest.mark.parametrize("greedy", [False, True])
def test_shared_prefill_gives_the_tokens_of_the_naive_sampler(greedy):
    """Identical prompts prefilled once and their cache rows copied: every row continues its own prompt
    exactly as the cache-free sampler (a full forward of each sequence per step) continues it."""
    model = make_model(spread=1.0)
    prompts = repeated_prompts()
    outs = {
        name: generate(
            model,
            prompts,
            14,
            eos_id=EOS,
            pad_id=PAD,
            greedy=greedy,
            generator=torch.Generator().manual_seed(5),
            **kw,
        )
        for name, kw in {
            "shared": dict(share_prefill=True),
            "unshared": dict(share_prefill=False),
            "naive": dict(use_cache=False),
        }.items()
    }
    for other in ("unshared", "naive"):
        assert torch.equal(outs["shared"].tokens, outs[other].tokens)
        assert torch.equal(outs["shared"].lengths, outs[other].lengths)
        torch.testing.assert_close(outs["shared"].logprobs, outs[other].logprobs, atol=1e-5, rtol=0)
    if not greedy:  # the repeats were sampled independently, not copied from their first row
        rows = [i for i, p in enumerate(prompts) if p == prompts[0]]
        assert len({tuple(outs["shared"].tokens[i].tolist()) for i in rows}) > 1


def test_cache_take_continues_each_row_like_the_original():
    """``KVCache.take``: a decode step on the taken rows (positions from the cache's own count) gives
    the hidden states the original cache gives for those rows."""
    model = make_model()
    prompts = make_prompts(3, 2, 9, seed=9)
    P = max(len(p) for p in prompts)
    ids = torch.tensor([[PAD] * (P - len(p)) + p for p in prompts])  # left-padded
    valid = ids != PAD
    rows = torch.tensor([2, 0, 0, 1, 2])
    nxt = torch.tensor([[5], [6], [7]])
    with torch.inference_mode():
        cache = model.new_cache(3, P + 4)
        model.hidden_states(ids, valid, kv_cache=cache)
        taken = cache.take(rows)
        want = model.hidden_states(nxt, kv_cache=cache)[rows]
        got = model.hidden_states(nxt[rows], kv_cache=taken)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)  # a batch of 5 rows, not 3: last-bit noise


def test_decode_step_equals_a_full_forward_over_garbage_in_unwritten_slots():
    """``decode_step`` (the sampler's inner loop) gives, at every step, the last hidden state of a
    cache-free forward over the whole left-padded sequence: before half the cache is written (attention
    over the written slots) and after (over the whole buffer). The unwritten slots are filled with
    what ``torch.empty`` may leave there (NaN keys and values, a bias of 0): they must weigh nothing."""
    model = make_model()
    prompts = make_prompts(4, 2, 6, seed=3)
    P, steps = max(len(p) for p in prompts), 10
    ids = torch.tensor([[PAD] * (P - len(p)) + p for p in prompts])  # left-padded (B, P)
    new = torch.randint(3, V, (len(prompts), steps), generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        cache = model.new_cache(len(prompts), P + steps)
        for layer in (*cache.k, *cache.v):
            layer.fill_(float("nan"))
        cache.bias.fill_(0.0)
        model.hidden_states(ids, ids != PAD, kv_cache=cache)
        widths = []
        for t in range(steps):
            got = model.decode_step(new[:, t], cache)  # (B, C)
            seq = torch.cat((ids, new[:, : t + 1]), dim=1)
            want = model.hidden_states(seq, seq != PAD)[:, -1]  # (B, C), no cache at all
            torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
            widths.append(cache.cleared)
    assert widths[0] is False and widths[-1] is True  # both ways of reading the cache were exercised


@pytest.mark.parametrize("share", [True, False])
def test_shared_prefill_runs_each_distinct_prompt_once(share):
    """The prefill forward holds one row per distinct prompt (then one row per sequence for decoding)."""
    model = make_model()
    prompts = repeated_prompts()
    batch_rows: list[int] = []
    hook = model.tok_emb.register_forward_hook(lambda m, args, out: batch_rows.append(args[0].shape[0]))
    generate(model, prompts, 3, eos_id=-1, pad_id=PAD, greedy=True, share_prefill=share)
    hook.remove()
    distinct = len({tuple(p) for p in prompts})
    assert batch_rows == [distinct if share else len(prompts), len(prompts), len(prompts)]


@pytest.mark.parametrize("greedy", [False, True])
def test_generated_logprobs_match_token_logprobs(greedy):
    """Temperature 1, no filters: the sampler's log-probs are the model's log-probs of those tokens."""
    model = make_model(spread=1.0)
    prompts = make_prompts(6, 2, 14, seed=5)
    out = generate(
        model, prompts, 12, eos_id=EOS, pad_id=PAD, greedy=greedy, generator=torch.Generator().manual_seed(3)
    )
    ids, attn = right_padded(full_sequences(prompts, out))
    logp = token_logprobs(model, ids, attn)
    for i, p in enumerate(prompts):
        n = int(out.lengths[i])
        torch.testing.assert_close(out.logprobs[i, :n], logp[i, len(p) : len(p) + n], atol=1e-5, rtol=0)


def test_eos_stops_each_sequence():
    model = make_model(vocab_size=6, spread=1.0)  # tiny vocabulary: EOS comes often
    prompts = make_prompts(16, 1, 8, seed=6, vocab_size=6)
    out = generate(model, prompts, 30, eos_id=EOS, pad_id=PAD, generator=torch.Generator().manual_seed(0))
    N = out.tokens.shape[1]
    assert N <= 30 and out.mask.shape == out.logprobs.shape == (16, N)
    assert int(out.lengths.max()) == N
    stopped = 0
    for i in range(16):
        row, n = out.tokens[i].tolist(), int(out.lengths[i])
        assert out.mask[i, :n].all() and not out.mask[i, n:].any()
        assert EOS not in row[: n - 1]
        assert all(t == PAD for t in row[n:])
        assert (out.logprobs[i, n:] == 0).all() and (out.logprobs[i, :n] <= 0).all()
        if n < 30:
            assert row[n - 1] == EOS
            stopped += 1
    assert stopped > 0 and len(set(out.lengths.tolist())) > 1  # EOS at different steps


def test_stops_early_when_all_sequences_end():
    model = make_model()
    with torch.no_grad():
        model.norm.weight.zero_()  # all-zero logits: greedy always picks token 0
    out = generate(model, make_prompts(4, 2, 6), 10, eos_id=0, pad_id=PAD, greedy=True)
    assert out.tokens.shape == (4, 1) and out.lengths.tolist() == [1, 1, 1, 1]
    torch.testing.assert_close(out.logprobs, torch.full((4, 1), -math.log(V)))


@pytest.mark.parametrize("use_cache", [True, False])
def test_max_new_tokens_respected_without_eos(use_cache):
    model = make_model()
    prompts = make_prompts(5, 1, 9, seed=7)
    out = generate(model, prompts, 11, eos_id=-1, pad_id=PAD, use_cache=use_cache)  # -1: never stops
    assert out.tokens.shape == (5, 11) and out.mask.all() and out.lengths.tolist() == [11] * 5
    assert ((out.tokens >= 0) & (out.tokens < V)).all()


def test_top_k_1_and_tiny_top_p_equal_greedy():
    model = make_model(spread=1.0)
    prompts = make_prompts(6, 2, 10, seed=8)
    kw = dict(eos_id=EOS, pad_id=PAD)
    greedy = generate(model, prompts, 12, greedy=True, **kw)
    k1 = generate(model, prompts, 12, top_k=1, generator=torch.Generator().manual_seed(1), **kw)
    p0 = generate(model, prompts, 12, top_p=1e-6, generator=torch.Generator().manual_seed(2), **kw)
    for out in (k1, p0):
        assert torch.equal(out.tokens, greedy.tokens)
        assert torch.equal(out.logprobs, torch.zeros_like(out.logprobs))  # a one-token distribution


def test_single_prompt_and_empty_cases():
    model = make_model()
    out = generate(model, [[5, 6, 7]], 4, eos_id=-1, pad_id=PAD, greedy=True)
    assert out.tokens.shape == (1, 4)
    zero = generate(model, [[5], [6, 7]], 0, eos_id=EOS, pad_id=PAD)
    assert zero.tokens.shape == (2, 0) and zero.lengths.tolist() == [0, 0]
    with pytest.raises(ValueError, match="at least one token"):
        generate(model, [[5], []], 3, eos_id=EOS, pad_id=PAD)


def test_max_seq_len_violation_raises():
    model = make_model()  # max_seq_len 64
    generate(model, [[5] * 60, [6]], 4, eos_id=EOS, pad_id=PAD)  # exactly fits
    with pytest.raises(ValueError, match="max_seq_len"):
        generate(model, [[5] * 60, [6]], 5, eos_id=EOS, pad_id=PAD)


def test_generated_tensors_usable_in_training():
    """generate runs under inference_mode internally; its outputs must still feed autograd code."""
    model = make_model(spread=1.0)
    prompt = [5, 6, 7, 8]
    out = generate(model, [prompt], 6, eos_id=-1, pad_id=PAD, generator=torch.Generator().manual_seed(0))
    ids = torch.cat([torch.tensor([prompt]), out.tokens], dim=1)  # (1, 10)
    logp = token_logprobs(model, ids, torch.ones_like(ids, dtype=torch.bool))
    (logp[:, 4:] * out.mask).sum().backward()
    torch.testing.assert_close(logp[:, 4:].detach(), out.logprobs, atol=1e-5, rtol=0)
