"""Training on forces: feature Jacobians against autograd through the ACSF, and forces lowering
the held-out force error against energy-only training at the same budget."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hessflow.errors import HessflowError  # noqa: E402
from hessflow.ml.bp import BPConfig, BPNetwork, channel_table, compute_features  # noqa: E402
from hessflow.ml.bp import load_energies, molecule_splits, train_bp  # noqa: E402
from hessflow.ml.bp.dataset import padded  # noqa: E402
from hessflow.ml.bp.forces import (ForceDataset, feature_jacobians, force_collate,  # noqa: E402
                                   standardised_energy_and_forces)
from hessflow.ml.core.training import TrainConfig  # noqa: E402


def test_store_forces_are_the_negative_gradient(force_store):
    from hessflow.store import Store
    mols, _ = load_energies(force_store)
    with Store(force_store) as st:
        rec = next(r for r in st.records() if r["name"] == mols[7]["name"])
    np.testing.assert_array_equal(mols[7]["forces_hartree_bohr"], -rec["gradient_hartree_bohr"])
    assert all(m["forces_hartree_bohr"].shape == (len(m["numbers"]), 3) for m in mols)


def test_jacobian_forces_equal_autograd_through_the_acsf(force_store):
    """The training path (precomputed dI/dR, then d(eps)/dI) gives the forces that autograd
    through the whole ACSF gives (energy_and_forces), for a random untrained network, on a
    padded batch of molecules of different sizes."""
    mols, _ = load_energies(force_store)
    idx = [0, 7, 20, 44, 70]
    cfg = BPConfig(features="modes", hidden=(16,))
    table, _ = channel_table(cfg)
    torch.manual_seed(0)
    net = BPNetwork(cfg, table)
    feats, jac = compute_features(net, mols), feature_jacobians(net, mols, idx)
    assert jac[1] is None and jac[7].shape == (len(mols[7]["numbers"]), net.n_in,
                                               len(mols[7]["numbers"]), 3)
    net.feat_std.fill_(2.0)
    net.scale_hartree, net.shift_hartree = 0.01, 0.0
    net.ref_energy_hartree = torch.zeros_like(net.ref_energy_hartree)
    ds = ForceDataset(feats, jac, np.zeros(len(mols)), [None] * len(mols), 0.01)
    (f, mask, j), (_, nan_forces) = force_collate([ds[i] for i in idx])
    assert torch.isnan(nan_forces).all()
    _, pred = standardised_energy_and_forces(net, f, mask, j, create_graph=False)
    z, x = padded(mols, idx)
    _, exact = net.double().energy_and_forces(z, x)
    assert exact.abs().max() > 1e-4
    np.testing.assert_allclose(pred.detach().double().numpy() * 0.01, exact.numpy(),
                               atol=2e-6 * float(exact.abs().max()) + 1e-9)


def test_forces_lower_the_held_out_force_error(force_store, tmp_path):
    """Same data, splits, network, seed and epochs: with force_weight 10 the force MAE on the
    held-out (test) molecules is clearly below that of energy-only training (measured
    0.017 vs 0.025 Hartree/Bohr), and on the training molecules far below."""
    mols, level = load_energies(force_store)
    sp = molecule_splits(mols, 0.15, 0.25, seed=0)
    tc = TrainConfig(epochs=60, batch_size=8, lr=3e-3, patience=100, seed=0, device="cpu")
    m = {fw: train_bp(mols, BPConfig(features="modes", hidden=(32, 32), force_weight=fw), tc,
                      tmp_path / f"run{fw}", sp, level) for fw in (0.0, 10.0)}
    for fw in m:
        assert m[fw]["test"]["n_force_geometries"] == len(sp["test"])
        assert m[fw]["force_weight"] == fw
    e_only, both = m[0.0], m[10.0]
    assert both["test"]["force_mae_hartree_bohr"] < 0.85 * e_only["test"]["force_mae_hartree_bohr"]
    assert both["train"]["force_mae_hartree_bohr"] < 0.5 * e_only["train"]["force_mae_hartree_bohr"]
    assert both["test"]["force_mae_ev_angstrom"] == pytest.approx(
        both["test"]["force_mae_hartree_bohr"] * 27.211386245988 / 0.529177210903, rel=1e-12)
    assert {"train_energy", "train_force"} <= set(both["history"][0])
    # the saved network's forces give the reported metric
    from hessflow.ml.bp import load_bp_model
    from hessflow.ml.bp.evaluate import force_metrics
    again = force_metrics(load_bp_model(tmp_path / "run10.0"), mols, sp["test"])
    assert again["force_mae_hartree_bohr"] == pytest.approx(both["test"]["force_mae_hartree_bohr"],
                                                            rel=1e-6)


def test_force_weight_needs_forces(force_store, tmp_path):
    mols, level = load_energies(force_store)
    for m in mols:
        m["forces_hartree_bohr"] = None
    sp = molecule_splits(mols, 0.15, 0.15, seed=0)
    with pytest.raises(HessflowError, match="force_weight: the data have no forces"):
        train_bp(mols, BPConfig(force_weight=1.0), TrainConfig(epochs=1, device="cpu"),
                 tmp_path / "r", sp, level)
    with pytest.raises(HessflowError, match="force_weight"):
        from hessflow.ml.bp import config_from_mapping
        config_from_mapping({"force_weight": -1})
