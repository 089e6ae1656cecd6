"""The labels a record implies but does not store: its thermochemistry and atomization energies.

Derived, as the harmonic analysis is, from what a record holds (frequencies at the optimised
geometry, energy, masses, multiplicity; :func:`hessflow.qm.thermo.record_thermochemistry`) at a
temperature and pressure (:class:`~hessflow.qm.thermo.ThermoSettings`, default 298.15 K and
1 atm), and against free-atom energies at the record's level
(:class:`~hessflow.qm.atom_references.RecordAtomEnergies`). One place for every export that
writes them: hessflow's CSV (:data:`THERMO_COLUMNS`, atomic units in the names) and QM9's formats
(:mod:`hessflow.formats.qm9`, QM9's names and units at 298.15 K).
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

from ..qm.atom_references import RecordAtomEnergies, cache_path
from ..qm.thermo import ThermoSettings, record_atomization_energies, record_thermochemistry

__all__ = ["THERMO_COLUMNS", "ATOMIZATION_COLUMNS", "derived_labels", "atom_energies_for"]

#: hessflow's thermochemistry columns: name -> unit (at the settings' temperature and pressure)
THERMO_COLUMNS = {
    "temperature_k": "K", "pressure_pa": "Pa", "rot_a_ghz": "GHz (linear: undefined)",
    "rot_b_ghz": "GHz", "rot_c_ghz": "GHz", "symmetry_number": "", "u0_hartree": "Hartree",
    "u_hartree": "Hartree", "h_hartree": "Hartree", "g_hartree": "Hartree",
    "s_hartree_k": "Hartree/K", "cv_hartree_k": "Hartree/K",
}
#: the atomization energies (molecule minus free atoms, Hartree) at the same conditions
ATOMIZATION_COLUMNS = {"u0_atom_hartree": "Hartree", "u_atom_hartree": "Hartree",
                       "h_atom_hartree": "Hartree", "g_atom_hartree": "Hartree"}

AtomEnergies = Callable[[dict], Mapping[int, float]]


def derived_labels(record: dict, thermo: ThermoSettings | None = None,
                   atom_energies: AtomEnergies | None = None) -> dict:
    """:data:`THERMO_COLUMNS` and :data:`ATOMIZATION_COLUMNS` of ``record`` at ``thermo``
    (default 298.15 K, 1 atm); NaN where the record has no frequencies, and the atomization
    energies NaN without ``atom_energies`` (record -> {Z: Hartree}, e.g. a
    :class:`~hessflow.qm.atom_references.RecordAtomEnergies`)."""
    out = dict.fromkeys(THERMO_COLUMNS, math.nan) | dict.fromkeys(ATOMIZATION_COLUMNS, math.nan)
    th = record_thermochemistry(record, thermo)
    if th is None:
        return out
    a, b, c = th.rotational_constants_ghz
    out.update(temperature_k=th.temperature_k, pressure_pa=th.pressure_pa, rot_a_ghz=a,
               rot_b_ghz=b, rot_c_ghz=c, symmetry_number=th.symmetry_number,
               u0_hartree=th.u0_hartree, u_hartree=th.u_hartree, h_hartree=th.h_hartree,
               g_hartree=th.g_hartree, s_hartree_k=th.s_hartree_k, cv_hartree_k=th.cv_hartree_k)
    if atom_energies is not None:
        out.update(record_atomization_energies(record, atom_energies(record), thermo) or {})
    return out


def atom_energies_for(records, store_path=None) -> RecordAtomEnergies:
    """Free-atom energies at the levels of ``records`` (those with frequencies: the ones that
    have atomization energies), computed once per level and element and kept next to the store
    at ``store_path`` (:func:`hessflow.qm.atom_references.cache_path`; None: not kept)."""
    usable = [r for r in records if r.get("status") == "done" and r.get("engine")
              and r.get("frequencies_cm1") is not None]
    return RecordAtomEnergies(None if store_path is None else cache_path(store_path), usable)
