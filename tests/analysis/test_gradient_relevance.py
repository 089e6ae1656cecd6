"""Gradient x input per atom for the SchNet peer: against a finite difference of the embedding
scale, zero on padding atoms, batch-independent; and ``hessflow explain`` of a SchNet run."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_geometric", reason="the SchNet peer needs torch_geometric "
                                              "(pip install 'hessflow[peer]')")

from hessflow.analysis.gradient_relevance import atom_relevance  # noqa: E402
from hessflow.ml.property.schnet import SchNetModel, atoms_collate  # noqa: E402


def _batch():
    rng = np.random.default_rng(3)
    mols = []
    for n in (4, 6, 2):
        z = torch.tensor(rng.choice([1, 6, 8], size=n))
        x = torch.tensor(rng.normal(scale=2.0, size=(n, 3)))
        mols.append(((z, x), torch.tensor(0.0)))
    (z, x, mask), _ = atoms_collate(mols)
    return z, x.double(), mask.double(), mols


def _model():
    torch.manual_seed(1)
    return SchNetModel(hidden=12, filters=12, interactions=2, gaussians=8).double().eval()


def test_gradient_x_input_equals_a_finite_difference_of_each_atoms_embedding_scale():
    model = _model()
    z, x, mask, _ = _batch()
    res = atom_relevance(model, (z, x, mask))
    assert res.relevance.shape == mask.shape and torch.isfinite(res.relevance).all()
    assert (res.relevance[mask == 0] == 0).all()  # padding atoms get nothing
    with torch.no_grad():
        assert torch.allclose(res.prediction, model(z, x, mask))
    # R_i = d f / d t at t = 0 for h_i -> (1 + t) h_i (a second route to h . df/dh)
    real = (mask > 0).reshape(-1).nonzero().ravel()
    emb = model.net.embedding
    b, n = mask.shape
    eps = 1e-5
    for flat_atom in real.tolist():
        i, k = divmod(flat_atom, n)
        pos = int((mask.reshape(-1)[:flat_atom] > 0).sum())  # its row among the real atoms

        def scale(t):
            def hook(_m, _a, out):
                s = torch.ones(out.shape[0], 1, dtype=out.dtype)
                s[pos] += t
                return out * s
            h = emb.register_forward_hook(hook)
            with torch.no_grad():
                f = model(z, x, mask)[i]
            h.remove()
            return float(f)
        fd = (scale(eps) - scale(-eps)) / (2 * eps)
        assert abs(fd - float(res.relevance[i, k])) < 1e-6 * max(1.0, abs(fd)), (i, k)


def test_a_molecules_relevance_does_not_depend_on_its_batch_mates():
    model = _model()
    z, x, mask, mols = _batch()
    res = atom_relevance(model, (z, x, mask))
    for j, m in enumerate(mols):
        zj, xj, mj = atoms_collate([m])[0]
        alone = atom_relevance(model, (zj, xj.double(), mj.double()))
        k = len(m[0][0])
        assert torch.allclose(alone.relevance[0], res.relevance[j, :k], atol=1e-10)
    # the summed relevance tracks the prediction (a first-order estimate: not exact)
    assert np.isfinite(res.completeness_gap.numpy()).all()


def test_hessflow_explain_of_a_schnet_run_writes_per_atom_relevance(xtb20_store, tmp_path):
    import h5py
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = tmp_path / "run"
    out = subprocess.run([sys.executable, "-m", "hessflow", "train", str(xtb20_store),
                          "--model", "schnet", "--target", "zpve", "--epochs", "5",
                          "--batch-size", "8", "--out", str(run), "--no-progress"],
                         capture_output=True, text=True, timeout=900, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    out = subprocess.run([sys.executable, "-m", "hessflow", "explain", str(run), "--split", "all"],
                         capture_output=True, text=True, timeout=900, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    s = json.loads((run / "explain" / "explain.json").read_text())
    assert s["rule"] == "gradient_x_input" and s["n_samples"] == 20
    assert set(s["feature_types"]) <= {"H", "C", "N", "O", "F", "S", "Cl"} and "H" in s["feature_types"]
    with h5py.File(run / "explain" / "relevance.h5") as f:
        rel, z = f["relevance/atoms"][()], f["numbers"][()]
        signed = f["types/signed"][()]
        pred = f["explained_standardised"][()]
    assert rel.shape == z.shape and np.isfinite(rel).all()
    assert (rel[z == 0] == 0).all() and (rel[z > 0] != 0).any()
    # per molecule: the element types add up to the atoms' relevance over the atom count
    n = (z > 0).sum(1)
    assert np.allclose(signed.sum(1) * n, rel.sum(1), atol=1e-5)
    assert pred.shape == (20,)
    assert (run / "explain" / "relevance_bars.png").exists()
