"""``--resume`` continues the run it names: the run's saved config, safe overrides applied and printed,
the others refused with one line; a Ctrl-C message names the exact command that continues the run.

Run: pytest tests/test_resume.py -q        (a few train.py subprocesses of a few seconds each)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tinyzero.cli import rerun_command
from tinyzero.config import load_config, save_config
from tinyzero.errors import UserError
from tinyzero.resume import is_safe, resume_config
from tinyzero.trainer import TinyZeroTrainer

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def train(
    out: Path, cache: Path, *extra: str, script: tuple[str, ...] = ("train.py",)
) -> subprocess.CompletedProcess:
    args = [
        "--config",
        "configs/smoke.yaml",
        f"run.out_dir={out}",
        f"pretrain.cache_dir={cache}",
        "--no-progress",
        *extra,
    ]
    return subprocess.run(
        [sys.executable, *script, *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300
    )


def saved(run_dir: Path) -> dict:
    return yaml.safe_load((run_dir / "config.yaml").read_text())


def test_resume_keeps_the_runs_algorithm_not_the_config_files(cache_dir: Path, tmp_path: Path) -> None:
    """The README's example: a GRPO run resumed with a config file that says RAGEN stays GRPO."""
    proc = train(tmp_path, cache_dir, "algorithm.name=grpo", "run.name=g")
    assert proc.returncode == 0, proc.stderr
    proc = train(tmp_path, cache_dir, "run.name=g", "training.total_iterations=3", "--resume")
    assert proc.returncode == 0, proc.stderr
    assert "done: grpo on frozenlake, 3 iterations" in proc.stdout
    assert "--resume: training.total_iterations 2 -> 3" in proc.stdout  # the safe change, said
    ignored = [line for line in proc.stdout.splitlines() if "ignored what configs/smoke.yaml sets" in line]
    assert len(ignored) == 1 and "algorithm.name ('ragen', the run has 'grpo')" in ignored[0]
    run = tmp_path / "g"
    assert json.loads((run / "summary.json").read_text())["algorithm"] == "grpo"
    assert saved(run)["algorithm"]["name"] == "grpo" and saved(run)["training"]["total_iterations"] == 3


def test_resume_refuses_an_override_that_changes_the_run(cache_dir: Path, tmp_path: Path) -> None:
    assert train(tmp_path, cache_dir, "run.name=a").returncode == 0
    before = (tmp_path / "a" / "config.yaml").read_text()
    for override, key in (
        ("training.lr=1e-3", "training.lr"),
        ("algorithm.name=grpo", "algorithm.name"),
        ("astarpo.beta=0.1", "astarpo.beta"),
        ("training.lr_schedule=cosine", "training.lr_schedule"),
    ):
        proc = train(tmp_path, cache_dir, "run.name=a", override, "--resume")
        assert proc.returncode == 2, (override, proc.stdout, proc.stderr)
        err = proc.stderr.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: --resume:") and key in err[0], err
        assert "run.name" in err[0]  # names the fix: a new run
    assert (tmp_path / "a" / "config.yaml").read_text() == before  # nothing rewritten


def test_a_killed_run_resumes_to_its_own_iteration_budget(cache_dir: Path, tmp_path: Path) -> None:
    """A 4-iteration run killed after its 2nd checkpoint, resumed without repeating the budget: it goes
    on to 4 (the command line's smoke default is 2, which the old resume silently stopped at)."""
    extra = ("run.name=k", "training.total_iterations=4", "training.checkpoint_every=1")
    proc = train(tmp_path, cache_dir, *extra, script=("tests/crashpoints.py", "renamed", "2"))
    assert proc.returncode == -9, proc.stderr  # SIGKILL
    proc = train(tmp_path, cache_dir, "run.name=k", "--resume")
    assert proc.returncode == 0, proc.stderr
    assert "resuming from" in proc.stdout and "4 iterations" in proc.stdout
    assert json.loads((tmp_path / "k" / "summary.json").read_text())["iterations"] == 4


def test_the_trainer_refuses_a_config_that_is_not_the_checkpoints(cache_dir: Path, tmp_path: Path) -> None:
    """Library users get the same guard: TinyZeroTrainer(resume=True) checks the checkpoint's config."""
    base = [f"run.out_dir={tmp_path}", f"pretrain.cache_dir={cache_dir}", "run.threads=1"]
    TinyZeroTrainer(load_config(ROOT / "configs" / "smoke.yaml", base), progress=False).train()
    with pytest.raises(UserError, match=r"training\.lr=0\.001 \(the run has 0\.0005\)"):
        TinyZeroTrainer(
            load_config(ROOT / "configs" / "smoke.yaml", [*base, "training.lr=1e-3"]), resume=True
        )
    # a safe change is fine
    cfg = load_config(ROOT / "configs" / "smoke.yaml", [*base, "training.total_iterations=3"])
    assert TinyZeroTrainer(cfg, resume=True, progress=False).iteration == 2


def test_safe_keys_are_the_ones_that_do_not_change_what_is_optimised() -> None:
    for key in ("training.total_iterations", "training.eval_every", "logging.tensorboard", "run.threads"):
        assert is_safe(key), key
    for key in ("training.lr", "algorithm.name", "task.name", "astarpo.beta", "run.seed", "model.preset"):
        assert not is_safe(key), key
    assert not is_safe("training.lr_schedule")  # a prefix match needs the dot


def test_a_longer_resume_of_a_decaying_run_says_the_curve_stretches(tmp_path: Path) -> None:
    located = [f"run.out_dir={tmp_path}", "run.name=c"]
    for schedule, said in (("cosine", True), ("constant", False)):
        (tmp_path / "c").mkdir(exist_ok=True)
        save_config(
            load_config(None, [*located, f"training.lr_schedule={schedule}"]), tmp_path / "c" / "config.yaml"
        )
        _, notes = resume_config(None, [*located, "training.total_iterations=500"])
        assert any("decays over" in n for n in notes) == said, notes


def test_rerun_command_repeats_the_command_line_with_resume() -> None:
    argv = ["train.py", "--config", "configs/default.yaml", "run.name=my run"]
    cmd = rerun_command(argv, 1, extra="--resume")
    assert cmd.endswith("train.py --config configs/default.yaml 'run.name=my run' --resume")
    assert cmd.split()[0] in ("python", os.path.relpath(sys.executable), sys.executable)
    assert rerun_command([*argv, "--resume"], 1, extra="--resume").count("--resume") == 1
    assert rerun_command(argv, 2, extra="--resume").startswith(
        "torchrun --standalone --nproc_per_node=2 train.py"
    )
