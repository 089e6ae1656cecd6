"""The shell set-up of workers and of the driver job: module loads, the virtualenv, thread counts,
the hessflow source tree; and a probe that reports what a worker really sees."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from .profile import ExecutorProfile, as_profile

__all__ = ["THREAD_VARS", "venv_of", "worker_init", "worker_probe"]

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def venv_of(profile: ExecutorProfile) -> Path:
    """The virtualenv of the workers: the profile's ``venv``, else this interpreter's prefix."""
    return Path(profile.venv or sys.prefix)


def _pythonpath_root() -> str | None:
    """The source tree holding ``hessflow`` when it is not installed into site-packages."""
    import hessflow
    root = Path(hessflow.__file__).resolve().parent.parent
    if "site-packages" in root.parts or "dist-packages" in root.parts:
        return None
    return str(root)


def worker_init(profile, threads: int | None = None, lines: list[str] | None = None) -> str:
    """Shell lines run before a worker pool (or the driver) starts.

    User lines first (module loads), then the virtualenv (``source bin/activate`` when
    it exists, else its bin/ first on PATH), then the thread-count exports (``threads``, default
    the profile's ``threads_per_task``), then the hessflow source tree on PYTHONPATH when
    hessflow is not installed. ``profile``: an :class:`ExecutorProfile` or its mapping;
    ``lines``: the user lines instead of the profile's ``worker_init`` (an MPI block's own)."""
    p = as_profile(profile)
    n = p.threads_per_task if threads is None else threads
    lines = list(p.worker_init if lines is None else lines)
    bindir = venv_of(p) / "bin"
    if (bindir / "activate").is_file():
        lines.append(f"source {shlex.quote(str(bindir / 'activate'))}")
    lines.append(f"export PATH={shlex.quote(str(bindir))}:\"$PATH\"")
    lines.append(" ".join(["export"] + [f"{v}={n}" for v in THREAD_VARS]))
    root = _pythonpath_root()
    if root:
        lines.append(f"export PYTHONPATH={shlex.quote(root)}${{PYTHONPATH:+:$PYTHONPATH}}")
    return "\n".join(lines)


def worker_probe() -> dict:
    """Facts about the process that runs it; wrap with ``python_app`` to check that a
    profile's workers start, import hessflow and see the intended environment."""
    import socket
    env = os.environ
    return {"host": socket.gethostname(), "pid": os.getpid(), "python": sys.executable,
            "omp": env.get("OMP_NUM_THREADS"), "openblas": env.get("OPENBLAS_NUM_THREADS"),
            "mkl": env.get("MKL_NUM_THREADS"), "path0": env.get("PATH", "").split(":")[0],
            "slurm_job": env.get("SLURM_JOB_ID"), "parsl_cores": env.get("PARSL_CORES")}
