"""Molecule input from anything ASE reads, from ``ase.Atoms`` objects and from RDKit molecules.

- :func:`molecules_from_ase` / :func:`read_ase_items`: a file in any format ``ase.io.read``
  understands (extxyz, ASE trajectories, PDB, Gaussian/ORCA/... inputs and outputs, ...; an
  ASE database, ``.db`` or ``.json``, is read with its key-value pairs, which ``ase.io.read``
  drops),
  an ``ase.Atoms`` or a list of them;
- :func:`molecule_from_atoms`: one ``ase.Atoms``;
- :func:`molecule_from_rdkit`: an RDKit ``Mol`` (its 3D conformer, or embedded like SDF 2D
  records when it has none).

From an ``ase.Atoms``: positions (Angstrom) become Bohr; the name is ``info["name"]``, else the
file's stem (``stem#k`` for frame k > 1, as hessflow's XYZ reader names frames), else the
chemical formula; the charge is ``info["charge"]``, else the sum of the initial charges; the
multiplicity is ``info["multiplicity"]`` (or ``info["mult"]``), else |sum of the initial magnetic
moments| + 1 when any is set, else the lowest the electron count allows (1 or 2); a SMILES in
``info["smiles"]`` is kept (canonicalised). Numeric ``info`` values and the calculator's energy
(``energy_ev``) are kept as the molecule's reference labels (``extra["reference"]``). A periodic
cell is refused: hessflow computes isolated molecules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError
from ..qm.molecules import conformers
from ..qm.molecules.inputs import InputFailure, Item
from ..qm.molecules.molecule import Molecule
from ..units import ANGSTROM_BOHR
from .asedb import KEY_ALIASES, STRINGS

MULTIPLICITY_KEYS = ("multiplicity", "mult")
NOT_REFERENCE = ("charge", "name", "smiles") + MULTIPLICITY_KEYS


def _integer(value, what: str, name: str) -> int:
    v = float(value)
    if abs(v - round(v)) > 1e-6:
        raise InputError(name, f"{what} {v:g} is not an integer")
    return int(round(v))


def _charge_multiplicity(atoms, name: str) -> tuple[int, int]:
    info = atoms.info
    charge = info.get("charge")
    if charge is None:
        charge = atoms.get_initial_charges().sum() if atoms.has("initial_charges") else 0
    charge = _integer(charge, "charge", name)
    mult = next((info[k] for k in MULTIPLICITY_KEYS if k in info), None)
    if mult is None and atoms.has("initial_magmoms"):
        mult = abs(float(atoms.get_initial_magnetic_moments().sum())) + 1
    if mult is None:
        mult = 1 + (int(atoms.numbers.sum()) - charge) % 2
    return charge, _integer(mult, "multiplicity", name)


def molecule_from_atoms(atoms, name: str | None = None, source: str = "ase.Atoms") -> Molecule:
    """A validated :class:`Molecule` from one ``ase.Atoms`` (see the module docstring for the
    name, charge, multiplicity, SMILES and reference labels); ``name`` is used when
    ``atoms.info`` has none. Raises :class:`InputError` naming the molecule."""
    info = atoms.info
    name = str(info.get("name") or name or atoms.get_chemical_formula())
    if np.any(atoms.pbc):
        raise InputError(name, f"periodic cell (pbc={atoms.pbc.tolist()}): hessflow computes "
                               "isolated molecules")
    charge, mult = _charge_multiplicity(atoms, name)
    smiles = str(info.get("smiles") or "")
    if smiles:
        smiles = conformers.canonical_smiles(conformers.parse_smiles(smiles, name))
    reference = {k: float(v) for k, v in info.items()
                 if k not in NOT_REFERENCE and isinstance(v, (int, float, np.number))
                 and not isinstance(v, (bool, np.bool_))}
    if atoms.calc is not None and atoms.calc.results.get("energy") is not None:
        reference["energy_ev"] = float(atoms.calc.results["energy"])
    return Molecule(name=name, numbers=atoms.numbers, coords_bohr=atoms.positions * ANGSTROM_BOHR,
                    charge=charge, multiplicity=mult, smiles=smiles, source=source,
                    extra={"reference": reference} if reference else {}).validate()


def _guarded(atoms, name: str, source: str) -> Item:
    try:
        return molecule_from_atoms(atoms, name, source)
    except InputError as exc:
        return InputFailure(exc.name, exc.reason, source, source)
    except Exception as exc:  # noqa: BLE001 - one bad frame is a recorded failure, not a crash
        return InputFailure(name, f"{type(exc).__name__}: {exc}".splitlines()[0], source, source)


def _db_frames(path: Path, index) -> list:
    """The rows of an ASE database (SQLite or JSON) as ``ase.Atoms`` with their key-value pairs
    in ``info`` (``ase.io.read`` drops them), ``molecular_charge`` as ``charge``, and the string
    labels hessflow keeps in ``data["strings"]``."""
    import ase.db
    from ase.io.formats import string2index
    frames = []
    for row in ase.db.connect(str(path)).select():
        atoms = row.toatoms()
        atoms.info.update(row.key_value_pairs)
        atoms.info.update((row.data or {}).get(STRINGS, {}))
        for field, key in KEY_ALIASES.items():
            if key in atoms.info:
                atoms.info[field] = atoms.info.pop(key)
        frames.append(atoms)
    chosen = frames[string2index(index) if isinstance(index, str) else index]
    return chosen if isinstance(chosen, list) else [chosen]


def _frames(source, index, format) -> tuple[list, str, str | None]:
    """(frames, where, file stem or None) of a path, an ``ase.Atoms`` or a list of them."""
    from ase import Atoms
    if isinstance(source, Atoms):
        return [source], "ase.Atoms", None
    if isinstance(source, (list, tuple)):
        bad = [type(a).__name__ for a in source if not isinstance(a, Atoms)]
        if bad:
            raise InputError("ase.Atoms list", f"holds {bad[0]}, not ase.Atoms")
        return list(source), "ase.Atoms", None
    path = Path(source)
    if not path.is_file():
        raise InputError(str(path), "no such file")
    from ase.io import read
    try:
        if (format or path.suffix.lstrip(".")).lower() in ("db", "json"):
            frames = _db_frames(path, index)
        else:
            frames = read(path, index=index, format=format)
    except Exception as exc:  # noqa: BLE001 - ASE's many reader errors, as one line
        raise InputError(str(path), f"ASE cannot read it: {type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    frames = frames if isinstance(frames, list) else [frames]
    if not frames:
        raise InputError(str(path), "no structures in the file")
    return frames, str(path), path.stem


def read_ase_items(source, index=":", format: str | None = None) -> Iterator[Item]:
    """One item per structure of ``source`` (a path ASE reads, with ``index`` and ``format`` as
    ``ase.io.read`` takes them; an ``ase.Atoms``; a list of them): a validated
    :class:`Molecule`, or an :class:`~hessflow.qm.molecules.inputs.InputFailure` naming the structure
    and the reason, as :func:`hessflow.qm.molecules.inputs.read_molecules` yields them. A file that cannot
    be read at all raises :class:`InputError`."""
    frames, where, stem = _frames(source, index, format)
    many = len(frames) > 1
    for k, atoms in enumerate(frames, 1):
        src = f"{where}#{k}" if many else where
        default = (stem + (f"#{k}" if k > 1 else "")) if stem else None
        yield _guarded(atoms, default or (atoms.get_chemical_formula() + (f"#{k}" if many else "")),
                       src)


def molecules_from_ase(source, index=":", format: str | None = None) -> list[Molecule]:
    """The molecules of ``source`` (see :func:`read_ase_items`). Raises :class:`InputError`
    for the first structure that cannot be used, naming the file and frame
    (``path#k: name: reason``)."""
    out = []
    for item in read_ase_items(source, index, format):
        if isinstance(item, InputFailure):
            raise InputError(item.source, f"{item.name}: {item.reason}")
        out.append(item)
    return out


def molecule_from_rdkit(rdmol, name: str | None = None, conf_id: int = -1,
                        seed: int = conformers.DEFAULT_SEED) -> Molecule:
    """A validated :class:`Molecule` from an RDKit ``Mol``: its conformer ``conf_id`` when it is
    3D (Angstrom, converted to Bohr; hydrogens must be explicit atoms with coordinates, e.g.
    ``Chem.AddHs(mol, addCoords=True)``), else a structure embedded from its graph exactly as
    hessflow embeds SMILES and 2D SDF records (ETKDGv3 + MMFF94, ``seed``). Charge from the
    formal charges, multiplicity from the radical electrons, the name from ``name`` or the
    ``_Name`` property or the SMILES. Raises :class:`InputError` naming the molecule."""
    from rdkit import Chem
    smiles = conformers.canonical_smiles(rdmol)
    label = rdmol.GetProp("_Name").strip() if rdmol.HasProp("_Name") else ""
    name = name or label or smiles
    charge, mult = conformers.charge_multiplicity(rdmol)
    conf = rdmol.GetConformer(conf_id) if rdmol.GetNumConformers() else None
    extra = {}
    if conf is not None and conf.Is3D():
        if any(a.GetTotalNumHs(includeNeighbors=False) for a in rdmol.GetAtoms()):
            raise InputError(name, "hydrogens without coordinates (implicit); add them with "
                                   "Chem.AddHs(mol, addCoords=True)")
        numbers = np.array([a.GetAtomicNum() for a in rdmol.GetAtoms()])
        coords = conf.GetPositions() * ANGSTROM_BOHR
    else:
        numbers, coords = conformers.embed(Chem.RemoveHs(rdmol), name, seed)
        extra["conformer"] = {"method": "ETKDGv3+MMFF94", "seed": int(seed)}
    return Molecule(name=name, numbers=numbers, coords_bohr=coords, charge=charge,
                    multiplicity=mult, smiles=smiles, source="rdkit.Mol", extra=extra).validate()
