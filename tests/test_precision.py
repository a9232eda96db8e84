"""run.dtype (bfloat16 autocast) and run.compile (torch.compile) on CPU: they work, or fail in one line.

Run: pytest tests/test_precision.py -q          (~15 s; the torch.compile run is marked slow:
     pytest tests/test_precision.py -q -m slow   compiles for 1-2 minutes on 2 CPU cores)
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

from tinyzero.config import load_config
from tinyzero.errors import UserError
from tinyzero.trainer import TinyZeroTrainer

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"


def trainer(cache: Path, out: Path, *overrides: str) -> TinyZeroTrainer:
    cfg = load_config(
        SMOKE,
        [f"run.out_dir={out}", f"pretrain.cache_dir={cache}", "run.device=cpu", *overrides],
    )
    return TinyZeroTrainer(cfg, progress=False)


def computed_dtypes(tr: TinyZeroTrainer) -> tuple[set[torch.dtype], set[torch.dtype]]:
    """Train one iteration and report the dtypes a body layer (the first attention's qkv projection)
    and the LM head computed in, over sampling and training."""
    body: set[torch.dtype] = set()
    head: set[torch.dtype] = set()
    tr.policy.blocks[0].attn.qkv.register_forward_hook(lambda m, i, out: body.add(out.dtype))
    tr.policy.lm_head.register_forward_hook(lambda m, i, out: head.add(out.dtype))
    tr.train()
    return body, head


@pytest.mark.parametrize("dtype, expected", [("float32", torch.float32), ("bfloat16", torch.bfloat16)])
def test_bf16_autocast_on_cpu(cache_dir: Path, tmp_path: Path, dtype: str, expected: torch.dtype) -> None:
    """The body computes in the run's dtype; the LM head stays float32 (log-probs are the losses' input)."""
    tr = trainer(cache_dir, tmp_path, f"run.dtype={dtype}", "training.total_iterations=1")
    assert computed_dtypes(tr) == ({expected}, {torch.float32})
    assert all(p.dtype == torch.float32 for p in tr.policy.parameters())  # master weights stay fp32
    assert all(s["exp_avg"].dtype == torch.float32 for s in tr.optimizer.state.values())
    assert math.isfinite(json_last(tr)["loss"])


@pytest.mark.parametrize("native", [True, False])
def test_auto_dtype_follows_the_cpu(cache_dir: Path, tmp_path: Path, monkeypatch, native: bool) -> None:
    """run.dtype=auto trains in bf16 on a CPU with native bf16 (AVX512-BF16 or AMX), else in float32,
    and the run records which one it used."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    tr = trainer(cache_dir, tmp_path, "run.dtype=auto", "training.total_iterations=1")
    expected = torch.bfloat16 if native else torch.float32
    assert computed_dtypes(tr)[0] == {expected}
    assert tr.run_info["run/dtype"] == str(expected).removeprefix("torch.")


def json_last(tr: TinyZeroTrainer) -> dict:
    import json

    return json.loads((tr.run_dir / "metrics.jsonl").read_text().splitlines()[-1])


def test_bad_dtype_is_a_user_error() -> None:
    with pytest.raises(UserError, match="run.dtype='float16'.*float32, bfloat16 or auto"):
        load_config(SMOKE, ["run.dtype=float16"])


def test_compile_without_a_compiler_is_a_user_error(cache_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="needs a C\\+\\+ compiler") as err:
        trainer(cache_dir, tmp_path, "run.compile=true")
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_compiled_training_forward_matches_eager(cache_dir: Path, tmp_path: Path) -> None:
    """Same seed, same first rollouts (sampling stays eager): the compiled forward gives the same loss,
    gradient norm and update, up to the float reordering of fused kernels."""
    eager = trainer(cache_dir, tmp_path, "run.name=eager", "training.total_iterations=1")
    eager.train()
    compiled = trainer(
        cache_dir, tmp_path, "run.name=compiled", "run.compile=true", "training.total_iterations=1"
    )
    assert compiled.train_policy is not compiled.policy  # training forwards go through torch.compile
    compiled.train()
    a, b = json_last(eager), json_last(compiled)
    assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-6)
    assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-3)
    # Adam's first step moves each weight by ±lr (the gradient's sign): the updates agree except on a
    # few weights whose gradient is ~0, where float reordering may flip the sign (a 2·lr difference).
    lr = eager.cfg.training.lr
    x = torch.cat([t.flatten() for t in eager.policy.state_dict().values()])
    y = torch.cat([t.flatten() for t in compiled.policy.state_dict().values()])
    assert (x - y).abs().max() <= 2.01 * lr
    assert ((x - y).abs() > lr / 10).float().mean() < 1e-3


# ----------------------------------------------------------------------------- bf16 attention on CPU


def naive_causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Attention written from its definition, one query position at a time (float64): position t
    attends to positions 0..t with weights softmax(q_t·k_s / √hd)."""
    q, k, v = q.double(), k.double(), v.double()
    out = torch.empty_like(q)
    for t in range(q.shape[-2]):
        w = torch.softmax(
            (q[..., t : t + 1, :] @ k[..., : t + 1, :].transpose(-1, -2)) / q.shape[-1] ** 0.5, -1
        )
        out[..., t : t + 1, :] = w @ v[..., : t + 1, :]
    return out


def test_causal_attention_matmul_is_causal_attention() -> None:
    """The explicit-matmul attention equals attention from its definition (float32 inputs)."""
    from tinyzero.models.transformer import causal_attention_matmul

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, 9, 8, generator=g) for _ in range(3))
    expected = naive_causal_attention(q, k, v)
    torch.testing.assert_close(causal_attention_matmul(q, k, v).double(), expected, rtol=1e-5, atol=1e-6)


def test_cpu_training_forward_takes_the_matmul_attention_where_it_pays(monkeypatch) -> None:
    """On CPU a training forward (no cache, no mask) writes attention out as matmuls under bf16
    autocast at any length and in float32 for rows of at most MATMUL_ATTENTION_MAX_LEN tokens; longer
    float32 rows and sampling keep scaled_dot_product_attention. Both paths give the same log-probs:
    by causality a row's first tokens get the same logits alone (matmuls) or continued past the limit
    (SDPA); bf16's stay within its rounding of float32's."""
    import tinyzero.models.transformer as tf

    calls: list[str] = []
    real = tf.causal_attention_matmul
    monkeypatch.setattr(tf, "causal_attention_matmul", lambda *a: calls.append("matmul") or real(*a))
    torch.manual_seed(0)
    model = tf.TransformerLM(tf.model_config("nano", vocab_size=40, max_seq_len=128))
    short = tf.MATMUL_ATTENTION_MAX_LEN
    ids = torch.randint(0, 40, (4, short + 8))

    def logp_and_grad(tokens: torch.Tensor, bf16: bool) -> tuple[torch.Tensor, torch.Tensor]:
        model.zero_grad()
        calls.clear()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(tokens)
        logp = torch.log_softmax(logits.float(), -1)[:, :-1].gather(-1, tokens[:, 1:, None]).squeeze(-1)
        logp[:, : short - 1].sum().backward()  # the positions both lengths share
        return logp.detach()[:, : short - 1], model.blocks[0].attn.qkv.weight.grad.clone()

    lp_long, g_long = logp_and_grad(ids, bf16=False)
    assert calls == []  # float32 beyond the limit: SDPA
    lp_short, g_short = logp_and_grad(ids[:, :short], bf16=False)
    assert calls == ["matmul"] * len(model.blocks)
    torch.testing.assert_close(lp_short, lp_long, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g_short, g_long, rtol=1e-4, atol=1e-5)
    lp16, g16 = logp_and_grad(ids, bf16=True)
    assert calls == ["matmul"] * len(model.blocks)  # bf16: the matmuls at any length
    assert (lp16 - lp_long).abs().max() < 0.05  # nats per token: bf16 keeps ~3 significant digits
    assert torch.nn.functional.cosine_similarity(g16.flatten(), g_long.flatten(), dim=0) > 0.99
    calls.clear()
    tf.generate(model, ids[:, :5].tolist(), 3, eos_id=-1, pad_id=0, greedy=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # sampling (KV cache) keeps SDPA
        tf.generate(model, ids[:, :5].tolist(), 3, eos_id=-1, pad_id=0, greedy=True)
    assert calls == []
