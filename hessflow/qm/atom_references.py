"""Free-atom reference energies: one single point per element, each atom in its ground state.

Used as per-element reference energies (e.g. by the Behler–Parrinello network's
``--reference atoms``: the network then learns atomisation energies). The multiplicity of each
atom is 2S+1 of its ground term, from the NIST Atomic Spectra Database ground levels
(:data:`GROUND_STATE_MULTIPLICITY`, every element hessflow accepts).
"""

from __future__ import annotations

import numpy as np

from ..errors import HessflowError
from .molecules.elements import symbol
from .engines import get_engine
from .level import Level
from .molecules.molecule import Molecule

#: 2S+1 of the ground term (NIST ASD ground levels), atomic number -> multiplicity
GROUND_STATE_MULTIPLICITY = {1: 2, 2: 1, 3: 2, 4: 1, 5: 2, 6: 3, 7: 4, 8: 3, 9: 2, 10: 1,
                             11: 2, 12: 1, 13: 2, 14: 3, 15: 4, 16: 3, 17: 2, 18: 1, 19: 2, 20: 1,
                             35: 2, 53: 2}


def free_atom_energies(elements, level: dict | None) -> dict[int, float]:
    """Free-atom energies (Hartree) at ``level`` for ``elements`` (atomic numbers), each atom in
    its ground-state multiplicity; ``{Z: energy}``.

    ``level``: ``{"engine", "method", "basis"}`` as a store's records name it (method defaults to
    b3lyp, basis to the engine's default when missing); one thread per single point."""
    if not level or not level.get("engine"):
        raise HessflowError("--reference atoms: the data do not name one level of theory "
                            "(engine/method), so free-atom energies cannot be computed")
    eng = get_engine(level["engine"])
    kw = {"method": level.get("method") or "b3lyp", "threads": 1}
    if level.get("basis"):
        kw["basis"] = level["basis"]
    lvl = Level(**kw)
    out = {}
    for z in sorted({int(z) for z in elements}):
        if z not in GROUND_STATE_MULTIPLICITY:
            raise HessflowError(f"element {symbol(z)}: no ground-state multiplicity tabulated")
        atom = Molecule(f"{symbol(z)} atom", [z], np.zeros((1, 3)),
                        multiplicity=GROUND_STATE_MULTIPLICITY[z]).validate()
        out[z] = float(eng.single_point(atom, lvl).energy_hartree)
    return out
