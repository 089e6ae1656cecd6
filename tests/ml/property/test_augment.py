"""Vibration augmentation against the statistics each distribution must have."""

import numpy as np
import pytest

from hessflow.ml.property.augment import (VibrationalDataset, harmonic_energy, mode_variances,
                                 sample_normal_modes)
from hessflow.qm.harmonic import Harmonic
from hessflow.units import AMU_ME, HARTREE_WAVENUMBER, KB_HARTREE

from tests.stock import model_hessian

MASSES = np.array([15.99491461957, 1.00782503223, 1.00782503223])
COORDS = np.array([[0, 0, 0.22], [0, 1.43, -0.88], [0, -1.43, -0.88]])
WAVENUMBERS = np.array([1600.0, 3650.0, 3750.0])
LAM = (WAVENUMBERS / HARTREE_WAVENUMBER) ** 2 * AMU_ME
HESS = model_hessian(MASSES, COORDS, LAM)
OMEGA = WAVENUMBERS / HARTREE_WAVENUMBER


def normal_coordinates(samples):
    """Project displacements back onto the mass-weighted normal coordinates (m_e^1/2 Bohr)."""
    h = Harmonic(MASSES, COORDS, HESS)
    dx = (samples - COORDS[None]).reshape(len(samples), -1)
    qx = dx * np.sqrt(np.repeat(MASSES * AMU_ME, 3))
    return qx @ h.modes_mass_weighted.reshape(3, -1).T


@pytest.mark.parametrize("distribution, temperature", [("quantum", 300.0), ("quantum", 0.0),
                                                        ("classical", 300.0), ("classical", 3000.0)])
def test_mean_zero_and_variance_per_mode_match_the_formula(distribution, temperature):
    n = 200_000
    s = sample_normal_modes(COORDS, MASSES, HESS, n, temperature, distribution, rng=1)
    assert s.shape == (n, 3, 3)
    Q = normal_coordinates(s)
    want = mode_variances(OMEGA, temperature, distribution)
    if distribution == "quantum":
        kt = KB_HARTREE * temperature
        expect = 1 / (2 * OMEGA) * (1 / np.tanh(OMEGA / (2 * kt)) if kt else 1)
    else:
        expect = KB_HARTREE * temperature / OMEGA ** 2
    assert np.allclose(want, expect, rtol=1e-12)
    se_var = want * np.sqrt(2 / n)           # standard error of a Gaussian variance
    assert np.all(np.abs(Q.var(axis=0) - want) < 5 * se_var)
    assert np.all(np.abs(Q.mean(axis=0)) < 5 * np.sqrt(want / n))
    # modes are sampled independently
    c = np.corrcoef(Q.T)
    assert np.abs(c - np.eye(3)).max() < 0.02


@pytest.mark.parametrize("distribution", ["quantum", "classical", "nms"])
def test_no_translation_or_rotation_is_excited(distribution):
    s = sample_normal_modes(COORDS, MASSES, HESS, 2000, 500.0, distribution, rng=2)
    dx = s - COORDS[None]
    com = (MASSES[None, :, None] * dx).sum(1)
    assert np.abs(com).max() < 1e-12  # the centre of mass does not move
    r = COORDS - (MASSES[:, None] * COORDS).sum(0) / MASSES.sum()
    eckart = (MASSES[None, :, None] * np.cross(r[None], dx)).sum(1)
    assert np.abs(eckart).max() < 1e-12  # Eckart rotational condition: no rigid rotation
    assert np.abs(dx).max() > 1e-3


def test_quantum_variance_limits():
    hot = 1e6
    ratio = mode_variances(OMEGA, hot, "quantum") / mode_variances(OMEGA, hot, "classical")
    assert np.allclose(ratio, 1.0, rtol=1e-3)  # high T: classical
    assert np.allclose(mode_variances(OMEGA, 1.0, "quantum"), 1 / (2 * OMEGA), rtol=1e-12)  # T->0
    assert np.all(np.diff([mode_variances(OMEGA, t, "quantum")[0] for t in (0, 300, 1000, 3000)]) >= 0)


def test_nms_energy_is_bounded_by_three_halves_n_kt():
    t = 300.0
    s = sample_normal_modes(COORDS, MASSES, HESS, 100_000, t, "nms", rng=3)
    e = harmonic_energy(Harmonic(MASSES, COORDS, HESS), s)
    bound = 1.5 * 3 * KB_HARTREE * t
    assert e.max() <= bound * (1 + 1e-9)
    # sum_k c_k is uniform in [0, 1]: the mean energy is half the bound
    assert e.mean() == pytest.approx(0.5 * bound, rel=0.01)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="distribution: 'wigner'"):
        sample_normal_modes(COORDS, MASSES, HESS, 2, 300.0, "wigner")
    with pytest.raises(ValueError, match="temperature_k"):
        sample_normal_modes(COORDS, MASSES, HESS, 2, -1.0)


def test_on_the_fly_dataset_is_reproducible_and_loads_in_torch():
    torch = pytest.importorskip("torch")
    mols = [{"numbers": np.array([8, 1, 1]), "coords_bohr": COORDS, "masses_amu": MASSES,
             "hessian": HESS, "label": np.float32(i)} for i in range(3)]
    ds = VibrationalDataset(mols, n_augment=100, temperature_k=300.0, seed=5)
    assert len(ds) == 300
    assert np.array_equal(ds.geometry(100), COORDS)          # sample 0 is the equilibrium
    assert np.array_equal(ds.geometry(101), ds.geometry(101))  # same index, same geometry
    assert not np.allclose(ds.geometry(101), ds.geometry(102))
    assert ds[250][1] == 2.0                                  # labels of the equilibrium structure
    loader = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True)
    xs, ys = next(iter(loader))
    assert xs.shape == (64, 3, 3) and ys.shape == (64,)
    allx = ds.materialise()
    assert allx.shape == (300, 3, 3) and np.array_equal(allx[101], ds.geometry(101))


def test_augmented_geometries_can_be_written_to_hdf5(tmp_path):
    import h5py
    from hessflow.ml.property.augment import write_hdf5
    mols = [{"numbers": np.array([8, 1, 1]), "coords_bohr": COORDS, "masses_amu": MASSES,
             "hessian": HESS, "label": 1.5}]
    ds = VibrationalDataset(mols, n_augment=20, temperature_k=300.0, seed=9)
    write_hdf5(ds, tmp_path / "aug.h5", names=["water"])
    with h5py.File(tmp_path / "aug.h5", "r") as f:
        g = f["water/geometries_bohr"][...]
        assert g.shape == (20, 3, 3) and f["water/label"][()] == 1.5
        assert np.array_equal(g[7], ds.geometry(7)) and f.attrs["distribution"] == "quantum"


def test_baselines_fit_on_train_only():
    from hessflow.ml.property.baselines import evaluate
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 5))
    y = x[:, 0] * 2 + np.sin(x[:, 1])
    splits = {"train": list(range(90)), "test": list(range(90, 120))}
    for name in ("rf", "krr"):
        m = evaluate(name, x, y, splits)
        assert m["test"]["r2"] > 0.6, name
