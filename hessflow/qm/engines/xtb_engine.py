"""GFN2-xTB through tblite (``tblite.interface.Calculator``), optimisation through geomeTRIC.

Which Hamiltonian runs
    xtb always runs **GFN2-xTB**, unless ``level.method`` is ``"gfn1-xtb"``/``"gfn1"`` (GFN1-xTB).
    ``"gfn2-xtb"``, ``"gfn2"`` and ``"xtb"`` name GFN2-xTB explicitly. A method the user names
    (``--method``, ``qm.level.method``) must be one of these (:meth:`XtbEngine.method_error`,
    checked by :func:`~hessflow.qm.engines.engine_level`); a bare :class:`Level`'s default
    ``"b3lyp"`` is ignored, as are basis, grid and the other DFT settings: they do not exist in
    xTB. Other xTB flavours (GFN0, GFN-FF, IPEA1, ...)
    are refused. :meth:`XtbEngine.level_for_key` therefore keys only what changes xTB numbers.

How each quantity is computed (all atomic units, see :mod:`.base`)
    * energy, gradient, dipole, orbital energies: analytic, one SCC calculation (the gradient
      face runs its own);
    * optimisation: geomeTRIC (TRIC coordinates) driven by analytic tblite gradients, with
      ``level.opt_convergence`` (``"GAU"``: Gaussian's default criteria), ``level.opt_max_steps``
      and ``level.opt_trust_radius_bohr``;
    * Hessian: central differences of analytic gradients, step :data:`HESSIAN_STEP_BOHR`
      (0.005 Bohr) on every Cartesian coordinate (6N gradients), symmetrised;
    * alpha, beta: finite differences of the dipole under a uniform electric field (tblite's
      ``"electric-field"`` interaction), field step ``level.field_step_au``:
      ``alpha_ij = d mu_i / d F_j`` (central differences),
      ``beta_ijk = d^2 mu_i / dF_j dF_k`` (three-point second difference on the diagonal j == k,
      four-point mixed difference for j != k); 19 SCC calculations give both.
      tblite's field enters as E(F) = E(0) - mu.F - ..., so alpha comes out positive-definite.

Numerical settings
    SCC accuracy is fixed at :data:`SCC_ACCURACY` (tblite default 1.0 is too loose for finite
    differences); each displaced SCC restarts from the reference
    wavefunction. ``level.max_cycle`` sets tblite's SCC iteration limit (never below tblite's own
    default of 250); ``level.damping > 0`` lowers the Broyden mixing parameter (0.4 * (1 - damping)).
    ``level.threads > 0`` sets the OpenMP thread count for the duration of each call (through
    libgomp's ``omp_set_num_threads``, which works after the library is loaded, plus
    ``OMP_NUM_THREADS`` for a runtime not yet started); the previous count is restored after.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import tempfile

import numpy as np

from ...errors import EngineError
from ..level import Level, geometric_trust_angstrom
from ..molecules.molecule import Molecule
from .base import Engine, OptResult, SinglePoint

#: Cartesian step (Bohr) for the central finite-difference Hessian from analytic gradients.
HESSIAN_STEP_BOHR = 0.005
#: tblite SCC accuracy (thresholds scale with it: energy 1e-6*acc, density 2e-5*acc). At the
#: default (1.0) beta of water is off by a factor three; at 1e-4 the beta of centrosymmetric
#: ethylene is 5e-4 a.u. instead of 0; at 1e-6 it is 1e-5 a.u., for no measurable extra time.
SCC_ACCURACY = 1e-6
#: tblite's own default SCC iteration limit; level.max_cycle can only raise it.
TBLITE_MIN_MAX_ITER = 250
TBLITE_DEFAULT_MIXER_DAMPING = 0.4

_GFN2_NAMES = ("gfn2-xtb", "gfn2", "xtb", "gfn2xtb")
_GFN1_NAMES = ("gfn1-xtb", "gfn1", "gfn1xtb")
_TBLITE_METHOD = {"gfn2-xtb": "GFN2-xTB", "gfn1-xtb": "GFN1-xTB"}


def resolve_method(level: Level) -> str:
    """Canonical xTB method name ("gfn2-xtb" or "gfn1-xtb") for ``level.method``."""
    m = str(level.method).strip().lower()
    if m in _GFN1_NAMES:
        return "gfn1-xtb"
    if m in _GFN2_NAMES:
        return "gfn2-xtb"
    if "xtb" in m or m.startswith("gfn"):
        raise EngineError(f"xtb: method {level.method!r} is not supported "
                          f"(use gfn2-xtb or gfn1-xtb)", kind="engine")
    return "gfn2-xtb"   # a DFT method name (the Level default): xtb runs GFN2-xTB


# ----------------------------------------------------------------------------- threads

def _libgomp():
    for name in ("libgomp.so.1", ctypes.util.find_library("gomp")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            lib.omp_get_max_threads.restype = ctypes.c_int
            lib.omp_set_num_threads.argtypes = [ctypes.c_int]
            return lib
        except (OSError, AttributeError):
            continue
    return None


@contextlib.contextmanager
def _omp_threads(n: int):
    """Run the block with ``n`` OpenMP threads (n <= 0: leave as is)."""
    if not n or n <= 0:
        yield
        return
    old_env = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(int(n))
    lib = _libgomp()
    old_n = None
    if lib is not None:
        old_n = lib.omp_get_max_threads()
        lib.omp_set_num_threads(int(n))
    try:
        yield
    finally:
        if lib is not None and old_n is not None:
            lib.omp_set_num_threads(old_n)
        if old_env is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = old_env


@contextlib.contextmanager
def _quiet_geometric():
    """Silence geomeTRIC's INFO chatter (its loggers set their own level) for the block."""
    names = ["geometric"] + [n for n in logging.root.manager.loggerDict if n.startswith("geometric.")]
    saved = []
    for n in names:
        lg = logging.getLogger(n)
        saved.append((lg, lg.level))
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, lvl in saved:
            lg.setLevel(lvl)


def _one_line(msg) -> str:
    return " ".join(str(msg).split())


# ----------------------------------------------------------------------------- engine

class XtbEngine(Engine):
    name = "xtb"
    methods = {"sp": "analytic (one SCC: energy, dipole, orbital energies)",
               "opt": "geomeTRIC + analytic gradients",
               "freq": "central finite differences of analytic gradients",
               "polar": "finite field, dipole differences",
               "hyperpolar": "finite field, dipole second differences"}
    default_method = "gfn2-xtb"   # a DFT name (Level's default) would run GFN2-xTB too

    @classmethod
    def method_error(cls, method: str) -> str | None:
        """A named method must be an xTB Hamiltonian (a DFT name is not run as GFN2-xTB)."""
        if str(method).strip().lower() in _GFN2_NAMES + _GFN1_NAMES:
            return None
        return (f"{method!r} is not an xTB method: the xtb engine runs gfn2-xtb (default) or "
                f"gfn1-xtb")

    def __init__(self):
        # dipole cache for finite-field runs: alpha after beta (or vice versa) costs nothing
        self._dipole_cache: dict = {}

    # -- availability ---------------------------------------------------------------
    def why_not_found(self) -> str | None:
        try:
            import tblite.interface  # noqa: F401
        except Exception as e:  # ImportError, or a broken C extension
            return f"tblite is not importable ({_one_line(e)}); pip install tblite"
        return None

    def version(self) -> str:
        try:
            from tblite import library
            return ".".join(str(v) for v in library.get_version())
        except Exception:
            import importlib.metadata
            return importlib.metadata.version("tblite")

    def level_for_key(self, level: Level) -> dict:
        return {
            "method": resolve_method(level),
            "opt_convergence": str(level.opt_convergence).upper(),
            "field_step_au": float(level.field_step_au),
            "hessian_step_bohr": HESSIAN_STEP_BOHR,
            "imag_policy": level.imag_policy,
            "imag_tol_cm1": float(level.imag_tol_cm1),
        }

    # -- tblite plumbing ----------------------------------------------------------------
    def _calculator(self, mol: Molecule, level: Level, coords=None, field=None):
        from tblite.interface import Calculator
        xyz = np.ascontiguousarray(mol.coords_bohr if coords is None else coords,
                                   dtype=float).reshape(-1, 3)
        try:
            method = _TBLITE_METHOD[resolve_method(level)]
        except EngineError as e:
            raise EngineError(f"{mol.name}: {e}", kind=e.kind) from None
        try:
            calc = Calculator(method, mol.numbers, xyz,
                              charge=float(mol.charge), uhf=int(mol.multiplicity) - 1,
                              color=False, logger=lambda _msg: None)
            calc.set("verbosity", 0)
            calc.set("accuracy", SCC_ACCURACY)
            calc.set("max-iter", max(int(level.max_cycle), TBLITE_MIN_MAX_ITER))
            if level.damping and level.damping > 0:
                calc.set("mixer-damping",
                         max(0.05, TBLITE_DEFAULT_MIXER_DAMPING * (1.0 - float(level.damping))))
            if field is not None and np.any(np.asarray(field) != 0.0):
                # tblite's C wrapper wants a Python sequence, not an ndarray (cffi double*)
                calc.add("electric-field", [float(f) for f in field])
        except EngineError:
            raise
        except Exception as e:
            raise self._error(mol, e) from None
        return calc

    def _error(self, mol: Molecule, exc, what: str = "") -> EngineError:
        msg = _one_line(exc) or type(exc).__name__
        low = msg.lower()
        kind = "scf" if ("scf" in low and "converge" in low) else "engine"
        where = f" ({what})" if what else ""
        return EngineError(f"{mol.name}: xtb{where}: {msg}", kind=kind)

    def _run(self, mol: Molecule, level: Level, coords=None, field=None, restart=None, what=""):
        """One SCC calculation; returns the tblite Result (restart from ``restart``, copied)."""
        from tblite.interface import Result
        calc = self._calculator(mol, level, coords, field)
        try:
            return calc.singlepoint(Result(restart) if restart is not None else None)
        except Exception as e:
            raise self._error(mol, e, what) from None

    @staticmethod
    def _frontier(res, uhf: int) -> tuple[float, float]:
        try:
            eps = np.asarray(res.get("orbital-energies"), dtype=float)
            occ = np.asarray(res.get("orbital-occupations"), dtype=float)
        except Exception:
            return float("nan"), float("nan")
        if eps.ndim == 2:                  # spin-resolved: (2, norb)
            na, nb = (int(round(o.sum())) for o in occ)
            homo = max([eps[s, n - 1] for s, n in ((0, na), (1, nb)) if n > 0], default=np.nan)
            lumo = min([eps[s, n] for s, n in ((0, na), (1, nb)) if n < eps.shape[1]],
                       default=np.nan)
            return float(homo), float(lumo)
        nval = int(round(occ.sum()))       # valence electrons (xTB has no core electrons)
        nalpha = (nval + uhf) // 2         # aufbau: HOMO = highest alpha orbital (SOMO if open)
        homo = eps[nalpha - 1] if nalpha > 0 else np.nan
        lumo = eps[nalpha] if nalpha < eps.size else np.nan
        return float(homo), float(lumo)

    # -- faces ------------------------------------------------------------------------
    def single_point(self, mol: Molecule, level: Level) -> SinglePoint:
        with _omp_threads(level.threads):
            res = self._run(mol, level, what="single point")
        homo, lumo = self._frontier(res, int(mol.multiplicity) - 1)
        return SinglePoint(energy_hartree=float(res.get("energy")),
                           dipole_au=np.asarray(res.get("dipole"), dtype=float).reshape(3),
                           homo_hartree=homo, lumo_hartree=lumo)

    def gradient(self, mol: Molecule, level: Level) -> np.ndarray:
        """Analytic tblite gradient (n, 3), Hartree/Bohr, one SCC calculation."""
        with _omp_threads(level.threads):
            return self.energy_gradient(mol, level)[1]

    def energy_gradient(self, mol: Molecule, level: Level, coords=None, restart=None):
        """(energy, gradient (n, 3), result) at ``coords`` (default: the molecule's)."""
        res = self._run(mol, level, coords, restart=restart, what="gradient")
        return (float(res.get("energy")),
                np.asarray(res.get("gradient"), dtype=float).reshape(-1, 3), res)

    def optimize(self, mol: Molecule, level: Level) -> OptResult:
        try:
            import geometric.engine
            import geometric.errors
            import geometric.molecule
            import geometric.nifty
            import geometric.optimize
            from geometric.internal import DelocalizedInternalCoordinates
            from geometric.params import OptParams
        except Exception as e:
            raise EngineError(f"{mol.name}: xtb optimisation needs geomeTRIC ({_one_line(e)})",
                              kind="engine") from None
        conv = str(level.opt_convergence).upper()
        with _omp_threads(level.threads):
            if mol.natoms < 2:     # nothing to optimise; geomeTRIC refuses single atoms
                e, _, _ = self.energy_gradient(mol, level)
                return OptResult(coords_bohr=mol.coords_bohr.copy(), energy_hartree=e, n_steps=0)

            outer = self
            state = {"res": None}

            class _TbliteEngine(geometric.engine.Engine):
                def calc_new(self, coords, dirname):
                    e, g, res = outer.energy_gradient(mol, level, np.asarray(coords).reshape(-1, 3),
                                                      restart=state["res"])
                    state["res"] = res
                    return {"energy": e, "gradient": g.ravel()}

            gm = geometric.molecule.Molecule()
            gm.elem = list(mol.symbols)
            gm.xyzs = [mol.coords_bohr * geometric.nifty.bohr2ang]
            gm.build_topology()
            trust, tmax = geometric_trust_angstrom(level)
            try:
                params = OptParams(convergence_set=conv, maxiter=int(level.opt_max_steps),
                                   trust=trust, tmax=tmax)
            except Exception as e:
                raise EngineError(f"{mol.name}: xtb: bad optimiser settings "
                                  f"(opt_convergence={level.opt_convergence!r}): {_one_line(e)}",
                                  kind="engine") from None
            params.xyzout = None
            params.qdata = None
            coords0 = np.ascontiguousarray(mol.coords_bohr, dtype=float).ravel()
            with tempfile.TemporaryDirectory(prefix="hessflow-xtb-opt-") as tmp, _quiet_geometric():
                eng = _TbliteEngine(gm)
                try:
                    ic = DelocalizedInternalCoordinates(gm, build=True, connect=False,
                                                        addcart=False)
                    opt = geometric.optimize.Optimizer(coords0, gm, ic, eng,
                                                       os.path.join(tmp, "opt.tmp"), params,
                                                       print_info=False)
                    opt.optimizeGeometry()
                except EngineError:
                    raise
                except geometric.errors.GeomOptNotConvergedError:
                    raise EngineError(f"{mol.name}: xtb geometry optimisation did not converge "
                                      f"in {level.opt_max_steps} steps ({conv} criteria)",
                                      kind="opt") from None
                except Exception as e:
                    raise EngineError(f"{mol.name}: xtb geometry optimisation failed: "
                                      f"{type(e).__name__}: {_one_line(e)}", kind="opt") from None
            x = np.asarray(opt.X, dtype=float).reshape(-1, 3).copy()
            return OptResult(coords_bohr=x, energy_hartree=float(opt.E), n_steps=int(opt.Iteration))

    def hessian(self, mol: Molecule, level: Level) -> np.ndarray:
        H = self.fd_hessian_raw(mol, level)
        return 0.5 * (H + H.T)

    def fd_hessian_raw(self, mol: Molecule, level: Level) -> np.ndarray:
        """Unsymmetrised finite-difference Hessian: column k = (g(x + h e_k) - g(x - h e_k)) / 2h.
        Its asymmetry measures the finite-difference error (see the tests)."""
        h = HESSIAN_STEP_BOHR
        x0 = np.ascontiguousarray(mol.coords_bohr, dtype=float).reshape(-1, 3)
        n3 = x0.size
        with _omp_threads(level.threads):
            _, _, ref = self.energy_gradient(mol, level, x0)
            # displaced geometries: row k of `steps` moves coordinate k by +h, then -h
            steps = np.concatenate([np.eye(n3), -np.eye(n3)]) * h
            grads = np.empty((2 * n3, n3))
            for k, d in enumerate(steps):
                grads[k] = self.energy_gradient(mol, level, x0 + d.reshape(-1, 3),
                                                restart=ref)[1].ravel()
        # column k = d g / d x_k
        return (grads[:n3] - grads[n3:]).T / (2.0 * h)

    # -- finite field ---------------------------------------------------------------------
    def _dipoles(self, mol: Molecule, level: Level, fields: np.ndarray) -> np.ndarray:
        """Dipoles (m, 3) at the uniform fields (m, 3), a.u., cached per geometry and field."""
        base = (resolve_method(level), mol.numbers.tobytes(),
                np.ascontiguousarray(mol.coords_bohr, dtype=float).tobytes(),
                int(mol.charge), int(mol.multiplicity))
        if len(self._dipole_cache) > 256:
            self._dipole_cache.clear()
        out = np.empty((len(fields), 3))
        ref = None
        with _omp_threads(level.threads):
            for i, f in enumerate(np.asarray(fields, dtype=float)):
                key = base + (tuple(float(v) + 0.0 for v in f),)
                if key not in self._dipole_cache:
                    if ref is None:
                        ref = self._run(mol, level, what="zero field")
                        self._dipole_cache[base + ((0.0, 0.0, 0.0),)] = np.asarray(
                            ref.get("dipole"), dtype=float).reshape(3)
                    if key not in self._dipole_cache:
                        res = self._run(mol, level, field=f, restart=ref, what="finite field")
                        self._dipole_cache[key] = np.asarray(res.get("dipole"),
                                                             dtype=float).reshape(3)
                out[i] = self._dipole_cache[key]
        return out

    @staticmethod
    def _field_step(mol: Molecule, level: Level) -> float:
        h = float(level.field_step_au)
        if not (np.isfinite(h) and h > 0):
            raise EngineError(f"{mol.name}: xtb: field_step_au must be > 0, got {h}",
                              kind="engine")
        return h

    def polarizability(self, mol: Molecule, level: Level) -> np.ndarray:
        h = self._field_step(mol, level)
        E = np.eye(3) * h
        mu = self._dipoles(mol, level, np.concatenate([E, -E]))
        # alpha[i, j] = (mu_i(+h e_j) - mu_i(-h e_j)) / 2h
        return (mu[:3] - mu[3:]).T / (2.0 * h)

    def hyperpolarizability(self, mol: Molecule, level: Level) -> np.ndarray:
        h = self._field_step(mol, level)
        E = np.eye(3) * h
        pairs = [(j, k) for j in range(3) for k in range(j + 1, 3)]
        mixed = [s * E[j] + t * E[k] for j, k in pairs for s in (1, -1) for t in (1, -1)]
        fields = np.concatenate([np.zeros((1, 3)), E, -E, np.asarray(mixed)])
        mu = self._dipoles(mol, level, fields)
        mu0, mup, mum, mux = mu[0], mu[1:4], mu[4:7], mu[7:].reshape(len(pairs), 4, 3)
        beta = np.empty((3, 3, 3))
        for j in range(3):      # beta[:, j, j] = (mu(+h e_j) - 2 mu0 + mu(-h e_j)) / h^2
            beta[:, j, j] = (mup[j] - 2.0 * mu0 + mum[j]) / h ** 2
        for p, (j, k) in enumerate(pairs):   # (++ - +- - -+ + --) / 4h^2
            pp, pm, mp, mm = mux[p]
            beta[:, j, k] = beta[:, k, j] = (pp - pm - mp + mm) / (4.0 * h ** 2)
        return beta
