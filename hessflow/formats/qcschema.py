"""QCSchema (MolSSI, qcelemental): each record as an ``AtomicResult``; QCSchema molecules as input.

Records -> ``qcelemental.models.AtomicResult`` (QCSchema v1 ``qcschema_output``, validated by
qcelemental), atomic units throughout as QCSchema wants (geometry Bohr, energy Hartree, gradient
Hartree/Bohr, Hessian Hartree/Bohr^2, dipole e*Bohr):

- ``driver``: ``hessian`` when the record has a Hessian, else ``gradient`` when it has a gradient
  (``gradient_hartree_bohr``), else ``energy``; ``return_result`` is that quantity;
- ``model``: the record's method and basis (None for xTB);
- ``molecule``: the record's final geometry (``fix_com``/``fix_orientation`` set, so no program
  moves it), charge, multiplicity, isotope masses, name, the SMILES as
  ``identifiers.canonical_isomeric_smiles``;
- ``properties``: ``return_energy``, ``return_gradient``, ``return_hessian``,
  ``calcinfo_natom``, and for the SCF engines (PySCF, psi4) ``scf_total_energy``,
  ``scf_dipole_moment``, ``scf_total_gradient``, ``scf_total_hessian``;
- ``extras["hessflow"]``: what QCSchema has no field for, in the record's field names and units
  (``zpve_hartree``, ``alpha_bohr3``, ``beta_au``, ``dipole_au``, ``frequencies_cm1``, modes,
  orbital energies, ``key``, ``status``, ``flags``, the provenance as a dict, ...);
- ``provenance``: creator ``hessflow``, its version; ``keywords``: the level settings.

A file of results is JSON Lines: one ``AtomicResult`` JSON per line.

Input: :func:`molecule_from_qcschema` takes a qcelemental ``Molecule`` (v1 or v2), its dict or
JSON text, a JSON file, an ``AtomicInput``/``AtomicResult`` (dict, JSON or file; its molecule), or
any string qcelemental's ``Molecule.from_data`` parses (psi4-style, Angstrom unless it says
``units bohr``), and gives a hessflow :class:`~hessflow.qm.molecules.molecule.Molecule`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np

from .. import __version__
from ..errors import HessflowError, InputError
from ..qm.molecules import conformers
from ..qm.molecules.molecule import Molecule
from .common import (GRADIENT_FIELD, array_labels, finite_labels, geometry_bohr,
                     record_masses_amu, scalar_labels)

SCF_ENGINES = ("pyscf", "psi4")  # engines whose energies are SCF (HF/DFT) energies
# record scalars that AtomicResult says elsewhere (molecule, model, provenance, properties)
IN_RESULT = ("name", "smiles", "formula", "charge", "multiplicity", "n_atoms", "method",
             "basis", "provenance", "energy_hartree")


def qcschema_molecule(record: dict):
    """The record's final geometry as a qcelemental (v1) ``Molecule``, atomic units (geometry
    rounded to 1e-13 Bohr, as qcelemental does for its own aligned molecules, not its default
    1e-8)."""
    from qcelemental.models import Molecule as QcMolecule
    from ..qm.molecules.elements import symbol
    coords, _ = geometry_bohr(record)
    ids = {"canonical_isomeric_smiles": record["smiles"]} if record.get("smiles") else {}
    return QcMolecule(symbols=[symbol(z) for z in record["numbers"]], geometry=coords.ravel(),
                      masses=record_masses_amu(record), name=record.get("name") or None,
                      molecular_charge=int(record["charge"]),
                      molecular_multiplicity=int(record["multiplicity"]),
                      identifiers=ids, fix_com=True, fix_orientation=True,
                      geometry_noise=13)  # round to 1e-13 Bohr (default 1e-8)


def _jsonable(value):
    return value.tolist() if isinstance(value, np.ndarray) else value


def to_atomic_result(record: dict, derived: dict | None = None):
    """The record as a validated ``qcelemental.models.AtomicResult`` (see the module docstring).
    Raises :class:`HessflowError` for a failed record or one with no energy."""
    from qcelemental.models import AtomicResult
    name = record.get("name", "?")
    if record.get("status") == "failed":
        raise HessflowError(f"record {name}: failed ({record.get('reason', '')}), no result")
    energy = float(record.get("energy_hartree", np.nan))
    if not np.isfinite(energy):
        raise HessflowError(f"record {name}: no energy, no result")
    arrays = array_labels(record)
    hessian = arrays.get("hessian_hartree_bohr2")
    gradient = arrays[GRADIENT_FIELD].reshape(-1, 3) if GRADIENT_FIELD in arrays else None
    props = {"return_energy": energy, "calcinfo_natom": int(record["n_atoms"])}
    scf = record.get("engine") in SCF_ENGINES
    if scf:
        props["scf_total_energy"] = energy
        if "dipole_au" in arrays:
            props["scf_dipole_moment"] = arrays["dipole_au"]
    for kind, value in (("gradient", gradient), ("hessian", hessian)):
        if value is not None:
            props["return_" + kind] = value
            if scf:
                props["scf_total_" + kind] = value
    driver, result = ("hessian", hessian) if hessian is not None else (
        ("gradient", gradient) if gradient is not None else ("energy", energy))
    prov = json.loads(record["provenance"]) if record.get("provenance") else {}
    extras = {k: v for k, v in scalar_labels(record).items() if k not in IN_RESULT}
    extras.update({k: _jsonable(v) for k, v in arrays.items()
                   if k not in ("numbers", "masses_amu", "coords_opt_bohr", GRADIENT_FIELD,
                                "hessian_hartree_bohr2")})
    extras.update(finite_labels(derived))
    extras["provenance"] = prov
    return AtomicResult(
        molecule=qcschema_molecule(record), driver=driver,
        model={"method": record.get("method") or record.get("engine") or "unknown",
               "basis": record.get("basis") or None},
        keywords=prov.get("level", {}), return_result=result, properties=props,
        provenance={"creator": "hessflow", "version": __version__,
                    "routine": "hessflow.formats.qcschema.to_atomic_result"},
        extras={"hessflow": extras}, success=True)


def qcschema_text(records: Iterable[dict], derived=None) -> str:
    """``records`` as JSON Lines: one ``AtomicResult`` JSON per line; ``derived``: record -> its
    derived labels (into ``extras["hessflow"]``), or None."""
    return "".join(to_atomic_result(rec, derived(rec) if derived else None).json() + "\n"
                   for rec in records)


def write_qcschema(records: Iterable[dict], path) -> int:
    """Write ``records`` as JSON Lines of ``AtomicResult`` to ``path`` (replaced); returns the
    number of results written."""
    text = qcschema_text(records)
    Path(path).write_text(text)
    return text.count("\n")


def read_qcschema(path) -> list:
    """The ``AtomicResult`` objects of a JSON Lines file written by :func:`write_qcschema`."""
    from qcelemental.models import AtomicResult
    lines = Path(path).read_text().splitlines()
    return [AtomicResult.parse_raw(line) for line in lines if line.strip()]


def _qc_molecule(obj, where: str):
    """A qcelemental Molecule from any accepted input (see :func:`molecule_from_qcschema`)."""
    from qcelemental.models import Molecule as QcMolecule
    if hasattr(obj, "symbols") and hasattr(obj, "geometry"):  # a Molecule, QCSchema v1 or v2
        return obj
    if isinstance(obj, Path) or (isinstance(obj, str) and not obj.lstrip().startswith("{")
                                 and "\n" not in obj and Path(obj).is_file()):
        obj = Path(obj).read_text()
    if isinstance(obj, str) and obj.lstrip().startswith("{"):
        obj = json.loads(obj)
    if isinstance(obj, str):
        return QcMolecule.from_data(obj)
    if isinstance(obj, dict):
        if "molecule" in obj and "symbols" not in obj:  # an AtomicInput / AtomicResult
            obj = obj["molecule"]
        return QcMolecule(**obj)
    molecule = getattr(obj, "molecule", None)  # an AtomicInput / AtomicResult object
    if molecule is not None:
        return _qc_molecule(molecule, where)
    raise InputError(where, f"not a QCSchema molecule: {type(obj).__name__}")


def molecule_from_qcschema(obj, name: str | None = None) -> Molecule:
    """A validated hessflow :class:`Molecule` (coordinates in Bohr) from a QCSchema molecule in any
    form listed in the module docstring. The name is ``name``, else the molecule's own; a SMILES
    identifier (``canonical_isomeric_smiles`` or ``smiles``) becomes the molecule's SMILES.
    Raises :class:`InputError` (one line) for anything qcelemental or hessflow rejects: ghost
    atoms, a fractional charge, unsupported elements, ..."""
    where = name or (str(obj) if isinstance(obj, Path) else "QCSchema molecule")
    try:
        qm = _qc_molecule(obj, where)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - qcelemental's validation and JSON errors, one line
        raise InputError(where, f"{type(exc).__name__}: {exc}".splitlines()[0]) from None
    where = name or qm.name or where
    if not np.all(qm.real):
        raise InputError(where, "ghost atoms (real=False) are not supported")
    charge = float(qm.molecular_charge)
    if abs(charge - round(charge)) > 1e-8:
        raise InputError(where, f"molecular_charge {charge} is not an integer")
    ids = qm.identifiers
    smiles = (ids and (ids.canonical_isomeric_smiles or ids.smiles)) or ""
    if smiles:
        smiles = conformers.canonical_smiles(conformers.parse_smiles(smiles, where))
    return Molecule(name=where, numbers=np.asarray(qm.atomic_numbers, int),
                    coords_bohr=np.asarray(qm.geometry, float).reshape(-1, 3),
                    charge=int(round(charge)), multiplicity=int(qm.molecular_multiplicity),
                    smiles=smiles, source=str(obj) if isinstance(obj, Path) else "qcschema",
                    ).validate()
