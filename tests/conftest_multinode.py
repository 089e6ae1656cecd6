"""pytest plugin: a real multi-node Slurm cluster (network namespaces) for the session.

Enabled from tests/conftest.py (``pytest_plugins``). Fixture ``multinode_cluster`` (session
scope) runs ``hessflow/slurm/multinode.sh start`` -- one slurmctld and three slurmd nodes
hf-node1..3, each in its own network and UTS namespace on the private bridge ``hfbr0`` -- and
yields a :class:`MultinodeCluster`. Unlike ``slurm_cluster`` it does NOT set ``SLURM_CONF`` in
``os.environ`` (both clusters may serve one session): run Slurm commands and ``hessflow`` with
``env=cluster.env()``. The run that started the cluster stops it when the whole run ends (from
the controlling process, never from an xdist worker); one already up is reused and left running.
Check-and-start is serialised by a file lock. Skips, with the reason, when not root, when network
namespaces or Slurm are unavailable (multinode.sh exit status 3), or when
``HESSFLOW_SKIP_MULTINODE=1`` (or ``HESSFLOW_SKIP_SLURM=1``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import hessflow
from tests.conftest_slurm import SlurmJobs

MULTINODE_SH = Path(hessflow.__file__).resolve().parent / "slurm" / "multinode.sh"
RUN_ID_ENV = "HESSFLOW_PYTEST_MULTINODE_RUN_ID"
#: the login (driver) address on the bridge: a profile's ``address:`` for workers to reach Parsl
LOGIN_ADDR = "10.213.7.1"


@dataclass
class MultinodeCluster(SlurmJobs):
    state_dir: Path
    conf: Path
    nodes: list[str] = field(default_factory=list)
    login_addr: str = LOGIN_ADDR
    started_here: bool = False

    def env(self, **extra) -> dict:
        """``os.environ`` with ``SLURM_CONF`` pointing at this cluster (plus ``extra``)."""
        return dict(os.environ, SLURM_CONF=str(self.conf), **extra)

    def run(self, *cmd, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        """A Slurm client command (``sbatch``, ``scontrol`` ...) against this cluster."""
        return subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                              env=self.env(), timeout=timeout, **kw)


def _state_dir() -> Path:
    return Path(os.environ.get("HESSFLOW_MULTINODE_DIR", "/tmp/hessflow-multinode"))


def _run(cmd: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HESSFLOW_MULTINODE_DIR=str(_state_dir()))
    return subprocess.run([str(MULTINODE_SH), cmd], capture_output=True, text=True, env=env,
                          timeout=300, stdin=subprocess.DEVNULL)


def _owner_mark(state_dir: Path) -> Path:
    return state_dir / "run" / "started-by-pytest"


def _started_by_this_run(state_dir: Path) -> bool:
    mark = _owner_mark(state_dir)
    return mark.is_file() and mark.read_text().strip() == os.environ.get(RUN_ID_ENV, "")


def pytest_configure(config):
    os.environ.setdefault(RUN_ID_ENV, uuid.uuid4().hex)


def pytest_sessionfinish(session):
    if hasattr(session.config, "workerinput"):
        return
    if _started_by_this_run(_state_dir()):
        try:
            _run("stop")
        except subprocess.TimeoutExpired:
            print(f"conftest_multinode: multinode.sh stop timed out; {_state_dir()} still up",
                  file=sys.stderr)


@contextlib.contextmanager
def _start_lock(state_dir: Path):
    state_dir.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir.parent / f".{state_dir.name}.pytest.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@pytest.fixture(scope="session")
def multinode_cluster():
    for var in ("HESSFLOW_SKIP_MULTINODE", "HESSFLOW_SKIP_SLURM"):
        if os.environ.get(var) == "1":
            pytest.skip(f"{var}=1")
    if os.geteuid() != 0:
        pytest.skip("the multi-node Slurm cluster needs root (network namespaces, bridge): "
                    "run these tests as root")
    state_dir = _state_dir()
    with _start_lock(state_dir):
        if _run("status").returncode != 0:
            r = _run("start")
            if r.returncode == 3:
                pytest.skip((r.stderr.strip().splitlines() or ["multinode.sh: unavailable"])[-1])
            if r.returncode != 0:
                pytest.fail(f"multinode.sh start failed (rc={r.returncode}):\n{r.stderr}{r.stdout}",
                            pytrace=False)
            _owner_mark(state_dir).write_text(os.environ.get(RUN_ID_ENV, "") + "\n")
    cluster = MultinodeCluster(state_dir, state_dir / "slurm.conf",
                               started_here=_started_by_this_run(state_dir))
    r = cluster.run("sinfo", "-h", "-N", "-o", "%N")
    cluster.nodes = sorted(set(r.stdout.split()))
    yield cluster


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Keep every test that uses the cluster on one xdist worker (see conftest_slurm)."""
    for item in items:
        if "multinode_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("multinode"))
