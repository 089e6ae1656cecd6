"""Torch datasets of the property models over molecule dicts (:mod:`hessflow.ml.core.data`):
the padded coordinates of the MLP and the weave graphs, with optional vibrational augmentation.

A molecule that cannot be featurised (no 3D embedding, bonds not perceivable) is left out with a
one-line warning, and the caller's list is shortened in place: indices and splits refer to the
molecules that remain.
"""

from __future__ import annotations

import sys

import numpy as np

from ...errors import HessflowError
from .features import ATOM_BLOCKS, PAIR_BLOCKS, padded_coordinates, weave_graph

__all__ = ["rdkit_from_geometry", "ensure_geometry", "PaddedDataset", "WeaveDataset",
           "weave_collate"]


def rdkit_from_geometry(numbers, coords_bohr, charge: int = 0, name: str = ""):
    """An RDKit molecule (explicit hydrogens, bond orders perceived from the geometry, atoms in
    the given order)."""
    from rdkit import Chem
    from rdkit.Chem import rdDetermineBonds
    from ...units import BOHR_ANGSTROM
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


def _report_dropped(dropped, log=sys.stderr):
    for name, reason in dropped:
        print(f"warning: {name}: left out of the data set: {reason}", file=log)


def ensure_geometry(mols, seed: int = 0xF00D):
    """Fill in RDKit/MMFF geometries for molecules known only by SMILES. A molecule that cannot
    be embedded is left out (removed from ``mols`` in place, with one warning line naming it);
    the rest carries on."""
    from ...qm.molecules import conformers
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
    :class:`hessflow.ml.property.augment.VibrationalDataset` supplies displaced geometries."""

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
        from ...qm.molecules import conformers
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
        from ...units import BOHR_ANGSTROM
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
    """Weave samples -> ``((atoms, pairs, atom mask), labels)``, zero-padded to the largest
    molecule of the batch."""
    import torch
    n = max(b[0][0].shape[0] for b in batch)
    atoms = torch.zeros(len(batch), n, ATOM_BLOCKS.size)
    pairs = torch.zeros(len(batch), n, n, PAIR_BLOCKS.size)
    mask = torch.zeros(len(batch), n)
    for j, ((a, p), _) in enumerate(batch):
        k = a.shape[0]
        atoms[j, :k], pairs[j, :k, :k], mask[j, :k] = a, p, 1
    return (atoms, pairs, mask), torch.stack([b[1] for b in batch])
