"""Harmonic analysis against analytic results."""

import numpy as np
import pytest

from hessflow.qm.harmonic import Harmonic, rigid_body_vectors
from hessflow.units import AMU_ME, HARTREE_WAVENUMBER
from tests.stock import model_hessian


def _rotation(seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def diatomic(k, m1, m2, r=1.4):
    """Spring of force constant k (Hartree/Bohr^2) along z between two atoms."""
    coords = np.array([[0, 0, 0], [0, 0, r]], float)
    h = np.zeros((6, 6))
    block = k * np.array([[1, -1], [-1, 1]])
    h[np.ix_([2, 5], [2, 5])] = block
    return np.array([m1, m2], float), coords, h


def test_diatomic_frequency_reduced_mass_force_constant_zpve():
    k, m1, m2 = 0.37, 1.00782503223, 18.99840316273  # HF-like
    masses, coords, hess = diatomic(k, m1, m2)
    h = Harmonic(masses, coords, hess)
    mu = m1 * m2 / (m1 + m2)
    omega = np.sqrt(k / (mu * AMU_ME))  # Hartree
    assert h.is_linear and h.n_modes == 1
    assert h.frequencies_cm1[0] == pytest.approx(omega * HARTREE_WAVENUMBER, rel=1e-10)
    # Gaussian's convention: mu = 1/|M^-1/2 q|^2, k = mu * lambda is the curvature of the energy
    # along the normalised Cartesian mode (for a diatomic: classical values scaled by M^2/(m1^2+m2^2))
    scale = (m1 + m2) ** 2 / (m1 ** 2 + m2 ** 2)
    assert h.reduced_masses_amu[0] == pytest.approx(mu * scale, rel=1e-10)
    assert h.force_constants_hartree_bohr2[0] == pytest.approx(k * scale, rel=1e-10)
    x = h.modes_cartesian[0].ravel()
    assert x @ hess @ x == pytest.approx(h.force_constants_hartree_bohr2[0], rel=1e-10)
    assert h.zpve_hartree() == pytest.approx(0.5 * omega, rel=1e-10)
    # the Cartesian mode is the stretch, with the centre of mass fixed
    v = h.modes_cartesian[0]
    assert np.allclose(v[:, :2], 0)
    assert abs(masses @ v[:, 2]) < 1e-12


def test_diatomic_is_invariant_under_rotation_and_translation():
    masses, coords, hess = diatomic(0.5, 12.0, 15.99491461957)
    rot = _rotation(1)
    big = np.kron(np.eye(2), rot)
    h1 = Harmonic(masses, coords, hess)
    h2 = Harmonic(masses, coords @ rot.T + [1.0, -2.0, 3.0], big @ hess @ big.T)
    assert np.allclose(h1.frequencies_cm1, h2.frequencies_cm1, rtol=1e-10)


@pytest.mark.parametrize("linear", [False, True])
def testmodel_hessian_recovers_known_frequencies_and_mode_counts(linear):
    if linear:  # CO2-like, 3N-5 = 4 modes
        masses = np.array([15.99491461957, 12.0, 15.99491461957])
        coords = np.array([[0, 0, -2.2], [0, 0, 0], [0, 0, 2.2]])
    else:  # water-like, 3N-6 = 3 modes
        masses = np.array([15.99491461957, 1.00782503223, 1.00782503223])
        coords = np.array([[0, 0, 0.22], [0, 1.43, -0.88], [0, -1.43, -0.88]])
    nm = 3 * len(masses) - (5 if linear else 6)
    wavenumbers = np.linspace(600.0, 3800.0, nm)
    lam = (wavenumbers / HARTREE_WAVENUMBER) ** 2 * AMU_ME
    h = Harmonic(masses, coords, model_hessian(masses, coords, lam))
    assert h.is_linear == linear
    assert h.n_modes == nm
    assert np.allclose(h.frequencies_cm1, wavenumbers, rtol=1e-9)
    # mass-weighted modes orthonormal, orthogonal to translations/rotations
    q = h.modes_mass_weighted.reshape(nm, -1)
    assert np.allclose(q @ q.T, np.eye(nm), atol=1e-10)
    assert np.abs(q @ rigid_body_vectors(masses, coords).T).max() < 1e-10
    assert h.zpve_hartree() == pytest.approx(0.5 * (wavenumbers / HARTREE_WAVENUMBER).sum(), rel=1e-9)


def test_imaginary_mode_is_detected_and_negative():
    masses = np.array([15.99491461957, 1.00782503223, 1.00782503223])
    coords = np.array([[0, 0, 0.22], [0, 1.43, -0.88], [0, -1.43, -0.88]])
    lam = (np.array([-400.0, 1600.0, 3700.0]) / HARTREE_WAVENUMBER) ** 2 * AMU_ME
    lam[0] *= -1
    h = Harmonic(masses, coords, model_hessian(masses, coords, lam))
    assert h.frequencies_cm1[0] == pytest.approx(-400.0, rel=1e-9)
    assert list(h.imaginary(10.0)) == [0]
    # ZPVE counts real modes only
    assert h.zpve_hartree() == pytest.approx(0.5 * (1600 + 3700) / HARTREE_WAVENUMBER, rel=1e-9)
    moved = h.displaced_along(0, 0.1)
    assert np.abs(moved - coords).max() == pytest.approx(0.1)


def test_translation_and_rotation_contamination_is_projected_out():
    """A Hessian with spurious rigid-body curvature (e.g. grid noise) still gives 3N-6 clean modes."""
    masses = np.array([15.99491461957, 1.00782503223, 1.00782503223])
    coords = np.array([[0, 0, 0.22], [0, 1.43, -0.88], [0, -1.43, -0.88]])
    wn = np.array([1600.0, 3650.0, 3750.0])
    lam = (wn / HARTREE_WAVENUMBER) ** 2 * AMU_ME
    hess = model_hessian(masses, coords, lam)
    d = rigid_body_vectors(masses, coords)
    s = np.sqrt(np.repeat(masses, 3))
    noise = (d.T @ np.diag(np.full(6, 1e-4)) @ d) * s[:, None] * s[None, :]
    h = Harmonic(masses, coords, hess + noise)
    assert h.n_modes == 3
    assert np.allclose(h.frequencies_cm1, wn, rtol=1e-9)


def test_nearly_linear_optimised_geometry_keeps_both_bends():
    """HCN bent by 0.3 degrees (an optimiser's tolerance) is still linear: 3N-5 = 4 modes with a
    degenerate bend, not 3 modes with one bend mistaken for a rotation."""
    masses = np.array([1.00782503223, 12.0, 14.00307400443])
    ang = np.deg2rad(0.3)
    coords = np.array([[2.01 * np.sin(ang), 0, -2.01 * np.cos(ang)], [0, 0, 0], [0, 0, 2.18]])
    wn = np.array([750.0, 760.0, 2200.0, 3450.0])
    lam = (wn / HARTREE_WAVENUMBER) ** 2 * AMU_ME
    exact_linear = np.array([[0, 0, -2.01], [0, 0, 0], [0, 0, 2.18]], float)
    hess = model_hessian(masses, exact_linear, lam)
    h = Harmonic(masses, coords, hess)
    assert h.is_linear and h.n_modes == 4
    assert np.allclose(h.frequencies_cm1, wn, rtol=2e-3)
