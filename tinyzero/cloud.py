"""Running train.py on Modal GPUs: ``modal.yaml`` settings, cost estimate, the remote job.

    modal run modal_submit.py --config configs/default.yaml

Why this shape: the training code is the same on a laptop and on Modal; only *where* it runs
changes. ``modal.yaml`` says which GPU, how long at most, and which Volume keeps ``runs/`` and the
base-model cache; it is validated here before anything is sent to Modal, with the same one-line
errors as the training config. Modal itself (the ``modal`` package, an optional extra) is imported
only by ``modal_submit.py`` and ``build_image``: nothing in this module talks to the service.
"""

from __future__ import annotations

import difflib
import io
import math
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from tinyzero.config import Config, _merge
from tinyzero.errors import UserError

# Modal's GPU names. USD per GPU-hour: ESTIMATES of Modal's on-demand list prices (billed per second),
# read May 2026 (T4, L4, L40S, A100-80GB, H100 cross-checked against a published comparison of that
# month; the others as last seen on Modal's pricing page). Check the current page before a big run;
# modal.yaml's ``price_per_hour`` overrides any of them.
GPU_PRICES_USD_PER_HOUR: dict[str, float] = {
    "T4": 0.59,
    "L4": 0.80,
    "A10G": 1.10,
    "L40S": 1.95,
    "A100-40GB": 2.10,
    "A100-80GB": 2.50,
    "H100": 3.95,
    "H200": 4.54,
    "B200": 6.25,
}
MAX_GPUS = 8  # per container on Modal
MAX_TIMEOUT_MINUTES = 24 * 60  # Modal's limit for one function call
REMOTE_ROOT = "/root/tinyzero"  # the project inside the image
VOLUME_MOUNT = "/data"  # runs/ and the base-model cache live here, in the Modal Volume
IMAGE_IGNORE = [".git", ".venv", "venv", "runs", ".cache", "**/__pycache__", "*.egg-info", ".pytest_cache"]


@dataclass
class ModalSettings:
    """modal.yaml: where and how long a run may go (every key is optional)."""

    app_name: str = "tinyzero"  # the Modal app's name (shown in Modal's dashboard)
    gpu: str = "L4"  # one of GPU_PRICES_USD_PER_HOUR, or "none" for a CPU-only container
    gpu_count: int = 1  # GPUs in the container; > 1 runs torchrun --nproc_per_node=gpu_count (DDP/FSDP)
    timeout_minutes: int = 60  # hard limit of the run; with the price it bounds the bill
    volume: str = "tinyzero-runs"  # Modal Volume holding runs/ and the base-model cache across runs
    python_version: str = "3.11"  # the image's Python
    price_per_hour: dict[str, float] = field(default_factory=dict)  # USD per GPU-hour overrides


def _did_you_mean(value: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(value.upper(), [c.upper() for c in choices], n=1, cutoff=0.5)
    return f" (did you mean '{choices[[c.upper() for c in choices].index(close[0])]}'?)" if close else ""


def load_modal_settings(path: str | Path) -> ModalSettings:
    """modal.yaml → validated settings; every mistake is a one-line UserError naming the fix."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"Modal settings '{path}' not found (copy modal.yaml from the repository root)")
    try:
        loaded = OmegaConf.load(p)
    except Exception as e:  # noqa: BLE001 - YAML errors come in several types
        raise UserError(f"cannot read '{path}': {str(e).splitlines()[0]}") from None
    if loaded is None:
        loaded = OmegaConf.create({})
    if not OmegaConf.is_dict(loaded):
        raise UserError(f"'{path}' must be a mapping of settings (e.g. 'gpu: L4')")
    try:
        s: ModalSettings = OmegaConf.to_object(_merge(OmegaConf.structured(ModalSettings), loaded, str(path)))
    except TypeError:  # OmegaConf's merge of a list or scalar into the one mapping, price_per_hour
        raise UserError(
            f"{path}: price_per_hour must be a mapping of GPU type to USD, e.g. {{H100: 3.95}}"
        ) from None
    except OmegaConfBaseException as e:  # an unresolvable ${...} interpolation surfaces only here
        raise UserError(f"bad value for '{e.full_key}' in {path}: {str(e).splitlines()[0]}") from None
    known = [*GPU_PRICES_USD_PER_HOUR, "none"]
    canonical = {g.upper(): g for g in known}
    if s.gpu.upper() not in canonical:
        raise UserError(
            f"{path}: gpu '{s.gpu}' is not a Modal GPU type{_did_you_mean(s.gpu, known)}; "
            f"choose one of {', '.join(known)}"
        )
    s.gpu = canonical[s.gpu.upper()]
    for key, value, low, high in (
        ("gpu_count", s.gpu_count, 1, MAX_GPUS),
        ("timeout_minutes", s.timeout_minutes, 1, MAX_TIMEOUT_MINUTES),
    ):
        if not low <= value <= high:
            raise UserError(f"{path}: {key}={value} is out of range: expected {low}..{high}")
    if s.gpu == "none" and s.gpu_count != 1:
        raise UserError(f"{path}: gpu_count={s.gpu_count} needs a GPU type (gpu: none runs on CPU)")
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", s.volume):
        raise UserError(f"{path}: volume '{s.volume}' must be 1-64 letters, digits, '.', '_' or '-'")
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", s.app_name):
        raise UserError(f"{path}: app_name '{s.app_name}' must be 1-64 letters, digits, '.', '_' or '-'")
    if not re.fullmatch(r"3\.(1[1-9])", s.python_version):
        raise UserError(
            f"{path}: python_version '{s.python_version}' must be 3.11 or newer, quoted "
            "(e.g. '3.12'; YAML reads an unquoted 3.10 as 3.1)"
        )
    for gpu, price in s.price_per_hour.items():
        if gpu not in GPU_PRICES_USD_PER_HOUR:
            raise UserError(
                f"{path}: price_per_hour has unknown GPU '{gpu}'"
                f"{_did_you_mean(gpu, list(GPU_PRICES_USD_PER_HOUR))}"
            )
        if not isinstance(price, int | float) or not 0 < price < math.inf:  # the schema lets a list through
            raise UserError(f"{path}: price_per_hour.{gpu}={price} must be a finite number > 0")
    return s


def gpu_spec(s: ModalSettings) -> str | None:
    """Modal's ``gpu=`` argument: "H100", "H100:2", or None for a CPU container."""
    if s.gpu == "none":
        return None
    return s.gpu if s.gpu_count == 1 else f"{s.gpu}:{s.gpu_count}"


def hourly_price(s: ModalSettings) -> float:
    """USD per hour for the container's GPUs (CPU and memory are billed too, but are small beside them)."""
    if s.gpu == "none":
        return 0.0
    return s.price_per_hour.get(s.gpu, GPU_PRICES_USD_PER_HOUR[s.gpu]) * s.gpu_count


def cost_estimate(s: ModalSettings, cfg: Config) -> str:
    """What the run is allowed to do and to cost, printed before anything is launched."""
    t = cfg.training
    lines = [
        f"Modal: {gpu_spec(s) or 'CPU only'}, timeout {s.timeout_minutes} min, volume '{s.volume}'",
        f"budget: {t.total_iterations} iterations x {cfg.astarpo.num_trajectories} trajectories "
        f"(training.total_iterations x astarpo.num_trajectories)",
    ]
    if cfg.algorithm.name == "astarpo":
        lines.append(
            f"  + A*PO stage 1: {cfg.task.num_train} prompts x {cfg.astarpo.num_value_samples} "
            f"reference samples (cached in the volume after the first run)"
        )
    rate = hourly_price(s)
    if rate:
        ceiling = rate * s.timeout_minutes / 60
        lines.append(
            f"cost: ~${rate:.2f}/hour ({s.gpu_count} x {s.gpu}, estimated list price); the timeout caps "
            f"this run at ~${ceiling:.2f}; billed per second, so a run that ends early costs less"
        )
    else:
        lines.append("cost: CPU container only (a few cents an hour)")
    return "\n".join(lines)


def remote_overrides(user_overrides: list[str], volume_root: str = VOLUME_MOUNT) -> list[str]:
    """The user's overrides, then where runs and caches live in the container (the Volume)."""
    return [
        *user_overrides,
        f"run.out_dir={volume_root}/runs",
        f"pretrain.cache_dir={volume_root}/cache/base_models",
        "logging.progress=false",
    ]


def build_image(s: ModalSettings, project_root: Path) -> Any:
    """Debian + the project's requirements.txt (pip picks torch's CUDA build on Linux) + the code."""
    import modal

    return (
        modal.Image.debian_slim(python_version=s.python_version)
        .pip_install_from_requirements(str(project_root / "requirements.txt"))
        .env({"PYTHONPATH": REMOTE_ROOT, "PYTHONUNBUFFERED": "1"})
        .add_local_dir(
            str(project_root), REMOTE_ROOT, ignore=IMAGE_IGNORE
        )  # last: code changes rebuild nothing
    )


def function_options(s: ModalSettings, image: Any, volume: Any) -> dict[str, Any]:
    """Keyword arguments of ``app.function`` for the training job."""
    return {
        "image": image,
        "gpu": gpu_spec(s),
        "timeout": s.timeout_minutes * 60,
        "volumes": {VOLUME_MOUNT: volume},
    }


def run_training_job(
    config_yaml: str,
    overrides: list[str],
    resume: bool,
    gpu_count: int,
    project_root: str = REMOTE_ROOT,
    volume_root: str = VOLUME_MOUNT,
) -> tuple[str, bytes]:
    """Inside the container: train, then return (run name, the run directory as a .tar.gz).

    (The roots are parameters so that tests run this very function on a local machine.)
    """
    from tinyzero.config import load_config

    # The run directory keeps the resolved config.yaml; this copy only feeds train.py.
    cfg_path = Path(tempfile.mkdtemp(prefix="tinyzero_")) / "config.yaml"
    cfg_path.write_text(config_yaml)
    args = remote_overrides(overrides, volume_root)
    cfg = load_config(cfg_path, args)
    launcher = [sys.executable]
    if gpu_count > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpu_count}"]
    cmd = [*launcher, "train.py", "--config", str(cfg_path), *args, *(["--resume"] if resume else [])]
    print("running:", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=project_root, check=True)
    run_dir = Path(cfg.run.out_dir) / cfg.run.name
    return cfg.run.name, pack_dir(run_dir)


def pack_dir(path: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(path, arcname=path.name)
    return buf.getvalue()


def unpack_run(data: bytes, out_dir: Path) -> Path:
    """Extract a packed run directory under ``out_dir`` (tar's 'data' filter: no paths outside it)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        names = tar.getnames()
        tar.extractall(out_dir, filter="data")
    return out_dir / names[0].split("/")[0]
