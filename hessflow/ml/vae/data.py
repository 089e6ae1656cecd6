"""The SMILES VAE's data: molecules and their properties from a file, and the token dataset.

:func:`load_molecules` reads a MoleculeNet QM9 CSV, a hessflow store or a ``.smi`` file;
:class:`SmilesDataset` holds the token ids of every molecule (padded) with its standardised
properties, and :func:`collate` trims a batch's padding to its longest molecule.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ...errors import HessflowError
from ..core.data import TARGETS
from .tokens import Vocab


class SmilesDataset(Dataset):
    """Token ids (padded to the longest), lengths and standardised properties."""

    def __init__(self, smiles: Sequence[str], vocab: Vocab, y=None):
        ids, lengths = vocab.encode_batch(smiles)
        self.ids = torch.as_tensor(ids)
        self.lengths = torch.as_tensor(lengths)
        y = np.zeros((len(smiles), 0)) if y is None else np.asarray(y, float).reshape(len(smiles), -1)
        self.y = torch.as_tensor(y, dtype=torch.float32)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return self.ids[i], self.lengths[i], self.y[i]


def collate(batch):
    """Stack and trim the padding to the longest molecule of the batch."""
    ids = torch.stack([b[0] for b in batch])
    lengths = torch.stack([b[1] for b in batch])
    return ids[:, :int(lengths.max())], lengths, torch.stack([b[2] for b in batch])


def load_molecules(path, properties: Sequence[str] = (), limit: int | None = None):
    """(names, SMILES, properties (n, P) in the target units) from a MoleculeNet QM9 CSV, a
    hessflow store (done records with a SMILES and finite values) or a ``.smi`` file (SMILES
    [name] per line; no properties). ``limit``: at most that many molecules."""
    for p in properties:
        if p not in TARGETS:
            raise HessflowError(f"--properties: {p!r} is not one of {', '.join(TARGETS)}")
    path = Path(path)
    if not path.exists():
        raise HessflowError(f"{path}: no such file")
    if path.suffix == ".csv":
        rows = _from_qm9_csv(path, properties, limit)
    elif path.suffix in (".h5", ".hdf5"):
        rows = _from_store(path, properties, limit)
    elif path.suffix in (".smi", ".txt"):
        if properties:
            raise HessflowError(f"{path}: a SMILES file has no properties; use a QM9 CSV or a store")
        rows = _from_smi(path, limit)
    else:
        raise HessflowError(f"{path}: expected a QM9 CSV (.csv), a hessflow store (.h5) or .smi")
    if not rows:
        raise HessflowError(f"{path}: no molecules with a SMILES"
                            + (f" and values for {', '.join(properties)}" if properties else ""))
    names, smiles, ys = (list(c) for c in zip(*rows))
    return names, smiles, np.asarray(ys, float).reshape(len(smiles), len(properties))


def _from_qm9_csv(path: Path, properties, limit) -> list[tuple]:
    """(name, SMILES, values) rows of a MoleculeNet QM9 CSV."""
    cols = []
    for p in properties:
        col = TARGETS[p][1]
        if col is None:
            raise HessflowError(f"--properties: {p!r} is not a QM9 CSV column")
        cols.append(col)
    rows = []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        for c in ["smiles", *cols]:
            if c not in fields:
                raise HessflowError(f"{path}: no {c!r} column (MoleculeNet QM9 CSV expected)")
        for row in reader:
            try:
                vals = [float(row[c]) for c in cols]
            except ValueError:
                raise HessflowError(f"{path}: {row.get('mol_id') or row['smiles']}: "
                                    f"non-numeric value in {cols}") from None
            rows.append((row.get("mol_id") or f"row{len(rows)}", row["smiles"].strip(), vals))
            if limit and len(rows) >= limit:
                break
    return rows


def _from_store(path: Path, properties, limit) -> list[tuple]:
    """(name, SMILES, values) of the done records of a store with a SMILES and finite values."""
    from ...store import Store
    cols = [TARGETS[p][0] for p in properties]
    with Store(path, "r") as st:
        t = st.table(["name", "smiles", "status", *cols])
    rows = []
    for k in range(len(t["status"])):
        vals = [float(t[c][k]) for c in cols]
        if t["status"][k] != "done" or not t["smiles"][k] or not np.all(np.isfinite(vals)):
            continue
        rows.append((t["name"][k], t["smiles"][k], vals))
        if limit and len(rows) >= limit:
            break
    return rows


def _from_smi(path: Path, limit) -> list[tuple]:
    """(name, SMILES, []) per ``SMILES [name]`` line of a SMILES file (``#`` comments)."""
    rows = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        rows.append((parts[1] if len(parts) > 1 else f"line{len(rows)}", parts[0], []))
        if limit and len(rows) >= limit:
            break
    return rows
