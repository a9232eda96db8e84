"""modal_submit.py offline: the Modal app is built from modal.yaml's settings (the modal package is
imported, the service is never called), bad modal.yaml files are one-line errors with exit code 2,
the cost estimate states its assumptions, and the remote job itself runs here on the smoke config.

Run: pytest tests/test_modal.py -q        (~20 s)
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinyzero import cloud
from tinyzero.config import load_config
from tinyzero.errors import UserError

modal = pytest.importorskip("modal")
ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "modal.yaml"
    path.write_text(text)
    return path


def test_repository_modal_yaml_is_valid() -> None:
    s = cloud.load_modal_settings(ROOT / "modal.yaml")
    assert s.gpu in cloud.GPU_PRICES_USD_PER_HOUR and s.timeout_minutes > 0


def test_app_is_built_with_the_settings_of_modal_yaml(tmp_path: Path, monkeypatch) -> None:
    path = write(
        tmp_path,
        "app_name: tz-test\ngpu: h100\ngpu_count: 2\ntimeout_minutes: 30\nvolume: tz-vol\n",
    )
    monkeypatch.setenv("TINYZERO_MODAL_YAML", str(path))
    monkeypatch.syspath_prepend(str(ROOT))
    sys.modules.pop("modal_submit", None)
    mod = importlib.import_module("modal_submit")
    try:
        assert mod.SETTINGS.gpu == "H100"  # normalised to Modal's spelling
        assert isinstance(mod.app, modal.App) and mod.app.name == "tz-test"
        assert isinstance(mod.train_remote, modal.Function)
        spec = mod.train_remote._spec_  # the function's resources as Modal will request them
        assert spec.gpus == "H100:2"
        assert list(spec.volumes) == [cloud.VOLUME_MOUNT]
        assert isinstance(mod.volume, modal.Volume)
        assert repr(spec.volumes[cloud.VOLUME_MOUNT]) == "modal.Volume.from_name('tz-vol')"
        assert "Image" in repr(spec.image)
        opts = cloud.function_options(mod.SETTINGS, spec.image, mod.volume)
        assert opts["timeout"] == 30 * 60 and opts["gpu"] == "H100:2"
        assert isinstance(mod.main, modal.app.LocalEntrypoint)  # `modal run` finds the entry point
    finally:
        sys.modules.pop("modal_submit", None)


@pytest.mark.parametrize(
    "text, message",
    [
        ("gpus: H100\n", "unknown config key 'gpus'.*did you mean 'gpu'"),
        ("gpu: H1000\n", "gpu 'H1000' is not a Modal GPU type.*did you mean 'H100'"),
        ("timeout_minutes: 0\n", "timeout_minutes=0 is out of range"),
        ("timeout_minutes: -5\n", "timeout_minutes=-5 is out of range"),
        ("timeout_minutes: soon\n", "bad value for 'timeout_minutes'"),
        ("gpu_count: 9\n", "gpu_count=9 is out of range"),
        ("volume: 'my volume'\n", "volume 'my volume' must be"),
        ("price_per_hour: {H10: 3.0}\n", "unknown GPU 'H10'.*did you mean 'H100'"),
        ("- gpu\n", "must be a mapping"),
    ],
)
def test_bad_modal_yaml_is_a_one_line_error(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UserError, match=message) as err:
        cloud.load_modal_settings(path)
    assert "\n" not in str(err.value)


def test_bad_modal_yaml_stops_the_script_with_exit_code_2(tmp_path: Path) -> None:
    path = write(tmp_path, "gpu: A100-80\n")
    env = {**os.environ, "TINYZERO_MODAL_YAML": str(path), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "modal_submit.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")
    assert "did you mean 'A100-80GB'" in proc.stderr and "Traceback" not in proc.stderr


def test_cost_estimate_states_budget_and_ceiling(tmp_path: Path) -> None:
    s = cloud.load_modal_settings(write(tmp_path, "gpu: H100\ngpu_count: 2\ntimeout_minutes: 30\n"))
    cfg = load_config(ROOT / "configs" / "default.yaml", ["training.total_iterations=40"])
    text = cloud.cost_estimate(s, cfg)
    assert "40 iterations x 128 trajectories" in text
    rate = 2 * cloud.GPU_PRICES_USD_PER_HOUR["H100"]
    assert f"${rate:.2f}/hour" in text and f"~${rate / 2:.2f}" in text  # 30 minutes = half the hourly rate
    cheap = cloud.load_modal_settings(write(tmp_path, "gpu: H100\nprice_per_hour: {H100: 1.0}\n"))
    assert "~$1.00/hour" in cloud.cost_estimate(cheap, cfg)


def test_offline_check_prints_the_estimate() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TINYZERO_MODAL_YAML", None)
    cmd = [sys.executable, "modal_submit.py", "--config", "configs/smoke.yaml"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "2 iterations x 8 trajectories" in proc.stdout and "timeout caps" in proc.stdout
    bad = subprocess.run(
        [*cmd, "--overrides", "training.total_iteration=3"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "did you mean 'training.total_iterations'" in bad.stderr


def test_remote_job_trains_and_packs_the_run(tmp_path: Path) -> None:
    """The function body Modal runs, executed here: train.py on the smoke config, run dir round-trips."""
    volume = tmp_path / "volume"
    config = (ROOT / "configs" / "smoke.yaml").read_text()
    name, packed = cloud.run_training_job(
        config, ["run.name=remote", "run.device=cpu"], False, 1, str(ROOT), str(volume)
    )
    assert name == "remote"
    assert (volume / "runs" / "remote" / "checkpoints" / "latest").is_file()  # persisted in the "volume"
    assert any((volume / "cache" / "base_models").iterdir())  # the base model is cached there too
    local = cloud.unpack_run(packed, tmp_path / "local_runs")
    assert local == tmp_path / "local_runs" / "remote"
    summary = json.loads((local / "summary.json").read_text())
    assert summary["iterations"] == 2
    assert (local / "checkpoints" / "iter_000002" / "model.safetensors").is_file()
