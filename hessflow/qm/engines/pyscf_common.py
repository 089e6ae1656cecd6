"""Small pieces the PySCF engine and its GPU twin (:mod:`.gpu4pyscf_engine`) both need, written
once: the uniform-field one-electron term of finite-field runs and the frontier orbitals of a
converged mean field. Array-library neutral: ``asarray`` moves a host (NumPy) array to where the
mean field keeps its matrices (``numpy.asarray`` for PySCF, ``cupy.asarray`` for GPU4PySCF).
"""

from __future__ import annotations

import numpy as np

__all__ = ["field_operator", "apply_uniform_field", "frontier_orbitals"]


def field_operator(pmol, field_au) -> np.ndarray:
    """The (nao, nao) one-electron term F.r of a uniform electric field ``field_au`` (3,) in
    atomic units (E_h / (e a0)), dipole origin (0, 0, 0), in the AO basis of the PySCF molecule
    ``pmol``. The perturbation is H' = -mu.F with the electronic dipole -r, hence +F.r."""
    with pmol.with_common_orig((0.0, 0.0, 0.0)):
        r = pmol.intor_symmetric("int1e_r", comp=3)
    return np.einsum("x,xij->ij", np.asarray(field_au, float), r)


def apply_uniform_field(mf, pmol, field_au, asarray=np.asarray):
    """Put the uniform field ``field_au`` (3,), atomic units, into the core Hamiltonian of the
    mean-field object ``mf`` (not yet run) of molecule ``pmol``: ``mf.get_hcore`` then returns
    h0 + F.r. ``asarray`` converts the host-side F.r to ``mf``'s array type. Returns ``mf``."""
    h1 = mf.get_hcore() + asarray(field_operator(pmol, field_au))
    mf.get_hcore = lambda *args, **kwargs: h1
    return mf


def frontier_orbitals(mo_energy, mo_occ) -> tuple[float, float]:
    """(HOMO, LUMO) energies in Hartree from host arrays of orbital energies and occupations
    (restricted (nmo,) or unrestricted (2, nmo): the highest occupied / lowest empty spin
    orbital); LUMO is NaN when no orbital is empty."""
    occ = np.asarray(mo_occ)
    e = np.asarray(mo_energy)
    homo = float(e[occ > 0].max())
    lumo = float(e[occ == 0].min()) if np.any(occ == 0) else float("nan")
    return homo, lumo
