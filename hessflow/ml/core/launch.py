"""Starting a training run on N ranks: the MPI command prefix and the spec-file entry point.

A training command (``hessflow train``, ``hessflow vae train``, ``hessflow bp train``) writes its
spec to ``OUT/spec.json`` and either trains in this process (one rank) or starts
``python -m MODULE OUT/spec.json`` on N ranks with :func:`mpi_launch_prefix` (``mpiexec``
locally, ``srun`` inside a Slurm allocation). Every rank then runs :func:`spec_main`. The Slurm
executor profiles use :func:`mpi_launch_prefix` too (ml is below slurm in the layers).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Mapping, Sequence

from ...errors import HessflowError
from ...settings import to_mapping

__all__ = ["LAUNCHERS", "mpi_launch_prefix", "launch", "spec_main"]

#: how ranks are started: ``auto`` = srun inside a Slurm allocation (SLURM_JOB_ID set), else mpiexec
LAUNCHERS = ("auto", "mpiexec", "srun")


def mpi_launch_prefix(ranks: int, launcher: str = "auto", mpiexec: str | None = None,
                      srun_args: Sequence[str] = ("--mpi=pmi2",), venv=None) -> list[str]:
    """The command prefix that starts ``ranks`` MPI processes.

    ``launcher``: ``auto`` (``srun`` when ``SLURM_JOB_ID`` is set, else ``mpiexec``),
    ``mpiexec`` or ``srun``. ``srun``: ``["srun", "-n", N, *srun_args]`` (each item of
    ``srun_args`` is split like a shell line). ``mpiexec``: ``[EXE, "-n", N]`` where EXE is
    ``mpiexec`` if given, else ``<venv>/bin/mpiexec`` when it exists (``venv`` default: the
    running interpreter's prefix), else ``mpiexec`` on PATH."""
    if launcher not in LAUNCHERS:
        raise HessflowError(f"mpi.launcher: {launcher!r} is not one of {', '.join(LAUNCHERS)}")
    if int(ranks) < 1:
        raise HessflowError(f"mpi.ranks: must be >= 1, got {ranks!r}")
    how = launcher
    if how == "auto":
        how = "srun" if os.environ.get("SLURM_JOB_ID") else "mpiexec"
    if how == "srun":
        return ["srun", "-n", str(ranks), *[a for ln in srun_args for a in shlex.split(ln)]]
    exe = mpiexec
    if exe is None:
        cand = Path(venv or sys.prefix) / "bin" / "mpiexec"
        exe = str(cand) if cand.exists() else (shutil.which("mpiexec") or "mpiexec")
    return [exe, "-n", str(ranks)]


def launch(spec, module: str, ranks: int, run_here: Callable[[str], object], what: str) -> str:
    """Write ``spec`` to ``<spec.out>/spec.json`` and train: ``run_here(spec_path)`` in this
    process for one rank, else ``python -m MODULE spec.json`` on ``ranks`` ranks (see
    :func:`mpi_launch_prefix`, default settings). ``spec``: a settings dataclass or a mapping,
    with an ``out`` directory. ``what`` names the command in the error when the ranks fail.
    Returns the spec path."""
    data = dict(spec) if isinstance(spec, Mapping) else to_mapping(spec)
    os.makedirs(data["out"], exist_ok=True)
    spec_path = os.path.join(data["out"], "spec.json")
    with open(spec_path, "w") as fh:
        json.dump(data, fh, indent=1, default=str)
    if ranks == 1:
        run_here(spec_path)
        return spec_path
    cmd = mpi_launch_prefix(ranks) + [sys.executable, "-m", module, spec_path]
    r = subprocess.run(cmd)
    if r.returncode != 0:
        raise HessflowError(f"{what}: {' '.join(cmd[:3])} ... exited with status {r.returncode}")
    return spec_path


def spec_main(run_spec_path: Callable[[str], object], prog: str, argv=None) -> int:
    """``python -m MODULE SPEC.json`` on every rank: ``run_spec_path(SPEC.json)``, turning a
    HessflowError into one line on stderr and exit status 2."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        run_spec_path(argv[0])
    except HessflowError as exc:
        print(f"hessflow {prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0
