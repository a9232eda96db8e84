"""TinyZeroTrainer on the smoke config: the A*PO KL term, every algorithm runs end to end and writes its
files, the A*PO stage-1 table is cached, resuming reproduces the weights bit for bit, and user mistakes
(existing run, missing or corrupt checkpoint) are one-line UserErrors.

Run: pytest tests/test_trainer.py -q        (~20 s on 2 CPU cores; the tiny base model is trained once)
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from handmade import assert_same_weights

from tinyzero.algorithms import astarpo
from tinyzero.algorithms.common import group_view, make_batch, token_kl, trajectory_logprobs
from tinyzero.checkpoint import load_checkpoint
from tinyzero.config import load_config
from tinyzero.errors import UserError
from tinyzero.trainer import TinyZeroTrainer, scheduled_lr

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"
EXPECTED_KEYS = {
    "iteration",
    "reward/mean",
    "reward/std",
    "success",
    "format_rate",
    "kl",
    "entropy",
    "response_length",
    "tokens_per_s",
    "seconds",
    "loss",
}


# cache_dir (the smoke base model, built once per session) comes from tests/conftest.py


def config(cache: Path, out_dir: Path, *overrides: str):
    return load_config(
        SMOKE,
        [
            f"run.out_dir={out_dir}",
            f"pretrain.cache_dir={cache}",
            "run.device=cpu",
            "run.threads=1",
            *overrides,
        ],
    )


def trainer(cache: Path, out_dir: Path, *overrides: str, resume: bool = False) -> TinyZeroTrainer:
    return TinyZeroTrainer(config(cache, out_dir, *overrides), resume=resume, progress=False)


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


# ----------------------------------------------------------------------------- the A*PO KL term
# (each algorithm's whole loss against its formula: tests/test_algorithm_losses.py)


def fixed_episodes(tr: TinyZeroTrainer, n_prompts: int, k: int, varied: bool = False):
    """K episodes for each of n_prompts training prompts (``varied``: only groups whose rewards differ)."""
    problems = tr.train_problems[: 4 * n_prompts if varied else n_prompts]
    episodes = tr.rollout([p for p in problems for _ in range(k)], tr.policy)
    groups = group_view(tr.rewards(episodes), k)
    keep = [i for i in range(len(problems)) if not varied or groups[i].std() > 0][:n_prompts]
    assert len(keep) == n_prompts, "not enough prompt groups with reward variance: pick another seed"
    problems = [problems[i] for i in keep]
    episodes = [episodes[i * k + j] for i in keep for j in range(k)]
    rewards = groups[keep].flatten()
    batch = make_batch(tr.tok, episodes, tr.cfg.rollout.history, tr.device)
    with torch.no_grad():
        ref = trajectory_logprobs(tr.ref, batch)
    return problems, rewards, batch, ref


@pytest.mark.parametrize("keep", [None, [0, 1, 2, 3]], ids=["all", "starpo-s-half"])
def test_kl_term_is_the_exact_per_character_kl_of_the_kept_trajectories(
    cache_dir: Path, tmp_path: Path, keep: list[int] | None
) -> None:
    """regression_loss(kl_coef = c) = regression_loss(kl_coef = 0) + c · mean over the kept trajectories'
    agent tokens of Σ_v π_θ(v)(log π_θ(v) − log π_ref(v)), and descending it pulls a perturbed policy back
    toward π_ref."""
    tr = trainer(cache_dir, tmp_path, "algorithm.name=ragen", "training.lr=3e-4", "training.entropy_coef=0")
    k = tr.cfg.num_completions
    _, rewards, batch, _ = fixed_episodes(tr, 2, k, varied=True)
    with torch.no_grad():
        for p in tr.policy.parameters():  # move π_θ away from π_ref so that the KL is not ~0
            p.add_(0.05 * torch.randn_like(p))
        ref = trajectory_logprobs(tr.ref, batch, dist=True)
    v_star = torch.full_like(rewards, 0.3)
    idx = None if keep is None else torch.tensor(keep)

    def loss(coef: float) -> tuple[torch.Tensor, float]:
        tr.cfg.astarpo.kl_coef = coef
        lp = trajectory_logprobs(tr.policy, batch, dist=True)
        kept = (
            torch.zeros(len(rewards), dtype=torch.bool)
            if keep
            else torch.ones(len(rewards), dtype=torch.bool)
        )
        if keep:
            kept[idx] = True
        mask = batch.mask & kept[batch.traj][:, None]
        kl = token_kl(lp.dist, ref.dist)
        by_hand = float((kl.detach() * mask).sum() / mask.sum())
        return astarpo.regression_loss(tr.cfg, batch, lp, ref, rewards, v_star, keep=idx)[0], by_hand

    (without, _), (with_kl, kl0) = loss(0.0), loss(2.0)
    assert kl0 > 0.01
    assert with_kl.item() == pytest.approx(without.item() + 2.0 * kl0, rel=1e-5)
    kls = [kl0]
    for _ in range(5):
        tr.optimize(loss(2.0)[0])
        kls.append(loss(2.0)[1])
    assert kls[-1] < kls[0], kls


# ----------------------------------------------------------------------------- end to end


def check_run_dir(tr: TinyZeroTrainer, iterations: int) -> list[dict]:
    run = tr.run_dir
    lines = read_metrics(run)
    assert [m["iteration"] for m in lines] == list(range(iterations + 1))  # iteration 0 = the base's eval
    assert "eval/greedy_success" in lines[0]
    for m in lines[1:]:
        assert m.keys() >= EXPECTED_KEYS, EXPECTED_KEYS - m.keys()
        assert all(isinstance(m[key], int | float) for key in EXPECTED_KEYS)
        assert m["tokens_per_s"] > 0 and m["seconds"] > 0 and math.isfinite(m["loss"])
    assert "eval/greedy_success" in lines[-1]  # the final iteration is always evaluated
    summary = json.loads((run / "summary.json").read_text())
    assert summary["iterations"] == iterations and summary["algorithm"] == tr.cfg.algorithm.name
    saved = load_config(run / "config.yaml")
    assert saved == tr.cfg
    # checkpoints/latest names a complete checkpoint of the final weights
    latest = run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()
    assert latest.name == f"iter_{iterations:06d}"
    for name in ("model.safetensors", "model.json", "tokenizer.json", "optimizer.pt", "state.json"):
        assert (latest / name).is_file(), name
    ckpt = load_checkpoint(run / "checkpoints")
    assert ckpt["state"]["iteration"] == iterations
    for key, value in tr.policy.state_dict().items():
        assert torch.equal(ckpt["model"].state_dict()[key], value), key
    return lines


@pytest.mark.parametrize(
    "overrides",
    [
        ["algorithm.name=astarpo"],
        ["algorithm.name=ragen"],
        ["algorithm.name=grpo"],
        ["algorithm.name=ppo"],
        ["algorithm.name=ragen", "astarpo.v_star_source=reference"],
        ["algorithm.name=ragen", "algorithm.starpo_s_keep=0.5"],
        ["algorithm.name=ragen", "training.update_epochs=3"],
        ["algorithm.name=ragen", "astarpo.kl_coef=0.2", "astarpo.huber_delta=1", "training.update_epochs=2"],
        ["algorithm.name=astarpo", "astarpo.kl_coef=0.2"],
    ],
    ids=[
        "astarpo",
        "ragen",
        "grpo",
        "ppo",
        "ragen-reference",
        "ragen-starpo-s",
        "ragen-epochs",
        "ragen-kl-huber",
        "astarpo-kl",
    ],
)
def test_end_to_end(cache_dir: Path, tmp_path: Path, overrides: list[str]) -> None:
    tr = trainer(cache_dir, tmp_path, *overrides)
    summary = tr.train()
    assert summary["iterations"] == tr.iteration == 2
    lines = check_run_dir(tr, 2)
    name = tr.cfg.algorithm.name
    if name == "ppo":  # the critic travels with the checkpoint
        ckpt = load_checkpoint(tr.ckpt_root)
        assert ckpt["extra"] and all(k.startswith("critic.") for k in ckpt["extra"])
    if name == "ragen":
        assert all("v_star/mean" in m and "kept_groups" in m for m in lines[1:])
        expected = 1 if tr.cfg.algorithm.starpo_s_keep < 1 else 2  # 8 trajectories = 2 groups of K = 4
        assert all(m["kept_groups"] == expected for m in lines[1:])
    if tr.cfg.astarpo.kl_coef > 0:  # the exact per-character KL is logged, and is a KL
        assert all(m["kl/token"] >= 0 for m in lines[1:])
    else:
        assert all("kl/token" not in m for m in lines[1:])
    if name == "astarpo":
        table = json.loads((tr.run_dir / "v_star.json").read_text())
        assert len(table) == len(tr.train_problems)
        assert set(table) == {tr.task.describe(p) for p in tr.train_problems}


@pytest.mark.parametrize("algorithm", ["astarpo", "ragen"])
def test_rl_prompts_are_the_first_num_problems_training_problems(
    cache_dir: Path, tmp_path: Path, algorithm: str
) -> None:
    """`training.num_problems=5`: stage 1 (A*PO) samples exactly the first 5 training problems and
    every rollout's prompt is one of them; the held-out problems are untouched."""
    full = trainer(cache_dir, tmp_path, f"algorithm.name={algorithm}", "run.name=full")
    tr = trainer(cache_dir, tmp_path, f"algorithm.name={algorithm}", "training.num_problems=5")
    first5 = {tr.task.describe(p) for p in full.train_problems[:5]}
    assert len(full.train_problems) > 5
    data = None
    for _ in range(3):
        tr.update()
        data = tr.collect()
        assert set(data.keys) <= first5
    assert data is not None and len(data.episodes) > 5  # prompts were drawn again and again from the 5
    if algorithm == "astarpo":
        table = json.loads((tr.run_dir / "v_star.json").read_text())
        assert set(table) == first5
    assert tr.test_problems == full.test_problems


def test_astarpo_stage1_is_cached_and_counted_once(cache_dir: Path, tmp_path: Path) -> None:
    settings = (
        "algorithm.name=astarpo",
        "astarpo.beta=0.25",
        "training.total_iterations=1",
    )  # a fresh V* key
    first = trainer(cache_dir, tmp_path, "run.name=first", *settings)
    first.train()
    n = first.cfg.astarpo.num_value_samples
    assert first.stage1_tokens > 0
    # stage-1 tokens are counted once, apart from the policy's own rollouts
    cfg = first.cfg
    assert (
        first.generated_tokens
        <= cfg.astarpo.num_trajectories * cfg.task.max_turns * cfg.rollout.max_new_tokens
    )
    assert (
        first.stage1_tokens <= len(first.train_problems) * n * cfg.task.max_turns * cfg.rollout.max_new_tokens
    )
    summary = json.loads((first.run_dir / "summary.json").read_text())
    assert summary["generated_tokens"] == first.generated_tokens + first.stage1_tokens
    assert read_metrics(first.run_dir)[-1]["generated_tokens"] == summary["generated_tokens"]

    second = trainer(cache_dir, tmp_path, "run.name=second", *settings)
    second.train()
    assert second.stage1_tokens == 0  # the shared table was reused: no new stage-1 samples
    assert (second.run_dir / "v_star.json").read_text() == (first.run_dir / "v_star.json").read_text()


# ----------------------------------------------------------------------------- resume


@pytest.mark.parametrize("algorithm", ["ragen", "astarpo", "ppo"])
def test_resume_gives_identical_weights(cache_dir: Path, tmp_path: Path, algorithm: str) -> None:
    # Both runs pay A*PO's stage 1 themselves (a table cached by an earlier run would make the
    # token counts depend on test order).
    shared_v_star = cache_dir.parent / "v_star"
    shutil.rmtree(shared_v_star, ignore_errors=True)
    straight = trainer(
        cache_dir, tmp_path, f"algorithm.name={algorithm}", "run.name=a", "training.total_iterations=4"
    )
    straight.train()

    shutil.rmtree(shared_v_star, ignore_errors=True)
    trainer(
        cache_dir, tmp_path, f"algorithm.name={algorithm}", "run.name=b", "training.total_iterations=2"
    ).train()
    resumed = trainer(
        cache_dir,
        tmp_path,
        f"algorithm.name={algorithm}",
        "run.name=b",
        "training.total_iterations=4",
        resume=True,
    )
    assert resumed.iteration == 2
    resumed.train()

    assert_same_weights(straight.policy.state_dict(), resumed.policy.state_dict())
    assert torch.equal(straight.gen.get_state(), resumed.gen.get_state())
    # the logs agree too: same rollouts, same losses, no duplicated lines
    la, lb = read_metrics(straight.run_dir), check_run_dir(resumed, 4)
    for ma, mb in zip(la, lb, strict=True):
        for key in ("iteration", "reward/mean", "loss", "kl", "entropy", "generated_tokens"):
            if key in ma:
                assert ma[key] == mb[key], (key, ma["iteration"])


# ----------------------------------------------------------------------------- learning-rate schedule


@pytest.mark.parametrize(
    ("schedule", "fractions"),
    [
        # 4 updates: progress 0, 1/3, 2/3, 1. cos(pi/3) = 1/2, so cosine's shape is 1, 3/4, 1/4, 0;
        # linear's is 1, 2/3, 1/3, 0; each fraction is 0.2 + 0.8 * shape.
        ("constant", [1.0, 1.0, 1.0, 1.0]),
        ("cosine", [1.0, 0.8, 0.4, 0.2]),
        ("linear", [1.0, 0.2 + 0.8 * 2 / 3, 0.2 + 0.8 / 3, 0.2]),
    ],
)
def test_scheduled_lr_runs_from_the_peak_to_the_final_fraction(schedule: str, fractions: list[float]) -> None:
    got = [scheduled_lr(1e-3, schedule, 0.2, t, 4) for t in range(4)]
    assert got == pytest.approx([1e-3 * f for f in fractions], rel=1e-12)
    assert scheduled_lr(1e-3, schedule, 0.2, 0, 1) == pytest.approx(1e-3)  # one update: the peak


def test_cosine_schedule_drives_the_optimizer_and_resumes_on_the_same_curve(
    cache_dir: Path, tmp_path: Path
) -> None:
    """Each update runs at its scheduled rate (logged as ``lr``), and a run resumed from its
    iteration-2 checkpoint continues the curve: the weights at the end are those of the straight run."""
    settings = (
        "algorithm.name=ragen",
        "training.total_iterations=4",
        "training.lr=1e-3",
        "training.lr_schedule=cosine",
        "training.lr_final=0.2",
        "training.checkpoint_every=2",
    )
    straight = trainer(cache_dir, tmp_path, *settings, "run.name=a")
    straight.train()
    lrs = [m["lr"] for m in read_metrics(straight.run_dir)[1:]]
    assert lrs == pytest.approx([1e-3, 8e-4, 4e-4, 2e-4], rel=1e-12)
    assert straight.optimizer.param_groups[0]["lr"] == pytest.approx(2e-4, rel=1e-12)

    shutil.copytree(straight.run_dir, tmp_path / "b")  # the same run, stopped after its checkpoint at 2
    shutil.rmtree(tmp_path / "b" / "checkpoints" / "iter_000004")
    resumed = trainer(cache_dir, tmp_path, *settings, "run.name=b", resume=True)
    assert resumed.iteration == 2
    resumed.train()
    assert [m["lr"] for m in read_metrics(resumed.run_dir)[3:]] == pytest.approx([4e-4, 2e-4], rel=1e-12)
    assert_same_weights(straight.policy.state_dict(), resumed.policy.state_dict())


# ----------------------------------------------------------------------------- user errors


def test_existing_run_needs_resume_and_resume_needs_a_checkpoint(cache_dir: Path, tmp_path: Path) -> None:
    trainer(cache_dir, tmp_path, "algorithm.name=grpo", "training.total_iterations=1").train()
    with pytest.raises(UserError, match="--resume"):
        trainer(cache_dir, tmp_path, "algorithm.name=grpo")
    with pytest.raises(UserError, match="no checkpoint"):
        trainer(cache_dir, tmp_path, "algorithm.name=grpo", "run.name=never_ran", resume=True)
    # resuming a finished run trains nothing, but still reports held-out figures
    done = trainer(cache_dir, tmp_path, "algorithm.name=grpo", "training.total_iterations=1", resume=True)
    summary = done.train()
    assert summary["iterations"] == 1 and "eval/greedy_success" in summary
    assert [m["iteration"] for m in read_metrics(done.run_dir)] == [0, 1]


def test_restart_without_checkpoints_starts_a_clean_log(cache_dir: Path, tmp_path: Path) -> None:
    """A run interrupted before its first checkpoint may be started again; its old lines must not linger."""
    first = trainer(cache_dir, tmp_path, "algorithm.name=grpo", "training.total_iterations=2")
    first.train()
    shutil.rmtree(first.ckpt_root)
    again = trainer(cache_dir, tmp_path, "algorithm.name=grpo", "training.total_iterations=1")
    again.train()
    assert [m["iteration"] for m in read_metrics(again.run_dir)] == [0, 1]


def test_corrupt_checkpoint_is_a_one_line_user_error(cache_dir: Path, tmp_path: Path) -> None:
    tr = trainer(cache_dir, tmp_path, "algorithm.name=grpo", "training.total_iterations=1")
    tr.train()
    ckpt = tr.ckpt_root / "iter_000001"
    assert load_checkpoint(tr.ckpt_root)["state"]["iteration"] == 1
    for name in ("optimizer.pt", "state.json"):  # other files broken, in copies of the good checkpoint
        copy = tmp_path / f"broken_{name}"
        shutil.copytree(ckpt, copy)
        (copy / name).write_bytes(b"\x00garbage")
        with pytest.raises(UserError, match="corrupt") as err:
            load_checkpoint(copy)
        assert "\n" not in str(err.value)

    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # truncated mid-write
    with pytest.raises(UserError) as err:
        load_checkpoint(tr.ckpt_root)
    assert "\n" not in str(err.value) and "model.safetensors" in str(err.value)
    with pytest.raises(UserError):
        trainer(cache_dir, tmp_path, "algorithm.name=grpo", "training.total_iterations=2", resume=True)
