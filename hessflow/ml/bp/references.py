"""Per-element reference energies of the Behler–Parrinello network (``reference=``).

``"fit"`` (default): least squares of the training energies on the element counts
(E ≈ Σ_Z n_Z e_ref(Z)). An element that no training molecule contains has no fitted value;
predicting a molecule with it is refused (a one-line error naming the element).
``"atoms"``: the free-atom energies at the level of the data
(:func:`hessflow.qm.atom_references.free_atom_energies`: same engine and method, ground-state
multiplicity); the network then learns atomisation energies, and an element unseen in training
still has a reference — what the transfer experiment needs.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ...qm.atom_references import free_atom_energies
from .config import MAX_Z


def composition(mols, elements) -> np.ndarray:
    """(n_geometries, n_elements) atom counts of each element (atomic numbers ``elements``)."""
    col = {z: c for c, z in enumerate(elements)}
    a = np.zeros((len(mols), len(elements)))
    for r, m in enumerate(mols):
        for z in m["numbers"]:
            a[r, col[int(z)]] += 1
    return a


def fit_reference(mols, idx) -> dict:
    """Least-squares per-element energies (Hartree) on the geometries ``idx``: E ≈ Σ_Z n_Z e(Z)."""
    sub = [mols[i] for i in idx]
    present = sorted({int(z) for m in sub for z in m["numbers"]})
    a = composition(sub, present)
    y = np.array([m["energy_hartree"] for m in sub])
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    return {z: float(c) for z, c in zip(present, coef)}


def reference_energies(reference: str, mols, train_idx, elements, level: dict | None) -> dict:
    """``{Z: e_ref(Z)}`` (Hartree) by the method ``reference`` ("fit" on the geometries
    ``train_idx``, or "atoms" for ``elements`` at ``level``, see the module docstring)."""
    if reference == "fit":
        return fit_reference(mols, train_idx)
    return free_atom_energies(elements, level)


@dataclasses.dataclass
class EnergyTargets:
    """What the network regresses, for every geometry: the energy less its reference part,
    standardised. NaN (``reference`` and ``target``) where a geometry has an element without a
    reference energy (one no training molecule has, with ``"fit"``): the masked losses leave it
    out instead of fitting its whole total energy."""

    by_element: dict          # {Z: e_ref(Z)} in Hartree
    table: torch.Tensor       # (MAX_Z + 1,) e_ref(Z) in Hartree, NaN where none (float64)
    energy: np.ndarray        # (n,) E in Hartree
    n_atoms: np.ndarray       # (n,)
    reference: np.ndarray     # (n,) Σ_i e_ref(Z_i) in Hartree
    shift: float              # mean per-atom residual over the training geometries, Hartree
    scale: float              # standard deviation of the molecular residual, Hartree
    target: np.ndarray        # (n,) (E − reference − n_atoms·shift) / scale


def energy_targets(mols, by_element: dict, train_idx) -> EnergyTargets:
    """The :class:`EnergyTargets` of ``mols`` for references ``by_element`` ({Z: Hartree}), with
    shift and scale from the geometries ``train_idx``."""
    table = torch.full((MAX_Z + 1,), float("nan"), dtype=torch.float64)
    for z, v in by_element.items():
        table[z] = v
    e = np.array([m["energy_hartree"] for m in mols])
    n_at = np.array([len(m["numbers"]) for m in mols])
    e_ref = np.array([sum(by_element[int(z)] for z in m["numbers"])
                      if all(int(z) in by_element for z in m["numbers"]) else np.nan
                      for m in mols])
    tr = list(train_idx)
    resid = e[tr] - e_ref[tr]
    shift = float(np.mean(resid / n_at[tr]))
    scale = float(np.std(resid - shift * n_at[tr]))
    scale = scale if scale > 1e-6 else 1e-3
    return EnergyTargets(by_element, table, e, n_at, e_ref, shift, scale,
                         (e - e_ref - shift * n_at) / scale)
