"""Small pieces the PySCF engine and its GPU twin (:mod:`.gpu4pyscf_engine`) both need, written
once: the uniform-field one-electron term of finite-field runs, the frontier orbitals of a
converged mean field, and Gaussian's mixed "6D 7F" shells. Array-library neutral: ``asarray`` moves a host (NumPy) array to where the
mean field keeps its matrices (``numpy.asarray`` for PySCF, ``cupy.asarray`` for GPU4PySCF).
"""

from __future__ import annotations

import numpy as np

__all__ = ["field_operator", "apply_uniform_field", "frontier_orbitals", "mixed_shell_transform",
           "use_mixed_shells"]


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


def mixed_shell_transform(pmol, pure_from: int = 3) -> np.ndarray:
    """The (nao_cart, nao_mixed) matrix T whose columns are the basis functions of Gaussian's
    mixed convention in terms of the Cartesian AOs of ``pmol`` (built with ``cart=True``): shells
    of angular momentum below ``pure_from`` stay Cartesian (unit columns), shells of ``pure_from``
    and above become their pure (spherical) combinations (PySCF's own cart2sph, so they are the
    functions a ``cart=False`` molecule would have). ``pure_from=3``: Cartesian d, pure f ("6D 7F").

    The functions move rigidly with their atom, so energies, gradients, Hessians and responses
    in the span of T are those of the mixed basis: only the orbital space is restricted."""
    from pyscf import gto
    if not pmol.cart:
        raise ValueError("mixed_shell_transform needs a molecule built with cart=True")
    blocks = []
    for ib in range(pmol.nbas):
        l = pmol.bas_angular(ib)
        nctr = pmol.bas_nctr(ib)
        block = gto.cart2sph(l, normalized="sp") if l >= pure_from else np.eye((l + 1) * (l + 2) // 2)
        blocks.extend([block] * nctr)
    ncart = sum(b.shape[0] for b in blocks)
    t = np.zeros((ncart, sum(b.shape[1] for b in blocks)))
    i = j = 0
    for b in blocks:
        t[i:i + b.shape[0], j:j + b.shape[1]] = b
        i, j = i + b.shape[0], j + b.shape[1]
    if i != pmol.nao_nr():
        raise AssertionError(f"shell transform covers {i} of {pmol.nao_nr()} AOs")
    return t


def use_mixed_shells(mf, transform: np.ndarray):
    """Restrict the mean field ``mf`` (of a ``cart=True`` molecule, not yet run) to the span of
    ``transform`` (:func:`mixed_shell_transform`): the orthonormaliser PySCF's SCF takes for its
    eigenproblems and DIIS (``check_linear_dependency``) becomes T (T^T S T)^(-1/2), so every
    molecular orbital lies in the mixed basis; there are fewer MOs than Cartesian AOs, as after
    PySCF's own removal of linear dependencies. Returns ``mf``."""
    t = np.asarray(transform)

    def orthonormaliser(s, log=None):
        st = t.T @ np.asarray(s) @ t
        w, v = np.linalg.eigh(st)
        return t @ (v / np.sqrt(w)) @ v.T

    mf.check_linear_dependency = orthonormaliser
    return mf
