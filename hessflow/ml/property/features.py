"""Featurisers. Every feature vector is made of named blocks (:class:`Blocks`) so that relevance
can later be summed per feature type.

- :func:`padded_coordinates` — (Z, x, y, z) per atom, zero-padded to ``max_atoms``; several
  molecules per sample plus scalar conditions (the vibration paper's 444 = 2 × 55 × 4 + 4).
- :func:`coulomb_matrix` — Rupp et al. 2012, padded, optionally sorted by row norm.
- :func:`weave_graph` — the Kearnes et al. 2016 "weave" molecular graph as used by Faber et al.
  2017: 21 atom features and 13 pair features (see ``ATOM_BLOCKS`` / ``PAIR_BLOCKS``).

Coordinates are in Bohr (hessflow's internal unit) unless a function says otherwise.
"""

from __future__ import annotations

import dataclasses
import os
from functools import lru_cache

import numpy as np

from ...units import BOHR_ANGSTROM


@dataclasses.dataclass(frozen=True)
class Blocks:
    """Names and widths of the consecutive blocks of a feature vector."""
    names: tuple
    widths: tuple

    @property
    def size(self) -> int:
        """The total width (columns) of the vector."""
        return int(sum(self.widths))

    def slices(self) -> dict:
        """``{block name: slice of its columns}``."""
        out, start = {}, 0
        for n, w in zip(self.names, self.widths):
            out[n] = slice(start, start + w)
            start += w
        return out

    def index(self) -> np.ndarray:
        """Block number of every column."""
        return np.repeat(np.arange(len(self.widths)), self.widths)


# -- padded coordinates --------------------------------------------------------------------------
def padded_coordinates(numbers, coords_bohr, max_atoms: int = 55) -> np.ndarray:
    """(max_atoms, 4) rows of (Z, x, y, z) (coordinates in Bohr), zero rows after the last
    atom. ValueError for a molecule of more than ``max_atoms`` atoms."""
    numbers = np.asarray(numbers)
    if len(numbers) > max_atoms:
        raise ValueError(f"max_atoms: molecule has {len(numbers)} atoms, more than {max_atoms}")
    out = np.zeros((max_atoms, 4))
    out[:len(numbers), 0] = numbers
    out[:len(numbers), 1:] = np.asarray(coords_bohr).reshape(-1, 3)
    return out


def unpad_coordinates(block) -> tuple[np.ndarray, np.ndarray]:
    """(atomic numbers, coordinates in Bohr) of the real (Z > 0) rows of a padded block."""
    block = np.asarray(block).reshape(-1, 4)
    keep = block[:, 0] > 0
    return block[keep, 0].astype(int), block[keep, 1:]


def padded_sample(molecules, conditions=(), max_atoms: int = 55) -> np.ndarray:
    """Flat feature vector for one sample: each (numbers, coords) padded, then the conditions."""
    parts = [padded_coordinates(z, x, max_atoms).ravel() for z, x in molecules]
    return np.concatenate(parts + [np.asarray(conditions, float).ravel()])


def padded_blocks(n_molecules: int, n_conditions: int, max_atoms: int = 55) -> Blocks:
    """Per molecule and atom: its element (Z) and its coordinates (x, y, z); then conditions."""
    names, widths = [], []
    for m in range(n_molecules):
        for a in range(max_atoms):
            names += [f"mol{m}.atom{a}.element", f"mol{m}.atom{a}.coordinates"]
            widths += [1, 3]
    if n_conditions:
        names.append("conditions")
        widths.append(n_conditions)
    return Blocks(tuple(names), tuple(widths))


# -- Coulomb matrix ------------------------------------------------------------------------------
def coulomb_matrix(numbers, coords_bohr, max_atoms: int | None = None, sort: bool = True):
    """M_ii = 0.5 Z_i^2.4, M_ij = Z_i Z_j / |R_i - R_j| (atomic units), zero-padded."""
    z = np.asarray(numbers, float)
    x = np.asarray(coords_bohr, float).reshape(-1, 3)
    n = len(z)
    max_atoms = max_atoms or n
    if n > max_atoms:
        raise ValueError(f"max_atoms: molecule has {n} atoms, more than {max_atoms}")
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    with np.errstate(divide="ignore"):
        m = np.outer(z, z) / d
    m[np.diag_indices(n)] = 0.5 * z ** 2.4
    if sort:
        order = np.argsort(-np.linalg.norm(m, axis=1), kind="stable")
        m = m[order][:, order]
    out = np.zeros((max_atoms, max_atoms))
    out[:n, :n] = m
    return out


# -- weave graph ---------------------------------------------------------------------------------
ATOM_TYPES = (1, 6, 7, 8, 9)
ATOM_BLOCKS = Blocks(("atom_type", "chirality", "formal_charge", "partial_charge", "ring_sizes",
                      "hybridisation", "hbond_donor_acceptor", "aromatic"),
                     (5, 2, 1, 1, 6, 3, 2, 1))
PAIR_BLOCKS = Blocks(("bond_type", "graph_distance", "same_ring", "distance"), (4, 7, 1, 1))
MAX_GRAPH_DISTANCE = 7
assert ATOM_BLOCKS.size == 21 and PAIR_BLOCKS.size == 13


@lru_cache(maxsize=1)
def _feature_factory():
    from rdkit import RDConfig
    from rdkit.Chem import ChemicalFeatures
    return ChemicalFeatures.BuildFeatureFactory(os.path.join(RDConfig.RDDataDir,
                                                             "BaseFeatures.fdef"))


@dataclasses.dataclass
class WeaveGraph:
    """The weave features of one molecule: per atom (``ATOM_BLOCKS``), per atom pair
    (``PAIR_BLOCKS``; the distance column in Angstrom) and the atomic numbers."""
    atoms: np.ndarray      # (n, 21)
    pairs: np.ndarray      # (n, n, 13)
    numbers: np.ndarray    # (n,)


def weave_graph(rdmol, coords_bohr=None) -> WeaveGraph:
    """Atom and pair features of an RDKit molecule with explicit hydrogens. ``coords_bohr`` gives
    the Euclidean distances (default: the molecule's conformer); distances are in Angstrom in the
    feature (as in DeepChem's weave featuriser)."""
    from rdkit import Chem
    from rdkit.Chem import AllChem
    mol = rdmol
    n = mol.GetNumAtoms()
    AllChem.ComputeGasteigerCharges(mol)
    Chem.AssignStereochemistry(mol, cleanIt=True, force=True)
    donors, acceptors = set(), set()
    for f in _feature_factory().GetFeaturesForMol(mol):
        if f.GetFamily() == "Donor":
            donors.update(f.GetAtomIds())
        elif f.GetFamily() == "Acceptor":
            acceptors.update(f.GetAtomIds())
    rings = mol.GetRingInfo().AtomRings()
    hyb = {Chem.HybridizationType.SP: 0, Chem.HybridizationType.SP2: 1,
           Chem.HybridizationType.SP3: 2}
    atoms = np.zeros((n, ATOM_BLOCKS.size))
    sl = ATOM_BLOCKS.slices()
    for a in mol.GetAtoms():
        i = a.GetIdx()
        z = a.GetAtomicNum()
        if z not in ATOM_TYPES:
            raise ValueError(f"weave features: element Z={z} is not one of H, C, N, O, F")
        atoms[i, sl["atom_type"].start + ATOM_TYPES.index(z)] = 1
        if a.HasProp("_CIPCode"):
            atoms[i, sl["chirality"].start + ("R", "S").index(a.GetProp("_CIPCode"))] = 1
        atoms[i, sl["formal_charge"]] = a.GetFormalCharge()
        q = float(a.GetProp("_GasteigerCharge"))
        atoms[i, sl["partial_charge"]] = q if np.isfinite(q) else 0.0
        for r in rings:
            if i in r and 3 <= len(r) <= 8:
                atoms[i, sl["ring_sizes"].start + len(r) - 3] += 1
        h = hyb.get(a.GetHybridization())
        if h is not None:
            atoms[i, sl["hybridisation"].start + h] = 1
        atoms[i, sl["hbond_donor_acceptor"].start] = i in donors
        atoms[i, sl["hbond_donor_acceptor"].start + 1] = i in acceptors
        atoms[i, sl["aromatic"]] = a.GetIsAromatic()

    ps = PAIR_BLOCKS.slices()
    pairs = np.zeros((n, n, PAIR_BLOCKS.size))
    btype = {Chem.BondType.SINGLE: 0, Chem.BondType.DOUBLE: 1, Chem.BondType.TRIPLE: 2,
             Chem.BondType.AROMATIC: 3}
    for b in mol.GetBonds():
        i, j = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        k = btype.get(b.GetBondType())
        if k is not None:
            pairs[i, j, ps["bond_type"].start + k] = pairs[j, i, ps["bond_type"].start + k] = 1
    topo = Chem.GetDistanceMatrix(mol)
    for k in range(1, MAX_GRAPH_DISTANCE + 1):
        pairs[:, :, ps["graph_distance"].start + k - 1] = (topo <= k) & (topo > 0)
    ring_of = [set(idx for idx, r in enumerate(rings) if i in r) for i in range(n)]
    for i in range(n):
        for j in range(n):
            if i != j and ring_of[i] & ring_of[j]:
                pairs[i, j, ps["same_ring"]] = 1
    if coords_bohr is None:
        coords_ang = mol.GetConformer().GetPositions()
    else:
        coords_ang = np.asarray(coords_bohr).reshape(-1, 3) * BOHR_ANGSTROM
    pairs[:, :, ps["distance"].start] = np.linalg.norm(coords_ang[:, None] - coords_ang[None], axis=-1)
    numbers = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])
    return WeaveGraph(atoms, pairs, numbers)


def weave_from_smiles(smiles: str, coords_bohr=None, seed: int = 0xF00D) -> WeaveGraph:
    """Weave graph of a SMILES string (hydrogens added; an RDKit conformer is embedded when no
    coordinates are given, with hessflow's seeded ETKDG + MMFF)."""
    from rdkit import Chem
    from ...qm.molecules import conformers
    rd = conformers.parse_smiles(smiles, smiles)
    mh = Chem.AddHs(rd)
    if coords_bohr is None:
        _, coords_bohr = conformers.embed(rd, smiles, seed)
    return weave_graph(mh, coords_bohr)
