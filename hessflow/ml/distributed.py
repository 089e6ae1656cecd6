"""Rank discovery and process-group set-up for data-parallel training.

Launchers: ``mpiexec -n N`` (MPICH: PMI_RANK/PMI_SIZE; Open MPI: OMPI_COMM_WORLD_*), ``srun``
(SLURM_PROCID/SLURM_NTASKS) and ``torchrun`` (RANK/WORLD_SIZE/LOCAL_RANK). Torch has no MPI
backend here: MPI only starts the processes (and, with mpi4py, agrees on a rendezvous port);
the collectives run over gloo on CPU and NCCL on GPU.
"""

from __future__ import annotations

import os
import socket

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


def device_for(local_rank: int, requested: str = "auto"):
    import torch
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device: CUDA requested but no GPU is visible")
    return torch.device(f"cuda:{local_rank % max(1, torch.cuda.device_count())}")


class Distributed:
    """Context manager: initialises the process group when world size > 1."""

    def __init__(self, device: str = "auto"):
        self.rank, self.world, self.local_rank = rank_world()
        self.device = device_for(self.local_rank, device)
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


# -- launching a training run from a spec ---------------------------------------------------------
def launch(spec: dict, module: str, ranks: int, run_here, what: str) -> str:
    """Write ``spec`` to ``<spec['out']>/spec.json`` and train: ``run_here(spec_path)`` in this
    process for one rank, else ``python -m MODULE spec.json`` on ``ranks`` ranks (``mpiexec``
    locally, ``srun`` inside a Slurm allocation). Returns the spec path."""
    import json
    import subprocess
    import sys

    from ..errors import HessflowError
    from ..slurm import profiles
    os.makedirs(spec["out"], exist_ok=True)
    spec_path = os.path.join(spec["out"], "spec.json")
    with open(spec_path, "w") as fh:
        json.dump(spec, fh, indent=1, default=str)
    if ranks == 1:
        run_here(spec_path)
        return spec_path
    cmd = profiles.mpi_launch_prefix({"kind": "local", "mpi": {"ranks": ranks}}, ranks) + \
        [sys.executable, "-m", module, spec_path]
    r = subprocess.run(cmd)
    if r.returncode != 0:
        raise HessflowError(f"{what}: {' '.join(cmd[:3])} ... exited with status {r.returncode}")
    return spec_path


def spec_main(run_spec_path, prog: str, argv=None) -> int:
    """``python -m MODULE SPEC.json`` on every rank: run, and turn a HessflowError into one line
    on stderr and exit status 2."""
    import sys

    from ..errors import HessflowError
    argv = sys.argv[1:] if argv is None else argv
    try:
        run_spec_path(argv[0])
    except HessflowError as exc:
        print(f"hessflow {prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0
