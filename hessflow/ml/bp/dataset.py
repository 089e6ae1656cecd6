"""The Behler–Parrinello training data in torch: per-atom features computed once per geometry.

The symmetry functions do not depend on trainable weights, so :func:`compute_features` computes
them once (float64, stored as float32); :class:`FeatureDataset` pairs them with the standardised
targets, and :func:`pad_collate` batches molecules of different sizes.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from ..core.regression import ArrayDataset
from .network import BPNetwork, atom_features


class FeatureDataset(ArrayDataset):
    """Precomputed per-atom features (a list of (n_atoms, F) tensors, molecules of different
    sizes) and standardised targets, one geometry per item: ``((features[i],), target[i])``."""

    def __init__(self, features, targets):
        self.x = list(features)
        self.y = torch.as_tensor(np.asarray(targets), dtype=torch.float32)


def pad_collate(batch):
    """((features (B, N, F), mask (B, N)), targets (B,)): a batch padded to its largest molecule."""
    n = max(b[0][0].shape[0] for b in batch)
    f = torch.zeros(len(batch), n, batch[0][0][0].shape[1], dtype=batch[0][0][0].dtype)
    mask = torch.zeros(len(batch), n, dtype=torch.bool)
    for j, ((x,), _) in enumerate(batch):
        f[j, :x.shape[0]] = x
        mask[j, :x.shape[0]] = True
    return (f, mask), torch.stack([b[1] for b in batch])


def padded(mols, idx, dtype=torch.float64):
    """(numbers (B, N), coords (B, N, 3) in Bohr) of the geometries ``idx``, zero-padded."""
    n = max(len(mols[i]["numbers"]) for i in idx)
    z = torch.zeros(len(idx), n, dtype=torch.long)
    x = torch.zeros(len(idx), n, 3, dtype=dtype)
    for j, i in enumerate(idx):
        k = len(mols[i]["numbers"])
        z[j, :k] = torch.as_tensor(mols[i]["numbers"])
        x[j, :k] = torch.as_tensor(mols[i]["coords_bohr"], dtype=dtype)
    return z, x


@torch.no_grad()
def compute_features(net: BPNetwork, mols, batch_size: int = 16) -> list[torch.Tensor]:
    """Raw per-atom features of every geometry (float64 computation, float32 result), batched
    by atom count to keep padding small."""
    order = sorted(range(len(mols)), key=lambda i: len(mols[i]["numbers"]))
    out: list = [None] * len(mols)
    acsf64 = copy.deepcopy(net.acsf).double()
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        z, x = padded(mols, idx)
        f = atom_features(acsf64, z, x, z > 0)
        for j, i in enumerate(idx):
            out[i] = f[j, :len(mols[i]["numbers"])].float()
    return out
