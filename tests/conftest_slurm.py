"""pytest plugin: a real single-node Slurm cluster for the session.

Enable it from tests/conftest.py with::

    pytest_plugins = ["tests.conftest_slurm"]

Fixture ``slurm_cluster`` (session scope) runs ``hessflow/slurm/cluster.sh start``
(installing the Debian packages when root and missing), points ``SLURM_CONF`` at the
generated config and yields a :class:`SlurmCluster`. The run that started the cluster
stops it (``cluster.sh stop``) when the whole run ends, from the controlling process, so
pytest-xdist workers never stop it under each other; one already up is reused and left
running. Check-and-start is serialised by a file lock. Two concurrent pytest runs are not
supported: the one that started the cluster stops it when it ends, under the other. Skips,
with the reason, when not root and no cluster is up, when Slurm cannot be installed, or when
``HESSFLOW_SKIP_SLURM=1``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

import hessflow  # noqa: E402

CLUSTER_SH = Path(hessflow.__file__).resolve().parent / "slurm" / "cluster.sh"
RUN_ID_ENV = "HESSFLOW_PYTEST_RUN_ID"


class SlurmJobs:
    """Job queries of a test cluster, through its :meth:`run` (a Slurm client command)."""

    def run(self, *cmd, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        """A Slurm client command (``sbatch``, ``scontrol`` ...) against this cluster."""
        return subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                              timeout=timeout, **kw)

    def job_state(self, job_id: str) -> str:
        """Slurm state of a job (PENDING, RUNNING, COMPLETED, FAILED, ...); '' if unknown."""
        r = self.run("scontrol", "show", "job", "-o", str(job_id))
        for tok in r.stdout.split():
            if tok.startswith("JobState="):
                return tok.split("=", 1)[1]
        return ""

    def wait_job(self, job_id: str, timeout: float = 120) -> str:
        """Wait until the job leaves PENDING/RUNNING/COMPLETING; return its final state."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            st = self.job_state(job_id)
            if st not in ("", "PENDING", "CONFIGURING", "RUNNING", "COMPLETING"):
                return st
            time.sleep(0.2)
        raise TimeoutError(f"job {job_id} still {self.job_state(job_id)!r} after {timeout} s")


@dataclass
class SlurmCluster(SlurmJobs):
    state_dir: Path
    conf: Path
    node: str
    started_here: bool


def _run(cmd: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLUSTER_SH), cmd], capture_output=True, text=True,
                          env=env, timeout=900, stdin=subprocess.DEVNULL)


def _state_dir() -> Path:
    return Path(os.environ.get("HESSFLOW_SLURM_DIR", "/tmp/hessflow-slurm"))


def _owner_mark(state_dir: Path) -> Path:
    """Names the pytest run that started the cluster (cluster.sh stop removes run/)."""
    return state_dir / "run" / "started-by-pytest"


def _started_by_this_run(state_dir: Path) -> bool:
    mark = _owner_mark(state_dir)
    return mark.is_file() and mark.read_text().strip() == os.environ.get(RUN_ID_ENV, "")


def pytest_configure(config):
    # One id for the whole run: set in the controlling process before pytest-xdist starts
    # its workers, which inherit it. The run that started the cluster also stops it, once.
    os.environ.setdefault(RUN_ID_ENV, uuid.uuid4().hex)


def pytest_sessionfinish(session):
    """Stop the cluster if this run started it -- in the controlling process only, after every
    worker is done (an xdist worker's session fixture must not stop what another still uses)."""
    if hasattr(session.config, "workerinput"):
        return
    state_dir = _state_dir()
    if _started_by_this_run(state_dir):
        try:
            _run("stop", dict(os.environ, HESSFLOW_SLURM_DIR=str(state_dir)))
        except subprocess.TimeoutExpired:
            print(f"conftest_slurm: cluster.sh stop timed out; the cluster in {state_dir} is "
                  f"still up", file=sys.stderr)


@contextlib.contextmanager
def _start_lock(state_dir: Path):
    """An exclusive lock beside the state directory, so one check-and-start runs at a time
    (workers of one run, or two runs). Opened read-only where another user's file is there."""
    state_dir.parent.mkdir(parents=True, exist_ok=True)
    path = state_dir.parent / f".{state_dir.name}.pytest.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:
        fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@pytest.fixture(scope="session")
def slurm_cluster():
    if os.environ.get("HESSFLOW_SKIP_SLURM") == "1":
        pytest.skip("HESSFLOW_SKIP_SLURM=1")
    if shutil.which("bash") is None:
        pytest.skip("bash not found; cluster.sh needs it")
    state_dir = _state_dir()
    env = dict(os.environ, HESSFLOW_SLURM_DIR=str(state_dir))
    conf = state_dir / "slurm.conf"

    if os.geteuid() != 0:  # can only reuse a running cluster: nothing to serialise
        if _run("status", env).returncode != 0:
            pytest.skip("no test Slurm cluster running and not root: run "
                        "`sudo hessflow/slurm/cluster.sh start` to enable the Slurm tests")
    # pytest-xdist workers may get here at once: one checks-and-starts at a time
    with _start_lock(state_dir):
        already = _run("status", env).returncode == 0
        if not already:
            r = _run("start", env)
            if r.returncode == 3:
                pytest.skip((r.stderr.strip().splitlines() or ["cluster.sh: Slurm unavailable"])[-1])
            if r.returncode != 0:
                pytest.fail(f"cluster.sh start failed (rc={r.returncode}):\n{r.stderr}{r.stdout}",
                            pytrace=False)
            _owner_mark(state_dir).write_text(os.environ.get(RUN_ID_ENV, "") + "\n")

    old_conf = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(conf)
    node = subprocess.run(["hostname", "-s"], capture_output=True, text=True).stdout.strip()
    try:
        yield SlurmCluster(state_dir, conf, node, started_here=_started_by_this_run(state_dir))
    finally:
        if old_conf is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old_conf


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist, keep every test that uses the cluster on one worker (--dist loadgroup),
    so the session fixture starts and stops the cluster once.

    ``tryfirst``: xdist turns the ``xdist_group`` mark into the ``@group`` node-id suffix in its
    own ``pytest_collection_modifyitems``; a mark added after that hook has run is ignored, and
    the Slurm tests were then spread over both workers, whose fixtures started (and stopped)
    the one cluster concurrently."""
    for item in items:
        if "slurm_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("slurm"))
