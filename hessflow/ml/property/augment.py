"""Vibration augmentation: geometries displaced along the normal modes of the DFT Hessian.

For each vibrational mode k (translations and rotations are projected out and never excited) with
angular frequency omega_k, the mass-weighted normal coordinate Q_k (atomic units: masses in
electron masses, so hbar = 1) is drawn from

``quantum``    the thermal density of the harmonic oscillator: Gaussian with variance
               <Q_k^2> = 1/(2 omega_k) coth(omega_k / 2kT); T -> 0 gives the zero-point density
               1/(2 omega_k), high T the classical limit;
``classical``  Gaussian with variance kT / omega_k^2 (Boltzmann);
``nms``        the normal-mode sampling of ANI-1 (Smith, Isayev, Roitberg, Chem. Sci. 8, 3192
               (2017)): c_k uniform in [0, 1] rescaled so that sum_k c_k is uniform in [0, 1],
               R_k = +/- sqrt(3 c_k N_atoms kT / K_k) along the normalised Cartesian mode, K_k its
               force constant (so the harmonic energy is 3/2 N_atoms kT * sum_k c_k).

Cartesian displacements are x = M^-1/2 sum_k q_k Q_k: the centre of mass never moves and no
rigid rotation is excited. Everything is vectorised over samples; :class:`VibrationalDataset`
draws samples on the fly inside a torch ``DataLoader`` so that 10^4-fold augmentation is never
materialised.
"""

from __future__ import annotations

import numpy as np

from ...qm.harmonic import Harmonic
from ...units import AMU_ME, KB_HARTREE

DISTRIBUTIONS = ("quantum", "classical", "nms")
MIN_OMEGA_HARTREE = 1e-6  # modes softer than ~0.2 cm^-1 (or imaginary) are not excited


def mode_variances(omega_hartree, temperature_k: float, distribution: str) -> np.ndarray:
    """Variance of each mass-weighted normal coordinate (m_e Bohr^2) for the Gaussian
    distributions."""
    w = np.asarray(omega_hartree, float)
    kt = KB_HARTREE * float(temperature_k)
    if distribution == "quantum":
        if kt == 0:
            return 1.0 / (2.0 * w)
        x = w / (2.0 * kt)
        return 1.0 / (2.0 * w) / np.tanh(x)
    if distribution == "classical":
        if kt == 0:
            return np.zeros_like(w)
        return kt / w ** 2
    raise ValueError(f"distribution: {distribution!r} has no per-mode variance (use "
                     f"'quantum' or 'classical')")


def _check(distribution, temperature_k, n_samples):
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution: {distribution!r} is not one of {', '.join(DISTRIBUTIONS)}")
    if temperature_k < 0:
        raise ValueError(f"temperature_k: {temperature_k} must be >= 0")
    if int(n_samples) < 0:
        raise ValueError(f"n_samples: {n_samples} must be >= 0")


def sample_normal_modes(coords_bohr, masses_amu, hessian, n_samples: int, temperature_k: float,
                        distribution: str = "quantum", rng=None) -> np.ndarray:
    """``n_samples`` geometries (n_samples, n_atoms, 3), in Bohr, displaced along the normal modes
    of ``hessian`` (Hartree/Bohr^2) around ``coords_bohr``. See the module docstring."""
    _check(distribution, temperature_k, n_samples)
    h = Harmonic(masses_amu, coords_bohr, hessian)
    return sample_from_harmonic(h, n_samples, temperature_k, distribution, rng)


def sample_from_harmonic(h: Harmonic, n_samples: int, temperature_k: float,
                         distribution: str = "quantum", rng=None) -> np.ndarray:
    _check(distribution, temperature_k, n_samples)
    rng = np.random.default_rng(rng)
    n = int(n_samples)
    w = h.omega_hartree
    ok = w > MIN_OMEGA_HARTREE
    inv_sqrt_m = 1.0 / np.sqrt(np.repeat(h.masses_amu * AMU_ME, 3))  # electron-mass units
    if distribution == "nms":
        return _nms(h, ok, n, temperature_k, rng)
    sigma = np.sqrt(mode_variances(w[ok], temperature_k, distribution))
    q = h.modes_mass_weighted.reshape(h.n_modes, -1)[ok]          # (m, 3n) orthonormal
    Q = rng.standard_normal((n, int(ok.sum()))) * sigma             # (n, m)
    disp = (Q @ q) * inv_sqrt_m                                     # (n, 3n)
    return h.coords_bohr[None] + disp.reshape(n, h.natoms, 3)


def _nms(h: Harmonic, ok, n, temperature_k, rng) -> np.ndarray:
    kt = KB_HARTREE * float(temperature_k)
    k = h.force_constants_hartree_bohr2[ok]                         # along normalised Cartesian modes
    modes = h.modes_cartesian.reshape(h.n_modes, -1)[ok]            # (m, 3n) unit vectors
    m = int(ok.sum())
    c = rng.uniform(size=(n, m))
    total = rng.uniform(size=(n, 1))                                 # sum_k c_k uniform in [0, 1]
    c = c / c.sum(axis=1, keepdims=True) * total
    sign = rng.choice([-1.0, 1.0], size=(n, m))
    r = sign * np.sqrt(3.0 * c * h.natoms * kt / k)                  # (n, m) Bohr
    return h.coords_bohr[None] + (r @ modes).reshape(n, h.natoms, 3)


def harmonic_energy(h: Harmonic, geometries) -> np.ndarray:
    """Harmonic energy (Hartree) of displaced geometries: 1/2 dx^T H dx."""
    dx = (np.asarray(geometries) - h.coords_bohr[None]).reshape(len(geometries), -1)
    return 0.5 * np.einsum("si,ij,sj->s", dx, h.hessian, dx)


class VibrationalDataset:
    """A torch-style dataset of augmented geometries drawn on the fly.

    ``molecules`` is a list of dicts with ``numbers``, ``coords_bohr``, ``masses_amu``,
    ``hessian`` and ``label`` (the equilibrium label: labels stay those of the equilibrium
    structure). Item ``i`` is sample ``i % n_augment`` of molecule ``i // n_augment``, drawn with a
    generator seeded from (seed, i), so an epoch is reproducible whatever the worker split; sample
    0 of each molecule is the equilibrium geometry when ``include_equilibrium``.
    ``transform(numbers, coords_bohr) -> features`` turns a geometry into model input.
    """

    def __init__(self, molecules, n_augment: int, temperature_k: float,
                 distribution: str = "quantum", seed: int = 0, transform=None,
                 include_equilibrium: bool = True):
        _check(distribution, temperature_k, n_augment)
        self.molecules = list(molecules)
        self.harmonic = [Harmonic(m["masses_amu"], m["coords_bohr"], m["hessian"])
                         for m in self.molecules]
        self.n_augment = max(1, int(n_augment))
        self.temperature_k = temperature_k
        self.distribution = distribution
        self.seed = int(seed)
        self.transform = transform
        self.include_equilibrium = include_equilibrium

    def __len__(self):
        return len(self.molecules) * self.n_augment

    def geometry(self, i: int) -> np.ndarray:
        mol, j = divmod(int(i), self.n_augment)
        h = self.harmonic[mol]
        if j == 0 and self.include_equilibrium:
            return h.coords_bohr.copy()
        rng = np.random.default_rng([self.seed, int(i)])
        return sample_from_harmonic(h, 1, self.temperature_k, self.distribution, rng)[0]

    def __getitem__(self, i):
        mol = self.molecules[int(i) // self.n_augment]
        x = self.geometry(i)
        feats = self.transform(mol["numbers"], x) if self.transform else x
        return feats, mol["label"]

    def materialise(self) -> np.ndarray:
        """All geometries at once, (len, n_atoms, 3) for equal-size molecules (e.g. to write them
        to HDF5 when asked)."""
        return np.stack([self.geometry(i) for i in range(len(self))])


def write_hdf5(dataset: VibrationalDataset, path, names=None):
    """Materialise the augmented geometries into an HDF5 file (one group per molecule: numbers,
    geometries_bohr (n_augment, n_atoms, 3), label), for when they must be kept or shared."""
    import h5py
    with h5py.File(path, "w") as f:
        f.attrs["distribution"] = dataset.distribution
        f.attrs["temperature_k"] = dataset.temperature_k
        f.attrs["n_augment"] = dataset.n_augment
        f.attrs["seed"] = dataset.seed
        for k, mol in enumerate(dataset.molecules):
            g = f.create_group(names[k] if names else f"mol{k:06d}")
            g["numbers"] = np.asarray(mol["numbers"])
            idx = range(k * dataset.n_augment, (k + 1) * dataset.n_augment)
            d = g.create_dataset("geometries_bohr", data=np.stack([dataset.geometry(i) for i in idx]))
            d.attrs["unit"] = "Bohr"
            g["label"] = mol["label"]
    return path
