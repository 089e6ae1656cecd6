"""beta_parallel and beta_vec against their definitions."""

import numpy as np
import pytest

from hessflow.qm import properties


def _sym_beta(seed):
    b = np.random.default_rng(seed).normal(size=(3, 3, 3))
    perms = [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]
    return sum(b.transpose(p) for p in perms) / 6


def _rotate_beta(b, r):
    return np.einsum("ia,jb,kc,abc->ijk", r, r, r, b)


def test_beta_parallel_equals_definition_in_dipole_frame():
    b = _sym_beta(0)
    mu = np.array([0.3, -0.5, 0.8])
    # rotation taking mu to +z
    z = mu / np.linalg.norm(mu)
    x = np.cross([0, 1, 0], z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    r = np.array([x, y, z])  # rows: new axes
    bz = _rotate_beta(b, r)
    expected = sum(bz[2, i, i] + bz[i, 2, i] + bz[i, i, 2] for i in range(3)) / 5
    assert properties.beta_parallel(b, mu) == pytest.approx(expected, rel=1e-12)


def test_beta_vec_norm_is_rotation_invariant_and_parallel_zero_without_dipole():
    b = _sym_beta(1)
    q, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(3, 3)))
    assert properties.beta_vec_norm(_rotate_beta(b, q)) == pytest.approx(properties.beta_vec_norm(b))
    assert properties.beta_parallel(b, [0, 0, 0]) == 0.0
    assert properties.alpha_iso(np.diag([1.0, 2.0, 6.0])) == 3.0
