"""Energies and forces predicted by a Behler–Parrinello network, and their metrics.

Energies in kcal/mol; forces as the mean absolute error over force components in Hartree/Bohr
and eV/Angstrom (``force_mae_hartree_bohr``, ``force_mae_ev_angstrom``), from the network's
autograd forces through the whole ACSF. :func:`evaluate_bp` scores a trained run on any data
set, separately for the molecules held out of its training and those it trained on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ...qm.molecules.elements import symbol
from ...units import BOHR_ANGSTROM, HARTREE_EV, HARTREE_KCALMOL
from ..core.metrics import regression_metrics
from .data import load_energies
from .dataset import pad_collate, padded
from .config import elements_text
from .network import BPNetwork, load_bp_model
from .references import EnergyTargets


@torch.no_grad()
def predict_energies(net: BPNetwork, mols, idx=None, batch_size: int = 32) -> np.ndarray:
    """Network energies (Hartree) of the geometries ``idx`` (all by default)."""
    idx = list(range(len(mols))) if idx is None else list(idx)
    out = np.zeros(len(idx))
    order = sorted(range(len(idx)), key=lambda j: len(mols[idx[j]]["numbers"]))
    dt = net.feat_mean.dtype
    for s in range(0, len(order), batch_size):
        sel = order[s:s + batch_size]
        z, x = padded(mols, [idx[j] for j in sel], dtype=dt)
        e = net.energy_hartree(z, x).cpu().numpy()
        out[sel] = e
    return out


@torch.no_grad()
def energies_from_features(net: BPNetwork, feats, mols, idx, batch_size: int = 256) -> np.ndarray:
    """As :func:`predict_energies`, from features already computed (:func:`compute_features`,
    float32: what the network was trained and validated on)."""
    idx = list(idx)
    out = np.zeros(len(idx))
    for s in range(0, len(idx), batch_size):
        sel = idx[s:s + batch_size]
        (f, mask), _ = pad_collate([((feats[i],), torch.zeros(())) for i in sel])
        z, _ = padded(mols, sel)
        out[s:s + len(sel)] = net.energy_from_features(f, mask, net.reference_energy(z, mask)).numpy()
    return out


def predict_forces(net: BPNetwork, mols, idx=None, batch_size: int = 32) -> list:
    """Network forces −∂E/∂R (n, 3), Hartree/Bohr, of the geometries ``idx`` (all by default),
    by autograd through the ACSF."""
    idx = list(range(len(mols))) if idx is None else list(idx)
    out: list = [None] * len(idx)
    order = sorted(range(len(idx)), key=lambda j: len(mols[idx[j]]["numbers"]))
    dt = net.feat_mean.dtype
    for s in range(0, len(order), batch_size):
        sel = order[s:s + batch_size]
        z, x = padded(mols, [idx[j] for j in sel], dtype=dt)
        _, f = net.energy_and_forces(z, x)
        for k, j in enumerate(sel):
            out[j] = f[k, :len(mols[idx[j]]["numbers"])].detach().cpu().numpy()
    return out


def force_metrics(net: BPNetwork, mols, idx) -> dict | None:
    """Force MAE and RMSE over the components of the geometries of ``idx`` that have forces
    (Hartree/Bohr and eV/Angstrom), or None if none has."""
    idx = [i for i in idx if mols[i].get("forces_hartree_bohr") is not None]
    if not idx:
        return None
    err = np.concatenate([(p - mols[i]["forces_hartree_bohr"]).ravel()
                          for i, p in zip(idx, predict_forces(net, mols, idx))])
    mae, rmse = float(np.abs(err).mean()), float(np.sqrt((err ** 2).mean()))
    ev = HARTREE_EV / BOHR_ANGSTROM
    return {"force_mae_hartree_bohr": mae, "force_rmse_hartree_bohr": rmse,
            "force_mae_ev_angstrom": mae * ev, "force_rmse_ev_angstrom": rmse * ev,
            "n_force_geometries": len(idx)}


def add_force_metrics(metrics: dict, net: BPNetwork, mols, splits: dict,
                      targets: EnergyTargets) -> None:
    """Add :func:`force_metrics` to each split's entry of ``metrics`` (in place), over its
    geometries that have forces and an energy prediction (every element with a reference)."""
    for split, m in metrics.items():
        if split in splits and isinstance(m, dict) and "mae" in m:
            fm = force_metrics(net, mols, [i for i in splits[split]
                                           if not np.isnan(targets.reference[i])])
            if fm:
                m.update(fm)


def energy_metrics(e_true, e_pred, e_ref=None) -> dict:
    """Metrics in kcal/mol. MAE and RMSE are those of the total energy; Pearson r and R² are on
    the energy relative to the reference part (the total energy's variance is mostly
    composition)."""
    t = np.asarray(e_true, float) - (0.0 if e_ref is None else np.asarray(e_ref, float))
    p = np.asarray(e_pred, float) - (0.0 if e_ref is None else np.asarray(e_ref, float))
    m = regression_metrics(t * HARTREE_KCALMOL, p * HARTREE_KCALMOL)
    m["unit"] = "kcal/mol"
    return m


def per_element(mols, idx, err_kcal) -> dict:
    out = {}
    zs = sorted({int(z) for i in idx for z in mols[i]["numbers"]})
    for z in zs:
        sel = [j for j, i in enumerate(idx) if z in set(int(v) for v in mols[i]["numbers"])]
        out[symbol(z)] = {"n": len(sel), "mae_kcalmol": float(np.abs(err_kcal[sel]).mean())}
    return out


def split_metrics(net: BPNetwork, feats, mols, splits: dict, targets: EnergyTargets):
    """(metrics, predictions) per split (train, val, test, excluded) of a trained network, from
    the features it trained on: energy metrics (kcal/mol) with per-element MAE, and a
    ``<split>_not_predicted`` entry for geometries with an element without a reference energy."""
    metrics, preds = {}, {}
    e = targets.energy
    for split in ("train", "val", "test", "excluded"):
        idx = list(splits.get(split, []))
        if not idx:
            continue
        ok = [i for i in idx if not np.isnan(targets.reference[i])]
        if len(ok) < len(idx):  # elements without a reference energy ("fit" and unseen element)
            missing = sorted({int(z) for i in idx for z in mols[i]["numbers"]
                              if int(z) not in targets.by_element})
            metrics[f"{split}_not_predicted"] = {"n": len(idx) - len(ok),
                                                 "reason": f"no reference energy for "
                                                           f"{elements_text(missing)}"}
        if not ok:
            continue
        p = energies_from_features(net, feats, mols, ok)
        metrics[split] = energy_metrics(e[ok], p, targets.reference[ok]
                                        + targets.shift * targets.n_atoms[ok])
        metrics[split]["per_element"] = per_element(mols, ok, (p - e[ok]) * HARTREE_KCALMOL)
        preds[split] = {"name": [mols[i]["name"] for i in ok], "energy_hartree": e[ok].tolist(),
                        "pred_hartree": p.tolist()}
    return metrics, preds


def evaluate_bp(run_dir, data_path, limit: int | None = None) -> dict:
    """Energies (and forces, where the data have them) of every geometry in ``data_path``
    against the run's network: metrics (energies kcal/mol, forces Hartree/Bohr and eV/Angstrom)
    for molecules held out of its training ("held_out") and those it trained on ("seen")."""
    net = load_bp_model(run_dir)
    mols, _ = load_energies(data_path, limit)
    sp = Path(run_dir) / "splits.json"
    trained = set()
    if sp.exists():
        mol_splits = json.loads(sp.read_text()).get("molecules", {})
        trained = set(mol_splits.get("train", [])) | set(mol_splits.get("val", []))
    e = np.array([m["energy_hartree"] for m in mols])
    p = predict_energies(net, mols)
    with torch.no_grad():
        ref = np.array([float(net.reference_energy(torch.as_tensor(m["numbers"])[None])[0])
                        for m in mols])
    out = {"data": str(data_path), "run": str(run_dir), "unit": "kcal/mol"}
    for name, sel in (("held_out", [i for i, m in enumerate(mols) if m["group"] not in trained]),
                      ("seen", [i for i, m in enumerate(mols) if m["group"] in trained])):
        if sel:
            out[name] = energy_metrics(e[sel], p[sel], ref[sel])
            out[name]["n_molecules"] = len({mols[i]["group"] for i in sel})
            out[name]["per_element"] = per_element(mols, sel, (p[sel] - e[sel]) * HARTREE_KCALMOL)
            out[name].update(force_metrics(net, mols, sel) or {})
    return out
