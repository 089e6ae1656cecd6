"""Executor profiles (hessflow.slurm: profile, executors, shell, submit): validation, Parsl
configs that really run, the driver's sbatch script, and -- on a real single-node Slurm started by
hessflow/slurm/cluster.sh -- a Slurm-provisioned Parsl worker and sbatch submission."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

parsl = pytest.importorskip("parsl")
from parsl import python_app  # noqa: E402

from hessflow.errors import HessflowError  # noqa: E402
from hessflow.slurm.executors import (MPI_LABEL, QM_LABEL, parsl_config,  # noqa: E402
                                      profile_launch_prefix)
from hessflow.settings import to_mapping  # noqa: E402
from hessflow.system import cpu_count  # noqa: E402
from hessflow.slurm.profile import ExecutorProfile, as_profile  # noqa: E402
from hessflow.slurm.shell import worker_probe  # noqa: E402
from hessflow.slurm.submit import sbatch_script, submit  # noqa: E402
# The session fixture `slurm_cluster` comes from tests/conftest_slurm.py (a plugin of conftest.py).

CORES = cpu_count()


# --------------------------------------------------------------------------- apps
# An importable function (pickled by reference): the worker must import hessflow.
where = python_app(worker_probe, executors=[QM_LABEL])


def run_where(config, timeout=60):
    dfk = parsl.load(config)
    try:
        return where().result(timeout=timeout)
    finally:
        dfk.cleanup()
        if hasattr(parsl, "clear"):
            parsl.clear()


# --------------------------------------------------------------------------- validation
BAD = [
    ({"kind": "slurm", "walltime": "1 hour"}, "executor.walltime", "'1 hour' is not HH:MM:SS"),
    ({"kind": "slurm", "walltime": "00:75:00"}, "executor.walltime", "is not HH:MM:SS"),
    ({"kind": "slurm", "walltime": "00:00:20"}, "executor.walltime", "shorter than one minute"),
    ({"kind": "cloud"}, "executor.kind", "is not one of threads | local | slurm"),
    ({"kind": "slurm", "partiton": "x"}, "executor.partiton", "did you mean 'partition'"),
    ({"kind": "local", "partition": "debug"}, "executor.partition", "only valid for kind 'slurm'"),
    ({"kind": "local", "workers": CORES + 1}, "executor.workers", "exceeds the"),
    ({"kind": "local", "workers": 1, "threads_per_task": CORES + 1}, "executor.threads_per_task",
     "exceeds the"),
    ({"kind": "threads", "workers": 0}, "executor.workers", "must be >= 1, got 0"),
    ({"kind": "local", "workers": "two"}, "executor.workers", "expected int, got str 'two'"),
    ({"retries": -1}, "executor.retries", "must be >= 0, got -1"),
    ({"retries": True}, "executor.retries", "expected an integer, got bool"),
    ({"monitoring": "yes"}, "executor.monitoring", "expected true or false"),
    ({"kind": "slurm", "exclusive": 1}, "executor.exclusive", "expected true or false"),
    ({"kind": "slurm", "cores_per_node": 4, "threads_per_task": 2, "workers": 3},
     "executor.workers", "exceeds cores_per_node 4"),
    ({"kind": "slurm", "min_blocks": 2, "max_blocks": 1}, "executor.min_blocks", "exceeds max_blocks"),
    ({"kind": "slurm", "init_blocks": 3}, "executor.init_blocks", "exceeds max_blocks"),
    ({"kind": "slurm", "parallelism": 2}, "executor.parallelism", "must be <= 1, got 2"),
    ({"kind": "slurm", "scheduler_options": ["gres=gpu:1"]}, "executor.scheduler_options",
     "neither an '#SBATCH"),
    ({"kind": "slurm", "worker_init": 5}, "executor.worker_init", "expected list or str, got int 5"),
    ({"kind": "slurm", "launcher": "mpirun"}, "executor.launcher", "is not one of auto | single | srun"),
    ({"kind": "slurm", "partition": "a\nb"}, "executor.partition", "single line"),
    ({"kind": "slurm", "mpi": {"rank": 2}}, "executor.mpi.rank", "did you mean 'ranks'"),
    ({"kind": "slurm", "mpi": {"ranks": 0}}, "executor.mpi.ranks", "must be >= 1, got 0"),
    ({"kind": "slurm", "mpi": {"walltime": "2h"}}, "executor.mpi.walltime", "is not HH:MM:SS"),
    ({"kind": "local", "mpi": {"nodes_per_block": 2}}, "executor.mpi.nodes_per_block",
     "only valid for kind 'slurm'"),
    ({"kind": "slurm", "driver": {"walltime": "1d"}}, "executor.driver.walltime", "not HH:MM:SS"),
    ({"kind": "slurm", "driver": {"cpus": 2}}, "executor.driver.cpus", "did you mean 'cpus_per_task'"),
    ({"kind": "local", "driver": {}}, "executor.driver", "only valid for kind 'slurm'"),
    ("threads", "executor", "expected a mapping"),
]


@pytest.mark.parametrize("profile,field,text", BAD, ids=[b[1] + ":" + b[2][:20] for b in BAD])
def test_invalid_field_one_line_error(profile, field, text):
    with pytest.raises(HessflowError) as ei:
        ExecutorProfile.from_mapping(profile)
    msg = str(ei.value)
    assert "\n" not in msg
    assert msg.startswith(field + ":"), msg
    assert text in msg, msg


def test_defaults_filled():
    p = ExecutorProfile.from_mapping({"kind": "slurm"})
    assert p.walltime == "01:00:00" and p.exclusive is False and p.retries == 2
    assert p.init_blocks == 1 and p.min_blocks == 0 and p.max_blocks == 1
    assert p.mpi is None and p.driver.walltime == "01:00:00"
    loc = ExecutorProfile.from_mapping({})
    assert loc.kind == "local" and loc.workers == CORES and loc.threads_per_task == 1
    # PyYAML reads unquoted 1:30:00 as the integer 5400
    assert ExecutorProfile.from_mapping({"kind": "slurm", "walltime": 5400}).walltime == "01:30:00"
    # validating twice gives the same result: a built profile passes through, its plain-data
    # form loads to the same profile
    once = ExecutorProfile.from_mapping({"kind": "slurm", "mpi": {}})
    assert as_profile(once) is once
    assert ExecutorProfile.from_mapping(to_mapping(once)) == once
    assert ExecutorProfile.from_mapping(to_mapping(loc)) == loc


def test_yaml_profile_roundtrip():
    yaml = pytest.importorskip("yaml")
    d = yaml.safe_load("""
executor:
  kind: slurm
  partition: compute
  walltime: 2:00:00
  scheduler_options: |
    #SBATCH --gres=gpu:1
    --reservation=chem
  worker_init:
    - module load gcc
""")["executor"]
    p = ExecutorProfile.from_mapping(d)
    assert p.walltime == "02:00:00"
    assert p.scheduler_options == ["#SBATCH --gres=gpu:1", "#SBATCH --reservation=chem"]


# --------------------------------------------------------------------------- configs
def test_parsl_config_objects(tmp_path):
    from parsl.executors import HighThroughputExecutor, MPIExecutor, ThreadPoolExecutor
    from parsl.launchers import SingleNodeLauncher, SrunLauncher
    from parsl.providers import LocalProvider, SlurmProvider

    c = parsl_config({"kind": "threads", "workers": 1, "retries": 0}, tmp_path)
    assert isinstance(c.executors[0], ThreadPoolExecutor) and c.executors[0].max_threads == 1
    assert c.retries == 0 and c.run_dir == str(tmp_path / "parsl")

    c = parsl_config({"kind": "local", "workers": 1, "run_dir": "pr"}, tmp_path)
    (ex,) = c.executors
    assert isinstance(ex, HighThroughputExecutor) and ex.label == "qm"
    assert isinstance(ex.provider, LocalProvider) and ex.provider.max_blocks == 1
    assert c.strategy_period == 1 and c.run_dir == str(tmp_path / "pr")
    assert "OMP_NUM_THREADS=1" in ex.provider.worker_init
    assert f"{sys.prefix}/bin" in ex.provider.worker_init

    c = parsl_config({"kind": "slurm", "partition": "p", "account": "a", "qos": "q",
                        "walltime": "00:30:00", "nodes_per_block": 2, "max_blocks": 3,
                        "threads_per_task": 4, "cores_per_node": 8,
                        "worker_init": ["module load gcc"], "mpi": {"nodes_per_block": 2}},
                       tmp_path)
    qm, mpi = c.executors
    prov = qm.provider
    assert isinstance(prov, SlurmProvider) and isinstance(prov.launcher, SrunLauncher)
    assert (prov.partition, prov.account, prov.qos, prov.walltime) == ("p", "a", "q", "00:30:00")
    assert prov.nodes_per_block == 2 and prov.max_blocks == 3 and prov.exclusive is False
    assert "#SBATCH --partition=p" in prov.scheduler_options
    assert prov.worker_init.startswith("module load gcc\n")
    assert "MKL_NUM_THREADS=4" in prov.worker_init
    assert qm.cores_per_worker == 4 and qm.workers_per_node == 2
    assert isinstance(mpi, MPIExecutor) and mpi.label == "mpi"
    assert mpi.provider.init_blocks == 0 and mpi.provider.nodes_per_block == 2
    one = parsl_config({"kind": "slurm"}, tmp_path).executors[0].provider
    assert isinstance(one.launcher, SingleNodeLauncher)


def test_monitoring_needs_extras_or_builds_hub(tmp_path):
    try:
        import sqlalchemy  # noqa: F401
    except ImportError:
        with pytest.raises(HessflowError, match=r"^executor\.monitoring: needs Parsl's monitoring"):
            parsl_config({"kind": "threads", "workers": 1, "monitoring": True}, tmp_path)
    else:
        c = parsl_config({"kind": "threads", "workers": 1, "monitoring": True}, tmp_path)
        assert c.monitoring.logging_endpoint.endswith("/parsl/monitoring.db")


def test_threads_profile_runs_app(tmp_path):
    t0 = time.monotonic()
    r = run_where(parsl_config({"kind": "threads", "workers": 1}, tmp_path))
    assert r["pid"] == os.getpid() and r["host"] == socket.gethostname()
    assert time.monotonic() - t0 < 30


def test_local_profile_runs_app_on_htex_worker(tmp_path):
    t0 = time.monotonic()
    r = run_where(parsl_config({"kind": "local", "workers": 1}, tmp_path))
    dt = time.monotonic() - t0
    assert r["pid"] != os.getpid(), "ran in the driver, not on an HTEX worker"
    assert r["host"] == socket.gethostname()
    assert r["omp"] == "1" and r["mkl"] == "1"
    assert r["path0"] == str(Path(sys.prefix) / "bin")
    print(f"local HTEX: load + 1 task + cleanup {dt:.1f} s")


# --------------------------------------------------------------------------- MPI prefix
def test_profile_launch_prefix(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    pre = profile_launch_prefix({"kind": "local"}, 2)
    assert pre[1:] == ["-n", "2"] and pre[0].endswith("mpiexec")
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    assert profile_launch_prefix({"kind": "slurm", "mpi": {}}, 3) == ["srun", "-n", "3", "--mpi=pmi2"]
    assert profile_launch_prefix({"kind": "slurm", "mpi": {"launcher": "mpiexec",
                                                         "mpiexec": "mpirun"}}, 2) == ["mpirun", "-n", "2"]
    with pytest.raises(HessflowError, match=r"^executor\.mpi\.ranks:"):
        profile_launch_prefix({"kind": "local"}, 0)


# rank 0 alone prints (ranks' output would interleave): world size and sum of ranks
MPI_HELLO = ("from mpi4py import MPI; c = MPI.COMM_WORLD; s = c.allreduce(c.Get_rank()); "
             "c.Get_rank() == 0 and print(c.Get_size(), s, flush=True)")


def test_mpi_prefix_runs_mpiexec_locally(monkeypatch):
    pytest.importorskip("mpi4py")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    pre = profile_launch_prefix({"kind": "local"}, 2)
    r = subprocess.run(pre + [sys.executable, "-c", MPI_HELLO], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["2", "1"]


# --------------------------------------------------------------------------- sbatch script
SLURM_PROFILE = {"kind": "slurm", "partition": "debug", "account": "chem", "qos": "short",
                 "constraint": "avx2", "walltime": "02:00:00",
                 "scheduler_options": ["--gres=gpu:1"], "worker_init": ["module load gcc/12"],
                 "driver": {"walltime": "12:00:00", "cpus_per_task": 2, "mem": "4G"}}


def test_sbatch_script_renders(tmp_path):
    s = sbatch_script(SLURM_PROFILE, ["hessflow", "run", "my wf.yaml"], "hf-driver",
                        tmp_path / "logs", workdir=tmp_path)
    lines = s.splitlines()
    assert lines[0] == "#!/bin/bash"
    for want in ["#SBATCH --job-name=hf-driver",
                 f"#SBATCH --output={tmp_path}/logs/hf-driver.%j.out",
                 f"#SBATCH --error={tmp_path}/logs/hf-driver.%j.err",
                 f"#SBATCH --chdir={tmp_path}",
                 "#SBATCH --partition=debug", "#SBATCH --account=chem", "#SBATCH --qos=short",
                 "#SBATCH --constraint=avx2", "#SBATCH --time=12:00:00",
                 "#SBATCH --cpus-per-task=2", "#SBATCH --mem=4G", "#SBATCH --gres=gpu:1",
                 "module load gcc/12",
                 "export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 MKL_NUM_THREADS=2",
                 "exec hessflow run 'my wf.yaml'"]:
        assert want in lines, want
    # all #SBATCH lines precede the first command (sbatch stops reading them there)
    first_cmd = next(i for i, ln in enumerate(lines[1:], 1) if ln and not ln.startswith("#"))
    assert max(i for i, ln in enumerate(lines) if ln.startswith("#SBATCH")) < first_cmd
    assert lines.index("module load gcc/12") < lines.index("exec hessflow run 'my wf.yaml'")
    r = subprocess.run(["bash", "-n"], input=s, text=True, capture_output=True)
    assert r.returncode == 0, r.stderr
    # driver walltime defaults to the executor walltime
    s2 = sbatch_script({"kind": "slurm", "walltime": "03:00:00"}, ["true"], "d", tmp_path)
    assert "#SBATCH --time=03:00:00" in s2 and "--partition" not in s2
    with pytest.raises(HessflowError, match=r"^executor\.kind:"):
        sbatch_script({"kind": "local"}, ["true"], "d", tmp_path)


def test_submit_without_sbatch(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(HessflowError, match=r"^sbatch: .*not found"):
        submit(tmp_path / "x.sh")


# --------------------------------------------------------------------------- real Slurm
def test_slurm_profile_runs_app_on_slurm_worker(slurm_cluster, tmp_path):
    prof = {"kind": "slurm", "partition": "debug", "walltime": "00:10:00", "workers": 1,
            "cores_per_node": 1, "init_blocks": 1, "max_blocks": 1, "retries": 0}
    t0 = time.monotonic()
    r = run_where(parsl_config(prof, tmp_path), timeout=120)
    dt = time.monotonic() - t0
    assert r["slurm_job"], "the app did not run inside a Slurm job"
    assert r["pid"] != os.getpid() and r["omp"] == "1"
    assert r["path0"] == str(Path(sys.prefix) / "bin")
    subs = [f for f in (tmp_path / "parsl").glob("*/submit_scripts/parsl.qm.block-0.*")
            if f.suffix not in (".stdout", ".stderr")]
    assert subs and "#SBATCH --partition=debug" in subs[0].read_text()
    print(f"slurm HTEX: load + sbatch + worker start + 1 task + cleanup {dt:.1f} s "
          f"(job {r['slurm_job']})")


def test_submit_rendered_script_completes(slurm_cluster, tmp_path):
    out = tmp_path / "out.txt"
    cmd = [sys.executable, "-c",
           "import os, sys; open(sys.argv[1], 'w').write(os.environ['OMP_NUM_THREADS'] + ' ' "
           "+ os.environ['SLURM_JOB_ID'])", str(out)]
    script = tmp_path / "driver.sbatch"
    script.write_text(sbatch_script({"kind": "slurm", "partition": "debug",
                                       "walltime": "00:05:00"}, cmd, "hf-test", tmp_path / "logs",
                                      workdir=tmp_path))
    t0 = time.monotonic()
    job = submit(script)
    assert job.isdigit()
    state = slurm_cluster.wait_job(job, timeout=120)
    logs = "".join(p.read_text() for p in (tmp_path / "logs").glob("*"))
    assert state == "COMPLETED", f"{state}: {logs}"
    assert out.read_text() == f"1 {job}"
    assert (tmp_path / "logs" / f"hf-test.{job}.out").exists()
    print(f"sbatch driver job {job}: submit -> COMPLETED {time.monotonic() - t0:.1f} s")


def test_submit_error_is_one_line(slurm_cluster, tmp_path):
    script = tmp_path / "bad.sbatch"
    script.write_text("#!/bin/bash\n#SBATCH --partition=nosuchpartition\ntrue\n")
    with pytest.raises(HessflowError) as ei:
        submit(script)
    assert str(ei.value).startswith("sbatch: ") and "\n" not in str(ei.value)


def test_srun_mpi_inside_allocation(slurm_cluster, monkeypatch):
    """profile_launch_prefix's srun form starts a real 2-rank MPI job (needs --mpi=pmi2)."""
    pytest.importorskip("mpi4py")
    monkeypatch.setenv("SLURM_JOB_ID", "1")          # pretend: inside an allocation
    pre = profile_launch_prefix({"kind": "slurm", "mpi": {}}, 2)
    monkeypatch.delenv("SLURM_JOB_ID")               # let srun make its own allocation
    r = subprocess.run(pre + [sys.executable, "-c", MPI_HELLO], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["2", "1"]


# The MPI test's bash_app is pickled by reference; the workers find this module through
# worker_init (exactly how a user would expose their own code).
TESTS_DIR = Path(__file__).resolve().parent
TEST_PYTHONPATH = f"export PYTHONPATH={TESTS_DIR.parents[1]}:$PYTHONPATH"  # the repo: tests.slurm...


def _mpi_hello_cmd(profile, ranks, out, parsl_resource_specification=None):
    return " ".join(profile_launch_prefix(profile, ranks)
                    + [sys.executable, "-c", repr(MPI_HELLO), ">", str(out)])


def test_mpi_executor_runs_srun_job_on_slurm(slurm_cluster, tmp_path):
    """The profile's 'mpi' executor (MPIExecutor on an exclusive Slurm block) runs a
    2-rank mpi4py job started with profile_launch_prefix (srun --mpi=pmi2 inside the block)."""
    pytest.importorskip("mpi4py")
    from parsl import bash_app
    prof = {"kind": "slurm", "partition": "debug", "walltime": "00:10:00", "init_blocks": 0,
            "retries": 0, "worker_init": [TEST_PYTHONPATH],
            "mpi": {"ranks": 2, "walltime": "00:05:00"}}
    app = bash_app(_mpi_hello_cmd, executors=[MPI_LABEL])
    out = tmp_path / "mpi.out"
    t0 = time.monotonic()
    dfk = parsl.load(parsl_config(prof, tmp_path))
    try:
        fut = app(ExecutorProfile.from_mapping(prof), 2, out, parsl_resource_specification={
            "num_nodes": 1, "ranks_per_node": 2, "num_ranks": 2})
        assert fut.result(timeout=180) == 0
    finally:
        dfk.cleanup()
        if hasattr(parsl, "clear"):
            parsl.clear()
    assert out.read_text().split() == ["2", "1"]
    print(f"MPIExecutor block + 2-rank srun job: {time.monotonic() - t0:.1f} s")


DRIVER_PY = '''
import json, sys
import parsl
from parsl import python_app
from hessflow.slurm.executors import QM_LABEL, parsl_config
from hessflow.slurm.shell import worker_probe
prof = json.loads(sys.argv[1])
dfk = parsl.load(parsl_config(prof, sys.argv[2]))
try:
    r = python_app(worker_probe, executors=[QM_LABEL])().result(timeout=120)
finally:
    dfk.cleanup()
import os
r["driver_job"] = os.environ.get("SLURM_JOB_ID")
open(sys.argv[3], "w").write(json.dumps(r))
'''


def test_driver_job_provisions_workers_from_inside_slurm(slurm_cluster, tmp_path):
    """End to end: submit() a rendered driver script; the driver (1 CPU) loads the slurm
    profile and its worker block (1 CPU) is submitted from inside the driver's job."""
    import json
    prof = {"kind": "slurm", "partition": "debug", "walltime": "00:10:00", "workers": 1,
            "cores_per_node": 1, "retries": 0}
    (tmp_path / "driver.py").write_text(DRIVER_PY)
    out = tmp_path / "result.json"
    cmd = [sys.executable, str(tmp_path / "driver.py"), json.dumps(prof), str(tmp_path / "run"),
           str(out)]
    script = tmp_path / "driver.sbatch"
    script.write_text(sbatch_script(prof, cmd, "hf-driver", tmp_path / "logs", workdir=tmp_path))
    t0 = time.monotonic()
    job = submit(script)
    state = slurm_cluster.wait_job(job, timeout=240)
    logs = "".join(p.read_text()[-2000:] for p in (tmp_path / "logs").glob("*"))
    assert state == "COMPLETED", f"{state}: {logs}"
    r = json.loads(out.read_text())
    assert r["driver_job"] == job and r["slurm_job"] and r["slurm_job"] != job
    assert r["parsl_cores"] == "1" and r["omp"] == "1"
    print(f"driver job {job} -> worker job {r['slurm_job']}: {time.monotonic() - t0:.1f} s")
