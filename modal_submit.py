"""Train on a Modal GPU with the same configs as on a laptop (modal_instructions.md walks through it).

    modal run modal_submit.py --config configs/default.yaml
    modal run modal_submit.py --config configs/frozenlake.yaml --overrides "training.total_iterations=50"
    modal run modal_submit.py --config configs/default.yaml --resume      # continue runs/<name> in the volume
    python modal_submit.py --config configs/default.yaml                  # offline: validate + cost estimate

GPU type and count, timeout, the Volume and an optional wandb secret come from modal.yaml (validated;
TINYZERO_MODAL_YAML points at another file). A GPU job trains with run.device=cuda: it stops with an
error rather than train on CPU. The run directory is written to the Volume and copied back into the
local ``run.out_dir`` (runs/ by default) when training ends.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from tinyzero import cloud
from tinyzero.config import load_config
from tinyzero.errors import UserError, run_cli

HERE = Path(__file__).resolve().parent
# Inside the Modal container this file is mounted on its own at /root, beside the project's folder:
# the image says where the project is (TINYZERO_ROOT, cloud.image_env).
ROOT = cloud.project_root(HERE)
SETTINGS_PATH = os.environ.get("TINYZERO_MODAL_YAML", str(ROOT / "modal.yaml"))  # as typed: errors quote it


def _settings() -> cloud.ModalSettings:
    try:
        return cloud.load_modal_settings(SETTINGS_PATH)
    except UserError as e:  # `modal run` imports this file: still one line and exit code 2
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


SETTINGS = _settings()

try:
    import modal
except ImportError:  # the offline check below works without the modal extra
    modal = None

if modal is not None:
    app = modal.App(SETTINGS.app_name)
    volume = modal.Volume.from_name(SETTINGS.volume, create_if_missing=True)  # lazy: no call until a run

    image = cloud.build_image(SETTINGS, ROOT, SETTINGS_PATH)

    @app.function(**cloud.function_options(SETTINGS, image, volume))
    def train_remote(
        config_yaml: str, overrides: list[str], resume: bool, gpus: int, device: str
    ) -> tuple[str, bytes]:
        """Runs in the container: train.py (torchrun when gpus > 1), then persist the Volume."""
        try:
            return job(config_yaml, overrides, resume, gpus, device)
        finally:
            volume.commit()  # runs/ and the base-model cache survive for the next run

    @app.local_entrypoint()
    def main(config: str = "configs/default.yaml", overrides: str = "", resume: bool = False) -> None:
        """Validate locally, print the cost estimate, train remotely, fetch the run directory back."""
        cfg, extra = _local_config(config, overrides)
        print(cloud.cost_estimate(SETTINGS, cfg), flush=True)
        name, packed = train_remote.remote(
            Path(config).read_text(), extra, resume, SETTINGS.gpu_count, cloud.job_device(SETTINGS)
        )
        local = cloud.unpack_run(packed, Path(cfg.run.out_dir))
        print(
            f"fetched run '{name}' into {local} (also kept in Modal volume '{SETTINGS.volume}' under runs/)"
        )


def job(
    config_yaml: str,
    overrides: list[str],
    resume: bool,
    gpus: int,
    device: str,
    volume_root: str = cloud.VOLUME_MOUNT,
) -> tuple[str, bytes]:
    """The remote job's body (train_remote adds the Volume commit): train in ROOT as resolved here,
    so a test can run it, offline, in a folder laid out like the container."""
    return cloud.run_training_job(config_yaml, overrides, resume, gpus, device, str(ROOT), volume_root)


def _local_config(config: str, overrides: str):
    """The config exactly as it will run remotely, checked here so mistakes cost no GPU time."""
    extra = shlex.split(overrides)
    cfg = load_config(config, extra)
    load_config(config, cloud.remote_overrides(extra, device=cloud.job_device(SETTINGS)))  # remote, too
    cloud.check_wandb(SETTINGS, cfg)
    return cfg, extra


def _offline_check() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--overrides", default="", help='e.g. "training.total_iterations=50 run.name=x"')
    args = parser.parse_args()
    cfg, _ = _local_config(args.config, args.overrides)
    print(cloud.cost_estimate(SETTINGS, cfg))
    print("(offline check only: launch with `modal run modal_submit.py --config ...`)")
    return 0


if __name__ == "__main__":
    run_cli(_offline_check)
