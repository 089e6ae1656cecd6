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

import numpy as np

from ...qm.atom_references import free_atom_energies


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
