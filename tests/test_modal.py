"""modal_submit.py offline: the Modal app is built from modal.yaml's settings (the modal package is
imported, the service is never called), bad modal.yaml files are one-line errors with exit code 2,
the cost estimate states its assumptions, the file imports in a folder laid out like Modal's
container and runs the remote job's body there on the smoke config, a GPU job on a machine without
CUDA stops instead of training on CPU, and the fetched run unpacks safely on every Python 3.11+.

Run: pytest tests/test_modal.py -q        (~60 s)
"""

from __future__ import annotations

import importlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
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
        assert list(spec.secrets) == []  # no wandb_secret: no secret is asked for
    finally:
        sys.modules.pop("modal_submit", None)


def test_wandb_secret_is_passed_to_the_job(tmp_path: Path, monkeypatch) -> None:
    """A named secret reaches the function (its WANDB_API_KEY becomes the container's environment)."""
    monkeypatch.setenv("TINYZERO_MODAL_YAML", str(write(tmp_path, "wandb_secret: my-wandb\n")))
    monkeypatch.syspath_prepend(str(ROOT))
    sys.modules.pop("modal_submit", None)
    mod = importlib.import_module("modal_submit")
    try:
        secrets = list(mod.train_remote._spec_.secrets)
        assert [repr(x) for x in secrets] == ["modal.Secret.from_name('my-wandb')"]
        cfg = load_config(ROOT / "configs" / "smoke.yaml", ["logging.wandb=true"])
        cloud.check_wandb(mod.SETTINGS, cfg)  # a secret is named: accepted
        with pytest.raises(UserError, match="needs modal.yaml's wandb_secret"):
            cloud.check_wandb(cloud.ModalSettings(), cfg)
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
        ("gpu: A10\ngpu_count: 5\n", r"gpu_count=5 is out of range: expected 1\.\.4 .*for A10"),
        ("gpu: H200\ngpu_count: 9\n", r"expected 1\.\.8"),
        ("wandb_secret: 'my key'\n", "wandb_secret 'my key' must be"),
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


def test_gpu_names_follow_modals_guide(tmp_path: Path) -> None:
    """Modal's current names are sent; the older A10G/A100 are read as A10/A100-40GB; up to 8 GPUs."""
    for text, gpu in (("gpu: a10g\n", "A10"), ("gpu: A100\n", "A100-40GB"), ("gpu: l40s\n", "L40S")):
        assert cloud.load_modal_settings(write(tmp_path, text)).gpu == gpu
    s = cloud.load_modal_settings(write(tmp_path, "gpu: B200\ngpu_count: 8\nprice_per_hour: {A10G: 1.0}\n"))
    assert cloud.gpu_spec(s) == "B200:8" and s.price_per_hour == {"A10": 1.0}
    four = cloud.load_modal_settings(write(tmp_path, "gpu: A10G\ngpu_count: 4\n"))
    assert cloud.gpu_spec(four) == "A10:4"


def test_gpu_job_trains_on_cuda_or_not_at_all(tmp_path: Path, capfd) -> None:
    """A GPU job forces run.device=cuda (last, over the user's overrides); on a machine without CUDA
    it stops with train.py's one-line error instead of training on the CPU."""
    gpu = cloud.ModalSettings(gpu="L4")
    assert cloud.job_device(gpu) == "cuda" and cloud.job_device(cloud.ModalSettings(gpu="none")) == "cpu"
    args = cloud.remote_overrides(["run.device=auto"], "/v", cloud.job_device(gpu))
    assert load_config(ROOT / "configs" / "smoke.yaml", args).run.device == "cuda"
    if _cuda_available():
        pytest.skip("this machine has CUDA: the job would train")
    config = (ROOT / "configs" / "smoke.yaml").read_text()
    volume = tmp_path / "volume"
    with pytest.raises(subprocess.CalledProcessError):
        cloud.run_training_job(
            config, ["run.name=gpu", "run.device=auto"], False, 1, "cuda", str(ROOT), str(volume)
        )
    err = capfd.readouterr().err  # train.py's own stderr
    assert "error: run.device=cuda but no CUDA device is available" in err and "Traceback" not in err
    assert not (volume / "runs" / "gpu" / "checkpoints").exists()  # nothing trained


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


CONTAINER_JOB = """
import json, sys
from pathlib import Path
import modal_submit as m

print(json.dumps({"root": str(m.ROOT), "gpu": m.SETTINGS.gpu, "app": m.app.name}), flush=True)
name, packed = m.job(sys.argv[1], ["run.name=remote"], False, 1, "cpu", sys.argv[2])
Path(sys.argv[3]).write_bytes(packed)
"""


def test_container_layout_imports_and_runs_the_job(tmp_path: Path) -> None:
    """modal_submit.py as Modal runs it: the entry file alone at the container's /root, the project
    mounted at /root/tinyzero beside it, the environment of cloud.image_env; no network. The file
    must find the project and the copied modal.yaml, then the job's body trains the smoke config."""
    root = tmp_path / "root"  # the container's /root
    root.mkdir()
    shutil.copy(ROOT / "modal_submit.py", root / "modal_submit.py")
    project = root / "tinyzero"  # cloud.REMOTE_ROOT
    project.symlink_to(ROOT, target_is_directory=True)
    settings = root / "tinyzero_modal.yaml"  # cloud.REMOTE_SETTINGS: the laptop's modal.yaml
    settings.write_text("app_name: tz-container\ngpu: none\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINYZERO_")}
    env |= cloud.image_env(str(project), str(settings))
    volume, packed = tmp_path / "volume", tmp_path / "run.tar.gz"
    config = (ROOT / "configs" / "smoke.yaml").read_text()
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CONTAINER_JOB), config, str(volume), str(packed)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = json.loads(proc.stdout.splitlines()[0])
    assert seen == {"root": str(project), "gpu": "none", "app": "tz-container"}
    assert "running:" in proc.stdout and "device: cpu" in proc.stdout  # train.py said where it trains
    assert (volume / "runs" / "remote" / "checkpoints" / "latest").is_file()  # persisted in the "volume"
    assert any((volume / "cache" / "base_models").iterdir())  # the base model is cached there too
    local = cloud.unpack_run(packed.read_bytes(), tmp_path / "local_runs")
    assert local == tmp_path / "local_runs" / "remote"
    summary = json.loads((local / "summary.json").read_text())
    assert summary["iterations"] == 2
    assert summary["run/device"] == "cpu" and summary["run/world_size"] == 1
    assert summary["run/dtype"] == "float32" and summary["run/device_name"].startswith("CPU")
    assert (local / "checkpoints" / "iter_000002" / "model.safetensors").is_file()


def _tar(entries: list[tarfile.TarInfo], payload: bytes = b"x") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info in entries:
            info.size = len(payload) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(payload) if info.isfile() else None)
    return buf.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize("data_filter", [True, False], ids=["tar-data-filter", "python-3.11.0-3.11.3"])
def test_fetched_run_unpacks_safely_with_and_without_tars_filter(tmp_path: Path, data_filter: bool) -> None:
    """The results fetch works where tarfile has no ``filter`` (Python < 3.11.4) and refuses, in one
    line, what would land outside the output folder, on either path."""
    if data_filter and not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python's tarfile has no data filter")
    run = tmp_path / "src" / "myrun"
    (run / "checkpoints").mkdir(parents=True)
    (run / "summary.json").write_text("{}")
    out = tmp_path / f"out_{data_filter}"
    local = cloud.unpack_run(cloud.pack_dir(run), out, data_filter=data_filter)
    assert local == out / "myrun" and (local / "summary.json").read_text() == "{}"
    bad = {
        "parent": [_member("myrun/../../escaped.txt")],
        "symlink": [_member("myrun/link", tarfile.SYMTYPE, "/etc/passwd")],
    }
    for what, entries in bad.items():
        with pytest.raises(UserError, match="refusing to unpack") as err:
            cloud.unpack_run(_tar(entries), tmp_path / f"bad_{what}_{data_filter}", data_filter=data_filter)
        assert "\n" not in str(err.value)
    assert not (tmp_path / "escaped.txt").exists()
    # An absolute name: refused by hand, re-rooted inside the folder by tar's filter; never written there.
    absolute = tmp_path / "abs.txt"
    try:
        cloud.unpack_run(_tar([_member(str(absolute))]), tmp_path / "bad_abs", data_filter=data_filter)
    except UserError as e:
        assert "refusing to unpack" in str(e)
    assert not absolute.exists()
