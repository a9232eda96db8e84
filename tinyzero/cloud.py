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
import os
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

# Modal's GPU names, as its GPU guide lists them (read 2026-12): T4, L4, A10, L40S, A100-40GB, A100-80GB,
# H100, H200, B200 (the guide also has RTX-PRO-6000 and the variants H100!/B200+, not offered here: no
# price was checked for them). USD per GPU-hour: ESTIMATES of Modal's on-demand list prices (billed per
# second), read May 2026 (T4, L4, L40S, A100-80GB, H100 cross-checked against a published comparison of
# that month; the others as last seen on Modal's pricing page). Check the current page before a big run;
# modal.yaml's ``price_per_hour`` overrides any of them.
GPU_PRICES_USD_PER_HOUR: dict[str, float] = {
    "T4": 0.59,
    "L4": 0.80,
    "A10": 1.10,
    "L40S": 1.95,
    "A100-40GB": 2.10,
    "A100-80GB": 2.50,
    "H100": 3.95,
    "H200": 4.54,
    "B200": 6.25,
}
# Older names still written in configs and Modal's older docs: read as the current one, which is what
# is sent to Modal (the guide no longer lists "A10G", so it is never sent).
GPU_ALIASES: dict[str, str] = {"A10G": "A10", "A100": "A100-40GB"}
MAX_GPUS = 8  # per container, Modal's GPU guide: B200, H200, H100, A100, L40S, L4, T4 up to 8 ...
MAX_GPUS_BY_TYPE: dict[str, int] = {"A10": 4}  # ... A10 up to 4
MAX_TIMEOUT_MINUTES = 24 * 60  # Modal's limit for one function call
REMOTE_ROOT = "/root/tinyzero"  # the project inside the image
# modal.yaml as read on the laptop, copied into the image so the container builds the same app.
REMOTE_SETTINGS = "/root/tinyzero_modal.yaml"
VOLUME_MOUNT = "/data"  # runs/ and the base-model cache live here, in the Modal Volume
# The image's torch: one pinned release, so a run does not change with whatever pip resolves that day.
# From pip's default index on Linux x86-64 this is PyTorch's default CUDA build, which bundles its own
# CUDA runtime (the job prints torch.version.cuda at start) and needs only the host's NVIDIA driver.
TORCH_VERSION = "2.13.0"
WANDB_REQUIREMENT = "wandb>=0.17"  # the image installs it only when modal.yaml names a wandb_secret
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
    wandb_secret: str = ""  # a Modal secret holding WANDB_API_KEY, for logging.wandb=true; "" = none


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
    s.gpu = _canonical_gpu(s.gpu, path)
    for key, value, low, high in (
        ("gpu_count", s.gpu_count, 1, MAX_GPUS_BY_TYPE.get(s.gpu, MAX_GPUS)),
        ("timeout_minutes", s.timeout_minutes, 1, MAX_TIMEOUT_MINUTES),
    ):
        if not low <= value <= high:
            limit = f" (Modal's limit per container for {s.gpu})" if key == "gpu_count" else ""
            raise UserError(f"{path}: {key}={value} is out of range: expected {low}..{high}{limit}")
    if s.gpu == "none" and s.gpu_count != 1:
        raise UserError(f"{path}: gpu_count={s.gpu_count} needs a GPU type (gpu: none runs on CPU)")
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", s.volume):
        raise UserError(f"{path}: volume '{s.volume}' must be 1-64 letters, digits, '.', '_' or '-'")
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", s.app_name):
        raise UserError(f"{path}: app_name '{s.app_name}' must be 1-64 letters, digits, '.', '_' or '-'")
    if s.wandb_secret and not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", s.wandb_secret):
        raise UserError(
            f"{path}: wandb_secret '{s.wandb_secret}' must be a Modal secret's name "
            "(1-64 letters, digits, '.', '_' or '-'), or \"\" for none"
        )
    if not re.fullmatch(r"3\.(1[1-9])", s.python_version):
        raise UserError(
            f"{path}: python_version '{s.python_version}' must be 3.11 or newer, quoted "
            "(e.g. '3.12'; YAML reads an unquoted 3.10 as 3.1)"
        )
    prices = {}
    for gpu, price in s.price_per_hour.items():
        name = GPU_ALIASES.get(gpu.upper(), gpu)
        if name not in GPU_PRICES_USD_PER_HOUR:
            raise UserError(
                f"{path}: price_per_hour has unknown GPU '{gpu}'"
                f"{_did_you_mean(gpu, list(GPU_PRICES_USD_PER_HOUR))}"
            )
        if not isinstance(price, int | float) or not 0 < price < math.inf:  # the schema lets a list through
            raise UserError(f"{path}: price_per_hour.{gpu}={price} must be a finite number > 0")
        prices[name] = price
    s.price_per_hour = prices
    return s


def _canonical_gpu(gpu: str, path: str | Path) -> str:
    """Modal's current spelling of a GPU type (case-insensitive; old names such as A10G accepted)."""
    known = [*GPU_PRICES_USD_PER_HOUR, "none"]
    canonical = {g.upper(): g for g in known} | GPU_ALIASES
    if gpu.upper() not in canonical:
        raise UserError(
            f"{path}: gpu '{gpu}' is not a Modal GPU type{_did_you_mean(gpu, known)}; "
            f"choose one of {', '.join(known)}"
        )
    return canonical[gpu.upper()]


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


def job_device(s: ModalSettings) -> str:
    """``run.device`` of the remote job: a paid GPU must be used or the job must stop, never fall back."""
    return "cpu" if s.gpu == "none" else "cuda"


def remote_overrides(
    user_overrides: list[str], volume_root: str = VOLUME_MOUNT, device: str | None = None
) -> list[str]:
    """The user's overrides, then where runs and caches live in the container (the Volume), then the
    device modal.yaml paid for (last, so ``run.device=auto`` can never quietly train a GPU job on CPU)."""
    return [
        *user_overrides,
        f"run.out_dir={volume_root}/runs",
        f"pretrain.cache_dir={volume_root}/cache/base_models",
        "logging.progress=false",
        *([f"run.device={device}"] if device else []),
    ]


def image_env(project_root: str = REMOTE_ROOT, settings_path: str = REMOTE_SETTINGS) -> dict[str, str]:
    """The container's environment: where the project and the copied modal.yaml are.

    Why an explicit TINYZERO_ROOT: Modal mounts modal_submit.py alone at /root, next to the project's
    folder /root/tinyzero, so the entry file's own folder is not the project root there.
    """
    return {
        "TINYZERO_ROOT": project_root,
        "TINYZERO_MODAL_YAML": settings_path,
        "PYTHONPATH": project_root,
        "PYTHONUNBUFFERED": "1",
    }


def project_root(entry_dir: Path) -> Path:
    """The folder holding modal.yaml, train.py and tinyzero/: TINYZERO_ROOT in the image, else the
    folder of modal_submit.py (a checkout on the user's machine)."""
    root = os.environ.get("TINYZERO_ROOT")
    return Path(root) if root else entry_dir


def build_image(s: ModalSettings, project_root: Path, settings_path: Path) -> Any:
    """Debian + torch (pinned, TORCH_VERSION) + requirements.txt + the code and modal.yaml.

    Needs modal >= 1.0 (pyproject's ``modal`` extra): ``add_local_dir``/``add_local_file`` mount the
    files at container start, and no installed package is automounted over the project.
    """
    import modal

    image = (
        modal.Image.debian_slim(python_version=s.python_version)
        .pip_install(f"torch=={TORCH_VERSION}")
        .pip_install_from_requirements(str(project_root / "requirements.txt"))
    )
    if s.wandb_secret:
        image = image.pip_install(WANDB_REQUIREMENT)
    return (
        image.env(image_env())
        # last: mounted at start, so code changes rebuild nothing
        .add_local_dir(str(project_root), REMOTE_ROOT, ignore=IMAGE_IGNORE)
        .add_local_file(str(settings_path), REMOTE_SETTINGS)
    )


def function_options(s: ModalSettings, image: Any, volume: Any) -> dict[str, Any]:
    """Keyword arguments of ``app.function`` for the training job."""
    options: dict[str, Any] = {
        "image": image,
        "gpu": gpu_spec(s),
        "timeout": s.timeout_minutes * 60,
        "volumes": {VOLUME_MOUNT: volume},
    }
    if s.wandb_secret:  # its WANDB_API_KEY becomes an environment variable of the container
        import modal

        options["secrets"] = [modal.Secret.from_name(s.wandb_secret, required_keys=["WANDB_API_KEY"])]
    return options


def check_wandb(s: ModalSettings, cfg: Config) -> None:
    """logging.wandb=true needs wandb in the image and a key in the container: both come with the
    secret, so refuse before launch rather than after a paid pre-training."""
    if cfg.logging.wandb and not s.wandb_secret:
        raise UserError(
            "logging.wandb=true on Modal needs modal.yaml's wandb_secret: the name of a Modal secret "
            "holding WANDB_API_KEY (create it with `modal secret create wandb WANDB_API_KEY=...`)"
        )


def torch_report() -> str:
    """One line on the torch build and the GPUs it sees, printed by the job before training."""
    import torch

    cuda = torch.version.cuda or "none: a CPU-only build"
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    gpus = f"{len(names)} CUDA device(s): {', '.join(names)}" if names else "no CUDA device visible"
    return f"torch {torch.__version__} (CUDA {cuda}); {gpus}"


def run_training_job(
    config_yaml: str,
    overrides: list[str],
    resume: bool,
    gpu_count: int,
    device: str = "cuda",
    project_root: str = REMOTE_ROOT,
    volume_root: str = VOLUME_MOUNT,
) -> tuple[str, bytes]:
    """Inside the container: train, then return (run name, the run directory as a .tar.gz).

    ``device`` is forced on train.py (``job_device``): with "cuda", a container whose torch cannot
    reach the GPU stops with train.py's one-line error instead of training on CPU. (The roots are
    parameters so that tests run this very function on a local machine.)
    """
    from tinyzero.config import load_config

    # The run directory keeps the resolved config.yaml; this copy only feeds train.py.
    cfg_path = Path(tempfile.mkdtemp(prefix="tinyzero_")) / "config.yaml"
    cfg_path.write_text(config_yaml)
    args = remote_overrides(overrides, volume_root, device)
    cfg = load_config(cfg_path, args)
    print(torch_report(), flush=True)
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


def unpack_run(data: bytes, out_dir: Path, data_filter: bool = hasattr(tarfile, "data_filter")) -> Path:
    """Extract a packed run directory under ``out_dir``; nothing may land outside it.

    tar's 'data' filter does that check on Python >= 3.11.4; on older 3.11 releases (no filter
    argument) ``_check_members`` does it by hand, so a paid run's results are never lost to a
    TypeError at the very end.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = tar.getmembers()
        if not members:
            raise UserError("the packed run directory is empty: nothing to fetch")
        if data_filter:
            try:
                tar.extractall(out_dir, filter="data")
            except tarfile.FilterError as e:
                raise UserError(f"refusing to unpack the run: {e}") from None
        else:
            _check_members(members, out_dir)
            tar.extractall(out_dir, members=members)  # noqa: S202 - every member checked above
    return out_dir / members[0].name.split("/")[0]


def _check_members(members: list[tarfile.TarInfo], out_dir: Path) -> None:
    """What the 'data' filter refuses, for Pythons without it: anything but plain files and folders
    (links, devices), absolute names, and names that resolve outside ``out_dir``."""
    root = out_dir.resolve()
    for m in members:
        target = (root / m.name).resolve()
        if not (m.isfile() or m.isdir()) or Path(m.name).is_absolute() or not target.is_relative_to(root):
            raise UserError(f"refusing to unpack the run: member '{m.name}' is unsafe (link or outside path)")
