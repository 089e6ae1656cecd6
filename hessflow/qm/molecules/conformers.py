"""3D structures from SMILES: RDKit ETKDG (v3) embedding + MMFF94 relaxation, seeded.

The same SMILES and seed always give the same coordinates (single-threaded RDKit embedding).
"""

from __future__ import annotations

import numpy as np

from ...errors import InputError
from ...units import ANGSTROM_BOHR
from .elements import SUPPORTED_Z
from .molecule import Molecule

DEFAULT_SEED = 0xF00D


def _rdkit():
    from rdkit import Chem, RDLogger
    from rdkit.Chem import AllChem
    RDLogger.DisableLog("rdApp.*")
    return Chem, AllChem


def parse_smiles(smiles: str, name: str):
    """RDKit molecule (no explicit H) or InputError naming the molecule."""
    Chem, _ = _rdkit()
    smi = str(smiles).strip()
    if not smi:
        raise InputError(name, "empty SMILES")
    m = Chem.MolFromSmiles(smi)
    if m is None:
        raise InputError(name, f"invalid SMILES {smi!r}")
    bad = sorted({a.GetSymbol() for a in m.GetAtoms() if a.GetAtomicNum() not in SUPPORTED_Z})
    if bad:
        raise InputError(name, f"unsupported element(s) {', '.join(bad)} in {smi!r}")
    return m


def canonical_smiles(rdmol) -> str:
    Chem, _ = _rdkit()
    return Chem.MolToSmiles(Chem.RemoveHs(rdmol), isomericSmiles=True)


def charge_multiplicity(rdmol) -> tuple[int, int]:
    """Formal charge and the multiplicity implied by radical electrons (high-spin)."""
    from rdkit.Chem import Descriptors
    charge = sum(a.GetFormalCharge() for a in rdmol.GetAtoms())
    return int(charge), int(Descriptors.NumRadicalElectrons(rdmol)) + 1


def embed(rdmol, name: str, seed: int = DEFAULT_SEED, force_field: str = "mmff"):
    """Add hydrogens, embed with ETKDGv3 and relax with MMFF94 (UFF if MMFF lacks parameters).
    Returns (numbers, coords_bohr)."""
    Chem, AllChem = _rdkit()
    mh = Chem.AddHs(rdmol)
    params = AllChem.ETKDGv3()
    params.randomSeed = int(seed)
    params.numThreads = 1
    if AllChem.EmbedMolecule(mh, params) != 0:
        params.useRandomCoords = True
        if AllChem.EmbedMolecule(mh, params) != 0:
            raise InputError(name, "RDKit ETKDG could not embed a 3D structure")
    if force_field == "mmff" and AllChem.MMFFHasAllMoleculeParams(mh):
        AllChem.MMFFOptimizeMolecule(mh, maxIters=2000)
    elif force_field in ("mmff", "uff") and AllChem.UFFHasAllMoleculeParams(mh):
        AllChem.UFFOptimizeMolecule(mh, maxIters=2000)
    numbers = np.array([a.GetAtomicNum() for a in mh.GetAtoms()])
    coords = mh.GetConformer().GetPositions() * ANGSTROM_BOHR
    return numbers, coords


def from_smiles(smiles: str, name: str | None = None, charge: int | None = None,
                multiplicity: int | None = None, seed: int = DEFAULT_SEED, source: str = "",
                extra: dict | None = None, embed_now: bool = True) -> Molecule:
    """A validated 3D :class:`Molecule` from a SMILES string (charge/multiplicity from the SMILES
    unless given; a given value that contradicts the SMILES is an error).

    ``embed_now=False`` checks everything but the geometry and defers the 3D embedding to
    :func:`embed_molecule` (the workflow runs it as its own task, on a worker)."""
    name = name or smiles
    rd = parse_smiles(smiles, name)
    q, mult = charge_multiplicity(rd)
    if charge is not None and int(charge) != q:
        raise InputError(name, f"charge {charge} contradicts the SMILES formal charge {q}")
    if multiplicity is not None:
        mult = int(multiplicity)
    extra = dict(extra or {})
    extra.setdefault("conformer", {"method": "ETKDGv3+MMFF94", "seed": int(seed)})
    if embed_now:
        numbers, coords = embed(rd, name, seed)
    else:
        Chem, _ = _rdkit()
        numbers = np.array([a.GetAtomicNum() for a in Chem.AddHs(rd).GetAtoms()])
        coords = np.full((len(numbers), 3), np.nan)
        extra["needs_conformer"] = True
        extra["input_smiles"] = str(smiles).strip()  # atom order of the embedding to come
    mol = Molecule(name=name, numbers=numbers, coords_bohr=coords, charge=q, multiplicity=mult,
                   smiles=canonical_smiles(rd), source=source, extra=extra)
    return mol.validate(geometry=embed_now)


def embed_molecule(mol: Molecule) -> Molecule:
    """Fill in the deferred 3D structure of a SMILES molecule (same result as embedding at once)."""
    if not mol.needs_conformer:
        return mol
    rd = parse_smiles(mol.extra.get("input_smiles", mol.smiles), mol.name)
    numbers, coords = embed(rd, mol.name, int(mol.extra["conformer"]["seed"]))
    if not np.array_equal(numbers, mol.numbers):
        raise InputError(mol.name, "embedded atoms differ from the parsed SMILES")
    extra = {k: v for k, v in mol.extra.items() if k not in ("needs_conformer", "input_smiles")}
    return Molecule(name=mol.name, numbers=numbers, coords_bohr=coords, charge=mol.charge,
                    multiplicity=mol.multiplicity, smiles=mol.smiles, source=mol.source,
                    extra=extra).validate()
