"""The training stages' Parsl resource specification on Slurm: the ranks over the nodes of an
MPI block (``executor.mpi.nodes_per_block``), and the commands that start them."""

import pytest
import yaml

from hessflow.workflows import apps
from hessflow.workflows.config import load_config
from hessflow.workflows.downstream import mpi_resources


def _cfg(tmp_path, executor, ranks):
    (tmp_path / "m.smi").write_text("O water\n")
    (tmp_path / "wf.yaml").write_text(yaml.safe_dump({
        "inputs": ["m.smi"], "store": "s.h5", "qm": {"engine": "xtb", "tasks": ["opt"]},
        "executor": executor, "stages": {"train": {"target": "zpve", "ranks": ranks}}}))
    return load_config(tmp_path / "wf.yaml")


@pytest.mark.parametrize("nodes, ranks, spec", [
    (2, 8, {"num_nodes": 2, "ranks_per_node": 4, "num_ranks": 8}),
    (1, 4, {"num_nodes": 1, "ranks_per_node": 4, "num_ranks": 4}),
    (3, 2, {"num_nodes": 2, "ranks_per_node": 1, "num_ranks": 2}),
])
def test_training_resource_spec_spans_the_block_nodes(tmp_path, nodes, ranks, spec):
    cfg = _cfg(tmp_path, {"kind": "slurm", "mpi": {"nodes_per_block": nodes}}, ranks)
    assert mpi_resources(cfg, cfg.stages["train"].spec.ranks) == \
        {"parsl_resource_specification": spec}


def test_no_resource_spec_and_plain_mpiexec_locally(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    cfg = _cfg(tmp_path, {"kind": "local", "workers": 1}, 2)
    assert mpi_resources(cfg, 2) == {}
    cmd = apps.train_command("spec.json", 2, cfg.executor, None)
    assert "-n 2 " in cmd and "--nodes" not in cmd and "hessflow.ml.property.experiment" in cmd


def test_stage_commands_spread_their_ranks_inside_a_block(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "12")  # as on a worker of an MPI block
    cfg = _cfg(tmp_path, {"kind": "slurm", "mpi": {"nodes_per_block": 2}}, 4)
    cmd = apps.train_command("spec.json", 4, cfg.executor, 2)
    assert cmd.startswith("srun -n 4 --mpi=pmi2 --nodes=2 --ntasks-per-node=2 ")
    assert apps.cli_command(["bp", "train", "x.xyz"], 2).startswith(
        "env SLURM_NTASKS_PER_NODE=2 ")
    assert apps.cli_command(["bp", "train", "x.xyz"]).split()[1:3] == ["-m", "hessflow"]
