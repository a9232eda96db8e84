"""Fingerprints of whole training runs: the hash of the final weights and every logged metric.

Why: a refactor of the update path (who computes log-probs, who loops over update epochs, where
stage 1 lives) must not change a single bit of what the algorithms compute. ``tests/data/behaviour.json``
holds the fingerprints of short smoke-config runs of every algorithm (and of the default job's
recipe), recorded with the code before such a change; tests/test_behaviour_unchanged.py reruns them.

Floating-point results depend on the CPU's kernels, so the recorded values hold for the machine
kind they were made on (``machine()``); elsewhere the test says so and skips.

Record again (only when a change is MEANT to alter what the algorithms compute, and say so in the commit):

    OMP_NUM_THREADS=1 python tests/behaviour.py --write
A fingerprint of any config, e.g. the real default job for 3 iterations (before/after by hand):

    OMP_NUM_THREADS=1 python tests/behaviour.py --config configs/default.yaml training.total_iterations=3
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from handmade import make_trainer  # noqa: E402  (tests/ is on the path: pytest's, or this script's own)

from tinyzero.config import load_config  # noqa: E402
from tinyzero.models.io import weights_sha256  # noqa: E402
from tinyzero.pretrain import ensure_base_model  # noqa: E402
from tinyzero.runs import read_metrics  # noqa: E402

GOLDEN = ROOT / "tests" / "data" / "behaviour.json"
SMOKE = ROOT / "configs" / "smoke.yaml"
# configs/default.yaml's recipe (and configs/frozenlake.yaml's, with ragen): anchor, Huber, trust region, as
# recorded: two update epochs (default.yaml now takes four; a fingerprint is kept, not re-derived).
# (default.yaml also decays its learning rate; the schedule is tested on its own in tests/test_trainer.py.)
RECIPE = (
    "astarpo.kl_coef=0.2",
    "astarpo.huber_delta=1.0",
    "training.entropy_coef=0.01",
    "training.update_epochs=2",
    "training.max_kl_rise=0.05",
)
# Short runs of the smoke model: 3 iterations, evaluation at the end, one checkpoint.
CASES: dict[str, tuple[str, ...]] = {
    "default_recipe": ("algorithm.name=astarpo", *RECIPE),
    "astarpo": ("algorithm.name=astarpo", "astarpo.filter_all_failed=true"),
    "ragen": ("algorithm.name=ragen", *RECIPE),
    "ragen_reference": (
        "algorithm.name=ragen",
        "astarpo.v_star_source=reference",
        "algorithm.starpo_s_keep=0.5",
    ),
    "grpo": ("algorithm.name=grpo", "grpo.kl_coef=0.05", "training.max_kl_rise=0.05"),
    "ppo": ("algorithm.name=ppo",),
}
COMMON = ("training.total_iterations=3", "training.checkpoint_every=3")
# Logged figures that measure the machine, not the computation.
CLOCK_KEYS = ("seconds", "elapsed_s", "tokens_per_s")


def machine() -> dict[str, str]:
    """What floating-point results depend on besides the code: the torch build and its CPU kernels."""
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def fingerprint(config: Path, overrides: list[str], cache: Path, out_dir: Path) -> dict:
    """Train the config to the end; the final weights' hash and the metrics without clock readings."""
    trainer = make_trainer(cache, out_dir, *overrides, config=config)
    trainer.train()
    records = [
        {k: v for k, v in r.items() if k not in CLOCK_KEYS and not k.startswith("memory/")}
        for r in read_metrics(trainer.run_dir)
    ]
    return {"weights_sha256": weights_sha256([trainer.policy, trainer.critic]), "metrics": records}


def smoke_case(name: str, cache: Path, out_dir: Path) -> dict:
    """The fingerprint of CASES[name], with a cache of its own: a copy of ``cache``'s base models and no
    V* table, so stage 1 always runs (and counts its tokens) whichever cases ran before."""
    own = out_dir / name / "cache" / "base_models"
    shutil.copytree(cache, own)
    return fingerprint(SMOKE, [f"run.name={name}", *COMMON, *CASES[name]], own, out_dir)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help=f"record every case into {GOLDEN.relative_to(ROOT)}")
    ap.add_argument("--config", type=Path, help="fingerprint this config instead (overrides follow)")
    ap.add_argument("overrides", nargs="*", help="key=value overrides for --config")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        if args.config is not None:
            out = fingerprint(args.config, args.overrides, Path(".cache/base_models"), Path(tmp) / "runs")
            print(json.dumps({"weights_sha256": out["weights_sha256"], "last": out["metrics"][-1]}, indent=1))
            return 0
        if args.overrides:
            ap.error("overrides need --config")
        cache = Path(tmp) / "cache" / "base_models"
        cfg = load_config(SMOKE, [f"pretrain.cache_dir={cache}", "run.device=cpu", "run.threads=1"])
        ensure_base_model(cfg, "cpu", progress=False)  # as tests/conftest.py's cache_dir fixture
        cases = {name: smoke_case(name, cache, Path(tmp) / "runs") for name in CASES}
    for name, case in cases.items():
        print(f"{name:16s} {case['weights_sha256'][:16]}  last loss {case['metrics'][-1]['loss']:.6f}")
    if args.write:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps({"machine": machine(), "cases": cases}, indent=1) + "\n")
        print(f"wrote {GOLDEN.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
