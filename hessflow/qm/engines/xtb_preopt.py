"""Where a DFT optimisation starts (issue 14): a GFN2-xTB pre-optimisation and xTB's Hessian.

A DFT optimisation from an MMFF (or input) geometry with geomeTRIC's model Hessian takes many DFT
steps. :func:`xtb_start` moves the start to the GFN2-xTB minimum (``Level.preopt="xtb"``) and
gives the optimiser the GFN2-xTB Hessian there (``Level.opt_initial_hessian="xtb"``, Hartree/Bohr^2,
Cartesian, what geomeTRIC's ``hess_data`` takes). Both cost xTB seconds, not DFT minutes.

The xTB optimisation uses the DFT level's convergence set, step limit, trust radius and threads.
Whatever goes wrong on the xTB side — tblite missing, an element or state xTB cannot do, an SCC
or optimisation failure, or an xTB minimum that breaks a bond of the input (a proton transfer,
a ring opening: then it is not the same molecule's minimum; bonds by geomeTRIC's covalent-radius
rule, and a bond only *formed* is allowed, as a distorted input may lack it) — is not a failure of the
task: the optimisation starts from the input geometry with the model Hessian, as it did before,
and the start's ``info`` says why (flag :data:`FLAG_FAILED` or :data:`FLAG_BONDS`).

``info`` (kept under the record's ``provenance["preopt"]``): ``preopt``, ``initial_hessian``
(what was asked), ``used`` (what the start really is: ``"xtb"`` or ``"none"``), ``xtb_steps``,
``xtb_energy_hartree``, ``hessian`` (``"xtb"`` or ``"guess"``), ``wall_s``, and ``reason`` and
``flag`` after a fallback.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from ..level import Level
from ..molecules.molecule import Molecule

FLAG_FAILED = "preopt_failed"
FLAG_BONDS = "preopt_bonds_changed"


@dataclasses.dataclass
class Start:
    """A DFT optimisation's start: geometry (Bohr), initial Hessian ((3n, 3n) Hartree/Bohr^2, or
    None for the optimiser's model guess) and the provenance ``info``."""

    coords_bohr: np.ndarray
    hessian: np.ndarray | None
    info: dict

    @property
    def flag(self) -> str | None:
        return self.info.get("flag")


def xtb_level(level: Level) -> Level:
    """The GFN2-xTB level of the pre-optimisation of a DFT optimisation at ``level``."""
    return Level(method="gfn2-xtb", opt_convergence=level.opt_convergence,
                 opt_max_steps=level.opt_max_steps,
                 opt_trust_radius_bohr=level.opt_trust_radius_bohr, threads=level.threads,
                 preopt="none", opt_initial_hessian="guess")


def bonds(symbols, coords_bohr) -> set[tuple[int, int]]:
    """The bonded atom pairs (i < j) by geomeTRIC's covalent-radius rule (its own topology)."""
    import geometric.molecule
    import geometric.nifty
    gm = geometric.molecule.Molecule()
    gm.elem = list(symbols)
    gm.xyzs = [np.asarray(coords_bohr, float).reshape(-1, 3) * geometric.nifty.bohr2ang]
    gm.build_topology()
    return {tuple(sorted((int(a), int(b)))) for a, b in gm.bonds}


def xtb_start(mol: Molecule, level: Level, engine=None) -> Start:
    """The start of a DFT optimisation of ``mol`` at ``level`` (see the module docstring);
    ``engine``: the xTB engine to use (default: a new :class:`~.xtb_engine.XtbEngine`).
    Never raises for an xTB failure: the start is then the input geometry and the guess."""
    info = {"preopt": level.preopt, "initial_hessian": level.opt_initial_hessian,
            "used": "none", "hessian": "guess"}
    plain = Start(np.asarray(mol.coords_bohr, float).copy(), None, info)
    if level.preopt == "none" and level.opt_initial_hessian == "guess":
        return plain
    t0 = time.perf_counter()
    xlevel = xtb_level(level)
    coords, hessian, steps, energy = plain.coords_bohr, None, 0, None
    try:
        if engine is None:
            from .xtb_engine import XtbEngine
            engine = XtbEngine()
        why = engine.why_not_found()
        if why:
            raise RuntimeError(why)
        if level.preopt == "xtb":
            res = engine.optimize(mol, xlevel)
            coords, steps, energy = np.asarray(res.coords_bohr, float), res.n_steps, \
                res.energy_hartree
            broken = bonds(mol.symbols, mol.coords_bohr) - bonds(mol.symbols, coords) \
                if mol.natoms > 1 else set()
            if broken:
                info.update(flag=FLAG_BONDS, xtb_steps=steps,
                            reason="the GFN2-xTB minimum breaks bonds of the input: " +
                            ", ".join(f"{mol.symbols[i]}{i}-{mol.symbols[j]}{j}"
                                      for i, j in sorted(broken)))
                info["wall_s"] = round(time.perf_counter() - t0, 3)
                return plain
        if level.opt_initial_hessian == "xtb":
            hessian = np.asarray(engine.hessian(mol.with_coords(coords), xlevel), float)
            if hessian.shape != (3 * mol.natoms,) * 2 or not np.all(np.isfinite(hessian)):
                raise RuntimeError(f"xTB Hessian of shape {hessian.shape} is not usable")
    except Exception as exc:  # noqa: BLE001 - any xTB trouble: the route of old, flagged
        msg = " ".join(str(exc).split())[:200] or type(exc).__name__
        info.update(flag=FLAG_FAILED, reason=f"{type(exc).__name__}: {msg}",
                    wall_s=round(time.perf_counter() - t0, 3))
        return plain
    info.update(used=level.preopt, hessian="xtb" if hessian is not None else "guess",
                wall_s=round(time.perf_counter() - t0, 3))
    if level.preopt == "xtb":
        info.update(xtb_steps=int(steps), xtb_energy_hartree=float(energy))
    return Start(coords, hessian, info)
