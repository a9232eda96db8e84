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


def lm_head_dtypes(tr: TinyZeroTrainer) -> set[torch.dtype]:
    """Train one iteration and report the dtypes the LM head computed in (sampling and training)."""
    seen: set[torch.dtype] = set()
    tr.policy.lm_head.register_forward_hook(lambda m, i, out: seen.add(out.dtype))
    tr.train()
    return seen


@pytest.mark.parametrize("dtype, expected", [("float32", torch.float32), ("bfloat16", torch.bfloat16)])
def test_bf16_autocast_on_cpu(cache_dir: Path, tmp_path: Path, dtype: str, expected: torch.dtype) -> None:
    tr = trainer(cache_dir, tmp_path, f"run.dtype={dtype}", "training.total_iterations=1")
    assert lm_head_dtypes(tr) == {expected}
    assert all(p.dtype == torch.float32 for p in tr.policy.parameters())  # master weights stay fp32
    assert all(s["exp_avg"].dtype == torch.float32 for s in tr.optimizer.state.values())
    assert math.isfinite(json_last(tr)["loss"])


def json_last(tr: TinyZeroTrainer) -> dict:
    import json

    return json.loads((tr.run_dir / "metrics.jsonl").read_text().splitlines()[-1])


def test_bad_dtype_is_a_user_error() -> None:
    with pytest.raises(UserError, match="run.dtype='float16'.*float32 or bfloat16"):
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
