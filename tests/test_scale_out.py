"""Scale-out paths that a CPU machine can check: a checkpoint written on a GPU resumes on CPU, the
process group is left on the way out, and a run says where it trains.

The GPU halves of these paths (NCCL, bf16 on a GPU, a resume from a real CUDA checkpoint) are for
scripts/gpu_check.sh on a GPU machine (docs/scaling.md).

Run: pytest tests/test_scale_out.py -q        (~30 s)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from tinyzero import distributed
from tinyzero.checkpoint import write_manifest
from tinyzero.config import load_config
from tinyzero.trainer import TinyZeroTrainer

ROOT = Path(__file__).resolve().parents[1]

# What torch.Generator(device="cuda").get_state() holds: the seed and the Philox offset, 8 bytes each
# (a CPU generator's state is 5056 bytes). Written by hand: this machine has no CUDA to make one.
CUDA_RNG_STATE = list(range(16))


def smoke(tmp_path: Path, cache_dir: Path, *extra: str):
    return load_config(
        ROOT / "configs" / "smoke.yaml",
        [
            f"run.out_dir={tmp_path / 'runs'}",
            f"pretrain.cache_dir={cache_dir}",
            "run.device=cpu",
            "run.name=xdev",
            "logging.tensorboard=false",
            *extra,
        ],
    )


def test_checkpoint_written_on_cuda_resumes_on_cpu(tmp_path: Path, cache_dir: Path, capsys) -> None:
    """The sampling generator's state is device-specific (16 bytes on CUDA, 5056 on CPU): loading a
    CUDA one into a CPU generator raised; now the resume goes on from fresh seeds and says so."""
    TinyZeroTrainer(smoke(tmp_path, cache_dir), progress=False).train()
    ckpts = tmp_path / "runs" / "xdev" / "checkpoints"
    shutil.rmtree(ckpts / "iter_000002")  # resume from iteration 1, as if iteration 2 was never written
    (ckpts / "latest").write_text("iter_000001")
    first = ckpts / "iter_000001"
    state = json.loads((first / "state.json").read_text())
    assert len(state["rng_torch"]) == torch.Generator().get_state().numel()  # a CPU state was saved
    state["rng_torch"] = CUDA_RNG_STATE
    (first / "state.json").write_text(json.dumps(state))
    write_manifest(first)  # the checksums then match the edited file, as if the GPU run had written it
    capsys.readouterr()
    resumed = TinyZeroTrainer(smoke(tmp_path, cache_dir), resume=True, progress=False)
    assert "written on another device type" in capsys.readouterr().out
    assert resumed.iteration == 1
    summary = resumed.train()
    assert summary["iterations"] == 2 and summary["run/device"] == "cpu"


def test_teardown_leaves_the_process_group(tmp_path: Path) -> None:
    """train.py's ``finally`` calls it: without destroy_process_group NCCL warns at exit and can hang."""
    distributed.teardown()  # nothing joined: a no-op
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        assert dist.is_initialized()
        distributed.teardown()
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_run_description_names_device_dtype_and_processes() -> None:
    info = distributed.DistInfo(rank=0, world_size=2, strategy="fsdp")
    d = distributed.describe_run(torch.device("cpu"), "bfloat16", info)
    assert d["run/device"] == "cpu" and d["run/dtype"] == "bfloat16" and d["run/world_size"] == 2
    assert d["run/strategy"] == "fsdp" and d["run/torch"] == torch.__version__
    line = distributed.format_run(d)
    assert line.startswith("device: cpu (CPU ") and "dtype bfloat16, 2 process(es) (fsdp)" in line
    single = distributed.describe_run(torch.device("cpu"), "float32", distributed.DistInfo())
    assert single["run/world_size"] == 1 and single["run/strategy"] == "none"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_run_description_names_the_gpu() -> None:
    d = distributed.describe_run(torch.device("cuda", 0), "float32", distributed.DistInfo())
    assert d["run/device_name"] == torch.cuda.get_device_name(0) and d["run/torch_cuda"] != "none"
