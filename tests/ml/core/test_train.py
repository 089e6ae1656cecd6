"""Distributed training: DDP over 2 MPI ranks equals 1 rank, checkpoints resume exactly, and the
test split never influences training or model selection."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from hessflow.ml.core.splits import kfold_splits, random_split  # noqa: E402

from tests.stock import DDP_JOB as JOB  # noqa: E402
VENV_BIN = Path(sys.executable).parent


def job(run_dir, epochs, *flags, ranks=1):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "PMI_RANK", "PMI_SIZE"):
        env.pop(k, None)
    cmd = [sys.executable, str(JOB), str(run_dir), str(epochs), *flags]
    if ranks > 1:
        mpiexec = VENV_BIN / "mpiexec"
        if not mpiexec.exists():
            pytest.skip("mpiexec not installed (pip install mpich)")
        cmd = [str(mpiexec), "-n", str(ranks)] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return [json.loads((Path(run_dir) / f"rank{r}.json").read_text()) for r in range(ranks)]


@pytest.fixture(scope="module")
def one_rank(tmp_path_factory):
    """The reference: 6 epochs on one rank (shared by the comparisons below)."""
    return job(tmp_path_factory.mktemp("one"), 6)[0]


def test_two_mpi_ranks_match_one_rank_with_the_same_global_batch(tmp_path, one_rank):
    one = one_rank
    r0, r1 = job(tmp_path / "two", 6, ranks=2)
    assert r0["world"] == r1["world"] == 2 and one["world"] == 1
    assert r0["digest"] == r1["digest"]  # identical weights on both ranks
    l1 = [h["train_loss"] for h in one["history"]]
    l2 = [h["train_loss"] for h in r0["history"]]
    assert np.allclose(l1, l2, rtol=1e-4)  # the same loss curve
    assert l2[-1] < 0.5 * l2[0]            # and it is learning
    w1 = np.concatenate([np.asarray(w) for w in one["weights"]])
    w2 = np.concatenate([np.asarray(w) for w in r0["weights"]])
    assert np.allclose(w1, w2, atol=1e-4)


def test_checkpoint_resumes_to_the_uninterrupted_result(tmp_path, one_rank):
    full = one_rank
    job(tmp_path / "cut", 3)
    resumed = job(tmp_path / "cut", 6, "--resume")[0]
    assert [h["epoch"] for h in resumed["history"]] == list(range(6))
    assert resumed["digest"] == full["digest"]
    assert resumed["history"] == full["history"]


def test_test_labels_never_influence_training_or_selection(tmp_path, one_rank):
    clean = one_rank
    garbage = job(tmp_path / "garbage", 6, "--garbage-test-labels")[0]
    assert clean["digest"] == garbage["digest"] and clean["history"] == garbage["history"]
    assert garbage["test_mae"] > 1e5 > clean["test_mae"]


def test_splits_are_disjoint_and_cover_everything():
    s = random_split(100, 0.1, 0.2, seed=0)
    assert len(s["test"]) == 20 and len(s["val"]) == 10
    assert sorted(s["train"] + s["val"] + s["test"]) == list(range(100))
    folds = kfold_splits(50, k=10, seed=1)
    assert len(folds) == 10
    assert sorted(i for f in folds for i in f["test"]) == list(range(50))
    for f in folds:
        assert not set(f["test"]) & set(f["train"]) and not set(f["val"]) & set(f["train"])
