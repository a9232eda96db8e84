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
    umask = os.umask(0)
    os.umask(umask)
    for ckpt in (run_dir / "checkpoints").glob("iter_*"):  # weights as readable as the JSON beside them
        modes = {p.name: p.stat().st_mode & 0o777 for p in ckpt.iterdir()}
        assert modes["model.safetensors"] == 0o666 & ~umask == modes["model.json"], modes

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


def smoke_stats(proc: subprocess.CompletedProcess) -> dict:
    lines = proc.stdout.strip().splitlines()
    stats = ast.literal_eval(next(line for line in lines if line.startswith("{")))
    assert isinstance(stats, dict)
    return stats


def test_run_smoke_prints_a_stats_dict_and_an_ok_line() -> None:
    proc = run("scripts/run_smoke.py")  # uses the repository's default .cache (built once, then reused)
    assert proc.returncode == 0, proc.stderr
    stats = smoke_stats(proc)
    assert {"loss", "grad_norm", "reward_mean", "kl", "entropy"} <= stats.keys()
    assert stats["algorithm"] == "ragen"
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("OK: ragen on frozenlake") and "expected at this budget" in last


def test_run_smoke_takes_overrides_and_rejects_unknown_arguments() -> None:
    proc = run("scripts/run_smoke.py", "algorithm.name=grpo")
    assert proc.returncode == 0, proc.stderr
    assert smoke_stats(proc)["algorithm"] == "grpo"  # not silently RAGEN
    assert proc.stdout.strip().splitlines()[-1].startswith("OK: grpo on frozenlake")
    for bad, fragment in (("--bogus", "unrecognized arguments"), ("algorithm.nme=grpo", "did you mean")):
        proc = run("scripts/run_smoke.py", bad)
        assert proc.returncode == 2 and fragment in proc.stderr, (bad, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1


def test_entry_points_name_the_venv_when_packages_are_missing(tmp_path: Path) -> None:
    """Run with a Python that has none of the project's packages (the README's later commands without
    `source .venv/bin/activate`): one line naming the missing packages and the fix, exit 2."""
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=120)
    env = {k: v for k, v in ENV.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    for script in ("train.py", "evaluate.py", "scripts/run_smoke.py", "scripts/export_hf.py"):
        proc = subprocess.run(
            [str(bare / "bin" / "python"), script, "--help"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        err = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(err) == 1, (script, proc.stderr)
        assert err[0].startswith("error: missing package(s): torch") and "Traceback" not in proc.stderr
