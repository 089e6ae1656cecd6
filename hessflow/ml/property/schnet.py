"""SchNet (Schütt et al. 2018) from PyTorch Geometric, as a peer of the weave model.

The network is the library's own :class:`torch_geometric.nn.models.SchNet` (embedding of Z,
continuous-filter convolutions over interatomic distances, sum readout); hessflow only supplies

- the inputs: the same molecule dicts, geometries (stored, else the seeded RDKit/MMFF embedding
  that the weave model and the MLP use) and split as every other property model, as zero-padded
  batches ``(numbers (B, N) long, coordinates (B, N, 3) in Bohr, atom mask (B, N))``
  (:class:`AtomsDataset`, :func:`atoms_collate`), so that :func:`hessflow.ml.core.training.train`
  and :func:`~hessflow.ml.core.regression.predict` drive it like weave;
- the neighbour list (:class:`RadiusGraph`): every pair of atoms of the same molecule closer than
  the cutoff, in plain torch. PyG's own ``radius_graph`` needs the compiled ``torch-cluster`` or
  ``pyg-lib`` wheels, which do not exist for every torch build; SchNet takes any
  ``interaction_graph`` callable, and for molecules (tens of atoms) the all-pairs distance
  matrix is cheap. Unlike PyG's default there is no cap on the neighbours per atom.

Distances are in Bohr (``cutoff_bohr``; the Gaussian expansion runs from 0 to the cutoff), so
the network sees atomic units like the rest of hessflow. Labels are standardised by the
training run (see :mod:`hessflow.ml.property.experiment`). Scalar targets only (SchNet's head
has one output per atom, summed).

``torch_geometric`` is an optional dependency (``pip install 'hessflow[peer]'``); without it
``--model schnet`` stops with a one-line error. PyG has no PaiNN, so SchNet is the one peer.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...errors import HessflowError

__all__ = ["PEER_MODELS", "available", "require", "RadiusGraph", "SchNetModel",
           "AtomsDataset", "atoms_collate"]

PEER_MODELS = ("schnet",)


def available() -> bool:
    """True when PyTorch Geometric can be imported."""
    try:
        import torch_geometric.nn.models  # noqa: F401
    except ImportError:
        return False
    return True


def require(model: str = "schnet") -> None:
    """A one-line HessflowError when PyTorch Geometric is not installed."""
    if not available():
        raise HessflowError(f"--model {model}: needs PyTorch Geometric (pip install "
                            f"'hessflow[peer]', or pip install torch_geometric)")


class RadiusGraph(nn.Module):
    """SchNet's ``interaction_graph``: ``(pos, batch) -> (edge_index, edge_weight)`` with an edge
    (both directions) between every two distinct atoms of one molecule closer than ``cutoff``
    (the units of ``pos``), and their distance as the weight."""

    def __init__(self, cutoff: float):
        super().__init__()
        self.cutoff = float(cutoff)

    def forward(self, pos, batch):
        same = batch[:, None] == batch[None, :]
        d = torch.cdist(pos, pos)
        near = same & (d < self.cutoff)
        near.fill_diagonal_(False)
        row, col = near.nonzero(as_tuple=True)
        edge_index = torch.stack([row, col])
        return edge_index, (pos[row] - pos[col]).norm(dim=-1)


class SchNetModel(nn.Module):
    """PyG's SchNet on padded batches: ``forward(numbers, coords_bohr, mask) -> (B,)``.

    The sizes are PyG's parameters (see
    :class:`hessflow.ml.property.experiment.SchNetSpec`). The real atoms (``mask`` > 0) of the B molecules are flattened into PyG's atom list with a
    molecule index; the library's model does the rest. ``self.net`` is the
    :class:`torch_geometric.nn.models.SchNet` itself (its ``embedding`` is where gradient x
    input relevance is taken, see :func:`hessflow.analysis.gradient_relevance.atom_relevance`)."""
    n_out = 1

    def __init__(self, hidden: int = 64, filters: int = 64, interactions: int = 3,
                 gaussians: int = 25, cutoff_bohr: float = 9.5):
        super().__init__()
        require()
        from torch_geometric.nn.models import SchNet
        self.net = SchNet(hidden_channels=hidden, num_filters=filters,
                          num_interactions=interactions, num_gaussians=gaussians,
                          cutoff=cutoff_bohr, interaction_graph=RadiusGraph(cutoff_bohr),
                          readout="add")

    def forward(self, numbers, coords, mask):
        real = mask > 0
        b = torch.arange(numbers.shape[0], device=numbers.device)[:, None].expand_as(numbers)
        out = self.net(numbers[real], coords[real], b[real])  # (molecules with atoms, 1)
        return out.reshape(-1)


class AtomsDataset:
    """Samples ``((numbers, coords_bohr), label)`` of molecule dicts that have a geometry
    (:func:`hessflow.ml.property.datasets.ensure_geometry` fills in the SMILES-only ones); with
    ``augment`` a :class:`hessflow.ml.property.augment.VibrationalDataset` supplies displaced
    geometries (sample ``i`` of molecule ``i // n_augment``), labels staying at equilibrium."""

    def __init__(self, mols, augment=None):
        self.mols, self.augment = mols, augment

    def __len__(self):
        return len(self.augment) if self.augment else len(self.mols)

    def __getitem__(self, i):
        if self.augment:
            m, x = self.mols[i // self.augment.n_augment], self.augment.geometry(i)
        else:
            m = self.mols[i]
            x = m["coords_bohr"]
        return ((torch.as_tensor(np.asarray(m["numbers"]), dtype=torch.long),
                 torch.as_tensor(np.asarray(x, float), dtype=torch.float32)),
                torch.tensor(m["label"], dtype=torch.float32))


def atoms_collate(batch):
    """``((numbers, coords), y)`` samples -> ``((numbers (B, N), coords (B, N, 3), mask (B, N)),
    labels)``, zero-padded to the largest molecule of the batch."""
    n = max(len(b[0][0]) for b in batch)
    numbers = torch.zeros(len(batch), n, dtype=torch.long)
    coords = torch.zeros(len(batch), n, 3)
    mask = torch.zeros(len(batch), n)
    for j, ((z, x), _) in enumerate(batch):
        k = len(z)
        numbers[j, :k], coords[j, :k], mask[j, :k] = z, x, 1
    return (numbers, coords, mask), torch.stack([b[1] for b in batch])
