"""Walltimes on the single-node test cluster (hessflow/slurm/cluster.sh): a worker block that
reaches its walltime with a task running, and the driver's own job that reaches its walltime.

Each test takes 1.5-3 minutes, most of it Slurm's one-minute minimum walltime: a task is made
slow with the ``delay`` fault of ``$HESSFLOW_INJECT_FAULTS`` (its first attempt sleeps, later
attempts run at once; :func:`hessflow.workflows.apps.inject_delay`)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hessflow.store import Store
from tests.stock import REPO

pytestmark = pytest.mark.xdist_group("slurm")

FAST = "O water\nC#N hcn\nC=O formaldehyde\nC methane\n"
SLOW = "slowpoke"                       # the molecule whose first attempt outlives its walltime
MOLS = FAST + f"CO {SLOW}\n"
N_MOLS = len(MOLS.splitlines())

# Parsl notices a worker pool that vanished (its block killed at the walltime) by missed
# heartbeats, and a block that ended by polling Slurm every 60 s; the test's driver shortens
# both so the retry comes within seconds (on a cluster the defaults only delay it).
FAST_PARSL_DRIVER = (
    "import sys\n"
    "from hessflow.slurm import executors\n"
    "executors.HEARTBEATS['slurm'] = {'heartbeat_period': 2, 'heartbeat_threshold': 10}\n"
    "from parsl.providers import SlurmProvider\n"
    "SlurmProvider.status_polling_interval = property(lambda self: 5)\n"
    "from hessflow.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n")


def _env(tmp_path, seconds):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
               PYTHONPATH=str(REPO), OMP_NUM_THREADS="1",
               HESSFLOW_CALL_LOG=str(tmp_path / "calls.log"),
               HESSFLOW_INJECT_FAULTS=json.dumps({"delay": {
                   "molecule": SLOW, "task": "opt", "seconds": seconds,
                   "marker_dir": str(tmp_path)}}))
    env.pop("SLURM_JOB_ID", None)
    return env


def _workflow(tmp_path, executor) -> Path:
    (tmp_path / "mols.smi").write_text(MOLS)
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump({"name": "wf", "inputs": ["mols.smi"], "store": "wf.h5",
                                    "qm": {"engine": "xtb", "tasks": ["opt"]},
                                    "executor": executor}))
    return path


def _attempts(tmp_path):
    """(SLURM_JOB_ID, what) of each attempt of the slow task."""
    lines = (tmp_path / f"{SLOW}.opt.attempts").read_text().split("\n")
    return [(ln.split()[0], ln.split()[-1]) for ln in lines if ln.strip()]


def _calls(tmp_path):
    """(event, key, task) of the audit log: engine calls started, and the driver's commits."""
    return [tuple(ln.split()[:3]) for ln in (tmp_path / "calls.log").read_text().splitlines()]


def _stored_once_and_done(tmp_path):
    st = Store(tmp_path / "wf.h5")
    recs = list(st.records())
    names = [r["name"] for r in recs]
    assert sorted(names) == sorted(ln.split()[1] for ln in MOLS.splitlines())  # none lost
    assert len(names) == len(set(names)) == len(list(st.keys()))               # none twice
    assert all(r["status"] == "done" for r in recs), [(r["name"], r["reason"]) for r in recs]
    return {r["name"]: r for r in recs}


def test_a_block_reaching_its_walltime_mid_task_is_retried_in_a_new_block(slurm_cluster, tmp_path):
    """One block of two workers with a one-minute walltime: the fast molecules finish in it,
    the slow molecule's optimisation is still running when Slurm ends the block (TIMEOUT); its
    task is retried in a new block and the run completes, every molecule stored once."""
    c = slurm_cluster
    path = _workflow(tmp_path, {
        "kind": "slurm", "partition": "debug", "walltime": "00:01:00", "cores_per_node": 2,
        "workers": 2, "init_blocks": 1, "min_blocks": 0, "max_blocks": 1, "retries": 2,
        "max_idletime": 5})
    (tmp_path / "driver.py").write_text(FAST_PARSL_DRIVER)
    r = subprocess.run([sys.executable, str(tmp_path / "driver.py"), "run", "--no-progress",
                        str(path)], capture_output=True, text=True, env=_env(tmp_path, 600),
                       timeout=420, cwd=tmp_path)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert f"done={N_MOLS} skipped=0 failed=0" in r.stdout, r.stdout[-2000:]
    recs = _stored_once_and_done(tmp_path)
    (first, what1), (second, what2) = _attempts(tmp_path)
    assert (what1, what2) == ("sleep", "run") and first != second  # two blocks, one each
    assert c.job_state(first) == "TIMEOUT"                        # the block hit its walltime
    prov = json.loads(recs[SLOW]["provenance"])
    assert prov["attempts"]["opt"] == 2                            # Parsl's retry, recorded
    assert all(json.loads(recs[n]["provenance"])["attempts"]["opt"] == 1
               for n in recs if n != SLOW)
    commits = [(k, t) for ev, k, t in _calls(tmp_path) if ev == "commit"]
    assert len(commits) == len(set(commits)) == 2 * N_MOLS         # opt + sp of each, once


def test_the_driver_job_reaching_its_walltime_is_resubmitted_and_resumes(slurm_cluster, tmp_path):
    """``hessflow submit --resubmit 1`` with a one-minute driver walltime: the first driver job
    commits the fast molecules, then Slurm ends it (TIMEOUT) with the slow molecule running;
    the follow-up job (afternotok) resumes from the store: it skips every molecule the first
    committed, computes only the slow one, and completes."""
    c = slurm_cluster
    path = _workflow(tmp_path, {
        "kind": "slurm", "partition": "debug", "walltime": "00:10:00", "cores_per_node": 1,
        "workers": 1, "max_idletime": 5,
        "driver": {"walltime": "00:01:00", "cpus_per_task": 1}})
    env = _env(tmp_path, 600)
    out = subprocess.run([sys.executable, "-m", "hessflow", "submit", str(path), "--resubmit",
                          "1"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.split()
    shown = c.run("scontrol", "show", "job", "-o", second).stdout
    assert f"Dependency=afternotok:{first}" in shown, shown
    assert c.wait_job(first, timeout=300) == "TIMEOUT"
    assert c.wait_job(second, timeout=300) == "COMPLETED"
    logs = {j: "".join(p.read_text() for p in (tmp_path / "runs" / "wf" / "slurm").glob(
        f"hessflow-wf.{j}.*")) for j in (first, second)}
    assert "stopped by SIGTERM" in logs[first], logs[first][-3000:]
    n_fast = len(FAST.splitlines())
    assert f"done=1 skipped={n_fast} failed=0" in logs[second], logs[second][-3000:]
    _stored_once_and_done(tmp_path)
    assert [w for _, w in _attempts(tmp_path)] == ["sleep", "run"]
    # the audit log: no task committed by the first job was started again by the second
    calls = _calls(tmp_path)
    starts = [(k, t) for ev, k, t in calls if ev == "start"]
    slow_key = next(k for ev, k, t in calls if ev == "start" and t == "opt"
                    and starts.count((k, "opt")) == 2)
    assert all(starts.count(s) == 1 for s in set(starts) if s[0] != slow_key), starts
    commits = [(k, t) for ev, k, t in calls if ev == "commit"]
    assert len(commits) == len(set(commits)) == 2 * N_MOLS
