"""Relevance per feature type: LRP results summed over blocks of input columns, averaged over
real atoms and pairs, the paper's normalisation, and relevance written to HDF5.
"""

from __future__ import annotations

import numpy as np
import torch

from ..ml.property.features import ATOM_BLOCKS, PAIR_BLOCKS, Blocks, padded_blocks
from .relevance import LRPResult


def _np(a):
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def aggregate(relevance, blocks: Blocks, mask=None, normalise: bool = True) -> dict:
    """Relevance per feature block, per sample.

    ``relevance``: (S, F), (S, N, F) or (S, N, N, F) with ``F = blocks.size``. For each sample and
    block: ``signed`` is the relevance summed over the block's columns and ``absolute`` the sum of
    the columns' absolute relevances, both averaged over the real positions (atoms or pairs):
    ``mask`` is (S, N) for atoms, (S, N, N) for pairs, or for pair relevance an atom mask (S, N)
    from which the pair mask ``m_i m_j`` is made (self-pairs included, as the weave model uses
    them). With ``normalise`` each sample's two rows are divided by the sum of its ``absolute``
    row (so that row sums to 1; a sample without relevance stays zero).
    Returns ``{"names": [...], "signed": (S, n_blocks), "absolute": (S, n_blocks)}``.
    """
    R = _np(relevance).astype(float)
    if R.ndim < 2 or R.shape[-1] != blocks.size:
        raise ValueError(f"relevance: shape {R.shape} does not end in the {blocks.size} columns of "
                         "the blocks")
    onehot = np.zeros((blocks.size, len(blocks.widths)))
    onehot[np.arange(blocks.size), blocks.index()] = 1
    signed, absolute = R @ onehot, np.abs(R) @ onehot
    pos = tuple(range(1, R.ndim - 1))
    if pos:
        if mask is None:
            w = np.ones(R.shape[:-1])
        else:
            w = _np(mask).astype(float)
            if R.ndim == 4 and w.ndim == 2:
                w = w[:, :, None] * w[:, None, :]
            if w.shape != R.shape[:-1]:
                raise ValueError(f"mask: shape {w.shape} does not match the relevance positions "
                                 f"{R.shape[:-1]}")
        count = w.sum(pos)
        if np.any(count <= 0):
            raise ValueError("mask: a sample has no real atom")
        signed = (signed * w[..., None]).sum(pos) / count[:, None]
        absolute = (absolute * w[..., None]).sum(pos) / count[:, None]
    if normalise:
        tot = absolute.sum(1, keepdims=True)
        scale = np.divide(1.0, tot, out=np.zeros_like(tot), where=tot > 0)
        signed, absolute = signed * scale, absolute * scale
    return {"names": list(blocks.names), "signed": signed, "absolute": absolute}


def weave_feature_types(result: LRPResult, atom_mask) -> dict:
    """Per-sample relevance of the weave feature types: the 8 atom types (``ATOM_BLOCKS``, averaged
    over the real atoms) and the 4 pair types (``PAIR_BLOCKS``, averaged over the real atom pairs,
    self-pairs included). Not normalised (see :func:`paper_normalise`).
    Returns ``{"names", "kinds" ("atom"/"pair"), "signed": (S, 12), "absolute": (S, 12)}``."""
    a = aggregate(result.relevance[0], ATOM_BLOCKS, atom_mask, normalise=False)
    p = aggregate(result.relevance[1], PAIR_BLOCKS, atom_mask, normalise=False)
    return {"names": a["names"] + p["names"],
            "kinds": ["atom"] * len(a["names"]) + ["pair"] * len(p["names"]),
            "signed": np.hstack([a["signed"], p["signed"]]),
            "absolute": np.hstack([a["absolute"], p["absolute"]])}


def padded_feature_types(result: LRPResult, max_atoms, n_molecules=1, n_conditions=0) -> dict:
    """Element (Z) vs coordinates (x, y, z) relevance of a padded-coordinates input
    (:func:`~hessflow.ml.property.features.padded_blocks` layout), per sample.

    ``per_atom``: ``signed`` / ``absolute`` (S, n_molecules, max_atoms, 2) with the last axis
    (element, coordinates), the coordinates summed over x, y, z. Overall (``names``, ``signed``,
    ``absolute``, (S, 2) or (S, 3) with the conditions): totals over all atoms (padding rows have
    zero inputs and so exactly zero relevance)."""
    blocks = padded_blocks(n_molecules, n_conditions, max_atoms)
    agg = aggregate(result.relevance[0], blocks, normalise=False)
    S, k = agg["signed"].shape[0], n_molecules * max_atoms * 2
    per_s = agg["signed"][:, :k].reshape(S, n_molecules, max_atoms, 2)
    per_a = agg["absolute"][:, :k].reshape(S, n_molecules, max_atoms, 2)
    names = ["element", "coordinates"]
    signed, absolute = [per_s.sum((1, 2))], [per_a.sum((1, 2))]
    if n_conditions:
        names.append("conditions")
        signed.append(agg["signed"][:, k:])
        absolute.append(agg["absolute"][:, k:])
    return {"names": names, "signed": np.hstack(signed), "absolute": np.hstack(absolute),
            "per_atom": {"names": ["element", "coordinates"], "signed": per_s, "absolute": per_a}}


def paper_normalise(values, exclude=None) -> np.ndarray:
    """The paper's scaling of per-sample, per-type relevances ``values`` (S, T) (or (S,)): each
    type is shifted to zero mean over the dataset, then everything is divided by the largest
    absolute shifted value over the dataset (one scale for all types, so types stay comparable).
    ``exclude``: boolean (S,) mask of outlier samples, left out of the statistics and of the
    returned rows (shape (S - n_excluded, T))."""
    v = np.asarray(_np(values), float)
    one_d = v.ndim == 1
    v = v.reshape(len(v), -1)
    if exclude is not None:
        ex = np.asarray(_np(exclude), bool)
        if ex.shape != (len(v),):
            raise ValueError(f"exclude: expected a boolean mask of shape ({len(v)},), got {ex.shape}")
        v = v[~ex]
    if len(v) == 0:
        raise ValueError("values: no sample left to normalise")
    v = v - v.mean(0)
    scale = np.abs(v).max()
    if scale > 0:
        v = v / scale
    return v[:, 0] if one_d else v


def write_hdf5(path, result_or_arrays, names=None):
    """Per-sample relevances to an HDF5 file.

    From an :class:`LRPResult`: one dataset ``relevance/<name>`` per model input (``names``, default
    ``input0``, ``input1``...), plus ``prediction``, ``reference``, ``bias_relevance`` and
    ``conservation_error``; the LRP settings as attributes of the file. From a dict: one dataset
    per key; from a list/tuple of arrays: ``relevance/<name>`` per array."""
    import h5py
    attrs = {}
    if isinstance(result_or_arrays, LRPResult):
        res = result_or_arrays
        names = list(names) if names is not None else [f"input{i}" for i in range(len(res.relevance))]
        if len(names) != len(res.relevance):
            raise ValueError(f"names: {len(names)} names for {len(res.relevance)} inputs")
        data = {f"relevance/{n}": r for n, r in zip(names, res.relevance)}
        data.update(prediction=res.prediction, reference=res.reference,
                    bias_relevance=res.bias_relevance, conservation_error=res.conservation_error)
        attrs = {k: ("none" if v is None else v) for k, v in res.settings.items()}
    elif isinstance(result_or_arrays, dict):
        data = dict(result_or_arrays)
    elif isinstance(result_or_arrays, (list, tuple)):
        names = list(names) if names is not None else [f"input{i}" for i in range(len(result_or_arrays))]
        if len(names) != len(result_or_arrays):
            raise ValueError(f"names: {len(names)} names for {len(result_or_arrays)} arrays")
        data = {f"relevance/{n}": a for n, a in zip(names, result_or_arrays)}
    else:
        raise ValueError(f"result_or_arrays: expected an LRPResult, a dict or a list of arrays, got "
                         f"{type(result_or_arrays).__name__}")
    with h5py.File(path, "w") as fh:
        for key, arr in data.items():
            a = _np(arr)
            big = a.ndim >= 2 and a.size > 1024
            fh.create_dataset(key, data=a, compression="gzip" if big else None)
        fh.attrs.update(attrs)
    return path
