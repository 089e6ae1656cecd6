"""The SchNet peer (PyTorch Geometric's model on hessflow's inputs): its neighbour list against a
brute-force one, the invariances a molecular model must have, ``hessflow train --model schnet``
end to end on the session's GFN2-xTB store, and identical weights on 2 DDP ranks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_geometric", reason="the SchNet peer needs torch_geometric "
                                              "(pip install 'hessflow[peer]')")

from hessflow.ml.property.schnet import RadiusGraph, SchNetModel, atoms_collate  # noqa: E402

JOB = Path(__file__).resolve().parent / "_schnet_ddp_job.py"
VENV_BIN = Path(sys.executable).parent


def _molecules(seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for n in (3, 5, 4):
        z = rng.choice([1, 6, 7, 8], size=n)
        out.append(((torch.tensor(z), torch.tensor(rng.normal(scale=2.0, size=(n, 3)),
                                                   dtype=torch.float32)), torch.tensor(0.0)))
    return out


def test_radius_graph_is_every_close_pair_within_a_molecule():
    rng = np.random.default_rng(1)
    pos = rng.normal(scale=3.0, size=(12, 3))
    batch = np.array([0] * 5 + [1] * 4 + [2] * 3)
    cutoff = 3.5
    ei, w = RadiusGraph(cutoff)(torch.tensor(pos), torch.tensor(batch))
    got = {(int(i), int(j)): float(d) for (i, j), d in zip(ei.T, w)}
    want = {(i, j): float(np.linalg.norm(pos[i] - pos[j])) for i in range(12) for j in range(12)
            if i != j and batch[i] == batch[j] and np.linalg.norm(pos[i] - pos[j]) < cutoff}
    assert set(got) == set(want) and len(want) > 5
    assert np.allclose([got[k] for k in want], [want[k] for k in want])


def test_schnet_is_invariant_to_padding_order_rotation_and_translation():
    torch.manual_seed(0)
    model = SchNetModel(hidden=16, filters=16, interactions=2, gaussians=10).eval()
    mols = _molecules()
    (z, x, mask), _ = atoms_collate(mols)
    with torch.no_grad():
        batch = model(z, x, mask)
        alone = torch.stack([model(*atoms_collate([m])[0])[0] for m in mols])
        q, _ = torch.linalg.qr(torch.randn(3, 3))
        moved = model(z, x @ q.T + torch.tensor([1.0, -2.0, 0.5]), mask)
        perm = torch.tensor([2, 0, 1, 4, 3])  # the 5-atom molecule, atoms reordered
        m1 = model(z[1:2, perm], x[1:2, perm], mask[1:2])
    assert batch.shape == (3,)
    assert torch.allclose(batch, alone, atol=1e-5)   # padding and batch-mates change nothing
    assert torch.allclose(batch, moved, atol=1e-4)   # rigid motions change nothing
    assert torch.allclose(m1, batch[1:2], atol=1e-5)  # nor does the atom order
    # and the geometry matters: stretching a molecule changes its prediction
    with torch.no_grad():
        assert not torch.allclose(model(z, 1.3 * x, mask), batch, atol=1e-3)


@pytest.fixture
def xtb_store(xtb20_store):
    return xtb20_store


def train(*args):
    return subprocess.run([sys.executable, "-m", "hessflow", "train", *map(str, args)],
                          capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))


def test_train_model_schnet_writes_a_run_that_reads_back_and_evaluates(xtb_store, tmp_path):
    from hessflow.analysis.runs import load_property_model, load_property_run
    from hessflow.ml.core.regression import predict
    from hessflow.ml.property import experiment
    run = tmp_path / "run"
    out = train(xtb_store, "--target", "alpha", "--model", "schnet", "--epochs", "30",
                "--batch-size", "8", "--lr", "3e-3", "--out", run, "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    js = json.loads(out.stdout)
    assert js["model"] == "schnet" and js["test"]["n"] >= 1
    for f in ("model.pt", "metrics.json", "splits.json", "predictions.json", "spec.json"):
        assert (run / f).exists(), f
    r = load_property_run(run)
    assert r.spec.model == "schnet" and r.spec.schnet.interactions == 3
    m = r.metrics
    assert m["train"]["n"] + m["val"]["n"] + m["test"]["n"] == 20
    h = m["history"]
    # it learns: the training MSE (standardised labels) falls by more than ten times (the
    # weights kept are those of the best of only 2 validation molecules, so no MAE bound)
    assert h[-1]["train_loss"] < 0.1 * h[0]["train_loss"]
    # the saved weights, rebuilt from the spec and the saved split, give the saved predictions
    saved = json.loads((run / "splits.json").read_text())
    built = experiment.build(r.spec, {k: saved[k] for k in ("train", "val", "test")})
    model = load_property_model(run, built.model_fn, "cpu")
    _, p = predict(model, built.evalset, built.splits["test"], "cpu", collate=built.collate)
    preds = json.loads((run / "predictions.json").read_text())["test"]
    assert np.allclose(p * built.label_std + built.label_mean, preds["pred"], rtol=1e-5)


def test_schnet_refuses_set_valued_targets_in_one_line(xtb_store, tmp_path):
    out = train(xtb_store, "--target", "frequencies", "--model", "schnet", "--out", tmp_path / "r")
    assert out.returncode != 0
    assert "Traceback" not in out.stderr and "SchNet learns scalar targets" in out.stderr


def _job(store, run_dir, epochs, ranks):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "PMI_RANK", "PMI_SIZE"):
        env.pop(k, None)
    cmd = [sys.executable, str(JOB), str(store), str(run_dir), str(epochs)]
    if ranks > 1:
        mpiexec = VENV_BIN / "mpiexec"
        if not mpiexec.exists():
            pytest.skip("mpiexec not installed (pip install mpich)")
        cmd = [str(mpiexec), "-n", str(ranks)] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return [json.loads((Path(run_dir) / f"rank{r}.json").read_text()) for r in range(ranks)]


def test_two_ddp_ranks_keep_identical_schnet_weights_and_match_one_rank(xtb_store, tmp_path):
    (one,) = _job(xtb_store, tmp_path / "one", 4, 1)
    r0, r1 = _job(xtb_store, tmp_path / "two", 4, 2)
    assert r0["world"] == r1["world"] == 2
    assert r0["digest"] == r1["digest"]  # identical weights on both ranks
    l1 = [h["train_loss"] for h in one["history"]]
    l2 = [h["train_loss"] for h in r0["history"]]
    assert np.allclose(l1, l2, rtol=1e-3)  # the same global batch: the same loss curve
