"""Rank discovery and process-group set-up for data-parallel training (the ml core).

Launchers: ``mpiexec -n N`` (MPICH: PMI_RANK/PMI_SIZE; Open MPI: OMPI_COMM_WORLD_*), ``srun``
(SLURM_PROCID/SLURM_NTASKS) and ``torchrun`` (RANK/WORLD_SIZE/LOCAL_RANK). Torch has no MPI
backend here: MPI only starts the processes (and, with mpi4py, agrees on a rendezvous port);
the collectives run over gloo on CPU and NCCL on GPU.
"""

from __future__ import annotations

import os
import socket

from ...system import torch_device

__all__ = ["RANK_VARS", "rank_world", "Distributed"]

RANK_VARS = (("RANK", "WORLD_SIZE", "LOCAL_RANK"),
             ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"),
             ("PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"),
             ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"))


def rank_world() -> tuple[int, int, int]:
    """(rank, world size, local rank) from whichever launcher started this process."""
    for r, w, lr in RANK_VARS:
        if r in os.environ and w in os.environ:
            rank, world = int(os.environ[r]), int(os.environ[w])
            return rank, world, int(os.environ.get(lr, rank))
    return 0, 1, 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rendezvous(rank: int, world: int):
    """MASTER_ADDR/PORT for every rank: from the environment (torchrun, or set by the user),
    else agreed over MPI (rank 0 picks a free port on its host)."""
    if "MASTER_ADDR" in os.environ and "MASTER_PORT" in os.environ:
        return
    try:
        from mpi4py import MPI
        comm = MPI.COMM_WORLD
        if comm.Get_size() != world:
            raise RuntimeError
        addr = (socket.gethostname(), _free_port()) if rank == 0 else None
        addr = comm.bcast(addr, root=0)
    except Exception:  # noqa: BLE001 - no MPI: one node, fixed port
        addr = ("127.0.0.1", int(os.environ.get("HESSFLOW_MASTER_PORT", 29511)))
    if world > 1 and addr[0] != "127.0.0.1":
        try:
            socket.gethostbyname(addr[0])
        except OSError:
            addr = ("127.0.0.1", addr[1])
    os.environ.setdefault("MASTER_ADDR", str(addr[0]))
    os.environ.setdefault("MASTER_PORT", str(addr[1]))


class Distributed:
    """Context manager: initialises the process group when world size > 1.

    ``device``: ``auto``, ``cpu`` or ``cuda`` (any ``cuda:N`` counts as ``cuda``): on a GPU
    node every rank takes GPU ``local_rank`` (modulo the visible GPUs), see
    :func:`hessflow.system.torch_device`. Attributes: ``rank``, ``world``, ``local_rank``,
    ``device`` (a ``torch.device``), ``active`` (the process group is up)."""

    def __init__(self, device: str = "auto"):
        self.rank, self.world, self.local_rank = rank_world()
        requested = "cuda" if str(device).startswith("cuda") else device
        self.device = torch_device(requested, self.local_rank)
        self.active = False

    def __enter__(self):
        if self.world > 1:
            import torch.distributed as dist
            _rendezvous(self.rank, self.world)
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            if self.device.type == "cuda":
                import torch
                torch.cuda.set_device(self.device)  # NCCL collectives use the current device
            dist.init_process_group(backend, rank=self.rank, world_size=self.world)
            self.active = True
        return self

    def __exit__(self, *exc):
        if self.active:
            import torch.distributed as dist
            dist.destroy_process_group()
        return False

    def barrier(self):
        if self.active:
            import torch.distributed as dist
            dist.barrier()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model):
        """``model`` in DistributedDataParallel when the group is active, else itself."""
        if not self.active:
            return model
        import torch
        return torch.nn.parallel.DistributedDataParallel(
            model, device_ids=None if self.device.type == "cpu" else [self.device])

    def allreduce(self, values, op: str = "sum") -> list[float]:
        """``values`` (floats) summed (``op="sum"``) or maximised (``"max"``) over the ranks.
        The tensor lives on this rank's device: NCCL reduces only GPU tensors."""
        values = [float(v) for v in values]
        if not self.active:
            return values
        import torch
        import torch.distributed as dist
        ops = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=ops[op])
        return t.cpu().tolist()

    def gather(self, obj) -> list:
        """``obj`` (picklable) from every rank, in rank order."""
        if not self.active:
            return [obj]
        import torch.distributed as dist
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out
