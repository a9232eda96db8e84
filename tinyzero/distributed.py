"""Data-parallel RL with PyTorch's own machinery: ``torchrun`` + DDP or FSDP2 (``fully_shard``).

    torchrun --nproc_per_node=2 train.py --config configs/default.yaml                       # DDP
    torchrun --nproc_per_node=2 train.py --config configs/default.yaml distributed.strategy=fsdp

Nothing here is a distributed system of our own: torchrun starts the processes and sets RANK /
WORLD_SIZE / LOCAL_RANK, ``torch.distributed`` connects them (gloo on CPU, nccl on GPU), DDP or FSDP2
synchronise the gradients, and the object collectives move the few Python values (metrics, RNG
states, the V* table) that must agree. This module only decides *when* to call them.

How a data-parallel iteration maps onto the single-process one (docs/scaling.md has the reasoning):
- every rank samples its share (global / world size) of the iteration's prompts from its own
  generator (seeded per rank) and rolls them out with the plain module (no DDP/FSDP hooks in the
  sampler; FSDP gathers a full copy of the weights for it);
- each rank's loss is a mean over its equal share, with token-level means divided by the *global*
  token count ÷ world size (``token_denominator``), so DDP's gradient average is exactly the
  gradient of the single-process loss on the global batch;
- metrics are averaged over ranks, token counters summed; rank 0 logs, evaluates and checkpoints.

A plain ``python train.py`` (no torchrun variables, or WORLD_SIZE=1) never touches torch.distributed:
single-process runs are bit-identical to what they were before this module existed.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from tinyzero.errors import UserError


def launched_by_torchrun() -> bool:
    """True when torchrun (or any launcher setting WORLD_SIZE > 1) started this process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


SUMMED_METRICS = ("kept_groups",)  # per-rank counts; every other metric is averaged


@dataclass
class DistInfo:
    """Who this process is among the ranks, and the collectives the trainer needs.

    Every method is a no-op (or the identity) in a single-process run, so the trainer calls them
    unconditionally and a single-process run does exactly what it did before.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    strategy: str = "none"  # none | ddp | fsdp

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (pickled: for small Python values)."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def sum(self, value: int) -> int:
        return value if not self.enabled else int(sum(self.gather(value)))

    def all_true(self, flag: bool) -> bool:
        """True only if ``flag`` holds on every rank: skip decisions (non-finite loss) must agree."""
        return flag if not self.enabled else all(self.gather(bool(flag)))

    def mean_metrics(self, metrics: dict) -> dict:
        """Numbers averaged over ranks (each rank's figure is a mean over an equal share); counts of
        per-rank things (``SUMMED_METRICS``) are added up."""
        if not self.enabled:
            return metrics
        every = self.gather(metrics)
        out = dict(metrics)
        for key, value in metrics.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                values = [m[key] for m in every]
                if key in SUMMED_METRICS:
                    out[key] = sum(values)
                elif isinstance(value, float) or len(set(values)) > 1:
                    out[key] = float(sum(values) / len(values))
        return out

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (e.g. builds a cache), the others after it, reading the result."""
        if self.enabled and not self.is_main:
            dist.barrier()
        yield
        if self.enabled and self.is_main:
            dist.barrier()


def setup(strategy: str, backend: str, timeout_s: int, device: torch.device) -> tuple[DistInfo, torch.device]:
    """Join the process group torchrun prepared (if any) and pick this rank's device.

    Backend ``auto`` is nccl for CUDA and gloo for CPU. On GPUs each rank drives the GPU numbered by
    its LOCAL_RANK. Calling it again in the same process (tests build several trainers) reuses the group.
    """
    if not launched_by_torchrun():
        return DistInfo(), device
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise UserError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs are visible: "
                f"use torchrun --nproc_per_node <= the number of GPUs"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if backend == "auto":
        backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and device.type != "cuda":
        raise UserError("distributed.backend=nccl needs GPUs: use distributed.backend=gloo (or auto) on CPU")
    if not dist.is_initialized():
        # device_id binds the group to this rank's GPU now (NCCL connects eagerly, and no collective
        # has to guess the device); gloo takes none.
        dist.init_process_group(
            backend,
            timeout=datetime.timedelta(seconds=timeout_s),
            device_id=device if device.type == "cuda" else None,
        )
    return DistInfo(rank, world, local_rank, strategy), device


def teardown() -> None:
    """Leave the process group, if one was joined: without it NCCL warns at exit and can hang or abort.
    train.py calls it in a ``finally``, so an error on one rank still releases the others' group."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def describe_run(device: torch.device, dtype: str, info: DistInfo) -> dict[str, str | int]:
    """Where a run actually trains, for the console and summary.json: a GPU job that lands on CPU, or
    on another GPU than paid for, shows in its first line instead of in the bill."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU ({platform.machine() or 'unknown'}, {torch.get_num_threads()} threads)"
    return {
        "run/device": str(device),
        "run/device_name": name,
        "run/dtype": dtype,
        "run/world_size": info.world_size,
        "run/strategy": info.strategy if info.enabled else "none",
        "run/torch": torch.__version__,
        "run/torch_cuda": torch.version.cuda or "none",
    }


def format_run(described: dict[str, str | int]) -> str:
    """describe_run as one console line."""
    d = described
    procs = f"{d['run/world_size']} process(es)" + (
        f" ({d['run/strategy']})" if d["run/strategy"] != "none" else ""
    )
    return (
        f"device: {d['run/device']} ({d['run/device_name']}), dtype {d['run/dtype']}, {procs}, "
        f"torch {d['run/torch']} (CUDA {d['run/torch_cuda']})"
    )


def rank_seed(seed: int, rank: int) -> int:
    """Rank 0 keeps the run's seed (a 1-process run is unchanged); other ranks get distinct streams."""
    return seed if rank == 0 else seed + 1_000_003 * rank


# ----------------------------------------------------------------------------- wrapping the trained modules


def wrap(module: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """The module to run *training* forwards through: DDP wrapper, FSDP2-sharded module, or itself.

    FSDP2 shards in place (the module's parameters become DTensors); each transformer block is its
    own unit so only one block is gathered at a time, as FSDP intends. DDP keeps a full replica and
    all-reduces (averages) gradients during backward.
    """
    if not info.enabled:
        return module
    if info.strategy == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(device.type, (info.world_size,))
        for block in _blocks(module):
            fully_shard(block, mesh=mesh)
        fully_shard(module, mesh=mesh)
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    return DDP(module, device_ids=ids)


def _blocks(module: nn.Module) -> list[nn.Module]:
    body = getattr(module, "body", module)  # PPO's critic wraps a TransformerLM as .body
    return list(getattr(body, "blocks", []))


def is_sharded(module: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(module, FSDPModule)


def full_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """Plain (unsharded) tensors of a possibly FSDP-sharded module, on every rank (each samples with
    them). A collective under FSDP."""
    if not is_sharded(module):
        return module.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True))


def optimizer_state(modules: dict[str, nn.Module], optimizer: torch.optim.Optimizer) -> dict:
    """The optimizer's state in the plain ``optimizer.state_dict()`` layout, whatever the strategy.

    Under FSDP the state is sharded; torch.distributed.checkpoint gathers it keyed by parameter name,
    and it is re-keyed here by position so checkpoints resume under any strategy or world size.
    Under FSDP only rank 0 receives it (in CPU memory); the other ranks get ``{}``.
    """
    if not any(is_sharded(m) for m in modules.values()):
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    container = nn.ModuleDict(modules)
    full = get_optimizer_state_dict(
        container, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )
    if not full:  # cpu_offload: only rank 0 (the one that writes the checkpoint) receives the state
        return {}
    names = [n for n, _ in container.named_parameters()]
    index = {n: i for i, n in enumerate(names)}
    return {
        "state": {index[n]: s for n, s in full["state"].items()},
        "param_groups": [{**g, "params": [index[n] for n in g["params"]]} for g in full["param_groups"]],
    }


def load_optimizer_state(
    modules: dict[str, nn.Module], optimizer: torch.optim.Optimizer, state: dict
) -> None:
    """Inverse of ``optimizer_state``: every rank passes the full state; FSDP keeps its shard of it."""
    if not any(is_sharded(m) for m in modules.values()):
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    container = nn.ModuleDict(modules)
    names = [n for n, _ in container.named_parameters()]
    by_name = {
        "state": {names[int(i)]: s for i, s in state["state"].items()},
        "param_groups": [
            {**g, "params": [names[int(i)] for i in g["params"]]} for g in state["param_groups"]
        ],
    }
    set_optimizer_state_dict(container, optimizer, by_name, options=StateDictOptions(full_state_dict=True))


def grad_norm_value(norm: torch.Tensor) -> torch.Tensor:
    """clip_grad_norm_ returns a replicated DTensor under FSDP: its plain value (identical on every rank)."""
    from torch.distributed.tensor import DTensor

    return norm.full_tensor() if isinstance(norm, DTensor) else norm


def token_count(mask: torch.Tensor) -> torch.Tensor:
    """Denominator of a token-level mean over ``mask``: this rank's count, or under torchrun the
    *global* count ÷ world size, so that averaging the ranks' gradients (DDP/FSDP) gives exactly the
    gradient of the token mean over the global batch (per-rank counts differ; equal shares do not).

    A collective when distributed: every rank must reach the same ``masked_mean`` calls (they do:
    the algorithms run the same code on every rank). Single process: ``mask.sum().clamp(min=1)``.
    """
    n = mask.sum()
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return n.clamp(min=1)
    n = n.clone()
    dist.all_reduce(n)
    return n.clamp(min=1) / dist.get_world_size()


def global_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over ``mask`` across all ranks, without gradient.

    For batch statistics (e.g. PPO's advantage whitening): under torchrun they must be those of the
    global batch for a data-parallel run to equal a single process. A collective when distributed.
    """
    stats = torch.stack([(x * mask).sum(), mask.sum().to(x.dtype)]).detach()
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(stats)
    return stats[0] / stats[1].clamp(min=1)
