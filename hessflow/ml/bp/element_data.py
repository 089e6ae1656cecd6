"""Per-element physical properties for H–Ca, Br and I (every element hessflow accepts).

Each column is one published quantity, entered by hand from its source (cited below) and kept in
the unit of that source, named in the column. :func:`property_table` returns the table as arrays;
:mod:`hessflow.ml.bp.modes` compresses it into "elemental modes".

Columns and sources
    ``z``, ``period``, ``group`` (IUPAC 1–18), ``valence_electrons`` (electrons in the outermost
        s and p shells; 2 for He, 8 for the other noble gases): the periodic table.
    ``pauling_electronegativity``: Pauling scale as revised by A. L. Allred, *J. Inorg. Nucl.
        Chem.* 17, 215 (1961), tabulated in the CRC Handbook of Chemistry and Physics (section 9,
        "Electronegativity"). He, Ne and Ar form no bonds from which a Pauling value could be
        derived: they are **NaN** here. The autoencoder treats NaN as missing (imputed at the
        column mean on input and left out of the reconstruction loss), see
        :mod:`hessflow.ml.bp.modes`.
    ``covalent_radius_angstrom``: B. Cordero et al., "Covalent radii revisited", *Dalton Trans.*
        2008, 2832–2838, doi:10.1039/b801115j (carbon: its sp3 value, 0.76 Å).
    ``ionisation_energy_ev``: first ionisation energy, NIST Atomic Spectra Database, "Ground levels
        and ionization energies for the neutral atoms" (A. Kramida, Yu. Ralchenko, J. Reader and
        NIST ASD Team), as reproduced in the CRC Handbook (section 10).
    ``electron_affinity_ev``: CRC Handbook (section 10, "Electron affinities", after T. Andersen,
        H. K. Haugen, H. Hotop, *J. Phys. Chem. Ref. Data* 28, 1511 (1999) and J. C.
        Rienstra-Kiracofe et al., *Chem. Rev.* 102, 231 (2002)). Atoms whose anion is not bound
        (He, Be, N, Ne, Mg, Ar; CRC: "not stable"; N⁻ is unbound by about 0.07 eV) are entered as
        **0.0 eV**, i.e. "no energy is released by adding an electron" (:data:`UNBOUND_ANION`).
    ``polarizability_bohr3``: static dipole polarizability, recommended values of P. Schwerdtfeger
        and J. K. Nagle, "2018 Table of static dipole polarizabilities of the neutral elements in
        the periodic table", *Mol. Phys.* 117, 1200–1225 (2019), doi:10.1080/00268976.2018.1535143
        (atomic units, i.e. Bohr³).

The ground-state multiplicities used for free-atom reference energies are not a column of the
table: they are QM input, in :data:`hessflow.qm.atom_references.GROUND_STATE_MULTIPLICITY`.
"""

from __future__ import annotations

import math

import numpy as np

from ...qm.molecules.elements import symbol

NAN = math.nan

#: column name -> unit (the unit is also in the name)
COLUMNS = {
    "z": "",
    "period": "",
    "group": "IUPAC group 1-18",
    "valence_electrons": "",
    "pauling_electronegativity": "Pauling units",
    "covalent_radius_angstrom": "Angstrom",
    "ionisation_energy_ev": "eV",
    "electron_affinity_ev": "eV",
    "polarizability_bohr3": "Bohr^3",
}

# z: (period, group, valence electrons, Pauling EN, covalent radius / Å, IE1 / eV, EA / eV,
#     alpha / Bohr^3)
_ROWS = {
    1: (1, 1, 1, 2.20, 0.31, 13.598434, 0.754195, 4.50711),
    2: (1, 18, 2, NAN, 0.28, 24.587389, 0.0, 1.38375),
    3: (2, 1, 1, 0.98, 1.28, 5.391715, 0.618049, 164.1125),
    4: (2, 2, 2, 1.57, 0.96, 9.322699, 0.0, 37.74),
    5: (2, 13, 3, 2.04, 0.84, 8.298019, 0.279723, 20.5),
    6: (2, 14, 4, 2.55, 0.76, 11.260288, 1.262119, 11.3),
    7: (2, 15, 5, 3.04, 0.71, 14.53413, 0.0, 7.4),
    8: (2, 16, 6, 3.44, 0.66, 13.618055, 1.46111, 5.3),
    9: (2, 17, 7, 3.98, 0.57, 17.42282, 3.4011898, 3.74),
    10: (2, 18, 8, NAN, 0.58, 21.564541, 0.0, 2.6611),
    11: (3, 1, 1, 0.93, 1.66, 5.139077, 0.547926, 162.7),
    12: (3, 2, 2, 1.31, 1.41, 7.646236, 0.0, 71.2),
    13: (3, 13, 3, 1.61, 1.21, 5.985769, 0.43283, 57.8),
    14: (3, 14, 4, 1.90, 1.11, 8.15168, 1.3895211, 37.3),
    15: (3, 15, 5, 2.19, 1.07, 10.486686, 0.7465, 25.0),
    16: (3, 16, 6, 2.58, 1.05, 10.360017, 2.0771029, 19.4),
    17: (3, 17, 7, 3.16, 1.02, 12.967633, 3.612724, 14.6),
    18: (3, 18, 8, NAN, 1.06, 15.759612, 0.0, 11.083),
    19: (4, 1, 1, 0.82, 2.03, 4.340664, 0.50147, 289.7),
    20: (4, 2, 2, 1.00, 1.76, 6.113155, 0.02455, 160.8),
    35: (4, 17, 7, 2.96, 1.20, 11.81381, 3.363588, 21.0),
    53: (5, 17, 7, 2.66, 1.39, 10.451236, 3.059038, 32.9),
}

#: elements without a bound anion: electron affinity entered as 0.0 eV
UNBOUND_ANION = frozenset({2, 4, 7, 10, 12, 18})

#: atomic numbers in the table, ascending
ELEMENTS = tuple(sorted(_ROWS))


def row(z: int) -> dict:
    """One element's properties as ``{column: value}``; KeyError for an element not tabulated."""
    z = int(z)
    if z not in _ROWS:
        raise KeyError(f"element Z={z} is not in the element property table "
                       f"({', '.join(symbol(e) for e in ELEMENTS)})")
    return dict(zip(COLUMNS, (float(z), *map(float, _ROWS[z]))))


def property_table(elements=ELEMENTS) -> tuple[tuple[int, ...], tuple[str, ...], np.ndarray]:
    """(atomic numbers, column names, values): a (n_elements, n_columns) float array with NaN for
    the missing Pauling electronegativities of the noble gases."""
    elements = tuple(int(z) for z in elements)
    values = np.array([[row(z)[c] for c in COLUMNS] for z in elements], dtype=float)
    return elements, tuple(COLUMNS), values
