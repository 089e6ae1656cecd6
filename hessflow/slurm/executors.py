"""Executor profiles -> Parsl ``Config`` objects, one builder per kind, in one place.

Executors in the compiled config are labelled ``"qm"`` (the task pool) and, only when the
profile has an ``mpi:`` section, ``"mpi"`` (a pool for MPI-parallel training). With both
present, apps must name their executor (``@python_app(executors=["qm"])``), otherwise Parsl
picks one at random. :func:`profile_launch_prefix` is the command prefix a training task on
the ``mpi`` executor starts its ranks with.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ..ml.core.launch import mpi_launch_prefix
from ..settings import settings_error
from .profile import PREFIX, ExecutorProfile, as_profile
from .shell import venv_of, worker_init

__all__ = ["QM_LABEL", "MPI_LABEL", "parsl_config", "mpi_placement", "profile_launch_prefix"]

QM_LABEL = "qm"
MPI_LABEL = "mpi"


def _resolve_run_dir(p: ExecutorProfile, run_dir: str | os.PathLike) -> str:
    rd = Path(p.run_dir) if p.run_dir else Path("parsl")
    return str(rd if rd.is_absolute() else (Path(run_dir) / rd).resolve())


# The interchange is started through this guard: in a process group of its own (a Ctrl-C in the
# terminal goes to the driver, which then shuts Parsl down in order, instead of killing the
# interchange under it and hanging on its command channel), and with PR_SET_PDEATHSIG (Linux) so
# that it dies with the driver even after a kill -9; the worker pools then lose their heartbeat
# and exit after ``heartbeat_threshold`` seconds, terminating their workers.
_GUARD = """import os, signal, sys
parent = os.getppid()
os.setpgid(0, 0)
try:
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
except (OSError, AttributeError):
    pass
if os.getppid() != parent:
    sys.exit(0)
os.execv(sys.executable, [sys.executable] + sys.argv[1:])
"""

# heartbeats (seconds): a pool that hears nothing from its interchange for the threshold exits.
# Local pools share the driver's machine: short, so nothing outlives a killed driver by more than
# ~20 s. Slurm pools: well under Parsl's default of 120 s, yet tolerant of a busy login node.
HEARTBEATS = {"local": {"heartbeat_period": 3, "heartbeat_threshold": 15},
              "slurm": {"heartbeat_period": 10, "heartbeat_threshold": 60}}


def _interchange_cmd() -> list[str] | None:
    """The interchange's command: :data:`_GUARD`, then ``interchange.py``. Parsl starts it from
    the driver's PATH; the driver may run as ``.venv/bin/python`` without the venv on PATH, so
    the script is named by its path."""
    cand = Path(sys.executable).parent / "interchange.py"
    script = str(cand) if cand.is_file() else shutil.which("interchange.py")
    return [sys.executable, "-c", _GUARD, script] if script else None


def _threads_executors(p: ExecutorProfile, ix) -> list:
    """Tasks in threads of the driver process (``ix`` unused: no interchange)."""
    from parsl.executors import ThreadPoolExecutor
    return [ThreadPoolExecutor(label=QM_LABEL, max_threads=p.workers)]


def _mpi_threads(p: ExecutorProfile) -> list:
    """The local 'mpi' pool: threads that each start one ``mpiexec -n N`` command."""
    from parsl.executors import ThreadPoolExecutor
    return [ThreadPoolExecutor(label=MPI_LABEL, max_threads=p.mpi.max_tasks)] if p.mpi else []


def _local_executors(p: ExecutorProfile, ix) -> list:
    from parsl.executors import HighThroughputExecutor
    from parsl.providers import LocalProvider
    return [HighThroughputExecutor(
        label=QM_LABEL, address="127.0.0.1", **HEARTBEATS["local"],
        **({"interchange_launch_cmd": ix} if ix else {}),
        cores_per_worker=p.threads_per_task, max_workers_per_node=p.workers,
        available_accelerators=p.accelerators,
        provider=LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1,
                               worker_init=worker_init(p)))]


def _slurm_provider(p: ExecutorProfile, site, *, nodes: int, init_blocks: int, min_blocks: int,
                    max_blocks: int, walltime: str, launcher, cores_per_node, exclusive: bool,
                    gres: str | None = None):
    """A SlurmProvider for blocks of ``p``; ``site`` (the profile itself, or its ``mpi``
    section) gives the partition, account, qos, constraint, memory, #SBATCH lines and the
    first worker_init lines; ``gres``: the GPU request of the profile's QM worker blocks."""
    from parsl.providers import SlurmProvider
    return SlurmProvider(
        partition=site.partition, account=site.account, qos=site.qos, constraint=site.constraint,
        nodes_per_block=nodes, cores_per_node=cores_per_node, mem_per_node=site.mem_per_node,
        init_blocks=init_blocks, min_blocks=min_blocks, max_blocks=max_blocks,
        parallelism=p.parallelism, walltime=walltime,
        scheduler_options="\n".join([*site.scheduler_options, *([gres] if gres else [])]),
        worker_init=worker_init(p, lines=site.worker_init), exclusive=exclusive,
        launcher=launcher,
    )


def _slurm_executors(p: ExecutorProfile, ix) -> list:
    """HTEX on Slurm blocks for the tasks; an MPIExecutor on exclusive blocks for 'mpi'."""
    from parsl.executors import HighThroughputExecutor, MPIExecutor
    from parsl.launchers import SimpleLauncher, SingleNodeLauncher, SrunLauncher
    how = p.launcher
    if how == "auto":
        how = "single" if p.nodes_per_block == 1 else "srun"
    out = [HighThroughputExecutor(
        label=QM_LABEL, address=p.address, **HEARTBEATS["slurm"],
        **({"interchange_launch_cmd": ix} if ix else {}),
        cores_per_worker=p.threads_per_task, max_workers_per_node=p.workers,
        available_accelerators=p.accelerators,  # worker i: CUDA_VISIBLE_DEVICES=i
        provider=_slurm_provider(
            p, p, nodes=p.nodes_per_block, init_blocks=p.init_blocks, min_blocks=p.min_blocks,
            max_blocks=p.max_blocks, walltime=p.walltime,
            launcher=SingleNodeLauncher() if how == "single" else SrunLauncher(),
            cores_per_node=p.cores_per_node, exclusive=p.exclusive, gres=p.gres))]
    m = p.mpi
    if m is not None:
        mpi = MPIExecutor(
            label=MPI_LABEL, address=p.address, mpi_launcher="srun", **HEARTBEATS["slurm"],
            max_workers_per_block=m.max_tasks,
            provider=_slurm_provider(
                p, m, nodes=m.nodes_per_block, init_blocks=0, min_blocks=0, max_blocks=m.max_blocks,
                walltime=m.walltime, launcher=SimpleLauncher(), cores_per_node=None,
                exclusive=m.exclusive))
        if ix:  # MPIExecutor types the command as a str (it is a sequence, Popen'd as such, as
            mpi.interchange_launch_cmd = ix  # in HTEX): set after construction, not type-checked
        out.append(mpi)
    return out


# kind -> (profile, interchange command) -> the Parsl executors of a profile of that kind
BUILDERS = {"threads": lambda p, ix: _threads_executors(p, ix) + _mpi_threads(p),
            "local": lambda p, ix: _local_executors(p, ix) + _mpi_threads(p),
            "slurm": _slurm_executors}


def _monitoring(p: ExecutorProfile, rundir: str):
    if not p.monitoring:
        return None
    try:
        import sqlalchemy  # noqa: F401  (parsl's monitoring database needs it)
        from parsl.monitoring import MonitoringHub
    except ImportError as e:
        raise settings_error(f"{PREFIX}.monitoring", f"needs Parsl's monitoring extras "
                             f"(pip install 'parsl[monitoring]'): {e}") from None
    Path(rundir).mkdir(parents=True, exist_ok=True)
    return MonitoringHub(logging_endpoint=f"sqlite:///{rundir}/monitoring.db",
                         resource_monitoring_interval=30)


def parsl_config(profile, run_dir: str | os.PathLike):
    """Compile a profile (an :class:`ExecutorProfile` or its mapping) to a
    :class:`parsl.config.Config` (not loaded).

    ``run_dir`` is the workflow's run directory; Parsl's own rundir is ``<run_dir>/parsl``
    unless the profile's ``run_dir`` says otherwise."""
    from parsl.config import Config
    p = as_profile(profile)
    rundir = _resolve_run_dir(p, run_dir)
    return Config(executors=BUILDERS[p.kind](p, _interchange_cmd()), retries=p.retries,
                  run_dir=rundir, strategy_period=1, max_idletime=p.max_idletime,
                  monitoring=_monitoring(p, rundir), usage_tracking=0)


def mpi_placement(profile, ranks: int) -> tuple[int, int]:
    """(nodes, ranks per node) of an MPI task of ``ranks`` ranks on the profile's ``mpi``
    executor: on slurm, the nodes of an MPI block (``mpi.nodes_per_block``, at most one per
    rank) with the ranks spread evenly over them (the per-node count rounded up); one node
    otherwise. ``profile``: an :class:`ExecutorProfile` or its mapping."""
    p = as_profile(profile)
    ranks = int(ranks)
    nodes = p.mpi_or_default().nodes_per_block if p.kind == "slurm" else 1
    nodes = max(1, min(nodes, ranks))
    return nodes, -(-ranks // nodes)


def profile_launch_prefix(profile, ranks: int | None = None, nodes: int | None = None) -> list[str]:
    """The command prefix that starts ``ranks`` MPI processes (default the profile's
    ``mpi.ranks``) with the profile's ``mpi`` settings and ``venv``:
    :func:`hessflow.ml.core.launch.mpi_launch_prefix` (``srun -n N ...srun_args`` inside a Slurm
    allocation, ``<venv>/bin/mpiexec -n N`` otherwise; ``mpi.launcher`` forces one).
    ``nodes``: spread the ranks evenly over that many nodes of the allocation (srun
    ``--nodes=nodes --ntasks-per-node=ceil(ranks/nodes)``, which also overrides the
    ``SLURM_NTASKS_PER_NODE=1`` of a Parsl block); mpiexec ignores it.
    ``profile``: an :class:`ExecutorProfile` or its mapping."""
    p = as_profile(profile)
    m = p.mpi_or_default()
    n = m.ranks if ranks is None else ranks
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise settings_error(f"{PREFIX}.mpi.ranks", f"must be an integer >= 1, got {n!r}")
    srun_args = list(m.srun_args)
    if nodes:
        srun_args += [f"--nodes={int(nodes)}", f"--ntasks-per-node={-(-n // int(nodes))}"]
    return mpi_launch_prefix(n, m.launcher, m.mpiexec, srun_args, venv_of(p))
