"""Gradient x input relevance per atom for the SchNet peer (``hessflow explain`` on a
``--model schnet`` run).

SchNet's first layer maps each atom's element to an embedding ``h_i`` (PyG's
``SchNet.embedding``); everything after it (continuous-filter convolutions over distances, atom
MLPs, sum readout) is differentiable in ``h``. The relevance of atom ``i`` is

    R_i = sum_f h_if * d f / d h_if         (gradient x input on the atom embeddings)

with ``f`` the molecule's standardised prediction. Molecules of a batch share no edges, so one
backward pass of the summed predictions gives every molecule's own gradients. Padding atoms get
zero. Unlike LRP, gradient x input is not conservative for a non-linear network: ``sum_i R_i``
is a first-order estimate of ``f - f(h = 0)``, not of ``f``; ``completeness_gap`` = ``|sum_i R_i
- f|`` says how far it is (written where explain's LRP summary has its conservation error).

:func:`explain_atoms_run` writes the same files as :func:`hessflow.analysis.explain.explain_run`
(``explain/relevance.h5``, ``explain.json``, ``relevance_bars.png``) with the element of each
atom as the feature type: per molecule, the relevance of its atoms of each element summed, then
averaged over its atoms (like weave's atom types).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from ..errors import HessflowError

__all__ = ["AtomRelevance", "atom_relevance", "explain_atoms_run"]

_SYMBOLS = {1: "H", 6: "C", 7: "N", 8: "O", 9: "F", 15: "P", 16: "S", 17: "Cl", 35: "Br"}


@dataclasses.dataclass
class AtomRelevance:
    """One batch: ``prediction`` (B,), ``relevance`` (B, N; zero on padding atoms) and
    ``completeness_gap`` = |sum of the atoms' relevance - prediction| (B,)."""
    prediction: object
    relevance: object
    completeness_gap: object


def atom_relevance(model, inputs: tuple) -> AtomRelevance:
    """Gradient x input on the atom embeddings of a
    :class:`~hessflow.ml.property.schnet.SchNetModel` for the batch ``inputs`` =
    ``(numbers (B, N), coords (B, N, 3), mask (B, N))``, per atom."""
    import torch
    numbers, coords, mask = inputs
    emb = getattr(getattr(model, "net", None), "embedding", None)
    if emb is None:
        raise HessflowError("gradient x input: the model has no SchNet embedding (net.embedding)")
    kept = {}

    def hook(_module, _args, out):
        out.retain_grad()
        kept["h"] = out

    handle = emb.register_forward_hook(hook)
    try:
        model.eval()
        with torch.enable_grad():
            pred = model(numbers, coords, mask)
            pred.sum().backward()
    finally:
        handle.remove()
    h = kept["h"]
    per_atom = (h * h.grad).sum(-1).detach()  # real atoms, in the model's flattening order
    real = mask > 0
    rel = torch.zeros(mask.shape, dtype=per_atom.dtype, device=per_atom.device)
    rel[real] = per_atom
    model.zero_grad(set_to_none=True)
    pred = pred.detach()
    return AtomRelevance(pred, rel, (rel.sum(1) - pred).abs())


def _element_types(rel: np.ndarray, numbers: np.ndarray, elements: list[int]):
    """(signed, absolute) (B, n_elements): per molecule the relevance of its atoms of each
    element summed, then divided by its number of atoms."""
    n = np.maximum((numbers > 0).sum(1), 1)[:, None].astype(float)
    signed = np.stack([(rel * (numbers == z)).sum(1) for z in elements], 1) / n
    absolute = np.stack([(np.abs(rel) * (numbers == z)).sum(1) for z in elements], 1) / n
    return signed, absolute


def explain_atoms_run(run_dir, split: str = "test", batch_size: int = 64, device: str = "auto",
                      outlier_factor: float | None = None, out_dir=None, plot: bool = True,
                      progress: bool = False, built=None, **_ignored) -> dict:
    """Gradient x input relevance per atom of a SchNet run on one split (see the module
    docstring); the keyword arguments of :func:`hessflow.analysis.explain.explain_run` that
    belong to LRP (rule, epsilon, ...) do not apply and are ignored. Returns explain.json's
    content."""
    import torch
    from torch.utils.data import DataLoader, Subset

    from ..ml.property import experiment
    from ..system import torch_device
    from . import explain as X
    from . import feature_types as T
    from .runs import load_property_model, load_property_run
    factor = X.OUTLIER_FACTOR if outlier_factor is None else outlier_factor
    run_dir = Path(run_dir).resolve()
    run = load_property_run(run_dir)
    spec, metrics = run.spec, run.metrics
    if not (run_dir / "model.pt").exists():
        raise HessflowError(f"{run_dir}: no model.pt (the run has not finished, or is k-fold: "
                            f"explain one fold at a time)")
    t0 = time.perf_counter()
    saved = json.loads((run_dir / "splits.json").read_text())
    saved = {k: [int(i) for i in saved.get(k, [])] for k in ("train", "val", "test")}
    built = experiment.build(spec, saved) if built is None else experiment.with_splits(built, saved)
    mols = built.molecules
    mu = float(metrics.get("label_mean", built.label_mean))
    sd = float(metrics.get("label_std", built.label_std))
    idx = X.split_indices(built.splits, split)
    if not idx:
        raise HessflowError(f"--split {split}: the run has no molecules in it")
    dev = torch_device(device)
    model = load_property_model(run_dir, built.model_fn, dev)
    loader = DataLoader(Subset(built.evalset, idx), batch_size=batch_size, shuffle=False,
                        collate_fn=built.collate)
    preds, rels, gaps, zs = [], [], [], []
    for inputs, _ in loader:
        res = atom_relevance(model, tuple(t.to(dev) for t in inputs))
        preds.append(X._np(res.prediction))
        rels.append(X._np(res.relevance))
        gaps.append(X._np(res.completeness_gap))
        zs.append(inputs[0].numpy())
    rel, numbers = X._stack_ragged(rels), X._stack_ragged(zs)
    pred_std, gap = np.concatenate(preds), np.concatenate(gaps)
    elements = sorted(int(z) for z in np.unique(numbers) if z > 0)
    names = [_SYMBOLS.get(z, f"Z{z}") for z in elements]
    signed, absolute = _element_types(rel, numbers, elements)
    pred = pred_std * sd + mu
    y = np.array([float(mols[i]["label"]) for i in idx])
    err = pred - y
    summ = X.summarise({"names": names, "signed": signed, "absolute": absolute}, err, sd,
                       T.paper_normalise, factor)
    out_mask = summ.pop("outlier_mask")
    scale = float(np.mean(np.abs(pred_std))) or 1.0
    mol_names = [str(mols[i].get("name") or i) for i in idx]
    summary = {
        "run_dir": str(run_dir), "split": split, "n_samples": len(idx), "model": spec.model,
        "target": spec.target, "rule": "gradient_x_input", "explained": "the prediction",
        "n_outputs": 1, "device": str(dev), "seconds": None,
        "method": "gradient x input on SchNet's atom embeddings, per atom (not conservative)",
        "label_mean": mu, "label_std": sd, "feature_types": names,
        "feature_groups": {"element": names},
        "aggregation": "per molecule and element: the relevance of its atoms of that element "
                       "summed, then divided by the molecule's number of atoms; absolute: the "
                       "same with |relevance| per atom",
        "outliers": {"rule": X.OUTLIER_RULE.replace(f"{X.OUTLIER_FACTOR:g}", f"{factor:g}"),
                     "threshold_target_units": summ["outlier_threshold"],
                     "n": int(out_mask.sum()),
                     "names": [n for n, o in zip(mol_names, out_mask) if o],
                     "indices": [int(i) for i, o in zip(idx, out_mask) if o]},
        "prediction": {"mae_target_units": float(np.mean(np.abs(err))),
                       "mean_abs_standardised": scale},
        "conservation": {
            "definition": "completeness gap |sum of atom relevance - prediction| per molecule, "
                          "standardised units (gradient x input is not conservative)",
            "mean": float(gap.mean()), "max": float(gap.max()),
            "mean_relative": float(gap.mean() / scale), "max_relative": float(gap.max() / scale),
            "bias_relevance_mean": 0.0, "bias_relevance_mean_abs": 0.0},
        "relevance": summ["relevance"],
    }
    out_dir = Path(out_dir) if out_dir else run_dir / "explain"
    out_dir.mkdir(parents=True, exist_ok=True)
    h5 = out_dir / "relevance.h5"
    T.write_hdf5(h5, {"explained_standardised": pred_std, "prediction": pred, "label": y,
                      "error": err, "conservation_error": gap, "outlier": out_mask,
                      "index": np.asarray(idx), "types/signed": signed,
                      "types/absolute": absolute, "relevance/atoms": rel.astype(np.float32),
                      "numbers": numbers})
    X._h5_extra(h5, mol_names, {
        "feature_types": json.dumps(names), "rule": "gradient_x_input", "split": split,
        "model": spec.model, "target": spec.target, "label_mean": mu, "label_std": sd,
        "units": "relevance in standardised label units (x label_std: target units); "
                 "prediction, label, error in target units",
        "padding": "relevance/atoms and numbers zero-padded to the largest molecule"})
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    summary["files"] = {"hdf5": "relevance.h5", "json": "explain.json"}
    if plot:
        from .plots import relevance_bars
        relevance_bars(summary, out_dir / "relevance_bars.png",
                       {"signed": signed, "absolute": absolute, "outlier": out_mask})
        summary["files"]["bars"] = "relevance_bars.png"
    (out_dir / "explain.json").write_text(json.dumps(summary, indent=1, default=X._json_default))
    return summary
