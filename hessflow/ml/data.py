"""Training data: from the hessflow store, and from QM9 in its published formats (the MoleculeNet
CSV and the extended XYZ files), as lists of molecule dicts, and torch datasets over them.

A molecule dict has ``name``, ``smiles``, ``numbers``, ``coords_bohr`` (None when only a SMILES
is known), ``masses_amu``, ``hessian`` (None unless from the store) and ``label``.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from ..errors import HessflowError
from ..store import Store
from .features import ATOM_BLOCKS, PAIR_BLOCKS, padded_coordinates, weave_graph

# target name -> (store column, QM9 CSV / extended-XYZ property, factor store->QM9 unit)
TARGETS = {
    "alpha": ("alpha_iso_bohr3", "alpha"),
    "zpve": ("zpve_hartree", "zpve"),
    "gap": ("gap_hartree", "gap"),
    "homo": ("homo_hartree", "homo"),
    "lumo": ("lumo_hartree", "lumo"),
    "dipole": ("dipole_debye", "mu"),
    "energy": ("energy_hartree", None),
    "beta": ("beta_par_au", None),
    # a set-valued target: the 3N-6 (3N-5) real harmonic frequencies, ascending; padded with NaN
    # to a fixed length by the training run (a masked multi-output head)
    "frequencies": ("frequencies_cm1", "frequencies"),
}
VECTOR_TARGETS = ("frequencies",)


UNITS = {"alpha": "Bohr³", "zpve": "Hartree", "gap": "Hartree", "homo": "Hartree",
         "lumo": "Hartree", "dipole": "Debye", "energy": "Hartree", "beta": "a.u.",
         "frequencies": "cm⁻¹"}


def _target(target):
    if target not in TARGETS:
        raise HessflowError(f"--target: {target!r} is not one of {', '.join(TARGETS)}")
    return TARGETS[target]


def _bar(total, desc, progress):
    if not progress:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="mol", file=sys.stderr)


def load_store(path, target: str, progress: bool = False, need_hessian: bool = False,
               limit: int | None = None) -> list[dict]:
    """Done records with a finite target (the first ``limit`` of them), with their optimised
    geometry, and their Hessian where ``need_hessian`` (records without one are then left out;
    otherwise "hessian" is None and Hessians are not read)."""
    column, _ = _target(target)
    vector = target in VECTOR_TARGETS
    st = Store(path)
    t = st.table(["key", "status"] + ([] if vector else [column]))
    keep = [k for i, (k, s) in enumerate(zip(t["key"], t["status"]))
            if s == "done" and (vector or np.isfinite(t[column][i]))]
    bar = _bar(min(len(keep), limit or len(keep)), f"reading {Path(path).name}", progress)
    out = []
    fields = (["numbers", "masses_amu", "coords_input_bohr", "coords_opt_bohr"]
              + (["hessian_hartree_bohr2"] if need_hessian else []) + ([column] if vector else []))
    if limit and not need_hessian and not vector:
        keep = keep[:limit]  # no record is skipped below: read only what is kept
    for r in st.get_many(keep, fields=fields):
        coords = r["coords_opt_bohr"] if r["coords_opt_bohr"] is not None else r["coords_input_bohr"]
        if need_hessian and r["hessian_hartree_bohr2"] is None:
            continue
        if vector and r[column] is None:
            continue
        label = np.sort(np.asarray(r[column], float)) if vector else float(r[column])
        out.append({"name": r["name"], "smiles": r["smiles"], "numbers": r["numbers"],
                    "coords_bohr": coords, "masses_amu": r["masses_amu"], "charge": r["charge"],
                    "hessian": r["hessian_hartree_bohr2"], "label": label})
        if bar:
            bar.update()
        if limit and len(out) >= limit:
            break
    if bar:
        bar.close()
    if not out:
        raise HessflowError(f"{path}: no finished records with a value for {column}"
                            + (" and a Hessian" if need_hessian else ""))
    return out


def load_qm9_csv(path, target: str, limit: int | None = None) -> list[dict]:
    """MoleculeNet's qm9.csv (mol_id, smiles, ..., alpha, ..., zpve, ...): SMILES and labels in
    QM9's units (alpha a0^3, energies Hartree, mu Debye)."""
    _, prop = _target(target)
    if prop is None or target in VECTOR_TARGETS:
        raise HessflowError(f"--target: {target!r} is not a column of the QM9 CSV"
                            + (" (frequencies: use the extended XYZ files or a store)"
                               if target in VECTOR_TARGETS else ""))
    out = []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if prop not in (reader.fieldnames or []):
            raise HessflowError(f"{path}: no {prop!r} column (MoleculeNet QM9 CSV expected)")
        for row in reader:
            out.append({"name": row.get("mol_id", ""), "smiles": row["smiles"], "numbers": None,
                        "coords_bohr": None, "masses_amu": None, "hessian": None,
                        "label": float(row[prop])})
            if limit and len(out) >= limit:
                break
    return out


def load_qm9_xyz(path, target: str, limit: int | None = None) -> list[dict]:
    """QM9's extended XYZ files (one file, or the folder of dsgdb9nsd_*.xyz): the B3LYP geometry
    and the label from the property line."""
    from ..qm.inputs import read_molecules
    _, prop = _target(target)
    key = {"mu": "mu"}.get(prop, prop)
    out = []
    for m in read_molecules(path, limit=limit):
        if not hasattr(m, "numbers") or "reference" not in m.extra:
            continue
        if target in VECTOR_TARGETS:
            freqs = m.extra.get("reference_frequencies_cm1")
            if not freqs:
                continue
            label = np.sort(np.asarray(freqs, float))
        else:
            label = float(m.extra["reference"][key])
        out.append({"name": m.name, "smiles": m.smiles, "numbers": m.numbers,
                    "coords_bohr": m.coords_bohr, "masses_amu": m.masses_amu, "hessian": None,
                    "label": label})
    return out


def load(path, target: str, limit: int | None = None, progress: bool = False,
         need_hessian: bool = False) -> list[dict]:
    p = Path(path)
    if p.suffix in (".h5", ".hdf5"):
        return load_store(p, target, progress, need_hessian, limit)
    if p.suffix == ".csv":
        return load_qm9_csv(p, target, limit)
    return load_qm9_xyz(p, target, limit)


def rdkit_from_geometry(numbers, coords_bohr, charge: int = 0, name: str = ""):
    """An RDKit molecule (explicit hydrogens, bond orders perceived from the geometry, atoms in
    the given order)."""
    from rdkit import Chem
    from rdkit.Chem import rdDetermineBonds
    from ..units import BOHR_ANGSTROM
    mol = Chem.RWMol()
    conf = Chem.Conformer(len(numbers))
    for i, (z, x) in enumerate(zip(numbers, np.asarray(coords_bohr) * BOHR_ANGSTROM)):
        mol.AddAtom(Chem.Atom(int(z)))
        conf.SetAtomPosition(i, [float(v) for v in x])
    mol.AddConformer(conf, assignId=True)
    try:
        rdDetermineBonds.DetermineBonds(mol, charge=int(charge))
        Chem.SanitizeMol(mol)
    except Exception as exc:  # noqa: BLE001
        raise HessflowError(f"{name}: cannot perceive bonds from the geometry: {exc}") from None
    return mol.GetMol()


# -- torch datasets ------------------------------------------------------------------------------
def _report_dropped(dropped, log=sys.stderr):
    for name, reason in dropped:
        print(f"warning: {name}: left out of the data set: {reason}", file=log)


def ensure_geometry(mols, seed: int = 0xF00D):
    """Fill in RDKit/MMFF geometries for molecules known only by SMILES. A molecule that cannot
    be embedded is left out (removed from ``mols`` in place, with one warning line naming it);
    the rest carries on."""
    from ..qm import conformers
    keep = []
    for m in mols:
        if m["coords_bohr"] is None:
            try:
                rd = conformers.parse_smiles(m["smiles"], m["name"] or m["smiles"])
                m["numbers"], m["coords_bohr"] = conformers.embed(rd, m["name"], seed)
            except HessflowError as exc:
                _report_dropped([(m["name"] or m["smiles"], str(exc))])
                continue
        keep.append(m)
    mols[:] = keep
    return mols


class PaddedDataset:
    """(Z, x, y, z) padded to ``max_atoms`` for the MLP; with ``augment`` a
    :class:`hessflow.ml.augment.VibrationalDataset` supplies displaced geometries."""

    def __init__(self, mols, max_atoms: int = 29, augment=None):
        self.mols, self.max_atoms, self.augment = mols, max_atoms, augment

    def __len__(self):
        return len(self.augment) if self.augment else len(self.mols)

    def __getitem__(self, i):
        import torch
        if self.augment:
            mol = self.mols[i // self.augment.n_augment]
            x = self.augment.geometry(i)
        else:
            mol = self.mols[i]
            x = mol["coords_bohr"]
        feats = padded_coordinates(mol["numbers"], x, self.max_atoms).ravel()
        return (torch.tensor(feats, dtype=torch.float32),), torch.tensor(mol["label"], dtype=torch.float32)


class WeaveDataset:
    """Weave graphs; atom features and graph-topology pair features are computed once per molecule,
    and only the Euclidean-distance column changes with an augmented geometry."""

    def __init__(self, mols, augment=None, seed: int = 0xF00D):
        from rdkit import Chem
        from ..qm import conformers
        self.augment = augment
        self.graphs, self.dropped, keep = [], [], []
        for m in mols:
            try:
                if m["coords_bohr"] is None:  # SMILES only: embed, in the SMILES' atom order
                    rd = Chem.AddHs(conformers.parse_smiles(m["smiles"], m["name"] or m["smiles"]))
                    m["numbers"], m["coords_bohr"] = conformers.embed(Chem.RemoveHs(rd), m["name"],
                                                                      seed)
                else:  # a stored geometry: perceive the bonds, so atom order is the geometry's
                    rd = rdkit_from_geometry(m["numbers"], m["coords_bohr"], m.get("charge", 0),
                                             m["name"])
                self.graphs.append(weave_graph(rd, m["coords_bohr"]))
            except (HessflowError, ValueError) as exc:  # recorded and left out; the rest carries on
                self.dropped.append((m["name"] or m["smiles"], str(exc)))
                _report_dropped(self.dropped[-1:])
                continue
            keep.append(m)
        mols[:] = keep  # the caller's list too: indices and splits refer to the kept molecules
        self.mols = mols
        self.dist_col = PAIR_BLOCKS.slices()["distance"].start

    def __len__(self):
        return len(self.augment) if self.augment else len(self.mols)

    def __getitem__(self, i):
        import torch
        from ..units import BOHR_ANGSTROM
        if self.augment:
            k = i // self.augment.n_augment
            g = self.graphs[k]
            x = self.augment.geometry(i) * BOHR_ANGSTROM
            pairs = g.pairs.copy()
            pairs[:, :, self.dist_col] = np.linalg.norm(x[:, None] - x[None], axis=-1)
        else:
            k = i
            g = self.graphs[k]
            pairs = g.pairs
        return ((torch.tensor(g.atoms, dtype=torch.float32), torch.tensor(pairs, dtype=torch.float32)),
                torch.tensor(self.mols[k]["label"], dtype=torch.float32))


def weave_collate(batch):
    import torch
    n = max(b[0][0].shape[0] for b in batch)
    atoms = torch.zeros(len(batch), n, ATOM_BLOCKS.size)
    pairs = torch.zeros(len(batch), n, n, PAIR_BLOCKS.size)
    mask = torch.zeros(len(batch), n)
    for j, ((a, p), _) in enumerate(batch):
        k = a.shape[0]
        atoms[j, :k], pairs[j, :k, :k], mask[j, :k] = a, p, 1
    return (atoms, pairs, mask), torch.stack([b[1] for b in batch])
