"""Two QM9 labels PySCF gives from objects it already has: the electronic spatial extent <R^2>
and the point group (for the rotational symmetry number). PySCF is imported by the caller's
objects or lazily here. The PySCF engine and its GPU twin put <R^2> of their single point's
density into :attr:`~.base.SinglePoint.r2_bohr2` (the record's ``r2_bohr2``).
"""

from __future__ import annotations

import numpy as np

from ..molecules.elements import symbol


def electronic_spatial_extent(mol_pyscf, dm, origin_bohr=None) -> float:
    """QM9's r2: the electronic spatial extent <R^2> = sum_ij D_ij <i|r^2|j> (Bohr^2) of the
    density matrix ``dm`` (AO basis of ``mol_pyscf``; a (2, nao, nao) UHF/UKS pair is summed),
    about ``origin_bohr``, by default the centre of nuclear charge, Gaussian's origin (with
    it water matches QM9's 19.0002 Bohr^2; about the centre of mass it would be 0.3 % lower)."""
    d = np.asarray(dm)
    if d.ndim == 3:
        d = d.sum(0)
    if origin_bohr is None:
        z = mol_pyscf.atom_charges()
        origin_bohr = (z[:, None] * mol_pyscf.atom_coords(unit="Bohr")).sum(0) / z.sum()
    with mol_pyscf.with_common_orig(np.asarray(origin_bohr, float)):
        r2 = mol_pyscf.intor_symmetric("int1e_r2")
    return float(np.einsum("ij,ji->", r2, d))


def point_group(numbers, coords_bohr, tol_bohr: float = 0.02) -> str:
    """The Schoenflies point group PySCF detects (``pyscf.symm.detect_symm``: Td, C3v, D6h,
    Dooh, Coov ...) with its geometry tolerance set to ``tol_bohr`` (Bohr) for the call, since an
    optimised geometry is symmetric only to the optimiser's tolerance (PySCF's default, 1e-5,
    would call most of them C1). Not thread-safe: the tolerance is a PySCF module setting."""
    from pyscf.symm import geom
    atoms = [(symbol(z), tuple(r)) for z, r in zip(np.asarray(numbers).reshape(-1),
                                                   np.asarray(coords_bohr, float).reshape(-1, 3))]
    saved = geom.TOLERANCE
    geom.TOLERANCE = float(tol_bohr)
    try:
        return str(geom.detect_symm(atoms)[0])
    finally:
        geom.TOLERANCE = saved
