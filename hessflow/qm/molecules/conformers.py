"""3D structures from SMILES: RDKit ETKDG (v3) embedding + MMFF94 relaxation, seeded.

The same SMILES and seed always give the same coordinates (single-threaded RDKit embedding).

Isotope labels (``[2H]O[2H]``, ``[13CH4]``) give those isotopes' masses (:func:`atom_masses`).
A SMILES of several fragments (``CC(=O)[O-].[Na+]``, ``O.O``) is refused unless a complex is
asked for (``fragments=True``, or ``complex=yes`` on the input line): then each fragment is
embedded on its own and the fragments are set side by side, :data:`FRAGMENT_GAP_ANGSTROM`
apart, never bonded, for the optimisation to bring together.
"""

from __future__ import annotations

import numpy as np

from ...errors import InputError
from ...units import ANGSTROM_BOHR
from .elements import ISOTOPE_MASS_AMU, SUPPORTED_Z
from .molecule import Molecule

DEFAULT_SEED = 0xF00D
#: the closest approach of two fragments of a complex as embedded (Angstrom): a contact distance
FRAGMENT_GAP_ANGSTROM = 3.0


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


def atom_masses(mh, name: str):
    """Masses (amu) of the atoms of RDKit molecule ``mh`` when any carries an isotope label (the
    others get their most abundant isotope's), else None. InputError for an unknown isotope."""
    if not any(a.GetIsotope() for a in mh.GetAtoms()):
        return None
    Chem, _ = _rdkit()
    table = Chem.GetPeriodicTable()
    out = []
    for a in mh.GetAtoms():
        z, iso = a.GetAtomicNum(), a.GetIsotope()
        m = table.GetMassForIsotope(z, iso) if iso else ISOTOPE_MASS_AMU[z]
        if not m > 0:
            raise InputError(name, f"unknown isotope {iso}{a.GetSymbol()}")
        out.append(m)
    return np.array(out)


def fragment_smiles(rdmol) -> list[str]:
    """The SMILES of each fragment (disconnected part) of an RDKit molecule."""
    Chem, _ = _rdkit()
    return [Chem.MolToSmiles(f) for f in Chem.GetMolFrags(rdmol, asMols=True, sanitizeFrags=False)]


def check_fragments(rdmol, name: str, allow: bool) -> None:
    """InputError for a multi-fragment molecule unless a complex is asked for (``allow``)."""
    parts = fragment_smiles(rdmol)
    if len(parts) > 1 and not allow:
        raise InputError(name, f"{len(parts)} fragments ({' + '.join(parts)}): give one molecule "
                               f"per line, or mark the line complex=yes to compute the fragments "
                               f"together as a complex")


def embed(rdmol, name: str, seed: int = DEFAULT_SEED, force_field: str = "mmff"):
    """Add hydrogens, embed with ETKDGv3 and relax with MMFF94 (UFF if MMFF lacks parameters);
    a molecule of several fragments is embedded fragment by fragment and the fragments are set
    :data:`FRAGMENT_GAP_ANGSTROM` apart along x. Returns (numbers, coords_bohr) in the atom order
    of ``Chem.AddHs(rdmol)``."""
    Chem, _ = _rdkit()
    mh = Chem.AddHs(rdmol)
    numbers = np.array([a.GetAtomicNum() for a in mh.GetAtoms()])
    groups = Chem.GetMolFrags(mh)
    if len(groups) == 1:
        return numbers, _embed_h(mh, name, seed, force_field) * ANGSTROM_BOHR
    coords = np.zeros((mh.GetNumAtoms(), 3))
    right = None  # the largest x placed so far (Angstrom)
    for idx, part in zip(groups, Chem.GetMolFrags(mh, asMols=True, sanitizeFrags=True)):
        xyz = _embed_h(part, name, seed, force_field)
        xyz = xyz - xyz.mean(axis=0)
        if right is not None:
            xyz[:, 0] += right + FRAGMENT_GAP_ANGSTROM - xyz[:, 0].min()
        right = xyz[:, 0].max()
        coords[list(idx)] = xyz
    return numbers, coords * ANGSTROM_BOHR


def _embed_h(mh, name: str, seed: int, force_field: str) -> np.ndarray:
    """Coordinates (Angstrom) of one connected molecule with explicit hydrogens ``mh``."""
    _, AllChem = _rdkit()
    if mh.GetNumAtoms() == 1:
        return np.zeros((1, 3))
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
    return mh.GetConformer().GetPositions()


def from_smiles(smiles: str, name: str | None = None, charge: int | None = None,
                multiplicity: int | None = None, seed: int = DEFAULT_SEED, source: str = "",
                extra: dict | None = None, embed_now: bool = True,
                fragments: bool = False) -> Molecule:
    """A validated 3D :class:`Molecule` from a SMILES string (charge/multiplicity from the SMILES
    unless given; a given value that contradicts the SMILES is an error; isotope labels give
    isotope masses). Several fragments are refused unless ``fragments`` (a complex).

    ``embed_now=False`` checks everything but the geometry and defers the 3D embedding to
    :func:`embed_molecule` (the workflow runs it as its own task, on a worker)."""
    name = name or smiles
    rd = parse_smiles(smiles, name)
    check_fragments(rd, name, fragments)
    q, mult = charge_multiplicity(rd)
    if charge is not None and int(charge) != q:
        raise InputError(name, f"charge {charge} contradicts the SMILES formal charge {q}")
    if multiplicity is not None:
        mult = int(multiplicity)
    extra = dict(extra or {})
    extra.setdefault("conformer", {"method": "ETKDGv3+MMFF94", "seed": int(seed)})
    Chem, _ = _rdkit()
    masses = atom_masses(Chem.AddHs(rd), name)
    if embed_now:
        numbers, coords = embed(rd, name, seed)
    else:
        numbers = np.array([a.GetAtomicNum() for a in Chem.AddHs(rd).GetAtoms()])
        coords = np.full((len(numbers), 3), np.nan)
        extra["needs_conformer"] = True
        extra["input_smiles"] = str(smiles).strip()  # atom order of the embedding to come
    mol = Molecule(name=name, numbers=numbers, coords_bohr=coords, charge=q, multiplicity=mult,
                   smiles=canonical_smiles(rd), source=source, extra=extra, masses=masses)
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
                    extra=extra, masses=mol.masses).validate()
