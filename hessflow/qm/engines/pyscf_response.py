"""The grid of PySCF's coupled-perturbed response (``Level.response_grid``).

Where PySCF 2.x (CPU) takes its grids in the two response stages:

* analytic Hessian (``pyscf.hessian.rks``/``uks``): the explicit XC second-derivative terms
  (``_get_vxc_diag``, ``_get_vxc_deriv1``, ``_get_vxc_deriv2``) use ``hessobj.grids``, or
  ``mf.grids`` when that is None; the CPHF orbital response (``solve_mo1`` -> ``gen_vind`` ->
  ``mf.gen_response``) builds its XC kernel (``cache_xc_kernel``, ``nr_rks_fxc``) on ``mf.grids``
  whenever it is called;
* alpha (pyscf-properties ``polarizability.rks``): only the CPKS, through ``mf.gen_response``,
  so ``mf.grids`` (and beta, the finite field of alpha, too).

:func:`response_grids` therefore puts the response grid in ``mf.grids`` for the duration of a
Hessian or alpha call, after pinning ``hessobj.grids`` to the SCF grid, and puts the SCF grid
back afterwards (the cached mean field is left as it was). Gaussian does the same with its
``CPHF=Grid``: a coarser grid for the CPKS than for the SCF.
"""

from __future__ import annotations

import contextlib

__all__ = ["build_grids", "response_grids"]


def build_grids(pmol, spec):
    """A built PySCF ``Grids`` for ``pmol``: ``spec`` an integer level, ``"R,S"`` (unpruned R
    radial x S Lebedev points per atom, as ``Level.grid``) or ``"sg1"`` ((50, 194), SG-1
    pruning)."""
    from pyscf.dft import gen_grid
    g = gen_grid.Grids(pmol)
    if spec == "sg1":
        g.atom_grid, g.prune = (50, 194), gen_grid.sg1_prune
    elif isinstance(spec, str) and "," in spec:
        g.atom_grid, g.prune = tuple(int(x) for x in spec.split(",")), None
    else:
        g.level = int(spec)
    return g.build(with_non0tab=True)


@contextlib.contextmanager
def response_grids(mf, spec, hessobj=None):
    """Inside the block the CPHF/CPKS response of ``mf`` (a converged PySCF DFT mean field) runs
    on the grid ``spec`` (:func:`build_grids`; None: nothing changes) and, when ``hessobj`` is
    given, the Hessian's explicit XC terms stay on the SCF grid. HF (no grid): nothing changes.
    Yields the response grids (or None)."""
    from pyscf import dft
    if spec is None or not isinstance(mf, dft.rks.KohnShamDFT):
        yield None
        return
    scf_grids = mf.grids
    if hessobj is not None and getattr(hessobj, "grids", None) is None:
        hessobj.grids = scf_grids
    grids = build_grids(mf.mol, spec)
    mf.grids = grids
    try:
        yield grids
    finally:
        mf.grids = scf_grids
