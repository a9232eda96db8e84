"""Crash safety and run guards: SIGKILL at any moment, Ctrl-C, corrupt checkpoints, a full disk, NaN/inf
steps, memory that does not grow. docs/reliability.md explains the guarantees and quotes the figures.

Run: pytest tests/test_reliability.py -q                 (~60 s on 2 CPU cores: real train.py subprocesses)
     pytest tests/test_reliability.py -q -m slow -s      (the soak: dozens of kills, a few minutes)
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import re
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
from handmade import assert_same_weights
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyzero.algorithms.astarpo import estimate_v_star
from tinyzero.checkpoint import find_resumable, load_checkpoint, save_checkpoint, verify_checkpoint
from tinyzero.config import load_config
from tinyzero.errors import Interrupted, UserError, run_cli
from tinyzero.guards import TrainingDiverged, peak_rss_mb, rss_mb
from tinyzero.models.io import build_model
from tinyzero.models.tokenizer import CharTokenizer
from tinyzero.models.transformer import generate, token_logprobs_and_entropy
from tinyzero.trainer import TinyZeroTrainer, default_reward

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"
# Unbuffered: a SIGKILLed process loses whatever Python still held in its stdout buffer.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
CRASH_POINTS = ("mid_weights", "mid_optimizer", "renamed", "pruning", "mid_metrics", "optimizer")


def overrides(cache: Path, out: Path, *extra: str) -> list[str]:
    return [f"run.out_dir={out}", f"pretrain.cache_dir={cache}", "run.device=cpu", "run.threads=1", *extra]


def trainer(cache: Path, out: Path, *extra: str, resume: bool = False, reward=default_reward):
    cfg = load_config(SMOKE, overrides(cache, out, *extra))
    return TinyZeroTrainer(cfg, reward_fn=reward, resume=resume, progress=False)


def logged(run_dir: Path) -> list[dict]:
    """metrics.jsonl lines that parse (a line torn by a kill does not)."""
    out = []
    path = run_dir / "metrics.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


# ----------------------------------------------------------------------------- SIGKILL: real subprocesses


class KilledRun:
    """One run of train.py driven through kills and resumes, with the bookkeeping the figures need."""

    def __init__(self, cache: Path, out: Path, *extra: str) -> None:
        self.args = ["--config", str(SMOKE), *overrides(cache, out, *extra), "--no-progress"]
        self.run_dir = out / load_config(SMOKE, overrides(cache, out, *extra)).run.name
        self.ckpt_root = self.run_dir / "checkpoints"
        self.kills: Counter[str] = Counter()
        self.lost: list[int] = []  # iterations lost per kill (logged before it, minus where resume starts)
        self.fallbacks = 0
        self.started = False

    def _command(self, point: str | None, n: int) -> list[str]:
        resume = ["--resume"] if self.started else []
        if point is None:
            return [sys.executable, str(ROOT / "train.py"), *self.args, *resume]
        return [sys.executable, str(ROOT / "tests" / "crashpoints.py"), point, str(n), *self.args, *resume]

    def _expect_resume_point(self) -> int | None:
        """Where the next --resume must start: the newest checkpoint that verifies (None: a fresh start)."""
        if not self.started:
            return None
        warnings: list[str] = []
        path = find_resumable(self.ckpt_root, report=warnings.append)
        self.fallbacks += len(warnings)
        return None if path is None else int(path.name[5:])

    def run(self, point: str | None = None, n: int = 0, kill_after: float | None = None, sig=signal.SIGKILL):
        """Start train.py (or the crash-point driver); with ``kill_after`` send ``sig`` that many seconds
        after the run logs its next iteration. Returns the finished process and its output."""
        expected = self._expect_resume_point()
        before = len(logged(self.run_dir))
        proc = subprocess.Popen(
            self._command(point, n),
            cwd=ROOT,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.started = True
        if kill_after is not None:
            deadline = time.monotonic() + 120
            while proc.poll() is None and len(logged(self.run_dir)) <= before and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(kill_after)
            if proc.poll() is None:
                proc.send_signal(sig)
        out, err = proc.communicate(timeout=300)
        if expected is not None:
            assert f"resuming from {self.ckpt_root / f'iter_{expected:06d}'} (iteration {expected})" in out, (
                out + err
            )
        if proc.returncode == -signal.SIGKILL:
            self.kills[point or "random"] += 1
            last = max((m["iteration"] for m in logged(self.run_dir)), default=0)
            resume_at = self._peek_resume_point()
            self.lost.append(last - resume_at)
        return proc, out, err

    def _peek_resume_point(self) -> int:
        path = find_resumable(self.ckpt_root, report=lambda line: None)
        return 0 if path is None else int(path.name[5:])

    def final_weights(self) -> dict[str, torch.Tensor]:
        return load_checkpoint(self.ckpt_root)["model"].state_dict()


def intact(ckpt_root: Path) -> list[Path]:
    good = []
    for path in sorted(ckpt_root.glob("iter_*")):
        try:
            verify_checkpoint(path)
            good.append(path)
        except UserError:
            pass
    return good


def corrupt_newest(ckpt_root: Path, name: str = "model.safetensors") -> str:
    """Flip one byte in the middle of a file of the newest intact checkpoint (same size: only the checksum
    can tell)."""
    newest = max(intact(ckpt_root))
    f = newest / name
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    return newest.name


def test_sigkill_at_every_write_point_then_resume_gives_identical_weights(
    cache_dir: Path, tmp_path: Path
) -> None:
    """Kills inside checkpoint and log writes, a corrupted checkpoint, a random-time kill: the resumed run
    ends bit-identical to an uninterrupted one and its log has every iteration exactly once. (The other
    crash points, `mid_weights`, `pruning` and `optimizer`, are exercised by the soak.)"""
    settings = ("run.name=chain", "training.total_iterations=8", "training.keep_last=2")
    straight = trainer(cache_dir, tmp_path / "straight", *settings)
    straight.train()

    run = KilledRun(cache_dir, tmp_path / "killed", *settings)
    proc, _, _ = run.run("mid_optimizer", 3)  # dies halfway through iter_000003/optimizer.pt
    assert proc.returncode == -signal.SIGKILL
    assert list(run.ckpt_root.glob(".tmp_iter_*")) and run._peek_resume_point() == 2
    run.run("renamed", 2)  # iter_000004 in place, `latest` still names iter_000003
    assert (run.ckpt_root / "latest").read_text() == "iter_000003" and run._peek_resume_point() == 4
    bad = corrupt_newest(run.ckpt_root)  # bit rot in iter_000004: resume must fall back to iter_000003
    proc, out, err = run.run("mid_metrics", 2)  # resumes from 3, logs 4, dies half-way through line 5
    assert (
        f"warning: checkpoint '{run.ckpt_root / bad}' is corrupt" in err
        and "falling back to iter_000003" in err
    )
    assert len([ln for ln in err.splitlines() if "warning:" in ln]) == 1
    proc, _, _ = run.run(kill_after=random.Random(0).uniform(0.0, 0.3))  # a random moment
    proc, out, err = run.run()
    assert proc.returncode == 0, err
    assert "done: ragen on frozenlake, 8 iterations" in out

    assert sum(run.kills.values()) >= 3 and max(run.lost) <= 1  # checkpoint_every=1: at most one iteration
    assert_same_weights(straight.policy.state_dict(), run.final_weights())
    a, b = logged(straight.run_dir), logged(run.run_dir)
    assert [m["iteration"] for m in b] == list(range(9))  # every iteration once, torn line dropped
    for ma, mb in zip(a, b, strict=True):
        for key in ("reward/mean", "loss", "kl", "entropy", "generated_tokens"):
            assert ma.get(key) == mb.get(key), (key, ma["iteration"])


@pytest.mark.slow
def test_soak_many_random_kills(cache_dir: Path, tmp_path: Path) -> None:
    """By hand: dozens of kills (random moments, every crash point, Ctrl-C, corrupted checkpoints) over a
    100-iteration run that checkpoints every 3 iterations; figures are printed and quoted in
    docs/reliability.md. Set TINYZERO_SOAK_KILLS to change the number of interruptions (default 40)."""
    n_kills = int(os.environ.get("TINYZERO_SOAK_KILLS", "40"))
    settings = ("run.name=soak", "training.total_iterations=100", "training.checkpoint_every=3")
    t0 = time.perf_counter()
    straight = trainer(cache_dir, tmp_path / "straight", *settings)
    straight.train()
    rng = random.Random(1234)
    run = KilledRun(cache_dir, tmp_path / "killed", *settings)
    interrupts = corruptions = 0
    finished = False
    for _ in range(n_kills):
        roll = rng.random()
        if roll < 0.1 and run.started and len(intact(run.ckpt_root)) >= 2:  # so that a fallback exists
            corrupt_newest(run.ckpt_root, rng.choice(["model.safetensors", "optimizer.pt", "state.json"]))
            corruptions += 1
        if roll < 0.55:
            proc, out, err = run.run(kill_after=rng.uniform(0.0, 1.5))
        elif roll < 0.65:
            proc, out, err = run.run(kill_after=rng.uniform(0.0, 1.0), sig=signal.SIGINT)
            if proc.returncode == 130:
                interrupts += 1
                saved = err.strip().splitlines()[-1]
                assert saved.startswith("interrupted: saved checkpoint iter_"), err
                last = max(m["iteration"] for m in logged(run.run_dir))
                assert saved.split()[3] == f"iter_{last:06d};"  # Ctrl-C loses nothing
        else:
            proc, out, err = run.run(rng.choice(CRASH_POINTS), rng.randint(1, 3))
        assert proc.returncode in (0, 130, -signal.SIGKILL), err
        if proc.returncode == 0:
            finished = True
            break
    if not finished:
        proc, out, err = run.run()
        assert proc.returncode == 0, err
    assert_same_weights(straight.policy.state_dict(), run.final_weights())
    assert [m["iteration"] for m in logged(run.run_dir)] == list(range(101))
    figures = {
        "sigkills_survived": sum(run.kills.values()),
        "by_point": dict(run.kills),
        "ctrl_c_survived": interrupts,
        "corruptions_detected": corruptions,
        "fallbacks_reported": run.fallbacks,
        "max_iterations_lost": max(run.lost, default=0),
        "mean_iterations_lost": round(sum(run.lost) / max(1, len(run.lost)), 2),
        "checkpoint_every": 3,
        "final_weights_identical": True,
        "seconds": round(time.perf_counter() - t0),
    }
    print("\nsoak:", json.dumps(figures))
    assert max(run.lost, default=0) <= 3  # checkpoint_every=3: a kill loses at most one interval


# ----------------------------------------------------------------------------- Ctrl-C (in-process SIGINT)


def interrupting_reward(at_iteration: int, times: int = 1):
    """compute_reward that presses Ctrl-C (a real SIGINT to this process) while iteration N is sampling."""
    state = {"sent": 0}

    def reward(task, episode) -> float:
        tr = reward.trainer
        if tr.iteration + 1 == at_iteration and state["sent"] < times:
            state["sent"] += 1
            signal.raise_signal(signal.SIGINT)
        return episode.reward

    return reward


def test_ctrl_c_finishes_the_iteration_saves_and_exits_130(
    cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    settings = ("training.total_iterations=4", "training.checkpoint_every=10")  # only the end would save
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN under nohup / a background job
    reward = interrupting_reward(at_iteration=2)
    tr = trainer(cache_dir, tmp_path, *settings, reward=reward)
    reward.trainer = tr
    with pytest.raises(SystemExit) as exc:
        run_cli(tr.train)
    assert exc.value.code == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "interrupted: saved checkpoint iter_000002; continue with --resume"
    assert not any("Traceback" in line for line in err)
    assert signal.getsignal(signal.SIGINT) is before  # our handler removed again
    verify_checkpoint(tr.ckpt_root / "iter_000002")
    assert [m["iteration"] for m in logged(tr.run_dir)] == [0, 1, 2]

    resumed = trainer(cache_dir, tmp_path, *settings, resume=True)
    assert resumed.iteration == 2
    resumed.train()
    straight = trainer(cache_dir, tmp_path, "run.name=straight", *settings)
    straight.train()
    assert_same_weights(straight.policy.state_dict(), resumed.policy.state_dict())


def test_second_ctrl_c_stops_at_once_without_saving(cache_dir: Path, tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGINT)
    reward = interrupting_reward(at_iteration=2, times=2)
    tr = trainer(
        cache_dir, tmp_path, "training.total_iterations=4", "training.checkpoint_every=10", reward=reward
    )
    reward.trainer = tr
    with pytest.raises(KeyboardInterrupt) as exc:
        tr.train()
    assert not isinstance(exc.value, Interrupted)
    assert not tr.ckpt_root.exists() or not any(tr.ckpt_root.glob("iter_*"))
    assert signal.getsignal(signal.SIGINT) is before


# ----------------------------------------------------------------------------- damaged checkpoints


def test_fallback_to_the_newest_intact_checkpoint(
    cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    settings = ("algorithm.name=grpo", "training.total_iterations=3")
    trainer(cache_dir, tmp_path, *settings).train()
    capsys.readouterr()  # the run's own output (e.g. notes on settings): only the resume's warnings count
    root = tmp_path / "smoke" / "checkpoints"
    for it in (1, 2, 3):
        verify_checkpoint(root / f"iter_{it:06d}")
    f = root / "iter_000003" / "optimizer.pt"
    f.write_bytes(f.read_bytes()[:100])  # truncated
    (root / "iter_000002" / "manifest.json").unlink()  # never finished
    tr = trainer(cache_dir, tmp_path, *settings, "training.total_iterations=4", resume=True)
    assert tr.iteration == 1 and tr.resumed_from == root / "iter_000001"
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"warning: checkpoint '{root / 'iter_000003'}' is corrupt: optimizer.pt has 100 bytes, expected "
        f"{(root / 'iter_000001' / 'optimizer.pt').stat().st_size} (truncated or overwritten); "
        f"falling back to iter_000002",
        f"warning: checkpoint '{root / 'iter_000002'}' is incomplete: manifest.json is missing; "
        f"falling back to iter_000001",
    ]
    # nothing intact at all: one error line, and the user is told what to do
    corrupt_newest(root)  # still iter_000003 (newest by name); make iter_000001 bad too
    (root / "iter_000001" / "state.json").write_text("{}")
    with pytest.raises(UserError, match="no intact checkpoint") as exc:
        trainer(cache_dir, tmp_path, *settings, resume=True)
    assert "\n" not in str(exc.value)


def test_disk_full_while_writing_keeps_the_previous_checkpoint(cache_dir: Path, tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes the kernel refuse writes past 200 kB (EFBIG), as a full disk refuses them."""
    settings = ("algorithm.name=grpo", "training.total_iterations=2")
    first = trainer(cache_dir, tmp_path, *settings, "training.total_iterations=1")
    first.train()
    root = first.ckpt_root
    before = {p.name: p.read_bytes() for p in (root / "iter_000001").iterdir()}
    tr = trainer(cache_dir, tmp_path, *settings, resume=True)
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, limits[1]))
    try:
        with pytest.raises(UserError, match="cannot write checkpoint iter_000002") as exc:
            tr.train()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, old_handler)
    message = str(exc.value)
    assert "\n" not in message and "the previous checkpoint iter_000001 is intact" in message
    assert sorted(p.name for p in root.iterdir()) == ["iter_000001", "latest"]  # no half-written directory
    assert {p.name: p.read_bytes() for p in (root / "iter_000001").iterdir()} == before
    assert (root / "latest").read_text() == "iter_000001"
    again = trainer(cache_dir, tmp_path, *settings, resume=True)  # space is back: it simply continues
    assert again.iteration == 1
    assert again.train()["iterations"] == 2


def test_save_checkpoint_cleans_stale_temporary_directories(cache_dir: Path, tmp_path: Path) -> None:
    tr = trainer(cache_dir, tmp_path, "algorithm.name=grpo", "training.total_iterations=1")
    (tr.ckpt_root / ".tmp_iter_000007").mkdir(parents=True)
    (tr.ckpt_root / ".tmp_iter_000007" / "model.safetensors").write_bytes(b"half")
    path = save_checkpoint(tr.ckpt_root, 1, tr.policy, tr.tok, tr.optimizer, {"task": "frozenlake"})
    assert sorted(p.name for p in tr.ckpt_root.iterdir()) == ["iter_000001", "latest"]
    verify_checkpoint(path)


# ----------------------------------------------------------------------------- numerical safety


def nan_reward(bad_iterations: set[int], value: float = math.nan):
    def reward(task, episode) -> float:
        return value if reward.trainer.iteration + 1 in bad_iterations else episode.reward

    return reward


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_consecutive_non_finite_steps_stop_the_run_without_saving(
    cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture, value: float
) -> None:
    reward = nan_reward({2, 3, 4, 5, 6}, value)
    tr = trainer(
        cache_dir, tmp_path, "training.total_iterations=8", "training.max_bad_steps=3", reward=reward
    )
    reward.trainer = tr
    before = {k: v.clone() for k, v in tr.policy.state_dict().items()}
    with pytest.raises(
        TrainingDiverged, match=r"3 non-finite steps in a row \(training.max_bad_steps=3\)"
    ) as exc:
        tr.train()
    assert "\n" not in str(exc.value) and "iteration 4" in str(exc.value)
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 2
    for i, line in zip((2, 3), warnings):
        assert re.fullmatch(
            rf"warning: iteration {i}: loss is (nan|inf); step skipped \({i - 1} in a row\)", line
        )
    # iterations 2 and 3 were skipped and saved unchanged; iteration 4 stopped the run before its checkpoint
    assert sorted(p.name for p in tr.ckpt_root.glob("iter_*")) == [
        "iter_000001",
        "iter_000002",
        "iter_000003",
    ]
    for it in (2, 3):
        ckpt = load_checkpoint(tr.ckpt_root / f"iter_{it:06d}")
        assert all(torch.isfinite(v).all() for v in ckpt["model"].state_dict().values())
        assert ckpt["state"]["skipped_steps"] == it - 1
    lines = logged(tr.run_dir)
    assert [m["skipped_steps"] for m in lines[1:]] == [0, 1, 2]
    assert math.isnan(lines[2]["grad_norm"])
    assert torch.equal(
        tr.policy.state_dict()["tok_emb.weight"],
        load_checkpoint(tr.ckpt_root)["model"].state_dict()["tok_emb.weight"],
    )
    assert not torch.equal(
        tr.policy.state_dict()["tok_emb.weight"], before["tok_emb.weight"]
    )  # it 1 did train


def test_a_few_bad_steps_are_skipped_and_the_run_goes_on(cache_dir: Path, tmp_path: Path) -> None:
    reward = nan_reward({2, 3})
    tr = trainer(
        cache_dir, tmp_path, "training.total_iterations=5", "training.max_bad_steps=3", reward=reward
    )
    reward.trainer = tr
    summary = tr.train()
    assert summary["iterations"] == 5 and summary["skipped_steps"] == 2 and tr.bad_steps == 0
    assert all(torch.isfinite(p).all() for p in tr.policy.parameters())


def test_non_finite_weights_are_never_checkpointed(cache_dir: Path, tmp_path: Path) -> None:
    """The last line of defence: whatever made a weight NaN, save() refuses to write it."""
    tr = trainer(cache_dir, tmp_path, "algorithm.name=grpo", "training.total_iterations=1")
    tr.train()
    with torch.no_grad():
        tr.policy.tok_emb.weight[3, 5] = math.nan
    tr.iteration = 2
    with pytest.raises(TrainingDiverged, match="'tok_emb.weight' is not finite") as exc:
        tr.save()
    assert "no checkpoint was written" in str(exc.value) and "\n" not in str(exc.value)
    assert sorted(p.name for p in tr.ckpt_root.iterdir()) == ["iter_000001", "latest"]


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=64).flatmap(
        lambda r: st.tuples(st.just(r), st.lists(st.floats(-1e5, 1e5), min_size=len(r), max_size=len(r)))
    ),
    st.floats(1e-8, 1e8),
)
def test_v_star_and_importance_weights_stay_finite(
    case: tuple[list[float], list[float]], beta: float
) -> None:
    """Extreme β, rewards of ±1e6 and log importance weights of ±1e5 nats (what log π_ref − log π_θ of a
    long sequence can reach): V* stays finite and inside [min r, max r], a soft max of the rewards."""
    rewards, log_w = (torch.tensor(x, dtype=torch.float32) for x in case)
    for weights in (None, log_w):
        v = float(estimate_v_star(rewards, beta, weights))
        lo, hi = float(rewards.min()), float(rewards.max())
        assert math.isfinite(v) and lo - 1e-3 * (1 + abs(lo)) <= v <= hi + 1e-3 * (1 + abs(hi))


@pytest.mark.parametrize("scale", [1.0, 1e3, 1e5])
def test_log_probs_stay_finite_for_long_sequences_and_extreme_logits(scale: float) -> None:
    """A model whose output head is scaled up (near-deterministic, logits ~1e5) over a full 512-token
    context: token log-probs, their sequence sums, entropies and sampled log-probs are all finite."""
    torch.manual_seed(0)
    tok = CharTokenizer()
    model = build_model("nano", tok.vocab_size, 512).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(scale)
    ids = torch.randint(4, tok.vocab_size, (2, 512))
    logp, entropy = token_logprobs_and_entropy(model, ids, torch.ones_like(ids, dtype=torch.bool))
    assert torch.isfinite(logp).all() and torch.isfinite(logp.sum(-1)).all()
    assert torch.isfinite(entropy).all() and (entropy >= -1e-3).all()
    out = generate(model, [[tok.bos_id]] * 4, 256, eos_id=-1, pad_id=tok.pad_id, generator=torch.Generator())
    assert out.tokens.shape == (4, 256) and torch.isfinite(out.logprobs).all()


# ----------------------------------------------------------------------------- memory


def test_memory_is_reported_and_does_not_grow(cache_dir: Path, tmp_path: Path) -> None:
    """50 iterations of a pared-down smoke config in this process: RSS after iteration 50 ≈ after 5."""
    assert rss_mb() is not None and peak_rss_mb() is not None
    tr = trainer(
        cache_dir,
        tmp_path,
        "training.total_iterations=50",
        "training.checkpoint_every=25",
        "training.eval_every=0",
        "training.eval_problems=4",
        "astarpo.num_trajectories=4",
        "num_completions=2",
        "task.max_turns=4",
    )
    summary = tr.train()
    lines = {m["iteration"]: m for m in logged(tr.run_dir)}
    rss5, rss50 = lines[5]["memory/rss_mb"], lines[50]["memory/rss_mb"]
    assert 0 < rss5 <= lines[5]["memory/peak_rss_mb"]
    assert summary["memory/peak_rss_mb"] >= max(m["memory/rss_mb"] for m in lines.values() if m["iteration"])
    peak = summary["memory/peak_rss_mb"]
    print(f"\nsmoke config, in-process: rss it5 {rss5} MB, it50 {rss50} MB, peak {peak} MB")
    assert rss50 - rss5 < max(8.0, 0.03 * rss5), (rss5, rss50)  # no per-iteration leak
