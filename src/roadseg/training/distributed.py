"""Multi-process training under torchrun (DistributedDataParallel): process group set-up, sharding
and reductions. A plain `roadseg train` runs as a world of one and none of this is active.

Usage::

    world = World.from_env("auto")     # reads RANK, WORLD_SIZE, LOCAL_RANK set by torchrun
    order = world.shard(permutation)   # this rank's share of an epoch's sample order
    total = world.sum(tensor)          # summed over ranks (no-op for one process)
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..device import pick_device
from ..errors import InputError


def is_main_process() -> bool:
    """True unless this is a non-zero rank under torchrun (usable before the process group exists)."""
    return int(os.environ.get("RANK", "0")) == 0


@dataclass
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0 writes checkpoints, logs and progress bars."""
        return self.rank == 0

    @classmethod
    def from_env(cls, device: str = "auto") -> "World":
        """A world of one, or under torchrun the process group (NCCL on GPUs, gloo on CPU)."""
        size = int(os.environ.get("WORLD_SIZE", "1"))
        if size <= 1:
            return cls(device=pick_device(device))
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        dev = pick_device(device)
        if dev.type == "cuda":
            dev = torch.device("cuda", local_rank)
            torch.cuda.set_device(dev)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        return cls(rank, size, local_rank, dev)

    def local_batch(self, global_batch: int) -> int:
        """Each rank's batch size; the global batch must split evenly."""
        if global_batch % self.size:
            raise InputError(None, f"--batch-size {global_batch} does not split over {self.size} processes",
                             f"use a multiple of {self.size}")
        return global_batch // self.size

    def shard(self, order: torch.Tensor, pad: bool = True) -> torch.Tensor:
        """This rank's part of `order`: every size-th item from rank (as DistributedSampler does),
        padded by wrapping around so every rank has the same count when `pad`."""
        if not self.distributed:
            return order
        if pad and len(order) % self.size:
            extra = self.size - len(order) % self.size
            order = torch.cat([order, order[:extra]])
        return order[self.rank::self.size]

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum over ranks (in place on a copy), on the process group's device."""
        if not self.distributed:
            return tensor
        t = tensor.to(self.device if self.device.type == "cuda" else "cpu").clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.to(tensor.device)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        """Leave the process group together: a rank that tore it down while another still wrote its
        last files could abort the other (gloo)."""
        if self.distributed and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
