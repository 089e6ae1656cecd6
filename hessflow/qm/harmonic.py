"""Engine-independent harmonic analysis of a Cartesian Hessian.

Like ASE's ``VibrationsData``, :class:`Harmonic` holds masses, geometry and Hessian and derives
everything else; it computes nothing quantum-chemical.

Conventions (atomic units inside):
  - Hessian in Hartree/Bohr^2, masses in amu, coordinates in Bohr;
  - translations and rotations are projected out exactly by working in the orthonormal complement
    of the rigid-body space of the mass-weighted coordinates, so a linear molecule has 3N-5 modes
    and a non-linear one 3N-6;
  - imaginary frequencies are reported as negative wavenumbers;
  - ``modes_mass_weighted[k]`` is the orthonormal eigenvector q_k (n, 3);
    ``modes_cartesian[k]`` = M^-1/2 q_k normalised to 1 (n, 3);
  - reduced mass mu_k = 1 / |M^-1/2 q_k|^2 (amu); force constant k_k = mu_k * lambda_k
    (Hartree/Bohr^2), with lambda_k the mass-weighted eigenvalue (Hartree/Bohr^2/amu). These are
    Gaussian's conventions: k_k is the curvature of the energy along the normalised Cartesian mode,
    so for a diatomic both differ from the classical mu and spring constant by M^2/(m1^2+m2^2);
  - ZPVE = 1/2 sum over real modes of omega_k (Hartree).
"""

from __future__ import annotations

import dataclasses
from functools import cached_property

import numpy as np

from ..units import AMU_ME, HARTREE_WAVENUMBER

# A molecule is linear when its smallest principal moment of inertia is below this fraction of
# the largest: an optimised "linear" molecule is only linear to the optimiser's tolerance, and a
# rank test would then count a degenerate bend as a rotation.
LINEAR_MOMENT_RATIO = 1e-3


def principal_axes(masses_amu, coords_bohr):
    """Principal moments (ascending, amu*Bohr^2) and axes (columns) about the centre of mass."""
    m = np.asarray(masses_amu, float)
    x = np.asarray(coords_bohr, float).reshape(-1, 3)
    r = x - (m[:, None] * x).sum(0) / m.sum()
    inertia = np.eye(3) * (m * (r ** 2).sum(1)).sum() - np.einsum("i,ij,ik->jk", m, r, r)
    return np.linalg.eigh(inertia)


def is_linear(masses_amu, coords_bohr) -> bool:
    moments, _ = principal_axes(masses_amu, coords_bohr)
    return len(masses_amu) == 2 or moments[0] < LINEAR_MOMENT_RATIO * moments[2]


def rigid_body_vectors(masses_amu, coords_bohr) -> np.ndarray:
    """Orthonormal rigid-body vectors in mass-weighted coordinates, shape (k, 3n): three
    translations and three rotations about the principal axes (two for a linear molecule, none
    for an atom)."""
    m = np.asarray(masses_amu, float)
    x = np.asarray(coords_bohr, float).reshape(-1, 3)
    n = len(m)
    sq = np.sqrt(m)
    r = x - (m[:, None] * x).sum(0) / m.sum()
    vecs = []
    for a in range(3):
        t = np.zeros((n, 3))
        t[:, a] = sq
        vecs.append(t.ravel())
    if n > 1:
        _, axes = principal_axes(m, x)
        first = 1 if is_linear(m, x) else 0  # no rotation about the molecular axis
        for a in range(first, 3):
            vecs.append((np.cross(axes[:, a], r) * sq[:, None]).ravel())
    q, _ = np.linalg.qr(np.array(vecs).T)
    return q.T


@dataclasses.dataclass
class Harmonic:
    masses_amu: np.ndarray
    coords_bohr: np.ndarray
    hessian: np.ndarray  # (3n, 3n) Hartree/Bohr^2

    def __post_init__(self):
        self.masses_amu = np.asarray(self.masses_amu, float).reshape(-1)
        self.coords_bohr = np.asarray(self.coords_bohr, float).reshape(-1, 3)
        n3 = 3 * len(self.masses_amu)
        h = np.asarray(self.hessian, float)
        if h.shape != (n3, n3):
            raise ValueError(f"hessian has shape {h.shape}, expected ({n3}, {n3})")
        self.hessian = 0.5 * (h + h.T)

    @property
    def natoms(self) -> int:
        return len(self.masses_amu)

    @cached_property
    def mass_weighted_hessian(self) -> np.ndarray:
        inv = 1.0 / np.sqrt(np.repeat(self.masses_amu, 3))
        return self.hessian * inv[:, None] * inv[None, :]

    @cached_property
    def is_linear(self) -> bool:
        return is_linear(self.masses_amu, self.coords_bohr)

    @cached_property
    def _eig(self):
        d = rigid_body_vectors(self.masses_amu, self.coords_bohr)  # (k, 3n)
        n3 = 3 * self.natoms
        # orthonormal basis of the internal (vibrational) space: complement of d
        proj = np.eye(n3) - d.T @ d
        w, v = np.linalg.eigh(proj)
        basis = v[:, w > 0.5]  # (3n, 3n-k)
        h_int = basis.T @ self.mass_weighted_hessian @ basis
        lam, c = np.linalg.eigh(0.5 * (h_int + h_int.T))
        q = (basis @ c).T  # (nmodes, 3n), orthonormal
        # deterministic sign: largest component positive
        idx = np.argmax(np.abs(q), axis=1)
        q *= np.sign(q[np.arange(len(q)), idx])[:, None]
        return lam, q

    @property
    def eigenvalues(self) -> np.ndarray:
        """Mass-weighted eigenvalues lambda_k, Hartree/(Bohr^2 amu)."""
        return self._eig[0]

    @property
    def n_modes(self) -> int:
        return len(self.eigenvalues)

    @cached_property
    def omega_hartree(self) -> np.ndarray:
        """Signed angular frequencies in Hartree (negative = imaginary)."""
        lam = self.eigenvalues / AMU_ME
        return np.sign(lam) * np.sqrt(np.abs(lam))

    @property
    def frequencies_cm1(self) -> np.ndarray:
        return self.omega_hartree * HARTREE_WAVENUMBER

    @property
    def modes_mass_weighted(self) -> np.ndarray:
        return self._eig[1].reshape(self.n_modes, self.natoms, 3)

    @cached_property
    def _cart(self):
        inv = 1.0 / np.sqrt(np.repeat(self.masses_amu, 3))
        x = self._eig[1] * inv[None, :]
        norm2 = (x ** 2).sum(1)
        return x / np.sqrt(norm2)[:, None], 1.0 / norm2

    @property
    def modes_cartesian(self) -> np.ndarray:
        return self._cart[0].reshape(self.n_modes, self.natoms, 3)

    @property
    def reduced_masses_amu(self) -> np.ndarray:
        return self._cart[1]

    @property
    def force_constants_hartree_bohr2(self) -> np.ndarray:
        return self.reduced_masses_amu * self.eigenvalues

    def imaginary(self, tol_cm1: float = 10.0) -> np.ndarray:
        """Indices of modes whose frequency is below -tol_cm1."""
        return np.flatnonzero(self.frequencies_cm1 < -abs(tol_cm1))

    def zpve_hartree(self) -> float:
        w = self.omega_hartree
        return float(0.5 * w[w > 0].sum())

    def displaced_along(self, mode: int, max_disp_bohr: float = 0.1) -> np.ndarray:
        """Coordinates displaced along Cartesian mode ``mode`` so the largest atom moves max_disp."""
        v = self.modes_cartesian[mode]
        v = v / np.abs(v).max()
        return self.coords_bohr + max_disp_bohr * v
