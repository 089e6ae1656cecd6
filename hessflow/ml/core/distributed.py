"""Rank discovery and process-group set-up for data-parallel training (the ml core).

Launchers: ``mpiexec -n N`` (MPICH: PMI_RANK/PMI_SIZE; Open MPI: OMPI_COMM_WORLD_*), ``srun``
(SLURM_PROCID/SLURM_NTASKS) and ``torchrun`` (RANK/WORLD_SIZE/LOCAL_RANK). Torch has no MPI
backend here: MPI only starts the processes; the collectives run over gloo on CPU and NCCL on
GPU. The rendezvous (MASTER_ADDR/PORT) comes from the environment, else from Slurm's (first host
of the step's node list, a port derived from the job id), else from MPI (mpi4py: rank 0's host
and a free port), else 127.0.0.1 -- never 127.0.0.1 when the ranks span several hosts.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess

from ...system import torch_device

__all__ = ["RANK_VARS", "rank_world", "expand_hostlist", "slurm_rendezvous", "Distributed"]

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


#: the fixed rendezvous port of a run on one host without MPI or Slurm (HESSFLOW_MASTER_PORT overrides)
DEFAULT_PORT = 29511
#: Slurm rendezvous ports: PORT_BASE + (job id * 16 + step id) % PORT_SPAN, below Linux's ephemeral range
PORT_BASE, PORT_SPAN = 12000, 20000
_HOSTLIST_PART = re.compile(r"([^,\[]*)(?:\[([^\]]*)\])?([^,\[]*)")


def expand_hostlist(nodelist: str) -> list[str]:
    """Slurm's compressed host list (``hf-node[1-3,7],gpu01``) as names, in Slurm's order:
    ``scontrol show hostnames`` when scontrol is on PATH, else a parser of the common forms
    (one bracket per name, ranges keep their zero padding)."""
    exe = shutil.which("scontrol")
    if exe:
        try:
            r = subprocess.run([exe, "show", "hostnames", nodelist], capture_output=True,
                               text=True, timeout=30)
            if r.returncode == 0 and r.stdout.split():
                return r.stdout.split()
        except (OSError, subprocess.TimeoutExpired):
            pass
    hosts: list[str] = []
    pos = 0
    while pos < len(nodelist):
        m = _HOSTLIST_PART.match(nodelist, pos)
        prefix, body, suffix = m.group(1), m.group(2), m.group(3)
        if body is None:
            hosts.append(prefix + suffix)
        else:
            for item in body.split(","):
                lo, _, hi = item.partition("-")
                for i in range(int(lo), int(hi or lo) + 1):
                    hosts.append(f"{prefix}{i:0{len(lo)}d}{suffix}")
        pos = m.end() + 1  # past the comma
    return [h for h in hosts if h]


def slurm_rendezvous(world: int, env=None) -> tuple[str, int] | None:
    """(MASTER_ADDR, MASTER_PORT) from Slurm's environment, the same on every rank, or None
    when this process is not one of ``world`` tasks of a Slurm step.

    Address: ``127.0.0.1`` when the step has one node, else the first host of the step's node
    list (``SLURM_STEP_NODELIST``, else ``SLURM_JOB_NODELIST`` / ``SLURM_NODELIST``), where
    srun's block and cyclic distributions both put rank 0. Port: ``HESSFLOW_MASTER_PORT``, else
    derived from ``SLURM_JOB_ID`` and ``SLURM_STEP_ID`` (two steps of one job, or two jobs
    sharing a node, do not collide)."""
    env = os.environ if env is None else env
    nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    ntasks = env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS")
    job = env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID")
    if not (nodelist and job and ntasks and ntasks.isdigit() and int(ntasks) == world):
        return None
    hosts = expand_hostlist(nodelist)
    if not hosts:
        return None
    step = env.get("SLURM_STEP_ID", "0")
    step = int(step) if step.isdigit() else 0
    digits = re.sub(r"\D", "", job)[:12] or "0"  # array jobs: 123_4
    port = int(env.get("HESSFLOW_MASTER_PORT") or PORT_BASE + (int(digits) * 16 + step) % PORT_SPAN)
    return ("127.0.0.1" if len(set(hosts)) == 1 else hosts[0]), port


def _mpi_rendezvous(rank: int, world: int) -> tuple[str, int] | None:
    """Rank 0's host and a free port on it, broadcast over MPI (mpi4py); None without MPI.
    127.0.0.1 only when every rank runs on one host."""
    try:
        from mpi4py import MPI
        comm = MPI.COMM_WORLD
        if comm.Get_size() != world:
            return None
        addr = (socket.gethostname(), _free_port()) if rank == 0 else None
        addr = comm.bcast(addr, root=0)
        one_host = len(set(comm.allgather(socket.gethostname()))) == 1
    except Exception:  # noqa: BLE001 - no mpi4py / no MPI launcher
        return None
    if one_host:
        try:
            socket.gethostbyname(addr[0])
        except OSError:
            addr = ("127.0.0.1", addr[1])
    return addr


def _rendezvous(rank: int, world: int):
    """MASTER_ADDR/PORT for every rank: from the environment (torchrun, or set by the user),
    else from Slurm's (an srun step, :func:`slurm_rendezvous`), else agreed over MPI (rank 0
    picks a free port on its host), else 127.0.0.1 and a fixed port (one host)."""
    if "MASTER_ADDR" in os.environ and "MASTER_PORT" in os.environ:
        return
    addr = slurm_rendezvous(world) or _mpi_rendezvous(rank, world)
    if addr is None:  # no Slurm step, no MPI: one node, fixed port
        addr = ("127.0.0.1", int(os.environ.get("HESSFLOW_MASTER_PORT", DEFAULT_PORT)))
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
        """Wait for every rank (nothing on one rank)."""
        if self.active:
            import torch.distributed as dist
            dist.barrier()

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes files."""
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
