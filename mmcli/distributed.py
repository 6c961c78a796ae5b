"""torch.distributed glue: process-group set-up under torchrun, rank-0 helpers, reductions, and the launcher
behind `mm train --nproc-per-node N` (it runs torch.distributed.run, the engine behind `torchrun`)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from mmcli.errors import MMError


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def setup(device: str) -> tuple[DistInfo, str]:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1). -> (info, this rank's device).

    CUDA ranks use NCCL and GPU `local_rank`; CPU ranks use gloo."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return DistInfo(rank, world, local), device


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_object(info: DistInfo, obj):
    """Rank 0's `obj` on every rank (e.g. the run folder name)."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_arrays(info: DistInfo, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Concatenate each array over ranks (rank order), on every rank."""
    if not info.enabled:
        return arrays
    out: list = [None] * info.world
    dist.all_gather_object(out, arrays)
    return tuple(np.concatenate([part[i] for part in out]) for i in range(len(arrays)))


def sum_scalars(info: DistInfo, values: dict[str, float]) -> dict[str, float]:
    """Sum a dict of numbers over ranks (train loss/accuracy counters)."""
    if not info.enabled:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return dict(zip(keys, t.tolist()))


def launch(argv: list[str], nproc: int, nnodes: str = "1", node_rank: int = 0, master_addr: str = "127.0.0.1",
           master_port: int = 29500, rdzv_endpoint: str | None = None) -> None:
    """Re-run `mm <argv>` under torch.distributed.run with `nproc` processes per node."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    args = [f"--nproc-per-node={nproc}", f"--nnodes={nnodes}"]
    if rdzv_endpoint:
        args += ["--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}"]
    else:
        args += [f"--node-rank={node_rank}", f"--master-addr={master_addr}", f"--master-port={master_port}"]
    try:
        torchrun(args + ["-m", "mmcli", *argv])
    except ChildFailedError as exc:
        failures = "; ".join(f"rank {r} exit {f.exitcode}" for r, f in sorted(exc.failures.items()))
        raise MMError(f"distributed training failed ({failures}); the failing rank's error is printed above") from None
