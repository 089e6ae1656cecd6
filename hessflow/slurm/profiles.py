"""Executor profiles -> Parsl ``Config`` objects, in one place.

A *profile* is the ``executor:`` mapping of a workflow YAML file::

    executor:
      kind: slurm            # threads | local | slurm
      partition: compute
      walltime: "02:00:00"
      threads_per_task: 4
      ...

:func:`validate_profile` checks it and fills the documented defaults (``FIELDS``);
:func:`parsl_config` compiles it to a :class:`parsl.config.Config`;
:func:`sbatch_script` / :func:`submit` render and submit the batch job that runs the
*driver* (``hessflow run WORKFLOW.yaml``) on a Slurm cluster; :func:`mpi_launch_prefix`
gives the command prefix for the MPI training stage. docs/slurm.md documents every field.

Executors in the compiled config are labelled ``"qm"`` (the task pool) and, only when
the profile has an ``mpi:`` section, ``"mpi"`` (a pool for MPI-parallel training).
With both present, apps must name their executor (``@python_app(executors=["qm"])``),
otherwise Parsl picks one at random.

Validation errors are :class:`hessflow.errors.HessflowError` with a one-line message
that starts with the dotted field name, e.g.
``executor.walltime: '1 hour' is not HH:MM:SS``.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

from hessflow.errors import HessflowError

__all__ = [
    "FIELDS", "KINDS", "QM_LABEL", "MPI_LABEL", "validate_profile", "parsl_config",
    "mpi_launch_prefix", "sbatch_script", "submit", "available_cores", "worker_init",
    "worker_probe",
]

KINDS = ("threads", "local", "slurm")
QM_LABEL = "qm"
MPI_LABEL = "mpi"
PREFIX = "executor"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# Output variables of the driver's own job that would leak, through sbatch's default
# --export=ALL, into the worker jobs the driver submits and confuse srun there.
_DRIVER_UNSET = ("SLURM_CPUS_PER_TASK", "SLURM_MEM_PER_CPU", "SLURM_MEM_PER_NODE",
                 "SLURM_TRES_PER_TASK", "SLURM_NTASKS", "SLURM_NPROCS")

_WALLTIME = re.compile(r"^(\d+):([0-5]\d):([0-5]\d)$")


# --------------------------------------------------------------------------- checks
def _err(field: str, msg: str) -> HessflowError:
    return HessflowError(f"{field}: {' '.join(str(msg).split())}")


def _int(lo: int | None = None, hi: int | None = None, none: bool = False) -> Callable:
    def check(field: str, v: Any) -> Any:
        if v is None and none:
            return None
        if isinstance(v, bool) or not isinstance(v, int):
            raise _err(field, f"{v!r} is not an integer")
        if lo is not None and v < lo:
            raise _err(field, f"{v} is below the minimum {lo}")
        if hi is not None and v > hi:
            raise _err(field, f"{v} is above the maximum {hi}")
        return v
    return check


def _float(lo: float, hi: float) -> Callable:
    def check(field: str, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _err(field, f"{v!r} is not a number")
        if not lo <= v <= hi:
            raise _err(field, f"{v} is not between {lo} and {hi}")
        return float(v)
    return check


def _bool(field: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise _err(field, f"{v!r} is not true/false")
    return v


def _str(none: bool = True, choices: tuple[str, ...] | None = None) -> Callable:
    def check(field: str, v: Any) -> Any:
        if v is None and none:
            return None
        if not isinstance(v, str) or not v.strip():
            raise _err(field, f"{v!r} is not a non-empty string")
        if "\n" in v:
            raise _err(field, "must be a single line")
        if choices and v not in choices:
            raise _err(field, f"{v!r} is not one of {', '.join(choices)}")
        return v
    return check


def _walltime(none: bool = False) -> Callable:
    def check(field: str, v: Any) -> Any:
        if v is None and none:
            return None
        # PyYAML (YAML 1.1) reads an unquoted 1:30:00 as the sexagesimal integer 5400:
        # take integers as seconds.
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            v = f"{v // 3600:02d}:{v % 3600 // 60:02d}:{v % 60:02d}"
        if not isinstance(v, str) or not _WALLTIME.match(v.strip()):
            raise _err(field, f"{v!r} is not HH:MM:SS")
        v = v.strip()
        h, m, _ = (int(x) for x in v.split(":"))
        if h * 60 + m < 1:
            raise _err(field, f"{v!r} is shorter than one minute")
        return v
    return check


def _lines(field: str, v: Any) -> list[str]:
    """A string (split on newlines) or a list of strings -> list of lines."""
    if v is None:
        return []
    if isinstance(v, str):
        return [ln for ln in v.splitlines() if ln.strip()]
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        out = []
        for x in v:
            if "\n" in x.strip():
                raise _err(field, f"entry {x!r} spans several lines; give one line per entry")
            if x.strip():
                out.append(x.strip())
        return out
    raise _err(field, f"{v!r} is not a string or a list of strings")


def _sbatch_lines(field: str, v: Any) -> list[str]:
    """scheduler_options: '--gres=gpu:1' or '#SBATCH --gres=gpu:1' -> '#SBATCH --gres=gpu:1'."""
    out = []
    for ln in _lines(field, v):
        if ln.startswith("#SBATCH"):
            out.append(ln)
        elif ln.startswith("-"):
            out.append(f"#SBATCH {ln}")
        else:
            raise _err(field, f"{ln!r} is neither an '#SBATCH ...' line nor an option like '--gres=gpu:1'")
    return out


def _path(field: str, v: Any) -> Any:
    if v is None:
        return None
    if not isinstance(v, (str, os.PathLike)) or not str(v).strip():
        raise _err(field, f"{v!r} is not a path")
    return os.fspath(v)


# --------------------------------------------------------------------------- schema
# name -> (kinds it applies to, checker, default, one-line doc). A default that is a
# callable is computed at validation time. docs/slurm.md mirrors this table.
_ALL = KINDS
_PROC = ("local", "slurm")
_S = ("slurm",)

FIELDS: dict[str, tuple[tuple[str, ...], Callable, Any, str]] = {
    "kind": (_ALL, _str(False, KINDS), "local", "threads | local | slurm"),
    "workers": (_ALL, _int(1, none=True), None,
                "concurrent tasks (threads/local: per machine, default cores // threads_per_task; "
                "slurm: per node, default cores_per_node // threads_per_task or all node cores)"),
    "threads_per_task": (_ALL, _int(1), 1,
                         "cores per task; exported as OMP/OPENBLAS/MKL_NUM_THREADS (local/slurm)"),
    "retries": (_ALL, _int(0), 2, "Parsl retries of a failed task"),
    "monitoring": (_ALL, _bool, False, "Parsl MonitoringHub, SQLite at <run_dir>/monitoring.db"),
    "run_dir": (_ALL, _path, None, "Parsl run directory; relative to the workflow run dir; default <run_dir>/parsl"),
    "max_idletime": (_ALL, _float(0, 1e9), 120.0, "seconds an idle block is kept before scale-in"),
    "worker_init": (_PROC, _lines, [], "shell lines run before workers start (module loads, ...)"),
    "venv": (_PROC, _path, None, "virtualenv to activate on workers; default the running interpreter's prefix"),
    "mpi": (_ALL, None, None, "MPI training executor section (see MPI_FIELDS); absent = no 'mpi' executor"),
    # slurm only
    "partition": (_S, _str(), None, "#SBATCH --partition"),
    "account": (_S, _str(), None, "#SBATCH --account"),
    "qos": (_S, _str(), None, "#SBATCH --qos"),
    "constraint": (_S, _str(), None, "#SBATCH --constraint"),
    "walltime": (_S, _walltime(), "01:00:00", "HH:MM:SS per block (worker job)"),
    "nodes_per_block": (_S, _int(1), 1, "nodes per worker job"),
    "init_blocks": (_S, _int(0), 1, "worker jobs submitted at start"),
    "min_blocks": (_S, _int(0), 0, "worker jobs kept when idle"),
    "max_blocks": (_S, _int(1), 1, "most worker jobs at once"),
    "parallelism": (_S, _float(0, 1), 1.0, "Parsl scale-out aggressiveness, 0..1"),
    "cores_per_node": (_S, _int(1, none=True), None, "#SBATCH --cpus-per-task for the worker pool; PARSL_CORES"),
    "mem_per_node": (_S, _int(1, none=True), None, "#SBATCH --mem in GB"),
    "exclusive": (_S, _bool, False, "#SBATCH --exclusive"),
    "scheduler_options": (_S, _sbatch_lines, [], "extra #SBATCH lines (or bare options like --gres=gpu:1)"),
    "launcher": (_S, _str(False, ("auto", "single", "srun")), "auto",
                 "how the worker pool starts on the block's nodes: auto = single for 1 node, srun otherwise"),
    "address": (_S, _str(), None, "address workers use to reach the driver; default: Parsl probes all"),
    "driver": (_S, None, None, "the driver's own batch job (see DRIVER_FIELDS)"),
}

MPI_FIELDS: dict[str, tuple[tuple[str, ...], Callable, Any, str]] = {
    "ranks": (_ALL, _int(1), 2, "default MPI ranks per training task"),
    "launcher": (_ALL, _str(False, ("auto", "mpiexec", "srun")), "auto",
                 "auto = srun inside a Slurm allocation (SLURM_JOB_ID set), mpiexec otherwise"),
    "mpiexec": (_ALL, _str(), None, "mpiexec to use; default <venv>/bin/mpiexec if present, else mpiexec"),
    "srun_args": (_ALL, _lines, ["--mpi=pmi2"],
                  "extra srun arguments; --mpi=pmi2 suits the venv's MPICH (plain srun gives N singletons)"),
    "max_tasks": (_ALL, _int(1), 1, "MPI tasks run at once (threads pool size / MPIExecutor max_workers_per_block)"),
    "nodes_per_block": (_S, _int(1), 1, "nodes per MPI block (slurm)"),
    "max_blocks": (_S, _int(1), 1, "most MPI blocks at once (slurm)"),
    "walltime": (_S, _walltime(none=True), None, "HH:MM:SS of an MPI block; default executor walltime"),
    "exclusive": (_S, _bool, True,
                  "#SBATCH --exclusive for MPI blocks: a block is one task, srun -n N inside needs the node's cores"),
}

DRIVER_FIELDS: dict[str, tuple[tuple[str, ...], Callable, Any, str]] = {
    "walltime": (_S, _walltime(none=True), None, "HH:MM:SS of the driver job; default executor walltime"),
    "cpus_per_task": (_S, _int(1), 1, "#SBATCH --cpus-per-task of the driver job"),
    "mem": (_S, _str(), None, "#SBATCH --mem of the driver job, e.g. 4G"),
    "scheduler_options": (_S, None, None, "extra #SBATCH lines; default the executor's scheduler_options"),
}


def _check_section(d: Any, table: dict, kind: str, where: str) -> dict:
    if d is None:
        d = {}
    if not isinstance(d, dict):
        raise _err(where, f"expected a mapping, got {type(d).__name__} {d!r}")
    unknown = [k for k in d if k not in table]
    if unknown:
        k = unknown[0]
        close = difflib.get_close_matches(str(k), list(table), n=1) or \
            [t for t in table if t.startswith(str(k)) or str(k).startswith(t)][:1]
        hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(table)})"
        more = f"; also unknown: {', '.join(map(str, unknown[1:]))}" if len(unknown) > 1 else ""
        raise _err(f"{where}.{k}", f"unknown key{hint}{more}")
    out: dict[str, Any] = {}
    for name, (kinds, check, default, _doc) in table.items():
        field = f"{where}.{name}"
        if name in d and d[name] is not None and kind not in kinds:
            raise _err(field, f"only valid for kind {' / '.join(repr(k) for k in kinds)}, not {kind!r}")
        if kind not in kinds:
            continue
        v = d.get(name, default)
        if v is None:
            v = default
        if check is not None:
            v = check(field, v)
        out[name] = list(v) if isinstance(v, list) else v
    return out


def available_cores() -> int:
    """Cores this process may use (affinity mask aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def validate_profile(d: dict | None) -> dict:
    """Check an ``executor:`` mapping and return a new dict with every default filled.

    Raises :class:`HessflowError` (one line, naming the field) on the first problem."""
    if d is None:
        d = {}
    if not isinstance(d, dict):
        raise _err(PREFIX, f"expected a mapping, got {type(d).__name__} {d!r}")
    kind = d.get("kind", "local")
    _str(False, KINDS)(f"{PREFIX}.kind", kind)
    p = _check_section(d, FIELDS, kind, PREFIX)

    if d.get("mpi") not in (None, False):
        p["mpi"] = _check_section(d["mpi"], MPI_FIELDS, kind, f"{PREFIX}.mpi")
    else:
        p["mpi"] = None
    if kind == "slurm":
        drv = d.get("driver") or {}
        p["driver"] = _check_section(drv, DRIVER_FIELDS, kind, f"{PREFIX}.driver")
        so = drv.get("scheduler_options") if isinstance(drv, dict) else None
        p["driver"]["scheduler_options"] = (
            _sbatch_lines(f"{PREFIX}.driver.scheduler_options", so) if so is not None
            else list(p["scheduler_options"]))
        if p["driver"]["walltime"] is None:
            p["driver"]["walltime"] = p["walltime"]
        if p["mpi"] is not None and p["mpi"]["walltime"] is None:
            p["mpi"]["walltime"] = p["walltime"]
    else:
        p.pop("driver", None)

    tpt = p["threads_per_task"]
    if kind in ("threads", "local"):
        cores = available_cores()
        if tpt > cores:
            raise _err(f"{PREFIX}.threads_per_task", f"{tpt} exceeds the {cores} cores of this machine")
        if p["workers"] is None:
            p["workers"] = max(1, cores // tpt)
        elif p["workers"] * tpt > cores:
            raise _err(f"{PREFIX}.workers",
                       f"{p['workers']} workers x {tpt} threads_per_task = {p['workers'] * tpt} "
                       f"exceeds the {cores} cores of this machine")
    else:
        cpn = p["cores_per_node"]
        if cpn is not None and tpt > cpn:
            raise _err(f"{PREFIX}.threads_per_task", f"{tpt} exceeds cores_per_node {cpn}")
        if cpn is not None and p["workers"] is not None and p["workers"] * tpt > cpn:
            raise _err(f"{PREFIX}.workers",
                       f"{p['workers']} workers x {tpt} threads_per_task = {p['workers'] * tpt} "
                       f"exceeds cores_per_node {cpn}")
        if p["min_blocks"] > p["max_blocks"]:
            raise _err(f"{PREFIX}.min_blocks", f"{p['min_blocks']} exceeds max_blocks {p['max_blocks']}")
        if p["init_blocks"] > p["max_blocks"]:
            raise _err(f"{PREFIX}.init_blocks", f"{p['init_blocks']} exceeds max_blocks {p['max_blocks']}")
    return p


def _ensure(profile: dict) -> dict:
    """Accept both raw and validated profiles (validation is idempotent)."""
    if isinstance(profile, dict) and profile.get("_validated"):
        return profile
    p = validate_profile(_strip(profile))
    p["_validated"] = True
    return p


def _strip(profile: Any) -> Any:
    if isinstance(profile, dict):
        return {k: v for k, v in profile.items() if k != "_validated"}
    return profile


# --------------------------------------------------------------------------- worker init
def _venv(p: dict) -> Path:
    return Path(p.get("venv") or sys.prefix)


def _pythonpath_root() -> str | None:
    """The source tree holding ``hessflow`` when it is not installed into site-packages."""
    import hessflow
    root = Path(hessflow.__file__).resolve().parent.parent
    if "site-packages" in root.parts or "dist-packages" in root.parts:
        return None
    return str(root)


def worker_init(profile: dict, threads: int | None = None) -> str:
    """Shell lines run before a worker pool (or the driver) starts.

    User lines first (module loads), then the virtualenv (``source bin/activate`` when
    it exists, else its bin/ first on PATH), then the thread-count exports, then the
    hessflow source tree on PYTHONPATH when hessflow is not installed."""
    p = _ensure(profile)
    n = p["threads_per_task"] if threads is None else threads
    lines = list(p.get("worker_init") or [])
    venv = _venv(p)
    bindir = venv / "bin"
    if (bindir / "activate").is_file():
        lines.append(f"source {shlex.quote(str(bindir / 'activate'))}")
    lines.append(f"export PATH={shlex.quote(str(bindir))}:\"$PATH\"")
    lines.append(" ".join(["export"] + [f"{v}={n}" for v in THREAD_VARS]))
    root = _pythonpath_root()
    if root:
        lines.append(f"export PYTHONPATH={shlex.quote(root)}${{PYTHONPATH:+:$PYTHONPATH}}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- parsl config
def _resolve_run_dir(p: dict, run_dir: str | os.PathLike) -> str:
    base = Path(run_dir)
    rd = Path(p["run_dir"]) if p.get("run_dir") else Path("parsl")
    return str(rd if rd.is_absolute() else (base / rd).resolve())


def _slurm_provider(p: dict, *, nodes: int, init_blocks: int, min_blocks: int, max_blocks: int,
                    walltime: str, launcher, cores_per_node, init: str, exclusive: bool):
    from parsl.providers import SlurmProvider
    return SlurmProvider(
        partition=p["partition"], account=p["account"], qos=p["qos"], constraint=p["constraint"],
        nodes_per_block=nodes, cores_per_node=cores_per_node, mem_per_node=p["mem_per_node"],
        init_blocks=init_blocks, min_blocks=min_blocks, max_blocks=max_blocks,
        parallelism=p["parallelism"], walltime=walltime,
        scheduler_options="\n".join(p["scheduler_options"]),
        worker_init=init, exclusive=exclusive, launcher=launcher,
    )


def _interchange_cmd() -> str | None:
    """Parsl starts ``interchange.py`` from the driver's PATH; the driver may run as
    ``.venv/bin/python`` without the venv on PATH, so name the script by its path."""
    cand = Path(sys.executable).parent / "interchange.py"
    if cand.is_file():
        return str(cand)
    return shutil.which("interchange.py")


def parsl_config(profile: dict, run_dir: str | os.PathLike):
    """Compile a profile to a :class:`parsl.config.Config` (not loaded).

    ``run_dir`` is the workflow's run directory; Parsl's own rundir is
    ``<run_dir>/parsl`` unless the profile's ``run_dir`` says otherwise."""
    from parsl.config import Config
    from parsl.executors import HighThroughputExecutor, ThreadPoolExecutor

    p = _ensure(profile)
    kind = p["kind"]
    rundir = _resolve_run_dir(p, run_dir)
    tpt = p["threads_per_task"]
    executors: list = []
    ix = _interchange_cmd()
    htex_ix = {"interchange_launch_cmd": [ix]} if ix else {}
    mpi_ix = {"interchange_launch_cmd": ix} if ix else {}  # MPIExecutor types it as str

    if kind == "threads":
        executors.append(ThreadPoolExecutor(label=QM_LABEL, max_threads=p["workers"]))
        if p["mpi"] is not None:
            executors.append(ThreadPoolExecutor(label=MPI_LABEL, max_threads=p["mpi"]["max_tasks"]))
    elif kind == "local":
        from parsl.providers import LocalProvider
        executors.append(HighThroughputExecutor(
            label=QM_LABEL,
            address="127.0.0.1",
            **htex_ix,
            cores_per_worker=tpt,
            max_workers_per_node=p["workers"],
            provider=LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1,
                                   worker_init=worker_init(p)),
        ))
        if p["mpi"] is not None:
            executors.append(ThreadPoolExecutor(label=MPI_LABEL, max_threads=p["mpi"]["max_tasks"]))
    else:  # slurm
        from parsl.launchers import SimpleLauncher, SingleNodeLauncher, SrunLauncher
        from parsl.executors import MPIExecutor
        lk = p["launcher"]
        if lk == "auto":
            lk = "single" if p["nodes_per_block"] == 1 else "srun"
        launcher = SingleNodeLauncher() if lk == "single" else SrunLauncher()
        executors.append(HighThroughputExecutor(
            label=QM_LABEL,
            address=p["address"],
            **htex_ix,
            cores_per_worker=tpt,
            max_workers_per_node=p["workers"],
            provider=_slurm_provider(
                p, nodes=p["nodes_per_block"], init_blocks=p["init_blocks"],
                min_blocks=p["min_blocks"], max_blocks=p["max_blocks"], walltime=p["walltime"],
                launcher=launcher, cores_per_node=p["cores_per_node"], init=worker_init(p),
                exclusive=p["exclusive"]),
        ))
        m = p["mpi"]
        if m is not None:
            executors.append(MPIExecutor(
                label=MPI_LABEL,
                address=p["address"],
                mpi_launcher="srun",
                **mpi_ix,
                max_workers_per_block=m["max_tasks"],
                provider=_slurm_provider(
                    p, nodes=m["nodes_per_block"], init_blocks=0, min_blocks=0,
                    max_blocks=m["max_blocks"], walltime=m["walltime"], launcher=SimpleLauncher(),
                    cores_per_node=None, init=worker_init(p), exclusive=m["exclusive"]),
            ))

    monitoring = None
    if p["monitoring"]:
        try:
            import sqlalchemy  # noqa: F401  (parsl's monitoring database needs it)
            from parsl.monitoring import MonitoringHub
        except ImportError as e:
            raise _err(f"{PREFIX}.monitoring",
                       f"needs Parsl's monitoring extras (pip install 'parsl[monitoring]'): {e}") from None
        Path(rundir).mkdir(parents=True, exist_ok=True)
        monitoring = MonitoringHub(logging_endpoint=f"sqlite:///{rundir}/monitoring.db",
                                   resource_monitoring_interval=30)

    return Config(
        executors=executors,
        retries=p["retries"],
        run_dir=rundir,
        strategy_period=1,
        max_idletime=p["max_idletime"],
        monitoring=monitoring,
        usage_tracking=0,
    )


def worker_probe() -> dict:
    """Facts about the process that runs it; wrap with ``python_app`` to check that a
    profile's workers start, import hessflow and see the intended environment."""
    import socket
    env = os.environ
    return {"host": socket.gethostname(), "pid": os.getpid(), "python": sys.executable,
            "omp": env.get("OMP_NUM_THREADS"), "openblas": env.get("OPENBLAS_NUM_THREADS"),
            "mkl": env.get("MKL_NUM_THREADS"), "path0": env.get("PATH", "").split(":")[0],
            "slurm_job": env.get("SLURM_JOB_ID"), "parsl_cores": env.get("PARSL_CORES")}


# --------------------------------------------------------------------------- MPI
def mpi_launch_prefix(profile: dict, ranks: int | None = None) -> list[str]:
    """Command prefix that starts ``ranks`` MPI processes.

    ``["srun", "-n", "2", ...srun_args]`` inside a Slurm allocation (``SLURM_JOB_ID``
    set; e.g. an ``mpi`` block of a slurm profile), otherwise
    ``[<venv>/bin/mpiexec, "-n", "2"]``. ``mpi.launcher`` forces one or the other."""
    p = _ensure(profile)
    m = p["mpi"] if p["mpi"] is not None else _check_section({}, MPI_FIELDS, p["kind"], f"{PREFIX}.mpi")
    n = m["ranks"] if ranks is None else _int(1)(f"{PREFIX}.mpi.ranks", ranks)
    how = m["launcher"]
    if how == "auto":
        how = "srun" if os.environ.get("SLURM_JOB_ID") else "mpiexec"
    if how == "srun":
        return ["srun", "-n", str(n), *[a for ln in m["srun_args"] for a in shlex.split(ln)]]
    exe = m["mpiexec"]
    if exe is None:
        cand = _venv(p) / "bin" / "mpiexec"
        exe = str(cand) if cand.exists() else (shutil.which("mpiexec") or "mpiexec")
    return [exe, "-n", str(n)]


# --------------------------------------------------------------------------- driver job
def sbatch_script(profile: dict, command: list[str], job_name: str, log_dir: str | os.PathLike,
                  workdir: str | os.PathLike | None = None) -> str:
    """The batch script that runs the driver ``command`` (e.g. ``["hessflow", "run",
    "wf.yaml"]``) on the cluster, with the profile's partition/account/qos/constraint,
    ``driver.walltime``/``cpus_per_task``/``mem``, scheduler options and worker_init
    (module loads, venv, thread exports with ``driver.cpus_per_task`` threads).
    Output goes to ``<log_dir>/<job_name>.<jobid>.out`` / ``.err``; :func:`submit`
    creates ``log_dir`` (Slurm fails a job whose log directory does not exist)."""
    p = _ensure(profile)
    if p["kind"] != "slurm":
        raise _err(f"{PREFIX}.kind", f"a driver batch script needs kind 'slurm', not {p['kind']!r}")
    if not command or not all(isinstance(c, str) for c in command):
        raise _err("command", f"{command!r} is not a non-empty list of strings")
    if not re.fullmatch(r"[A-Za-z0-9_.+-]+", job_name or ""):
        raise _err("job_name", f"{job_name!r} may only use letters, digits and _.+-")
    d = p["driver"]
    log_dir = Path(log_dir).resolve()
    workdir = Path(workdir or os.getcwd()).resolve()
    sb = [
        f"--job-name={job_name}",
        f"--output={log_dir / job_name}.%j.out",
        f"--error={log_dir / job_name}.%j.err",
        f"--chdir={workdir}",
        "--nodes=1",
        "--ntasks=1",
        f"--cpus-per-task={d['cpus_per_task']}",
        f"--time={d['walltime']}",
    ]
    for key, opt in (("partition", "partition"), ("account", "account"), ("qos", "qos"),
                     ("constraint", "constraint")):
        if p[key]:
            sb.append(f"--{opt}={p[key]}")
    if d["mem"]:
        sb.append(f"--mem={d['mem']}")
    lines = ["#!/bin/bash", *(f"#SBATCH {o}" for o in sb), *d["scheduler_options"], ""]
    lines += [
        "# generated by hessflow.slurm.profiles.sbatch_script",
        "# the driver submits worker jobs itself: keep this job's sizing out of theirs",
        "unset " + " ".join(_DRIVER_UNSET),
        worker_init(p, threads=d["cpus_per_task"]),
        'echo "hessflow driver: job $SLURM_JOB_ID on $(hostname) started $(date -Is)"',
        f"exec {shlex.join(command)}",
        "",
    ]
    return "\n".join(lines)


def submit(script_path: str | os.PathLike, sbatch: str = "sbatch") -> str:
    """``sbatch --parsable SCRIPT`` -> the job id (as a string)."""
    exe = shutil.which(sbatch)
    if exe is None:
        raise HessflowError(f"sbatch: {sbatch!r} not found on PATH (not on a Slurm login node?)")
    script_path = Path(script_path)
    if not script_path.is_file():
        raise HessflowError(f"sbatch: script {str(script_path)!r} does not exist")
    # Slurm fails a job (state FAILED, no log) whose --output/--error directory is missing
    for ln in script_path.read_text().splitlines():
        m = re.match(r"#SBATCH\s+(?:--output|--error|-o|-e)[=\s]\s*(\S+)", ln)
        if m and "%" not in os.path.dirname(m.group(1)):
            d = Path(os.path.dirname(m.group(1)) or ".")
            if d.is_absolute():
                d.mkdir(parents=True, exist_ok=True)
    try:
        r = subprocess.run([exe, "--parsable", str(script_path)], capture_output=True,
                           text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise HessflowError(f"sbatch: no answer within 60 s submitting {script_path}") from None
    if r.returncode != 0:
        text = r.stderr.strip() or r.stdout.strip() or f"exit status {r.returncode}"
        parts = [re.sub(r"^(sbatch:\s*)?(error:\s*)?", "", ln.strip()) for ln in text.splitlines()]
        raise HessflowError("sbatch: " + "; ".join(" ".join(x.split()) for x in parts if x.strip()))
    job_id = r.stdout.strip().splitlines()[-1].split(";")[0] if r.stdout.strip() else ""
    if not job_id.isdigit() and not re.fullmatch(r"\d+(_\d+)?", job_id):
        raise HessflowError(f"sbatch: could not read a job id from {r.stdout.strip()!r}")
    return job_id
