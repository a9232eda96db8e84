"""The real entry points as a user runs them: train.py (run, resume, mistakes) and scripts/run_smoke.py.

Run: pytest tests/test_cli.py -q        (a few subprocesses of a few seconds each)
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# One thread: the models are tiny, and torch's default thread pool crawls on a busy 2-core machine.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli")


def train(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return run(
        "train.py",
        "--config",
        "configs/smoke.yaml",
        f"run.out_dir={out / 'runs'}",
        f"pretrain.cache_dir={out / 'cache' / 'base_models'}",
        "run.threads=1",
        "--no-progress",
        *extra,
    )


def test_train_runs_resumes_and_reports_mistakes(out: Path) -> None:
    proc = train(out, "training.total_iterations=2")
    assert proc.returncode == 0, proc.stderr
    done = [line for line in proc.stdout.splitlines() if line.startswith("done:")]
    assert len(done) == 1 and "2 iterations" in done[0] and "held-out greedy success" in done[0]
    run_dir = out / "runs" / "smoke"
    assert (run_dir / "summary.json").is_file() and (run_dir / "checkpoints" / "latest").is_file()
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 3

    # the same command again would overwrite the run: one line, exit 2, the fix named
    proc = train(out, "training.total_iterations=2")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error:") and "--resume" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr

    proc = train(out, "training.total_iterations=3", "--resume")
    assert proc.returncode == 0, proc.stderr
    assert "3 iterations" in proc.stdout
    assert json.loads((run_dir / "summary.json").read_text())["iterations"] == 3
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 4


def test_resume_without_checkpoint_is_a_one_line_error(out: Path) -> None:
    proc = train(out, "run.name=nothing_here", "--resume")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error:") and "no checkpoint" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_run_smoke_prints_a_stats_dict() -> None:
    proc = run("scripts/run_smoke.py")  # uses the repository's default .cache (built once, then reused)
    assert proc.returncode == 0, proc.stderr
    stats = ast.literal_eval(proc.stdout.strip().splitlines()[-1])
    assert isinstance(stats, dict) and "loss" in stats
    assert {"grad_norm", "reward_mean", "kl", "entropy"} <= stats.keys()
