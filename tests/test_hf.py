"""Hugging Face interop: export parity (logits, tokenizer ids), the adapter behind our sampler and
log-prob code, RL on a local random LlamaForCausalLM / Qwen2ForCausalLM, and bad model.path errors.

Everything is built locally from configs (no hub). Run: pytest tests/test_hf.py -q   (~30 s on 2 cores)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

from handmade import assert_same_weights  # noqa: E402

from tinyzero.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from tinyzero.config import load_config  # noqa: E402
from tinyzero.context import build_context  # noqa: E402
from tinyzero.environments import make_task  # noqa: E402
from tinyzero.errors import UserError  # noqa: E402
from tinyzero.models.hf import HFCausalLM, char_tokenizer_to_hf, load_hf_model_dir  # noqa: E402
from tinyzero.models.io import save_model_dir  # noqa: E402
from tinyzero.models.tokenizer import CharTokenizer  # noqa: E402
from tinyzero.models.transformer import (  # noqa: E402
    TransformerLM,
    generate,
    model_config,
    token_logprobs_and_entropy,
)
from tinyzero.trainer import TinyZeroTrainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def ours() -> TransformerLM:
    """A nano model whose weights are far from init (so a wrong key mapping cannot go unnoticed)."""
    torch.manual_seed(0)
    model = TransformerLM(model_config("nano", vocab_size=100, max_seq_len=128)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[TransformerLM, Path]:
    """Our model saved as a run checkpoint (checkpoints/latest), exported through the CLI script."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("hf_export")
    model = ours()
    opt = torch.optim.AdamW(model.parameters())
    save_checkpoint(root / "run" / "checkpoints", 3, model, CharTokenizer(), opt, {"task": "frozenlake"})
    out = root / "hf"
    proc = subprocess.run(
        [sys.executable, "scripts/export_hf.py", "--checkpoint", str(root / "run"), "--out", str(out)],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return model, out


def test_export_logits_match_in_float32(exported: tuple[TransformerLM, Path]) -> None:
    model, out = exported
    assert json.loads((out / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
    hf = transformers.AutoModelForCausalLM.from_pretrained(out, local_files_only=True).float().eval()
    ids = torch.randint(4, 100, (3, 128), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = (model(ids) - hf(ids).logits).abs().max().item()
    assert diff <= 1e-4


def test_exported_tokenizer_gives_our_ids(exported: tuple[TransformerLM, Path]) -> None:
    _, out = exported
    hf_tok = transformers.AutoTokenizer.from_pretrained(out, local_files_only=True)
    ours_tok = CharTokenizer()
    texts = ["<eos> is text here, <answer>7</answer> é"]
    for name in ("countdown", "multiplication", "frozenlake"):
        cfg = load_config(None, [f"task.name={name}"])
        texts += [make_task(cfg.task).episode(p).prompt for p in make_task(cfg.task).problems("test")[:5]]
    for text in texts:
        assert hf_tok(text, add_special_tokens=False)["input_ids"] == ours_tok.encode(text)
        assert hf_tok(text)["input_ids"] == build_context(ours_tok, [], text, 0)[:1] + ours_tok.encode(text)
        if "é" not in text:
            assert hf_tok.decode(ours_tok.encode(text), skip_special_tokens=True) == text
    assert (hf_tok.pad_token_id, hf_tok.bos_token_id, hf_tok.eos_token_id, hf_tok.unk_token_id) == (
        0,
        1,
        2,
        3,
    )


def test_adapter_reproduces_our_sampler_and_logprobs(exported: tuple[TransformerLM, Path]) -> None:
    """Same weights behind HFCausalLM: same greedy and sampled tokens (left padding), same log-probs."""
    model, out = exported
    adapter, tok = load_hf_model_dir(out)
    assert isinstance(adapter, HFCausalLM) and adapter.config.max_seq_len == 128
    one, two = tok.encode("Use 3 7 25 to make 46\n", bos=True), tok.encode("x", bos=True)
    prompts = [one, two, one, one, two]  # repeats: the shared prefill reorders the transformers cache
    for greedy in (True, False):
        a = generate(model, prompts, 24, eos_id=-1, pad_id=0, greedy=greedy, generator=torch.Generator())
        b = generate(adapter, prompts, 24, eos_id=-1, pad_id=0, greedy=greedy, generator=torch.Generator())
        assert torch.equal(a.tokens, b.tokens)
        assert (a.logprobs - b.logprobs).abs().max() < 1e-4
    ids = torch.randint(4, 100, (2, 40), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[0, 30:] = False  # right padding, as in training batches
    for x, y in zip(
        token_logprobs_and_entropy(model, ids, mask), token_logprobs_and_entropy(adapter, ids, mask)
    ):
        assert (x - y).abs().max() < 1e-4


def tiny_hf_model(out: Path, arch: str) -> Path:
    """A random tiny Llama or Qwen2 causal LM + a char tokenizer, saved with save_pretrained."""
    torch.manual_seed(0)
    common = dict(
        vocab_size=100,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    if arch == "llama":
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**common, tie_word_embeddings=True))
        hf_tok = char_tokenizer_to_hf(CharTokenizer())
    else:  # Qwen2: attention biases, no BOS token, EOS doubles as PAD
        model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**common, tie_word_embeddings=False))
        hf_tok = char_tokenizer_to_hf(CharTokenizer())
        hf_tok.bos_token = None
        hf_tok.pad_token = hf_tok.eos_token
    model.save_pretrained(out)
    hf_tok.save_pretrained(out)
    return out


def hf_config(tmp: Path, model_dir: Path, *overrides: str):
    return load_config(
        SMOKE,
        [
            "model.source=hf",
            f"model.path={model_dir}",
            f"run.out_dir={tmp / 'runs'}",
            f"pretrain.cache_dir={tmp / 'cache' / 'base_models'}",
            "run.device=cpu",
            "run.threads=1",
            *overrides,
        ],
    )


@pytest.mark.parametrize(
    ("arch", "algorithm"), [("llama", "ragen"), ("llama", "astarpo"), ("qwen2", "grpo"), ("qwen2", "ppo")]
)
def test_rl_on_a_local_hf_model(tmp_path: Path, arch: str, algorithm: str) -> None:
    """A few RL iterations: the HF model is π_ref as is, the policy moves, checkpoints reload as HF."""
    model_dir = tiny_hf_model(tmp_path / arch, arch)
    cfg = hf_config(tmp_path, model_dir, f"algorithm.name={algorithm}", f"run.name={algorithm}")
    tr = TinyZeroTrainer(cfg, progress=False)
    assert isinstance(tr.ref, HFCausalLM) and tr.tok.bos_id == (1 if arch == "llama" else 2)
    before = {k: v.clone() for k, v in tr.policy.state_dict().items()}
    summary = tr.train()
    assert summary["iterations"] == 2 and summary["base/greedy_success"] is not None
    assert (tmp_path / "cache" / "base_models" / tr.base_key / "report.json").is_file()  # base report cached
    moved = [k for k, v in tr.policy.state_dict().items() if not torch.equal(v, before[k])]
    assert moved, "no weight changed"
    for k, v in tr.ref.state_dict().items():  # π_ref stays the local model as is
        assert torch.equal(v, before[k])
    metrics = [json.loads(line) for line in (tr.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(m["loss"] == m["loss"] for m in metrics if "loss" in m)  # no NaN
    ckpt = load_checkpoint(tr.run_dir / "checkpoints" / "latest")
    assert isinstance(ckpt["model"], HFCausalLM)
    for k, v in ckpt["model"].state_dict().items():
        assert torch.equal(v, tr.policy.state_dict()[k])


def test_bad_model_path_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        TinyZeroTrainer(hf_config(tmp_path, tmp_path / "missing"), progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not a transformers model directory"):
        TinyZeroTrainer(hf_config(tmp_path, tmp_path / "empty"), progress=False)
    with pytest.raises(UserError, match="model.path"):
        load_config(SMOKE, ["model.source=hf"])
    save_model_dir(ours(), CharTokenizer(), tmp_path / "ours")  # our own format is not a transformers dir
    proc = subprocess.run(
        [sys.executable, "train.py", "--config", "configs/smoke.yaml", "model.source=hf",
         f"model.path={tmp_path / 'ours'}", f"run.out_dir={tmp_path / 'runs'}"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "not a transformers model directory" in proc.stderr


def test_resume_of_an_hf_run_gives_identical_weights(tmp_path: Path) -> None:
    model_dir = tiny_hf_model(tmp_path / "llama", "llama")
    cfg_a = hf_config(tmp_path, model_dir, "run.name=a", "training.total_iterations=3")
    straight = TinyZeroTrainer(cfg_a, progress=False)
    straight.train()
    hf_config_b = hf_config(tmp_path, model_dir, "run.name=b", "training.total_iterations=1")
    TinyZeroTrainer(hf_config_b, progress=False).train()
    resumed = TinyZeroTrainer(
        hf_config(tmp_path, model_dir, "run.name=b", "training.total_iterations=3"),
        resume=True,
        progress=False,
    )
    assert resumed.iteration == 1
    resumed.train()
    assert_same_weights(straight.policy.state_dict(), resumed.policy.state_dict())
