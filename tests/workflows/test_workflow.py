"""The workflow graph: config validation, executors agree, SIGKILL of the driver and resume,
injected failures and worker crashes, and submission to a real Slurm."""

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from hessflow.errors import HessflowError
from hessflow.store import Store
from hessflow.workflows.config import load_config

MOLS = "O water\nN ammonia\nC=O formaldehyde\nC#N hcn\nCO methanol\n"
COMPARE = ("energy_hartree", "zpve_hartree", "alpha_iso_bohr3", "beta_par_au", "homo_hartree")


def write_cfg(tmp_path, executor, name="wf", mols=MOLS, tasks=("opt", "freq", "polar", "hyperpolar"),
              **extra):
    (tmp_path / "mols.smi").write_text(mols)
    cfg = {"name": name, "inputs": ["mols.smi"], "store": f"{name}.h5",
           "qm": {"engine": "xtb", "tasks": list(tasks)}, "executor": executor, **extra}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def hessflow(*args, env=None, timeout=600, **kw):
    return subprocess.run([sys.executable, "-m", "hessflow", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env, **kw)


def store_dict(path):
    return {r["name"]: r for r in Store(path).records()}


# -- config ---------------------------------------------------------------------------------
@pytest.mark.parametrize("patch, field", [
    ({"qm": {"engine": "gaussian"}}, "qm.engine: 'gaussian' is not one of pyscf, psi4, xtb"),
    ({"qm": {"tasks": ["opt", "freqs"]}}, "qm.tasks: 'freqs' not among"),
    ({"qm": {"level": {"basis_set": "sto-3g"}}}, "qm.level.basis_set: unknown key"),
    ({"inputs": ["nope.smi"]}, "inputs[0]:"),
    ({"store": "out.csv"}, "store: 'out.csv' should end in .h5"),
    ({"executor": {"kind": "cloud"}}, "executor.kind"),
    ({"executor": {"kind": "slurm", "walltime": "1 hour"}}, "executor.walltime"),
    ({"executor": {"kind": "local", "workers": 64}}, "executor.workers"),
    ({"stages": {"explain": {}}}, "stages.explain: explains the model of the train stage"),
    ({"stages": {"train": {}, "explain": {"rule": "lucky"}}}, "stages.explain.rule: 'lucky'"),
    ({"stages": {"conformers": {"distribution": "wigner"}}}, "stages.conformers.distribution"),
    ({"stages": {"train": {"model": "transformer"}}}, "stages.train.model: 'transformer' is not"),
    ({"stages": {"train": {"after": 1.5}}}, "stages.train.after: 1.5 is not a fraction"),
    ({"stages": {"augment": {"distribution": "wigner"}}}, "stages.augment.distribution: 'wigner'"),
    ({"stages": {"augment": {"samples": 0}}}, "stages.augment.samples: 0 is not a positive"),
    ({"stages": {"dance": {}}}, "stages.dance: unknown stage"),
    ({"colour": "blue"}, "colour: unknown key"),
])
def test_config_errors_name_the_field_in_one_line(tmp_path, patch, field):
    path = write_cfg(tmp_path, {"kind": "threads"})
    cfg = yaml.safe_load(path.read_text())
    for k, v in patch.items():
        cfg[k] = {**cfg[k], **v} if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(HessflowError) as err:
        load_config(path)
    assert field in str(err.value) and "\n" not in str(err.value)
    out = hessflow("run", path)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and field in out.stderr


# -- executors agree ------------------------------------------------------------------------
def _assert_same(a, b):
    assert set(a) == set(b)
    for name in a:
        ra, rb = a[name], b[name]
        assert ra["key"] == rb["key"] and ra["status"] == rb["status"] == "done", name
        # identical inputs and geometries; the numbers may differ only by the SCC convergence
        # noise of runs with different OpenMP thread counts (threads: 2, workers: 1), which
        # finite-field beta amplifies to ~1e-9 relative
        for c in COMPARE:
            tol = 1e-6 if c == "beta_par_au" else 1e-9
            assert ra[c] == pytest.approx(rb[c], rel=tol, abs=1e-9), (name, c)
        assert np.allclose(ra["hessian_hartree_bohr2"], rb["hessian_hartree_bohr2"], atol=1e-8)
        assert np.allclose(ra["frequencies_cm1"], rb["frequencies_cm1"], atol=1e-4)


def test_threads_local_and_slurm_executors_store_identical_results(tmp_path, slurm_cluster):
    results = {}
    for kind, executor in (("threads", {"kind": "threads", "workers": 2}),
                           ("local", {"kind": "local", "workers": 2}),
                           ("slurm", {"kind": "slurm", "partition": "debug", "walltime": "00:10:00",
                                      "cores_per_node": 2, "workers": 2, "max_idletime": 5})):
        d = tmp_path / kind
        d.mkdir()
        out = hessflow("run", write_cfg(d, executor), "--no-progress")
        assert out.returncode == 0, out.stderr[-3000:]
        assert "done=5 skipped=0 failed=0" in out.stdout
        results[kind] = store_dict(d / "wf.h5")
        hosts = {json.loads(r["provenance"])["hosts"]["opt"] for r in results[kind].values()}
        assert hosts  # provenance names where each task ran
    _assert_same(results["threads"], results["local"])
    _assert_same(results["threads"], results["slurm"])


# -- SIGKILL of the driver and resume ---------------------------------------------------------
def _kill_session(sid):
    """SIGKILL every process of a session: the driver, the interchange and the local worker pools
    (which Parsl's LocalProvider puts in process groups of their own) — as if the node died."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # field 6 of /proc/PID/stat: session id
            try:
                os.kill(int(stat.parent.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def _calls(log):
    events = [ln.split() for ln in Path(log).read_text().splitlines()] if Path(log).exists() else []
    return events


def test_kill9_of_driver_then_rerun_completes_without_recomputation(tmp_path):
    mols = "".join(f"{s} m{i}\n" for i, s in enumerate(
        ["O", "N", "C=O", "C#N", "CO", "CC", "CCO", "CC=O", "NC=O", "COC", "C1CC1", "CC#N",
         "OCC=O", "CC(C)=O", "NCC(=O)O", "c1ccoc1"]))
    path = write_cfg(tmp_path, {"kind": "local", "workers": 2}, mols=mols)
    log = tmp_path / "calls.log"
    env = dict(os.environ, HESSFLOW_CALL_LOG=str(log))
    rng = random.Random(7)
    kills = 0
    for attempt in range(12):
        proc = subprocess.Popen([sys.executable, "-m", "hessflow", "run", str(path), "--no-progress"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=rng.uniform(1.5, 6.0))
            assert proc.returncode == 0, err[-3000:]
            break  # finished before the kill
        except subprocess.TimeoutExpired:
            _kill_session(proc.pid)  # the driver and its local workers: a dead node
            proc.communicate()
            kills += 1
            if not (tmp_path / "wf.h5").exists() and not (tmp_path / "wf.h5.wal").exists():
                continue  # killed before the driver opened the store
            st = Store(tmp_path / "wf.h5")  # the store always reopens
            keys = st.table(["key"])["key"]
            assert len(keys) == len(set(keys))
    else:
        out = hessflow("run", path, "--no-progress", env=env)
        assert out.returncode == 0, out.stderr[-3000:]
    assert kills >= 2
    final = hessflow("run", path, "--no-progress", env=env)
    assert "done=0 skipped=16 failed=0" in final.stdout
    st = Store(tmp_path / "wf.h5")
    assert len(st) == 16 and all(st.status(k) == "done" for k in st.keys())
    with h5py.File(tmp_path / "wf.h5", "r") as f:
        keys = f["records/key"].asstr()[...]
        assert len(keys) == len(set(keys)) == 16
    # nothing finished is recomputed: no engine call for (key, task, geometry) after its result
    # was committed (a task re-run on a *new* geometry after the imaginary-mode policy is not a
    # recomputation)
    committed = set()
    starts = {}
    for ev in _calls(log):
        kind, what = ev[0], tuple(ev[1:4])
        if kind == "commit":
            committed.add(what)
        else:
            assert what not in committed, f"{what[1]} of {what[0][:8]} recomputed after commit"
            starts[what] = starts.get(what, 0) + 1
    by_task = {(k, t) for k, t, _ in committed}
    assert len(by_task) == 16 * 5  # opt, freq, sp, polar, hyperpolar per molecule
    # re-runs are only the tasks in flight at each kill (2 workers, plus queued prefetch)
    assert sum(starts.values()) - len(committed) <= kills * 8


# -- injected failures ----------------------------------------------------------------------
def test_injected_failure_is_recorded_and_worker_crash_is_retried(tmp_path):
    path = write_cfg(tmp_path, {"kind": "local", "workers": 2, "retries": 2})
    markers = tmp_path / "markers"
    markers.mkdir()
    faults = {"fail": {"molecule": "water", "task": "opt", "kind": "scf"},
              "crash": {"molecule": "ammonia", "task": "freq", "marker_dir": str(markers)}}
    env = dict(os.environ, HESSFLOW_INJECT_FAULTS=json.dumps(faults))
    out = hessflow("run", path, "--no-progress", env=env)
    assert out.returncode == 1  # one molecule failed
    assert "done=4 skipped=0 failed=1" in out.stdout
    assert "error: water: opt: water: injected failure" in out.stderr
    recs = store_dict(tmp_path / "wf.h5")
    water, ammonia = recs["water"], recs["ammonia"]
    assert water["status"] == "failed" and "injected failure" in water["reason"]
    tried = json.loads(water["provenance"])["corrections_tried"]
    assert [c["apply"] for c in tried] == [{"max_cycle": 300},
                                           {"max_cycle": 300, "damping": 0.5, "level_shift": 0.25},
                                           {"max_cycle": 300, "soscf": True}]
    assert (markers / "ammonia.freq.crashed").exists()  # the worker really died
    assert ammonia["status"] == "done"
    assert json.loads(ammonia["provenance"])["attempts"]["freq"] == 2  # retried elsewhere
    # the rest of the run was not disturbed
    assert all(recs[n]["status"] == "done" for n in ("formaldehyde", "hcn", "methanol"))
    # fixing the cause and running again completes the failed molecule only
    again = hessflow("run", path, "--no-progress")
    assert "done=1 skipped=4 failed=0" in again.stdout


@pytest.mark.parametrize("times, status", [(1, "done"), (None, "failed")])
def test_injected_scf_failure_is_handled_alike_by_compute_and_run(tmp_path, times, status):
    """One path per QM job: the fallback ladder corrects an SCF failure (or gives up after its
    three rungs) and says so in the provenance, under ``hessflow compute`` exactly as under
    ``hessflow run``."""
    fail = {"molecule": "water", "task": "opt", "kind": "scf"}
    if times is not None:
        fail["times"] = times  # fails the first attempt only: the first rung corrects it
    env = dict(os.environ, HESSFLOW_INJECT_FAULTS=json.dumps({"fail": fail}))
    mols = "O water\nN ammonia\n"
    path = write_cfg(tmp_path, {"kind": "threads", "workers": 1}, mols=mols, tasks=("opt", "freq"))
    run = hessflow("run", path, "--no-progress", env=env)
    compute = hessflow("compute", tmp_path / "mols.smi", "--store", tmp_path / "compute.h5",
                       "--engine", "xtb", "--tasks", "opt,freq", "--no-progress", env=env)
    rungs = [{"max_cycle": 300}, {"max_cycle": 300, "damping": 0.5, "level_shift": 0.25},
             {"max_cycle": 300, "soscf": True}]
    by_cmd = {"run": store_dict(tmp_path / "wf.h5"), "compute": store_dict(tmp_path / "compute.h5")}
    for cmd, out in (("run", run), ("compute", compute)):
        assert out.returncode == (0 if status == "done" else 1), (cmd, out.stderr[-3000:])
        water, ammonia = by_cmd[cmd]["water"], by_cmd[cmd]["ammonia"]
        assert water["status"] == status and ammonia["status"] == "done", cmd
        prov = json.loads(water["provenance"])
        if status == "done":
            assert prov["corrections"] == {"opt": [{"after": "scf",
                                                    "error": "water: injected failure",
                                                    "apply": rungs[0]}]}, cmd
            assert "corrections_tried" not in prov
        else:
            assert water["reason"] == "opt: water: injected failure", cmd
            assert [c["apply"] for c in prov["corrections_tried"]] == rungs, cmd
            assert "corrections" not in prov
            assert "error: water: opt: water: injected failure" in out.stderr
        assert "corrections" not in json.loads(ammonia["provenance"])
    a, b = by_cmd["run"]["water"], by_cmd["compute"]["water"]
    assert a["key"] == b["key"] and a["tasks"] == b["tasks"]
    if status == "done":
        assert a["energy_hartree"] == pytest.approx(b["energy_hartree"], abs=1e-9)
        assert np.allclose(a["frequencies_cm1"], b["frequencies_cm1"], atol=1e-4)


# -- Slurm submission -----------------------------------------------------------------------
def test_submit_runs_the_driver_as_a_slurm_job(tmp_path, slurm_cluster):
    path = write_cfg(tmp_path, {"kind": "slurm", "partition": "debug", "walltime": "00:10:00",
                                "cores_per_node": 1, "workers": 1, "max_idletime": 5,
                                "driver": {"walltime": "00:10:00", "cpus_per_task": 1}},
                     mols="O water\nC#N hcn\n", tasks=("opt", "freq"))
    path = path.rename(tmp_path / "submit_me.yaml")  # the job is named by `name:`, not the file
    out = hessflow("submit", path)
    assert out.returncode == 0, out.stderr
    job = out.stdout.strip()
    assert job.isdigit()
    shown = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True)
    assert "JobName=hessflow-wf " in shown.stdout, shown.stdout  # issue #12: the name was lost
    state = slurm_cluster.wait_job(job, timeout=300)
    logs = "".join(p.read_text() for p in (tmp_path / "runs" / "wf" / "slurm").glob("*"))
    assert state == "COMPLETED", logs[-3000:]
    assert "done=2 skipped=0 failed=0" in logs
    status = hessflow("status", tmp_path / "wf.h5")
    assert "done=2 failed=0 pending=0" in status.stdout and "throughput" in status.stdout
