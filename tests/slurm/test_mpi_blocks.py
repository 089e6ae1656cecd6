"""MPI (training) blocks of a slurm profile: their own partition, account, #SBATCH lines and
worker_init (a GPU partition for training, a CPU one for the QM fan-out), rendered into the real
sbatch scripts Parsl's SlurmProvider writes, without Slurm; ranks spread over a block's nodes."""

import pytest

from hessflow.errors import SettingsError
from hessflow.settings import to_mapping
from hessflow.slurm.executors import mpi_placement, parsl_config, profile_launch_prefix
from hessflow.slurm.profile import ExecutorProfile

SITE = {"kind": "slurm", "partition": "compute", "account": "chem", "qos": "normal",
        "walltime": "08:00:00", "nodes_per_block": 2, "cores_per_node": 64,
        "threads_per_task": 4, "mem_per_node": 120, "exclusive": True,
        "scheduler_options": ["--constraint=avx2"], "worker_init": ["module load gcc/12"]}


def _script(provider, tmp_path, name) -> str:
    """The sbatch script ``provider`` writes for one block (its ``sbatch`` call intercepted)."""
    calls = []
    provider.script_dir = str(tmp_path / name)
    (tmp_path / name).mkdir()

    def execute_wait(cmd, timeout=None):
        calls.append(cmd)
        return 0, "Submitted batch job 4242", ""
    provider.execute_wait = execute_wait
    assert provider.submit("process_worker_pool.py --args", 1, job_name=name) == "4242"
    (cmd,) = calls
    assert cmd.startswith("sbatch ")
    return open(cmd.split(None, 1)[1]).read()


def _sbatch(script: str) -> set:
    return {ln.split(None, 1)[1] for ln in script.splitlines() if ln.startswith("#SBATCH ")}


def test_training_blocks_take_their_own_partition_gres_and_worker_init(tmp_path):
    profile = dict(SITE, mpi={"ranks": 8, "nodes_per_block": 2, "partition": "gpu",
                              "account": "chem-gpu", "walltime": "02:00:00",
                              "scheduler_options": ["--gres=gpu:4"],
                              "worker_init": ["module load cuda/12"]})
    qm, mpi = parsl_config(profile, tmp_path).executors
    qm_s, mpi_s = _script(qm.provider, tmp_path, "qm"), _script(mpi.provider, tmp_path, "mpi")
    q, m = _sbatch(qm_s), _sbatch(mpi_s)
    assert {"--partition=compute", "--account=chem", "--qos=normal", "--constraint=avx2",
            "--nodes=2", "--time=480", "--mem=120g", "--exclusive"} <= q
    assert not any("gres" in o or "gpu" in o for o in q)
    assert {"--partition=gpu", "--account=chem-gpu", "--qos=normal", "--gres=gpu:4",
            "--nodes=2", "--time=120", "--exclusive", "--mem=120g"} <= m
    assert "--constraint=avx2" not in m and "--partition=compute" not in m
    assert "module load cuda/12" in mpi_s and "module load gcc/12" not in mpi_s
    assert "module load gcc/12" in qm_s and "cuda" not in qm_s
    assert "OMP_NUM_THREADS=4" in mpi_s  # the venv and thread exports follow the user lines


def test_training_blocks_inherit_the_executor_site_settings(tmp_path):
    p = ExecutorProfile.from_mapping(dict(SITE, mpi={}))
    assert (p.mpi.partition, p.mpi.account, p.mpi.qos, p.mpi.constraint) == \
        ("compute", "chem", "normal", None)
    assert p.mpi.scheduler_options == ["#SBATCH --constraint=avx2"]
    assert p.mpi.worker_init == ["module load gcc/12"] and p.mpi.walltime == "08:00:00"
    assert ExecutorProfile.from_mapping(to_mapping(p)) == p  # its plain form loads back
    _, mpi = parsl_config(p, tmp_path).executors
    m = _sbatch(_script(mpi.provider, tmp_path, "mpi"))
    assert {"--partition=compute", "--account=chem", "--constraint=avx2", "--nodes=1"} <= m


@pytest.mark.parametrize("mapping, text", [
    ({"kind": "local", "mpi": {"partition": "gpu"}},
     "executor.mpi.partition: only valid for kind 'slurm', not 'local'"),
    ({"kind": "slurm", "mpi": {"scheduler_options": ["gres=gpu:4"]}},
     "executor.mpi.scheduler_options: 'gres=gpu:4' is neither"),
    ({"kind": "slurm", "mpi": {"mem_per_node": 0}}, "executor.mpi.mem_per_node"),
])
def test_bad_training_block_settings_name_the_field(mapping, text):
    with pytest.raises(SettingsError) as e:
        ExecutorProfile.from_mapping(mapping)
    assert str(e.value).startswith(text) and "\n" not in str(e.value)


@pytest.mark.parametrize("kind, nodes, ranks, want", [
    ("slurm", 2, 8, (2, 4)), ("slurm", 2, 5, (2, 3)), ("slurm", 4, 2, (2, 1)),
    ("slurm", 1, 6, (1, 6)), ("local", 3, 4, (1, 4)),
])
def test_ranks_spread_over_the_nodes_of_a_block(kind, nodes, ranks, want):
    mpi = {"nodes_per_block": nodes} if kind == "slurm" else {}
    assert mpi_placement({"kind": kind, "mpi": mpi}, ranks) == want


def test_launch_prefix_spreads_the_ranks_over_nodes(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    prof = {"kind": "slurm", "mpi": {"nodes_per_block": 2}}
    assert profile_launch_prefix(prof, 8, 2) == ["srun", "-n", "8", "--mpi=pmi2", "--nodes=2",
                                                 "--ntasks-per-node=4"]
    assert profile_launch_prefix(prof, 3) == ["srun", "-n", "3", "--mpi=pmi2"]
    monkeypatch.delenv("SLURM_JOB_ID")
    assert profile_launch_prefix({"kind": "local"}, 4, 2)[1:] == ["-n", "4"]  # mpiexec: no nodes
