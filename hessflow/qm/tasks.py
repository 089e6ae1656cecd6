"""The QM tasks, one function each: ``run_<task>(mol, engine, level) -> fields``.

Each returns the record fields it fills (atomic units; names carry the unit), plus private
``_``-keys for the assembly (:mod:`hessflow.qm.assemble`): ``_opt_steps``, ``_flags`` and
``_harmonic`` (and ``_preopt``: how an optimisation started). The workflow runs them as separate (parallel) apps, ``hessflow compute`` one after
the other; both through :func:`hessflow.qm.fallback.run_with_fallback`.
"""

from __future__ import annotations

import numpy as np

from ..errors import EngineError, HessflowError
from ..units import AU_DEBYE
from . import properties
from .engines.base import Engine
from .harmonic import Harmonic
from .level import Level
from .molecules.molecule import Molecule

#: the tasks a user asks for; "sp" (energy, dipole, orbitals) always runs as well
TASKS = ("opt", "freq", "polar", "hyperpolar")
#: the order in which one molecule's tasks run (each needs the geometry of "opt")
ORDER = ("opt", "freq", "sp", "polar", "hyperpolar")


def parse_tasks(text) -> tuple[str, ...]:
    """The tasks of ``text`` (``"opt,freq"`` or a list), in :data:`TASKS` order; raises
    :class:`HessflowError` for an unknown task or none."""
    tasks = [t.strip().lower() for t in (text.split(",") if isinstance(text, str) else text)]
    tasks = [t for t in tasks if t]
    bad = [t for t in tasks if t not in TASKS]
    if bad or not tasks:
        raise HessflowError(f"tasks: {','.join(bad) or 'none'} not among {','.join(TASKS)}")
    return tuple(t for t in TASKS if t in tasks)


def run_opt(mol: Molecule, engine: Engine, level: Level) -> dict:
    """Optimised geometry (``coords_opt_bohr``) and its energy (Hartree)."""
    res = engine.optimize(mol, level)
    out = {"coords_opt_bohr": res.coords_bohr, "energy_hartree": res.energy_hartree,
           "_opt_steps": res.n_steps}
    if res.preopt is not None:  # how it started (xTB pre-optimisation), for the provenance
        out["_preopt"] = dict(res.preopt)
        if res.preopt.get("flag"):
            out["_flags"] = [res.preopt["flag"]]
    return out


def run_single_point(mol: Molecule, engine: Engine, level: Level) -> dict:
    """Energy (Hartree), its gradient (Hartree/Bohr, ``gradient_hartree_bohr``), dipole (e*Bohr
    and Debye), HOMO/LUMO and gap (Hartree), and the electronic spatial extent <R^2> (Bohr^2; NaN
    from an engine without a density). The single point runs at the record's final geometry (the
    optimised one when "opt" is asked for), so this is the gradient stored with the energy."""
    sp = engine.single_point(mol, level)
    grad = np.asarray(engine.gradient(mol, level), float).reshape(mol.natoms, 3)
    dip = np.asarray(sp.dipole_au, float)
    return {"energy_hartree": sp.energy_hartree, "gradient_hartree_bohr": grad, "dipole_au": dip,
            "dipole_debye": float(np.linalg.norm(dip) * AU_DEBYE),
            "homo_hartree": sp.homo_hartree, "lumo_hartree": sp.lumo_hartree,
            "gap_hartree": sp.lumo_hartree - sp.homo_hartree, "r2_bohr2": float(sp.r2_bohr2)}


def harmonic_fields(mol: Molecule, hessian: np.ndarray, level: Level) -> dict:
    """The harmonic analysis of a (3n, 3n) Cartesian ``hessian`` (Hartree/Bohr^2) at ``mol``'s
    geometry: frequencies (cm^-1), modes, reduced masses (amu), ZPVE (Hartree), n_imag."""
    h = Harmonic(mol.masses_amu, mol.coords_bohr, hessian)
    return {"hessian_hartree_bohr2": h.hessian, "frequencies_cm1": h.frequencies_cm1,
            "reduced_masses_amu": h.reduced_masses_amu,
            "force_constants_hartree_bohr2": h.force_constants_hartree_bohr2,
            "modes_cartesian": h.modes_cartesian, "modes_mass_weighted": h.modes_mass_weighted,
            "zpve_hartree": h.zpve_hartree(), "n_imag": int(len(h.imaginary(level.imag_tol_cm1))),
            "_harmonic": h}


def run_freq(mol: Molecule, engine: Engine, level: Level, optimized: bool = True) -> dict:
    """Hessian + harmonic analysis with the imaginary-frequency policy.

    With ``imag_policy="reoptimize"`` on an optimised geometry (``optimized``): displace along the
    (most) imaginary mode, re-optimise once, recompute the Hessian; what remains imaginary is
    flagged. The returned dict then carries the new ``coords_opt_bohr`` (see
    :func:`hessflow.qm.assemble.redo_after` for what that invalidates)."""
    out = harmonic_fields(mol, engine.hessian(mol, level), level)
    flags = []
    if out["n_imag"] and optimized and level.imag_policy == "reoptimize":
        h = out["_harmonic"]
        displaced = mol.with_coords(h.displaced_along(int(h.imaginary(level.imag_tol_cm1)[0])))
        # from a DFT geometry next to the saddle: no xTB start (today's route, see Level)
        opt = run_opt(displaced, engine, level.replace(preopt="none",
                                                       opt_initial_hessian="guess"))
        mol = mol.with_coords(opt["coords_opt_bohr"])
        out = harmonic_fields(mol, engine.hessian(mol, level), level)
        out["coords_opt_bohr"] = mol.coords_bohr
        flags.append("reoptimized_imaginary")
    if out["n_imag"]:
        if level.imag_policy == "fail":
            raise EngineError(f"{mol.name}: {out['n_imag']} imaginary frequencies "
                              f"(lowest {out['frequencies_cm1'][0]:.1f} cm-1)", kind="imag")
        flags.append("imaginary_remaining")
    out["_flags"] = flags
    return out


def run_polar(mol: Molecule, engine: Engine, level: Level) -> dict:
    """Static polarizability tensor and its isotropic mean, Bohr^3."""
    a = engine.polarizability(mol, level)
    return {"alpha_bohr3": a, "alpha_iso_bohr3": properties.alpha_iso(a)}


def run_hyperpolar(mol: Molecule, engine: Engine, level: Level, dipole_au=None) -> dict:
    """Static first hyperpolarizability (a.u.), beta_parallel along ``dipole_au`` (e*Bohr; a
    single point gives it when it is missing) and |beta_vec|."""
    b = engine.hyperpolarizability(mol, level)
    if dipole_au is None or not np.all(np.isfinite(dipole_au)):
        dipole_au = engine.single_point(mol, level).dipole_au
    return {"beta_au": b, "beta_par_au": properties.beta_parallel(b, dipole_au),
            "beta_vec_au": properties.beta_vec_norm(b)}


def run_task(task: str, mol: Molecule, engine: Engine, level: Level, optimized: bool = True,
             dipole_au=None) -> dict:
    """Run one task by name on ``mol``'s geometry (``optimized``: that geometry came from "opt",
    so the imaginary-mode policy may re-optimise it; ``dipole_au``: the single point's dipole,
    e*Bohr, for beta_parallel)."""
    if task == "opt":
        return run_opt(mol, engine, level)
    if task == "freq":
        return run_freq(mol, engine, level, optimized=optimized)
    if task == "sp":
        return run_single_point(mol, engine, level)
    if task == "polar":
        return run_polar(mol, engine, level)
    if task == "hyperpolar":
        return run_hyperpolar(mol, engine, level, dipole_au)
    raise HessflowError(f"unknown task {task!r}")
