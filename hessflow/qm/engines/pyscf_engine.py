"""PySCF engine (the embedded default): RKS/UKS (or RHF/UHF), geomeTRIC optimisation, analytic
Hessian, analytic (CPKS) polarizability, and finite-field first hyperpolarizability.

For DFT, beta is obtained by central finite differences of the analytic alpha in a uniform field,
beta_ijk = (alpha_ij(+h e_k) - alpha_ij(-h e_k)) / 2h, h = ``Level.field_step_au``, because the
analytic DFT beta of pyscf-properties omits the XC-kernel derivative term. For HF the analytic
beta (:meth:`PyscfEngine.hyperpolarizability_analytic`) is exact and serves as a cross-check.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np

from ...errors import EngineError
from ..basis_library import pyscf_basis
from ..level import Level, geometric_trust_angstrom
from ..molecules.molecule import Molecule
from .base import Engine, OptResult, SinglePoint
from .pyscf_common import mixed_shell_transform, use_mixed_shells
from .pyscf_extras import electronic_spatial_extent
from .pyscf_response import response_grids
from .xtb_preopt import xtb_start


GEOMETRIC_LOG_INI = str(Path(__file__).resolve().parent.parent / "data" / "geometric_quiet.ini")


def _import_prop():
    """pyscf-properties warns 'under testing' for every module at import: silence that once."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pyscf.prop.polarizability import rhf, rks, uhf, uks
    return rhf, rks, uhf, uks


def start_options(mol: Molecule, level: Level):
    """The start of a DFT optimisation (:func:`.xtb_preopt.xtb_start`: the GFN2-xTB minimum and
    Hessian, or the input geometry and the model guess) and the geomeTRIC options it needs: the
    Cartesian initial Hessian (Hartree/Bohr^2) as ``hess_data``, with geomeTRIC's frequency
    analysis of it switched off. (Not PySCF's ``hessian=`` option: that computes the DFT
    Hessian and writes it over the file it is given.)"""
    start = xtb_start(mol, level)
    extra = {}
    if start.hessian is not None:
        extra = {"hess_data": start.hessian.tolist(), "frequency": False}
    return start, extra


class PyscfEngine(Engine):
    name = "pyscf"
    methods = {"sp": "analytic", "opt": "geomeTRIC + analytic gradients", "freq": "analytic Hessian",
               "polar": "analytic (CPKS)", "hyperpolar": "finite field of analytic alpha"}

    def __init__(self):
        self._cache_key = None
        self._cache_mf = None

    def why_not_found(self):
        try:
            import pyscf.hessian  # noqa: F401
            _import_prop()
        except Exception as exc:  # pragma: no cover - depends on the machine
            return f"{type(exc).__name__}: {exc}"
        return None

    def version(self):
        import pyscf
        return pyscf.__version__

    # -- building blocks -------------------------------------------------------------------
    def _mol(self, mol: Molecule, level: Level):
        from pyscf import gto
        level = level.replace(shells=self.shells_run(level))
        try:
            return gto.M(
                atom=[(int(z), tuple(r)) for z, r in zip(mol.numbers, mol.coords_bohr)],
                unit="Bohr", basis=pyscf_basis(level.basis, mol.symbols), charge=int(mol.charge),
                spin=int(mol.multiplicity) - 1, cart=level.cartesian_d, verbose=0,
                max_memory=level.memory_mb, symmetry=False,
            )
        except Exception as exc:
            raise EngineError(f"{mol.name}: pyscf cannot build the molecule: {exc}") from exc

    def _new_mf(self, pmol, level: Level, restricted: bool):
        from pyscf import dft, scf
        if level.is_hf:
            mf = scf.RHF(pmol) if restricted else scf.UHF(pmol)
        else:
            mf = dft.RKS(pmol) if restricted else dft.UKS(pmol)
            mf.xc = level.method
            pts = level.grid_points
            if pts:
                mf.grids.atom_grid = pts
                mf.grids.prune = None
            else:
                mf.grids.level = int(level.grid)
        if self.shells_run(level) == "6d7f":  # Cartesian d, pure f: Gaussian's 6-31G shells
            use_mixed_shells(mf, mixed_shell_transform(pmol))
        if level.density_fit:  # the DF object copies the mixed-shell orthonormaliser along
            mf = mf.density_fit(auxbasis=level.density_fit)
        mf.conv_tol = level.conv_tol
        mf.max_cycle = level.max_cycle
        if level.damping:
            mf.damp = level.damping
        if level.level_shift:
            mf.level_shift = level.level_shift
        if level.soscf:
            mf = mf.newton()
        mf.verbose = 0
        return mf

    def _threads(self, level: Level):
        from pyscf import lib
        if level.threads and level.threads > 0:
            lib.num_threads(level.threads)

    def _scf(self, mol: Molecule, level: Level, field_au=None, dm0=None):
        """Converged mean-field object for ``mol`` (cached for the last geometry/level)."""
        field = None if field_au is None else np.asarray(field_au, float)
        key = (mol.coords_bohr.tobytes(), mol.numbers.tobytes(), mol.charge, mol.multiplicity,
               repr(level), None if field is None else field.tobytes())
        if key == self._cache_key:
            return self._cache_mf
        self._threads(level)
        pmol = self._mol(mol, level)
        mf = self._new_mf(pmol, level, restricted=mol.multiplicity == 1)
        if field is not None:
            h0 = mf.get_hcore()
            with pmol.with_common_orig((0.0, 0.0, 0.0)):
                r = pmol.intor_symmetric("int1e_r", comp=3)
            # H' = -mu.F with electronic dipole -r: one-electron term +F.r
            h1 = h0 + np.einsum("x,xij->ij", field, r)
            mf.get_hcore = lambda *a, **k: h1
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mf.kernel(dm0=dm0)
        except Exception as exc:
            raise EngineError(f"{mol.name}: SCF error: {exc}", kind="scf") from exc
        if not mf.converged:
            raise EngineError(
                f"{mol.name}: SCF not converged in {level.max_cycle} cycles", kind="scf")
        if field is None:
            self._cache_key, self._cache_mf = key, mf
        return mf

    # -- the Engine faces -----------------------------------------------------------------
    def single_point(self, mol: Molecule, level: Level) -> SinglePoint:
        mf = self._scf(mol, level)
        dip = mf.dip_moment(unit="AU", verbose=0)
        occ = np.asarray(mf.mo_occ)
        e = np.asarray(mf.mo_energy)
        homo = float(e[occ > 0].max())
        lumo = float(e[occ == 0].min()) if np.any(occ == 0) else float("nan")
        return SinglePoint(float(mf.e_tot), np.asarray(dip, float), homo, lumo,
                           r2_bohr2=electronic_spatial_extent(mf.mol, mf.make_rdm1()))

    def gradient(self, mol: Molecule, level: Level) -> np.ndarray:
        """Analytic nuclear gradient (``mf.nuc_grad_method()``) of the (cached) SCF, Hartree/Bohr;
        a GPU mean field's (CuPy) result is brought to the host."""
        mf = self._scf(mol, level)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                g = mf.nuc_grad_method()
                g.verbose = 0
                de = g.kernel()
        except Exception as exc:
            raise EngineError(f"{mol.name}: gradient error: {exc}") from exc
        de = de.get() if hasattr(de, "get") and not isinstance(de, np.ndarray) else de
        return np.asarray(de, float).reshape(mol.natoms, 3)

    def optimize(self, mol: Molecule, level: Level) -> OptResult:
        """geomeTRIC with analytic gradients, started as ``level.preopt`` and
        ``level.opt_initial_hessian`` say (:func:`start_options`); ``n_steps`` counts DFT
        gradients, :attr:`OptResult.preopt` says how the optimisation started."""
        from pyscf.geomopt import geometric_solver
        start, extra = start_options(mol, level)
        mol = mol.with_coords(start.coords_bohr)
        mf = self._new_mf(self._mol(mol, level), level, restricted=mol.multiplicity == 1)
        self._threads(level)
        steps = []
        trust, tmax = geometric_trust_angstrom(level)
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                conv, pmol = geometric_solver.kernel(
                    mf, maxsteps=level.opt_max_steps, convergence_set=level.opt_convergence,
                    trust=trust, tmax=tmax,
                    assert_convergence=False, logIni=GEOMETRIC_LOG_INI, callback=lambda env: steps.append(1),
                    **extra)
        except Exception as exc:
            kind = "scf" if "SCF" in str(exc) or "converge" in str(exc) else "opt"
            raise EngineError(f"{mol.name}: optimisation error: {exc}", kind=kind) from exc
        if not conv:
            raise EngineError(
                f"{mol.name}: geometry optimisation not converged in {level.opt_max_steps} steps",
                kind="opt", last_coords_bohr=pmol.atom_coords(unit="Bohr"))
        coords = pmol.atom_coords(unit="Bohr")
        opt = mol.with_coords(coords)
        energy = self._scf(opt, level).e_tot
        return OptResult(coords, float(energy), len(steps), preopt=start.info)

    def hessian(self, mol: Molecule, level: Level) -> np.ndarray:
        mf = self._scf(mol, level)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                hobj = mf.Hessian()
                with response_grids(mf, level.response_grid, hobj):
                    h = hobj.kernel()
        except Exception as exc:
            raise EngineError(f"{mol.name}: Hessian error: {exc}") from exc
        n = mol.natoms
        return np.asarray(h).transpose(0, 2, 1, 3).reshape(3 * n, 3 * n)

    def _alpha(self, mf):
        rhf, rks, uhf, uks = _import_prop()
        from pyscf import dft
        restricted = mf.mo_coeff.ndim == 2
        if isinstance(mf, dft.rks.KohnShamDFT):
            cls = rks.Polarizability if restricted else uks.Polarizability
        else:
            cls = rhf.Polarizability if restricted else uhf.Polarizability
        p = cls(mf)
        p.verbose = 0
        return p

    def polarizability(self, mol: Molecule, level: Level) -> np.ndarray:
        mf = self._scf(mol, level)
        try:
            with response_grids(mf, level.response_grid):
                return np.asarray(self._alpha(mf).polarizability(), float)
        except Exception as exc:
            raise EngineError(f"{mol.name}: polarizability error: {exc}") from exc

    def hyperpolarizability(self, mol: Molecule, level: Level) -> np.ndarray:
        """Finite-field beta from analytic alpha (central differences, step level.field_step_au)."""
        h = float(level.field_step_au)
        dm0 = self._scf(mol, level).make_rdm1()
        beta = np.zeros((3, 3, 3))
        try:
            for k in range(3):
                alphas = []
                for s in (+1.0, -1.0):
                    f = np.zeros(3)
                    f[k] = s * h
                    mf = self._scf(mol, level, field_au=f, dm0=dm0)
                    with response_grids(mf, level.response_grid):
                        alphas.append(np.asarray(self._alpha(mf).polarizability()))
                beta[:, :, k] = (alphas[0] - alphas[1]) / (2 * h)
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(f"{mol.name}: finite-field beta error: {exc}") from exc
        # beta is symmetric in all indices for static fields; symmetrise the FD noise away
        perms = [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]
        return sum(beta.transpose(p) for p in perms) / 6.0

    def hyperpolarizability_analytic(self, mol: Molecule, level: Level) -> np.ndarray:
        """pyscf-properties' analytic beta: exact for HF, lacks the XC-kernel term for DFT."""
        mf = self._scf(mol, level)
        return np.asarray(self._alpha(mf).hyper_polarizability(), float)
