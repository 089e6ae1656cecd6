"""The GPU-node executor profile (``gpus_per_node``, ``gpu_type``): checked settings, the Parsl
config and the worker blocks' sbatch script it renders -- without Slurm (the provider's
``sbatch`` call is replaced) -- and, on a local HTEX pool, one CUDA_VISIBLE_DEVICES per worker
(Parsl sets it from ``available_accelerators``; no GPU is needed for that)."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

parsl = pytest.importorskip("parsl")
from parsl import python_app  # noqa: E402

from hessflow.errors import HessflowError  # noqa: E402
from hessflow.slurm.executors import QM_LABEL, parsl_config  # noqa: E402
from hessflow.slurm.profile import ExecutorProfile  # noqa: E402
from hessflow.slurm.submit import sbatch_script  # noqa: E402
from hessflow.system import cpu_count  # noqa: E402

GPU_NODE = {"kind": "slurm", "partition": "gpu", "gpus_per_node": 4, "gpu_type": "h100",
            "cores_per_node": 32, "walltime": "04:00:00", "max_blocks": 2,
            "worker_init": ["export CUPY_CACHE_DIR=$TMPDIR/cupy"]}


def _qm(config):
    return next(e for e in config.executors if e.label == QM_LABEL)


def worker_block_script(executor, tmp_path) -> str:
    """The sbatch script Parsl's SlurmProvider writes for one worker block, rendered by the
    provider's own ``submit`` with ``sbatch`` replaced by a stand-in (nothing is submitted)."""
    prov = executor.provider
    prov.script_dir = str(tmp_path)
    calls = []

    def fake_sbatch(cmd, *a, **k):
        calls.append(cmd)
        return 0, "Submitted batch job 4242", ""
    prov.execute_wait = fake_sbatch
    job = prov.submit("process_worker_pool.py --available-accelerators "
                      + " ".join(executor.available_accelerators),
                      tasks_per_node=1, job_name="hf-test")
    assert job == "4242" and calls and calls[0].startswith("sbatch ")
    return open(calls[0].split(" ", 1)[1]).read()


def test_gpu_node_profile_defaults():
    p = ExecutorProfile.from_mapping(GPU_NODE)
    assert p.workers == 4 and p.threads_per_task == 8  # one worker per GPU, cores shared
    assert p.gres == "#SBATCH --gres=gpu:h100:4"
    assert p.accelerators == ["0", "1", "2", "3"]
    p2 = ExecutorProfile.from_mapping({**GPU_NODE, "gpu_type": None, "threads_per_task": 4,
                                       "workers": 2})
    assert p2.gres == "#SBATCH --gres=gpu:4" and p2.threads_per_task == 4 and p2.workers == 2
    assert ExecutorProfile.from_mapping({"kind": "slurm"}).gres is None


def test_gpu_node_profile_renders_parsl_config_and_worker_script(tmp_path):
    cfg = parsl_config(GPU_NODE, tmp_path)
    htex = _qm(cfg)
    assert htex.available_accelerators == ["0", "1", "2", "3"]
    assert htex.max_workers_per_node == 4 and htex.cores_per_worker == 8
    assert "{accelerators}" in htex.launch_cmd  # Parsl's worker pool gets them at start
    script = worker_block_script(htex, tmp_path)
    lines = script.splitlines()
    for want in ["#SBATCH --partition=gpu", "#SBATCH --gres=gpu:h100:4",
                 "#SBATCH --cpus-per-task=32", "#SBATCH --time=240",
                 "export CUPY_CACHE_DIR=$TMPDIR/cupy",
                 "export OMP_NUM_THREADS=8 OPENBLAS_NUM_THREADS=8 MKL_NUM_THREADS=8"]:
        assert any(ln.strip() == want for ln in lines), (want, script)
    assert "--available-accelerators 0 1 2 3" in script
    r = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert r.returncode == 0, r.stderr
    # the driver job needs no GPU: its script has no gres
    drv = sbatch_script(GPU_NODE, ["hessflow", "run", "wf.yaml"], "drv", tmp_path / "logs")
    assert "--gres" not in drv
    # a CPU profile renders no accelerators and no gres
    cpu = _qm(parsl_config({"kind": "slurm", "cores_per_node": 32}, tmp_path))
    assert cpu.available_accelerators == []
    (tmp_path / "cpu").mkdir()
    assert "--gres" not in worker_block_script(cpu, tmp_path / "cpu")


@pytest.mark.parametrize("over, field, text", [
    ({"workers": 5}, "executor.workers", "5 workers for 4 GPUs: at most one worker per GPU"),
    ({"gpus_per_node": 0}, "executor.gpus_per_node", "must be >= 1"),
    ({"gpus_per_node": None}, "executor.gpu_type", "needs gpus_per_node"),
    ({"threads_per_task": 9}, "executor.workers", "exceeds cores_per_node 32"),
])
def test_bad_gpu_profile_one_line_error(over, field, text):
    with pytest.raises(HessflowError) as err:
        ExecutorProfile.from_mapping({**GPU_NODE, **over})
    msg = str(err.value)
    assert msg.startswith(field + ":") and text in msg and "\n" not in msg


def test_gpu_fields_are_not_for_the_threads_kind():
    with pytest.raises(HessflowError, match=r"^executor\.gpus_per_node: only valid for kind"):
        ExecutorProfile.from_mapping({"kind": "threads", "gpus_per_node": 1})
    with pytest.raises(HessflowError, match=r"^executor\.gpu_type: only valid for kind 'slurm'"):
        ExecutorProfile.from_mapping({"kind": "local", "gpus_per_node": 1, "gpu_type": "a100"})


def _visible_devices(seconds):
    import os
    import time
    time.sleep(seconds)  # both workers busy at once: each task lands on its own worker
    return os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES")


visible_devices = python_app(_visible_devices, executors=[QM_LABEL])


@pytest.mark.skipif(cpu_count() < 2, reason="two local workers need two cores")
def test_local_gpu_profile_gives_each_worker_its_own_device(tmp_path):
    """Two local HTEX workers with gpus_per_node 2: worker i sees CUDA_VISIBLE_DEVICES=i."""
    dfk = parsl.load(parsl_config({"kind": "local", "gpus_per_node": 2}, tmp_path))
    try:
        t0 = time.monotonic()
        futs = [visible_devices(3.0) for _ in range(2)]
        got = [f.result(timeout=120) for f in futs]
    finally:
        dfk.cleanup()
        if hasattr(parsl, "clear"):
            parsl.clear()
    assert len({pid for pid, _ in got}) == 2 and all(pid != os.getpid() for pid, _ in got)
    assert sorted(dev for _, dev in got) == ["0", "1"]
    assert time.monotonic() - t0 < 120
