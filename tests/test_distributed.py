"""Data-parallel training under torchrun, 2 processes on CPU (gloo): DDP and FSDP2.

Each case launches ``torchrun --nproc_per_node=2 tests/dist_worker.py`` once (smoke config, two
iterations) and checks that: both ranks end with identical weights; the result matches a
single-process run that replays the *same global batch* (the two ranks' prompts and episodes, in rank
order) within float tolerance, loss and gradient norm included; the ranks sampled different data
(per-rank seeds); only rank 0 wrote the run directory; a 1 + 1 iteration resume is bit-identical to
the straight run on every rank; the sharded A*PO stage 1 gives the single-process V* table exactly.

Run: pytest tests/test_distributed.py -q        (~40 s on 2 CPU cores)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tinyzero.algorithms.astarpo import build_v_star_table
from tinyzero.config import load_config
from tinyzero.distributed import launched_by_torchrun
from tinyzero.errors import UserError
from tinyzero.trainer import TinyZeroTrainer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from dist_worker import overrides  # noqa: E402  (the worker's exact settings)

SMOKE = ROOT / "configs" / "smoke.yaml"


def torchrun(out: Path, cache: Path, *args: str) -> list[dict]:
    """Run the worker on 2 CPU processes; return each rank's saved results."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    # --standalone: a private rendezvous on a free local port, so parallel test runs never collide.
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += [str(ROOT / "tests" / "dist_worker.py"), str(out), str(cache), *args]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both workers: nothing left running
        proc.communicate()
        raise
    assert proc.returncode == 0, stderr[-4000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


class ReplayTrainer(TinyZeroTrainer):
    """A single process that trains on recorded global batches instead of sampling its own."""

    def __init__(self, cfg, batches: list[dict], **kwargs) -> None:
        self.batches = batches
        super().__init__(cfg, **kwargs)

    def sample_problems(self, n: int) -> list:
        problems = self.batches[self.iteration]["problems"]
        assert len(problems) == n  # the replayed batch is exactly the global batch
        return problems

    def rollout(self, problems, model, generator=None, greedy=False):
        if model is self.policy:
            return self.batches[self.iteration]["episodes"]
        return super().rollout(problems, model, generator, greedy)


def global_batches(ranks: list[dict]) -> list[dict]:
    """Per iteration, rank 0's share followed by rank 1's: the batch a single process would see."""
    return [
        {key: [x for r in ranks for x in r["recorded"][i][key]] for key in ("problems", "episodes")}
        for i in range(len(ranks[0]["recorded"]))
    ]


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


@pytest.mark.parametrize(
    "strategy, algorithm", [("ddp", "ragen"), ("fsdp", "ppo")], ids=["ddp-ragen", "fsdp-ppo"]
)
def test_two_processes_match_one_process_on_the_same_global_batch(
    cache_dir: Path, tmp_path: Path, strategy: str, algorithm: str
) -> None:
    extra = ("stage1",) if strategy == "ddp" else ()
    ranks = torchrun(tmp_path, cache_dir, strategy, algorithm, *extra)
    assert [r["world_size"] for r in ranks] == [2, 2] and ranks[0]["strategy"] == strategy

    # both ranks hold the same weights, and they moved
    w0, w1 = ranks[0]["weights_a"], ranks[1]["weights_a"]
    assert max_diff(w0, w1) == 0.0
    base = TinyZeroTrainer(
        load_config(SMOKE, overrides(tmp_path / "base", cache_dir, strategy, algorithm)), progress=False
    ).policy.state_dict()
    moved = max_diff(w0, base)
    assert moved > 1e-4

    # per-rank seeds: the two ranks drew different prompts/samples
    eps = [[e.actions for e in r["recorded"][0]["episodes"]] for r in ranks]
    assert eps[0] != eps[1]

    # a single process replaying the same global batch ends at the same weights, loss and grad norm
    batches = global_batches(ranks)
    cfg = load_config(SMOKE, overrides(tmp_path / "single", cache_dir, strategy, algorithm))
    single = ReplayTrainer(cfg, batches, progress=False)
    single.train()
    diff = max_diff(w0, single.policy.state_dict())
    assert diff < 1e-5, diff
    assert diff < moved / 100
    dist_log, single_log = metrics(tmp_path / "a"), metrics(single.run_dir)
    for md, ms in zip(dist_log[1:], single_log[1:], strict=True):
        assert md["loss"] == pytest.approx(ms["loss"], rel=1e-4, abs=1e-6)
        assert md["grad_norm"] == pytest.approx(ms["grad_norm"], rel=1e-4)
        assert md["entropy"] == pytest.approx(ms["entropy"], rel=1e-4)
    # and rank 0's half of the batch alone would NOT give these weights: the comparison can fail
    half = [{k: v[: len(v) // 2] for k, v in b.items()} for b in batches]
    cfg_half = load_config(
        SMOKE,
        overrides(tmp_path / "half", cache_dir, strategy, algorithm, "astarpo.num_trajectories=4"),
    )
    alone = ReplayTrainer(cfg_half, half, progress=False)
    alone.train()
    assert max_diff(w0, alone.policy.state_dict()) > 100 * diff

    # rank 0 alone logged and checkpointed: one line per iteration, global token counts
    assert [m["iteration"] for m in dist_log] == [0, 1, 2]
    tokens = sum(e.num_action_tokens for b in batches for e in b["episodes"])
    assert dist_log[-1]["generated_tokens"] == tokens
    assert (tmp_path / "a" / "checkpoints" / "iter_000002" / "model.safetensors").is_file()
    state = json.loads((tmp_path / "a" / "checkpoints" / "iter_000002" / "state.json").read_text())
    assert len(state["rng_torch_ranks"]) == 2 and state["rng_torch_ranks"][0] != state["rng_torch_ranks"][1]

    # resume: 1 iteration, then --resume to 2, equals the straight run bit for bit on every rank
    for r in ranks:
        assert max_diff(r["weights_a"], r["weights_b"]) == 0.0
        assert torch.equal(r["gen_a"], r["gen_b"])

    if "stage1" in extra:  # sharded stage 1 = the single-process V* table, exactly
        cfg1 = load_config(
            SMOKE, overrides(tmp_path / "s1", cache_dir, strategy, "astarpo", "astarpo.beta=0.3")
        )
        # The ranks left their table in the shared cache: remove it, or the single process would load it.
        shutil.rmtree(cache_dir.parent / "v_star", ignore_errors=True)
        single = TinyZeroTrainer(cfg1, progress=False)
        table, tokens = build_v_star_table(single.cfg, single.preparation(), chunk=16)
        assert tokens > 0  # computed here, not read back
        assert ranks[0]["v_star"] == ranks[1]["v_star"] == table
        assert ranks[0]["stage1_tokens"] == ranks[1]["stage1_tokens"] == tokens  # both ranks' tokens


def test_trust_region_undoes_sharded_steps_on_every_rank(cache_dir: Path, tmp_path: Path) -> None:
    """FSDP2: the KL is the global batch's, so every rank undoes the same steps, and restoring the
    sharded weights and AdamW state leaves both ranks exactly at π_ref after steps that all failed."""
    ranks = torchrun(tmp_path, cache_dir, "fsdp", "ragen", "training.max_kl_rise=1e-30")
    base = TinyZeroTrainer(
        load_config(SMOKE, overrides(tmp_path / "base", cache_dir, "fsdp", "ragen")), progress=False
    ).policy.state_dict()
    for r in ranks:
        assert max_diff(r["weights_a"], base) == 0.0 and max_diff(r["weights_b"], base) == 0.0
    log = metrics(tmp_path / "a")[1:]
    assert [m["trust/step_scale"] for m in log] == [0.0, 0.0] and log[-1]["rejected_steps"] == 2
    assert all(m["trust/kl_rise"] > 0 for m in log)
    # A limit that shrinks steps: the halved sharded weights stay identical on the ranks, and they moved.
    # Two steps per batch: the first step's check runs with gradients (its forward is the second step's),
    # and is discarded without a backward when that step is shrunk.
    two_steps = ("training.max_kl_rise=2e-3", "training.update_epochs=2")
    ranks = torchrun(tmp_path / "shrink", cache_dir, "fsdp", "ragen", *two_steps)
    assert max_diff(ranks[0]["weights_a"], ranks[1]["weights_a"]) == 0.0
    assert max_diff(ranks[0]["weights_a"], base) > 1e-5
    log = metrics(tmp_path / "shrink" / "a")[1:]
    assert log[-1]["shrunk_steps"] >= 1 and all(
        m["trust/kl_rise"] <= 2e-3 or m["trust/step_scale"] == 0 for m in log
    )
    # DDP: the same, with full replicas (a discarded forward with gradients leaves its reducer usable).
    ranks = torchrun(tmp_path / "ddp", cache_dir, "ddp", "ragen", *two_steps)
    assert max_diff(ranks[0]["weights_a"], ranks[1]["weights_a"]) == 0.0
    assert metrics(tmp_path / "ddp" / "a")[-1]["shrunk_steps"] >= 1


def test_single_process_ignores_distributed_settings(cache_dir: Path, tmp_path: Path) -> None:
    assert not launched_by_torchrun()
    tr = TinyZeroTrainer(load_config(SMOKE, overrides(tmp_path, cache_dir, "fsdp", "grpo")), progress=False)
    assert not tr.dist.enabled and tr.train_policy is tr.policy


def test_uneven_split_is_a_user_error(cache_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """3 ranks cannot share 8 trajectories: caught before any process group is needed."""
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    from tinyzero import distributed

    monkeypatch.setattr(distributed.dist, "init_process_group", lambda *a, **k: None)
    with pytest.raises(UserError, match="cannot be split evenly over 3 processes"):
        TinyZeroTrainer(load_config(SMOKE, overrides(tmp_path, cache_dir, "ddp", "astarpo")), progress=False)
