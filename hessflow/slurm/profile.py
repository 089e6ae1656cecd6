"""The executor profile: the ``executor:`` mapping of a workflow YAML file as typed settings.

::

    executor:
      kind: slurm            # threads | local | slurm
      partition: compute
      walltime: "02:00:00"
      threads_per_task: 4
      mpi: {ranks: 2}        # optional: an 'mpi' executor for the training stages (its own
                             # partition/gres/walltime/nodes_per_block if given)
      driver: {cpus_per_task: 2}   # slurm: the driver's own batch job

:meth:`ExecutorProfile.from_mapping` checks a mapping once and fills the documented defaults,
raising :class:`~hessflow.errors.SettingsError` with one line that names the dotted field
(``executor.walltime: '1 hour' is not HH:MM:SS``). A field valid only for some kinds says so in
its metadata (``kinds``); setting it for another kind is an error. The sections are
:class:`MPISettings` and :class:`DriverSettings`. docs/slurm.md documents every field;
:func:`hessflow.settings.describe` lists them.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Mapping

from ..settings import check_keys, from_mapping, meta, settings_error
from ..system import cpu_count

__all__ = ["KINDS", "ExecutorProfile", "MPISettings", "DriverSettings", "MPI_INHERITED",
           "as_profile"]

KINDS = ("threads", "local", "slurm")
PREFIX = "executor"
ALL = KINDS
SLURM = ("slurm",)

_WALLTIME = re.compile(r"^(\d+):([0-5]\d):([0-5]\d)$")


# --------------------------------------------------------------------------- checks
def _walltime(where: str, v):
    """HH:MM:SS of at least one minute. PyYAML (YAML 1.1) reads an unquoted 1:30:00 as the
    sexagesimal integer 5400: integers are taken as seconds."""
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        v = f"{v // 3600:02d}:{v % 3600 // 60:02d}:{v % 60:02d}"
    if not isinstance(v, str) or not _WALLTIME.match(v.strip()):
        raise settings_error(where, f"{v!r} is not HH:MM:SS")
    v = v.strip()
    h, m, _ = (int(x) for x in v.split(":"))
    if h * 60 + m < 1:
        raise settings_error(where, f"{v!r} is shorter than one minute")
    return v


def _line(where: str, v: str):
    """A non-empty single-line string (an #SBATCH value)."""
    if not v.strip():
        raise settings_error(where, f"{v!r} is not a non-empty string")
    if "\n" in v:
        raise settings_error(where, "must be a single line")
    return v


def _lines(where: str, v) -> list[str]:
    """A string (split on newlines) or a list of single-line strings -> a list of lines."""
    if isinstance(v, str):
        return [ln for ln in v.splitlines() if ln.strip()]
    out = []
    for x in v:
        if "\n" in x.strip():
            raise settings_error(where, f"entry {x!r} spans several lines; give one line per entry")
        if x.strip():
            out.append(x.strip())
    return out


def _sbatch_lines(where: str, v) -> list[str]:
    """scheduler_options: '--gres=gpu:1' or '#SBATCH --gres=gpu:1' -> '#SBATCH --gres=gpu:1'."""
    out = []
    for ln in _lines(where, v):
        if ln.startswith("#SBATCH"):
            out.append(ln)
        elif ln.startswith("-"):
            out.append(f"#SBATCH {ln}")
        else:
            raise settings_error(where, f"{ln!r} is neither an '#SBATCH ...' line nor an option "
                                        f"like '--gres=gpu:1'")
    return out


def _path(where: str, v: str):
    if not v.strip():
        raise settings_error(where, f"{v!r} is not a path")
    return v


def _field(default, help: str, kinds=ALL, **checks):
    """A profile field: ``default`` (a list is copied per instance), one line of help, the kinds
    it applies to and the :func:`~hessflow.settings.meta` checks."""
    metadata = {**meta(help, **checks), "kinds": kinds}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _check_kinds(cls, mapping: Mapping, kind: str, where: str):
    """A field set (not null, not its default) for a kind it does not apply to is an error."""
    for f in dataclasses.fields(cls):
        kinds = f.metadata.get("kinds", ALL)
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        if mapping.get(f.name) not in (None, default) and kind not in kinds:
            raise settings_error(f"{where}.{f.name}", f"only valid for kind "
                                 f"{' / '.join(repr(k) for k in kinds)}, not {kind!r}")


def _section(cls, mapping, kind: str, where: str, **overrides):
    """A section dataclass from its mapping (None: all defaults), kind rules included."""
    if mapping is not None and not isinstance(mapping, Mapping):
        raise settings_error(where, f"expected a mapping, got {type(mapping).__name__} {mapping!r}")
    mapping = {k: v for k, v in (mapping or {}).items() if v is not None}
    check_keys(mapping, [f.name for f in dataclasses.fields(cls)], where)
    _check_kinds(cls, mapping, kind, where)
    return from_mapping(cls, {k: v for k, v in mapping.items() if k not in overrides}, where,
                        **overrides)


# --------------------------------------------------------------------------- sections
@dataclasses.dataclass
class MPISettings:
    """The ``mpi:`` section: an executor labelled ``mpi`` for MPI-parallel training tasks."""

    ranks: int = _field(2, "default MPI ranks per training task", minimum=1)
    launcher: str = _field("auto", "auto = srun inside a Slurm allocation (SLURM_JOB_ID set), "
                                   "mpiexec otherwise", choices=("auto", "mpiexec", "srun"))
    mpiexec: str | None = _field(None, "mpiexec to use; default <venv>/bin/mpiexec if present, "
                                       "else mpiexec", check=_line)
    srun_args: list[str] | str = _field(["--mpi=pmi2"], "extra srun arguments; --mpi=pmi2 suits "
                                        "the venv's MPICH (plain srun gives N singletons)",
                                        check=_lines)
    max_tasks: int = _field(1, "MPI tasks run at once (threads pool size / MPIExecutor "
                               "max_workers_per_block)", minimum=1)
    nodes_per_block: int = _field(1, "nodes per MPI block", SLURM, minimum=1)
    max_blocks: int = _field(1, "most MPI blocks at once", SLURM, minimum=1)
    walltime: str | int | None = _field(None, "HH:MM:SS of an MPI block; default executor walltime",
                                        SLURM, check=_walltime)
    exclusive: bool = _field(True, "#SBATCH --exclusive for MPI blocks: a block is one task, "
                                   "srun -n N inside needs the node's cores", SLURM)
    # where the MPI blocks run: a GPU partition, say, other than the QM blocks' (None: the
    # executor's setting; filled in by ExecutorProfile.from_mapping)
    partition: str | None = _field(None, "#SBATCH --partition of MPI blocks; default the "
                                         "executor's", SLURM, check=_line)
    account: str | None = _field(None, "#SBATCH --account of MPI blocks; default the executor's",
                                 SLURM, check=_line)
    qos: str | None = _field(None, "#SBATCH --qos of MPI blocks; default the executor's", SLURM,
                             check=_line)
    constraint: str | None = _field(None, "#SBATCH --constraint of MPI blocks; default the "
                                          "executor's", SLURM, check=_line)
    mem_per_node: int | None = _field(None, "#SBATCH --mem of MPI blocks in GB; default the "
                                            "executor's", SLURM, minimum=1, unit="GB")
    scheduler_options: list[str] | str | None = _field(
        None, "extra #SBATCH lines of MPI blocks (e.g. --gres=gpu:4); default the executor's",
        SLURM, check=_sbatch_lines)
    worker_init: list[str] | str | None = _field(
        None, "shell lines run first in MPI blocks (e.g. module load cuda); default the "
              "executor's", SLURM, check=_lines)


#: the MPI blocks' settings that default to the executor's (``mpi.<name>: null``)
MPI_INHERITED = ("walltime", "partition", "account", "qos", "constraint", "mem_per_node",
                 "scheduler_options", "worker_init")


@dataclasses.dataclass
class DriverSettings:
    """The ``driver:`` section (slurm): the batch job that runs ``hessflow run``."""

    walltime: str | int | None = _field(None, "HH:MM:SS of the driver job; default executor "
                                              "walltime", SLURM, check=_walltime)
    cpus_per_task: int = _field(1, "#SBATCH --cpus-per-task of the driver job", SLURM, minimum=1)
    mem: str | None = _field(None, "#SBATCH --mem of the driver job, e.g. 4G", SLURM, check=_line)
    scheduler_options: list[str] | str | None = _field(
        None, "extra #SBATCH lines; default the executor's scheduler_options", SLURM,
        check=_sbatch_lines)


# --------------------------------------------------------------------------- the profile
@dataclasses.dataclass
class ExecutorProfile:
    """Where and how the workflow's tasks run; built by :meth:`from_mapping`."""

    kind: str = _field("local", "threads | local | slurm", choices=KINDS)
    workers: int | None = _field(None, "concurrent tasks (threads/local: per machine, default "
                                       "cores // threads_per_task; slurm: per node, default "
                                       "cores_per_node // threads_per_task or all node cores)",
                                 minimum=1)
    threads_per_task: int = _field(1, "cores per task; exported as OMP/OPENBLAS/MKL_NUM_THREADS "
                                      "(local/slurm)", minimum=1)
    retries: int = _field(2, "Parsl retries of a failed task", minimum=0)
    monitoring: bool = _field(False, "Parsl MonitoringHub, SQLite at <run_dir>/monitoring.db")
    run_dir: str | None = _field(None, "Parsl run directory; relative to the workflow run dir; "
                                       "default <run_dir>/parsl", check=_path)
    max_idletime: float = _field(120.0, "seconds an idle block is kept before scale-in",
                                 minimum=0, maximum=1e9, unit="s")
    worker_init: list[str] | str = _field([], "shell lines run before workers start (module "
                                              "loads, ...)", ("local", "slurm"), check=_lines)
    venv: str | None = _field(None, "virtualenv to activate on workers; default the running "
                                    "interpreter's prefix", ("local", "slurm"), check=_path)
    mpi: MPISettings | None = _field(None, "MPI training executor section (MPISettings); absent "
                                           "= no 'mpi' executor")
    # GPU nodes (local: this machine's GPUs)
    gpus_per_node: int | None = _field(None, "GPUs per node: one worker per GPU, each seeing only "
                                             "its own (CUDA_VISIBLE_DEVICES, Parsl "
                                             "available_accelerators); slurm: #SBATCH --gres",
                                       ("local", "slurm"), minimum=1)
    gpu_type: str | None = _field(None, "gres GPU type (--gres=gpu:TYPE:N), optional", SLURM,
                                  check=_line)
    # slurm only
    partition: str | None = _field(None, "#SBATCH --partition", SLURM, check=_line)
    account: str | None = _field(None, "#SBATCH --account", SLURM, check=_line)
    qos: str | None = _field(None, "#SBATCH --qos", SLURM, check=_line)
    constraint: str | None = _field(None, "#SBATCH --constraint", SLURM, check=_line)
    walltime: str | int = _field("01:00:00", "HH:MM:SS per block (worker job)", SLURM,
                                 check=_walltime)
    nodes_per_block: int = _field(1, "nodes per worker job", SLURM, minimum=1)
    init_blocks: int = _field(1, "worker jobs submitted at start", SLURM, minimum=0)
    min_blocks: int = _field(0, "worker jobs kept when idle", SLURM, minimum=0)
    max_blocks: int = _field(1, "most worker jobs at once", SLURM, minimum=1)
    parallelism: float = _field(1.0, "Parsl scale-out aggressiveness, 0..1", SLURM, minimum=0,
                                maximum=1)
    cores_per_node: int | None = _field(None, "#SBATCH --cpus-per-task for the worker pool; "
                                              "PARSL_CORES", SLURM, minimum=1)
    mem_per_node: int | None = _field(None, "#SBATCH --mem in GB", SLURM, minimum=1, unit="GB")
    exclusive: bool = _field(False, "#SBATCH --exclusive", SLURM)
    scheduler_options: list[str] | str = _field([], "extra #SBATCH lines (or bare options like "
                                                    "--gres=gpu:1)", SLURM, check=_sbatch_lines)
    launcher: str = _field("auto", "how the worker pool starts on the block's nodes: auto = "
                                   "single for 1 node, srun otherwise", SLURM,
                           choices=("auto", "single", "srun"))
    address: str | None = _field(None, "address workers use to reach the driver; default: Parsl "
                                       "probes all", SLURM, check=_line)
    driver: DriverSettings | None = _field(None, "the driver's own batch job (DriverSettings)",
                                           SLURM)

    @classmethod
    def from_mapping(cls, mapping: Mapping | None, where: str = PREFIX) -> ExecutorProfile:
        """Check an ``executor:`` mapping (None: ``kind: local``) and fill every default: local
        ``workers`` from this machine's cores, the driver's and MPI blocks' walltime from the
        executor's. The first problem raises a one-line :class:`SettingsError`."""
        if mapping is None:
            mapping = {}
        if not isinstance(mapping, Mapping):
            raise settings_error(where, f"expected a mapping, got {type(mapping).__name__} "
                                        f"{mapping!r}")
        kind = from_mapping(_Kind, {"kind": mapping.get("kind", "local")}, where).kind
        mpi_d, driver_d = mapping.get("mpi"), mapping.get("driver")
        p = _section(cls, mapping, kind, where, mpi=None, driver=None)
        if mpi_d not in (None, False):
            p.mpi = _section(MPISettings, mpi_d, kind, f"{where}.mpi")
        if kind == "slurm":
            p.driver = _section(DriverSettings, driver_d or {}, kind, f"{where}.driver")
            if p.driver.scheduler_options is None:
                p.driver.scheduler_options = list(p.scheduler_options)
            if p.driver.walltime is None:
                p.driver.walltime = p.walltime
            if p.mpi is not None:
                for name in MPI_INHERITED:
                    if getattr(p.mpi, name) is None:
                        v = getattr(p, name)
                        setattr(p.mpi, name, list(v) if isinstance(v, list) else v)
        if p.gpu_type is not None and p.gpus_per_node is None:
            raise settings_error(f"{where}.gpu_type", "needs gpus_per_node")
        if p.gpus_per_node:  # one worker per GPU; the node's cores shared among them
            if "threads_per_task" not in mapping and p.cores_per_node:
                p.threads_per_task = max(1, p.cores_per_node // p.gpus_per_node)
            if p.workers is None:
                p.workers = p.gpus_per_node
            elif p.workers > p.gpus_per_node:
                raise settings_error(f"{where}.workers", f"{p.workers} workers for "
                                     f"{p.gpus_per_node} GPUs: at most one worker per GPU")
        p._check_cores(where)
        return p

    @property
    def gres(self) -> str | None:
        """The worker blocks' ``#SBATCH --gres`` line (None without GPUs); the driver job's
        scheduler options do not get it (it needs no GPU)."""
        if not self.gpus_per_node:
            return None
        kind = f"gpu:{self.gpu_type}" if self.gpu_type else "gpu"
        return f"#SBATCH --gres={kind}:{self.gpus_per_node}"

    @property
    def accelerators(self) -> list[str]:
        """Parsl's ``available_accelerators``: the GPU indices 0..N-1 a block's workers take,
        one each, as CUDA_VISIBLE_DEVICES ([] without GPUs)."""
        return [str(i) for i in range(self.gpus_per_node or 0)]

    def _check_cores(self, where: str):
        """Workers x threads_per_task fit the machine (threads/local) or the node (slurm)."""
        tpt = self.threads_per_task
        if self.kind in ("threads", "local"):
            cores, what = cpu_count(), "the {} cores of this machine"
        else:
            cores, what = self.cores_per_node, "cores_per_node {}"
            if self.min_blocks > self.max_blocks:
                raise settings_error(f"{where}.min_blocks",
                                     f"{self.min_blocks} exceeds max_blocks {self.max_blocks}")
            if self.init_blocks > self.max_blocks:
                raise settings_error(f"{where}.init_blocks",
                                     f"{self.init_blocks} exceeds max_blocks {self.max_blocks}")
        if cores is None:
            return
        if tpt > cores:
            raise settings_error(f"{where}.threads_per_task", f"{tpt} exceeds {what.format(cores)}")
        if self.workers is None and self.kind != "slurm":
            self.workers = max(1, cores // tpt)
        elif self.workers is not None and self.workers * tpt > cores:
            raise settings_error(f"{where}.workers",
                                 f"{self.workers} workers x {tpt} threads_per_task = "
                                 f"{self.workers * tpt} exceeds {what.format(cores)}")

    def mpi_or_default(self) -> MPISettings:
        """The ``mpi`` section, or its defaults when the profile has none."""
        return self.mpi if self.mpi is not None else MPISettings()


@dataclasses.dataclass
class _Kind:
    """The ``kind`` alone: checked first, as the other fields' rules depend on it."""

    kind: str = dataclasses.field(default="local", metadata=meta(choices=KINDS))


def as_profile(profile: ExecutorProfile | Mapping | None) -> ExecutorProfile:
    """``profile`` itself, or the profile built from an ``executor:`` mapping."""
    if isinstance(profile, ExecutorProfile):
        return profile
    return ExecutorProfile.from_mapping(profile)

