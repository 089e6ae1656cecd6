"""Derived response properties (atomic units)."""

from __future__ import annotations

import numpy as np

DIPOLE_ZERO_AU = 1e-5  # below this |mu| (e*Bohr) the dipole direction is undefined


def alpha_iso(alpha) -> float:
    """Isotropic polarizability trace(alpha)/3 of a (3, 3) tensor, Bohr^3."""
    return float(np.trace(np.asarray(alpha)) / 3.0)


def beta_vector(beta) -> np.ndarray:
    """beta_vec_i = (1/3) sum_j (beta_ijj + beta_jij + beta_jji)."""
    b = np.asarray(beta)
    return (np.einsum("ijj->i", b) + np.einsum("jij->i", b) + np.einsum("jji->i", b)) / 3.0


def beta_parallel(beta, dipole) -> float:
    """beta_par = (1/5) sum_i (beta_zii + beta_izi + beta_iiz), z along the dipole = (3/5) beta_vec.mu/|mu|.

    For a molecule without a dipole (|mu| < DIPOLE_ZERO_AU) the EFISH response mu.beta_vec vanishes,
    and beta_par is reported as 0."""
    mu = np.asarray(dipole, float)
    norm = np.linalg.norm(mu)
    if norm < DIPOLE_ZERO_AU:
        return 0.0
    return float(0.6 * beta_vector(beta) @ (mu / norm))


def beta_vec_norm(beta) -> float:
    """|beta_vec| of a (3, 3, 3) tensor (a.u.), see :func:`beta_vector`."""
    return float(np.linalg.norm(beta_vector(beta)))
