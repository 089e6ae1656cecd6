"""QM9's own formats: the extended XYZ that QM9 ships (``dsgdb9nsd_NNNNNN.xyz``) and its CSV.

Extended XYZ, one file per molecule, tab-separated as QM9's (Ramakrishnan et al., Sci. Data 1,
140022 (2014)):

    line 1        number of atoms
    line 2        gdb N A B C mu alpha homo lumo gap r2 zpve U0 U H G Cv
    lines 3..n+2  element x y z (Angstrom) Mulliken charge (e)
    line n+3      harmonic frequencies (cm^-1)
    line n+4      SMILES (GDB's, relaxed geometry's)
    line n+5      InChI (GDB's, relaxed geometry's)

in QM9's units: A, B, C GHz; mu Debye; alpha Bohr^3; homo, lumo, gap Hartree; r2 Bohr^2; zpve,
U0, U, H, G Hartree (298.15 K for U, H, G); Cv cal/(mol K). The CSV has QM9's columns
(:data:`QM9_CSV_COLUMNS`, as MoleculeNet's ``qm9.csv``: the same labels, lower-case thermo names,
and the atomization energies ``*_atom`` in kcal/mol).

From a record: mu = ``dipole_debye``, alpha = ``alpha_iso_bohr3``, homo/lumo/gap, r2 =
``r2_bohr2`` (the engine's <R^2>; PySCF's), zpve, and U0 = ``energy_hartree + zpve_hartree``
(the internal energy at 0 K of the harmonic model, QM9's definition); A, B, C, U, H, G and Cv are
the record's thermochemistry at 298.15 K and 1 atm, and the CSV's atomization energies are
against free-atom energies at the record's level (:mod:`hessflow.formats.labels`: both derived,
not stored); the geometry is the optimised one; the frequencies are ``frequencies_cm1``; the
SMILES is the record's in both columns and the InChI is RDKit's for it. Labels a record does not
hold (r2 from an engine without a density, the thermochemistry without frequencies, the
atomization energies without free-atom energies; the Mulliken charges) are written as ``nan`` in
the XYZ and left empty in the CSV, never guessed: :data:`QM9_LABELS` maps each QM9 label to the
record field it comes from. Neither format has a place for
forces; the XYZ has none for a charge or a multiplicity either (QM9 is neutral and closed-shell,
and hessflow's reader reads it so), so a charged or open-shell record is refused there
(:func:`qm9_representable` says which); the CSV's SMILES carries both.

``N`` is the number of a record named ``gdb_N`` (as hessflow names QM9 input), so QM9 molecules
keep their number; any other record, or a repeated number, gets the next number above all of
them. hessflow's reader names the molecule back ``gdb_N``; the CSV's ``mol_id`` is the record's
own name.
"""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path
from typing import Iterable

from ..errors import HessflowError
from ..qm.molecules.elements import symbol
from ..qm.molecules.inputs import QM9_PROPERTIES
from ..qm.thermo import QM9_ATOMIZATION, record_atomization_energies, record_thermochemistry
from ..units import HARTREE_KCALMOL
from ..units import BOHR_ANGSTROM
from .common import geometry_bohr


# QM9 label -> the record field it is; the thermochemical labels (A, B, C, U, H, G, Cv; U0 also
# for records without frequencies: E + ZPVE) come from hessflow.qm.thermo at 298.15 K and 1 atm,
# derived from the record's frequencies and geometry
QM9_LABELS = {
    "A": "thermo", "B": "thermo", "C": "thermo", "mu": "dipole_debye",
    "alpha": "alpha_iso_bohr3", "homo": "homo_hartree", "lumo": "lumo_hartree",
    "gap": "gap_hartree", "r2": "r2_bohr2", "zpve": "zpve_hartree", "U0": "thermo", "U": "thermo",
    "H": "thermo", "G": "thermo", "Cv": "thermo",
}
_THERMO_NAMES = {"A": "A", "B": "B", "C": "C", "U0": "u0", "U": "u298", "H": "h298", "G": "g298",
                 "Cv": "cv"}
XYZ_LABELS = QM9_PROPERTIES[2:]  # the property line after "gdb N", as hessflow's reader reads it
# CSV column -> QM9 label (the *_atom ones: atomization energies, kcal/mol, CSV only)
CSV_LABELS = {"A": "A", "B": "B", "C": "C", "mu": "mu", "alpha": "alpha", "homo": "homo",
              "lumo": "lumo", "gap": "gap", "r2": "r2", "zpve": "zpve", "u0": "U0", "u298": "U",
              "h298": "H", "g298": "G", "cv": "Cv", "u0_atom": "u0_atom",
              "u298_atom": "u298_atom", "h298_atom": "h298_atom", "g298_atom": "g298_atom"}
QM9_CSV_COLUMNS = ("mol_id", "smiles") + tuple(CSV_LABELS)
GDB_NAME = re.compile(r"^gdb_(\d+)$")


def qm9_labels(record: dict, atom_energies=None) -> dict:
    """Every QM9 label of :data:`QM9_LABELS` for ``record`` in QM9's units, and the atomization
    energies u0_atom, u298_atom, h298_atom, g298_atom (kcal/mol) against ``atom_energies``
    (record -> {Z: Hartree} at its level, :func:`hessflow.formats.labels.atom_energies_for`);
    NaN where the record does not hold one (the thermochemistry is computed once per record)."""
    thermo = record_thermochemistry(record)
    qm9 = thermo.to_qm9_labels() if thermo is not None else {}
    out = {}
    for label, source in QM9_LABELS.items():
        if source == "thermo":
            value = qm9.get(_THERMO_NAMES[label], math.nan)
            if label == "U0" and not qm9:  # no frequencies: QM9's definition, E + ZPVE
                value = float(record["energy_hartree"]) + float(record["zpve_hartree"])
        else:
            value = float(record.get(source, math.nan))
        out[label] = value if math.isfinite(value) else math.nan
    atoms = record_atomization_energies(record, atom_energies(record)) \
        if atom_energies is not None and thermo is not None else None
    for label, name in QM9_ATOMIZATION.items():
        out[label] = atoms[name] * HARTREE_KCALMOL if atoms else math.nan
    return out


def qm9_label(record: dict, label: str) -> float:
    """The value of QM9 ``label`` (a key of :data:`QM9_LABELS`) for ``record`` in QM9's unit,
    NaN when the record does not hold it."""
    return qm9_labels(record)[label]


def qm9_numbers(records: list[dict]) -> list[int]:
    """The QM9 number N of each record: N of a name ``gdb_N`` the first time it is seen, else
    the next number above every ``gdb_N`` of ``records`` and every number already given."""
    wanted = [GDB_NAME.match(str(r.get("name", ""))) for r in records]
    top = max((int(m.group(1)) for m in wanted if m), default=0)
    seen, numbers = set(), []
    for m in wanted:
        n = int(m.group(1)) if m else 0
        if not m or n in seen:
            top += 1
            n = top
        seen.add(n)
        numbers.append(n)
    return numbers


def _inchi(smiles: str) -> str:
    if not smiles:
        return ""
    from rdkit import Chem, RDLogger
    RDLogger.DisableLog("rdApp.*")
    mol = Chem.MolFromSmiles(smiles)
    return (Chem.MolToInchi(mol) or "") if mol is not None else ""


def _num(value: float) -> str:
    return repr(float(value)) if math.isfinite(value) else "nan"


def qm9_representable(record: dict) -> bool:
    """True when QM9's extended XYZ can hold the record: neutral and closed-shell."""
    return int(record.get("charge", 0)) == 0 and int(record.get("multiplicity", 1)) == 1


def qm9_xyz(record: dict, number: int) -> str:
    """The record as QM9's extended XYZ text with QM9 number ``number`` (see the module
    docstring). Raises :class:`HessflowError` for a charged or open-shell record."""
    if not qm9_representable(record):
        raise HessflowError(f"record {record.get('name', '?')}: QM9's XYZ holds neutral "
                            f"closed-shell molecules only (charge {record.get('charge')}, "
                            f"multiplicity {record.get('multiplicity')})")
    coords, _ = geometry_bohr(record)
    values = qm9_labels(record)
    labels = "\t".join(_num(values[k]) for k in XYZ_LABELS)
    lines = [str(len(coords)), f"gdb {number}\t{labels}\t"]
    for z, (x, y, w) in zip(record["numbers"], coords * BOHR_ANGSTROM):
        lines.append(f"{symbol(z)}\t{x:.10f}\t{y:.10f}\t{w:.10f}\tnan")
    freqs = record.get("frequencies_cm1")
    lines.append("\t".join(f"{f:.4f}" for f in ([] if freqs is None else freqs)))
    smiles = str(record.get("smiles") or "")
    inchi = _inchi(smiles)
    lines += [f"{smiles}\t{smiles}", f"{inchi}\t{inchi}"]
    return "\n".join(lines) + "\n"


def write_qm9_xyz(records: Iterable[dict], directory) -> list[Path]:
    """Write each record as ``directory/dsgdb9nsd_NNNNNN.xyz`` (QM9's file names; the directory
    is created, files of the same names replaced); returns the paths in record order. hessflow
    reads the directory back (``hessflow compute DIRECTORY``). Raises :class:`HessflowError`,
    before writing anything, naming the records QM9's XYZ cannot hold."""
    records = list(records)
    refused = [str(r.get("name", "?")) for r in records if not qm9_representable(r)]
    if refused:
        raise HessflowError(f"QM9's XYZ holds neutral closed-shell molecules only; charged or "
                            f"open-shell: {', '.join(refused)}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for rec, number in zip(records, qm9_numbers(records)):
        path = directory / f"dsgdb9nsd_{number:06d}.xyz"
        path.write_text(qm9_xyz(rec, number))
        paths.append(path)
    return paths


def qm9_csv_text(records: Iterable[dict], atom_energies=None) -> str:
    """The records as QM9's CSV (:data:`QM9_CSV_COLUMNS`; labels not held left empty; the
    atomization energies against ``atom_energies``, see :func:`qm9_labels`)."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(QM9_CSV_COLUMNS)
    for rec in records:
        held = qm9_labels(rec, atom_energies)
        values = [held[label] for label in CSV_LABELS.values()]
        out.writerow([rec.get("name", ""), rec.get("smiles", "")]
                     + ["" if math.isnan(v) else repr(v) for v in values])
    return buf.getvalue()


def write_qm9_csv(records: Iterable[dict], path, atom_energies=None) -> None:
    """Write :func:`qm9_csv_text` of ``records`` to ``path`` (replaced)."""
    Path(path).write_text(qm9_csv_text(records, atom_energies))
