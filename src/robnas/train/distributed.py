"""One process or many: torchrun and SLURM detection, process-group set-up, metric reduction.

The same entry point runs alone or under ``torchrun --nproc_per_node K`` (which sets RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) or one SLURM task per GPU (SLURM_PROCID,
SLURM_NTASKS, SLURM_LOCALID; MASTER_ADDR must be exported, e.g. the first host of
``scontrol show hostnames``; MASTER_PORT defaults to 29500). NCCL is used on GPUs, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from robnas.errors import ConfigError
from robnas.runtime import resolve_device


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: rank, world size, local rank, and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    initialised_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else None


def launch_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's or SLURM's variables, else (0, 1, 0)."""
    if _env_int("WORLD_SIZE") is not None and _env_int("RANK") is not None:
        return _env_int("RANK") or 0, _env_int("WORLD_SIZE") or 1, _env_int("LOCAL_RANK") or 0
    world = _env_int("SLURM_NTASKS")
    if world is not None and world > 1 and _env_int("SLURM_PROCID") is not None:
        rank = _env_int("SLURM_PROCID") or 0
        local = _env_int("SLURM_LOCALID") or 0
        if not os.environ.get("MASTER_ADDR"):
            raise ConfigError(
                "running under SLURM with several tasks but MASTER_ADDR is not set; export it, e.g. "
                'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)'
            )
        os.environ.setdefault("MASTER_PORT", "29500")
        os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(local))
        return rank, world, local
    return 0, 1, 0


def setup(device: str = "auto") -> DistInfo:
    """Join the process group when launched with several processes; pick this rank's device."""
    rank, world, local = launch_env()
    dev = resolve_device(device, local)
    if world == 1:
        return DistInfo(0, 1, 0, dev)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local, dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world)
    return DistInfo(rank, world, local, dev, initialised_here=True)


def teardown(info: DistInfo) -> None:
    """Leave the process group if :func:`setup` joined it.

    Every rank first waits at a barrier: a rank that tears gloo down while another is still
    in its last collective can abort the process ("terminate called without an active exception").
    """
    if info.initialised_here and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def reduce_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a float64 tensor of metric sums over all ranks (identity in one process)."""
    if not info.distributed:
        return values
    backend_dev = info.device if info.device.type == "cuda" else torch.device("cpu")
    out = values.to(backend_dev, torch.float64)
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.cpu()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


__all__ = ["DistInfo", "barrier", "launch_env", "reduce_sum", "setup", "teardown"]
