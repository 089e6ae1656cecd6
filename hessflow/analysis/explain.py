"""``hessflow explain RUN_DIR``: layer-wise relevance propagation over a trained run.

The run directory of ``hessflow train`` (spec.json, model.pt, metrics.json, splits.json) is
rebuilt exactly as trained (:func:`hessflow.ml.property.experiment.build` with the saved spec,
the saved splits,
the saved weights), and LRP (:mod:`hessflow.analysis.relevance`) runs in batches over one split,
on the device the model is put on. Relevance is summed per feature type:

- weave: the 8 atom-feature types of ``ATOM_BLOCKS`` and the 4 pair-feature types of
  ``PAIR_BLOCKS`` (21 and 13 columns), averaged over the molecule's atoms;
- padded MLP: ``element`` (Z) and ``coordinates`` (x, y, z), averaged over the atoms;
- a network with an encoder (a DAE's) in front: also each code unit.

A SchNet run (``--model schnet``) is explained by gradient x input per atom instead
(:mod:`hessflow.analysis.gradient_relevance`; the feature types are the elements).

A multi-output model (the frequency set) explains the sum of each molecule's real outputs, or one
output (``output``). A k-fold run directory is explained one fold at a time.

Units: the models are trained on standardised labels (``(y - label_mean) / label_std``, see
:class:`hessflow.ml.property.experiment.ScaledDataset`), so the relevance of a molecule sums
(with the bias share) to its *standardised* prediction. ``explain.json`` gives every statistic in standardised units, in
target units (times ``label_std``) and with the paper's normalisation (zero mean per feature type,
scaled by the largest absolute value over the explained molecules; unit-free).

Outliers: a molecule whose absolute prediction error exceeds ``OUTLIER_FACTOR`` (3) times the
mean absolute error of the explained split is an outlier; statistics are given with and without
them.

Files (in ``RUN_DIR/explain/``): ``relevance.h5`` (per-molecule relevance of every input, per-type
sums, predictions, conservation errors), ``explain.json`` (the summary) and ``relevance_bars.png``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..errors import HessflowError
from ..ml.property.features import ATOM_BLOCKS, PAIR_BLOCKS
from .runs import load_property_model, load_property_run

RULES = ("epsilon", "zplus", "gamma", "alphabeta")
SPLITS = ("test", "val", "train", "all")
_ATOM_TYPE_NAMES = set(ATOM_BLOCKS.names)
_PAIR_TYPE_NAMES = set(PAIR_BLOCKS.names)
OUTLIER_FACTOR = 3.0
OUTLIER_RULE = (f"|prediction - label| > {OUTLIER_FACTOR:g} x MAE of the explained split "
                f"(target units)")


def split_indices(splits: dict, split: str) -> list[int]:
    """The molecule indices of ``split`` (test, val, train, or all of them, sorted)."""
    if split not in SPLITS:
        raise HessflowError(f"--split: {split!r} is not one of {', '.join(SPLITS)}")
    if split == "all":
        return sorted(int(i) for s in ("train", "val", "test") for i in splits.get(s, []))
    return [int(i) for i in splits.get(split, [])]


# -- encoder in front (DAE) ----------------------------------------------------------------------
def split_encoder(model, spec=None):
    """(encoder, head) when the network's first module is an encoder (e.g. the code layer of a
    :class:`hessflow.ml.property.models.TiedDAE` put in front of a supervised net), else None.

    Recognised: a model with both ``encoder`` and ``head`` sub-modules, or an ``nn.Sequential``
    whose first module is named/flagged as an encoder (``is_encoder = True``, or the
    :class:`~hessflow.ml.property.experiment.TrainSpec` ``spec`` has a ``dae``)."""
    from torch import nn
    enc, head = getattr(model, "encoder", None), getattr(model, "head", None)
    if isinstance(enc, nn.Module) and isinstance(head, nn.Module):
        return enc, head
    if isinstance(model, nn.Sequential) and len(model) > 1:
        first = model[0]
        named = next(iter(model._modules)) in ("encoder", "enc", "dae")
        if named or getattr(first, "is_encoder", False) or getattr(spec, "dae", None):
            return first, model[1:]
    return None


def code_relevance(encoder, head, inputs: tuple, real=None, output=None, **lrp_kw):
    """LRP of ``head`` on the code layer ``encoder(*inputs)``: the relevance of each code unit
    (an :class:`~hessflow.analysis.relevance.LRPResult` whose only input is the code).
    ``real``/``output`` as in :func:`explain_batch`."""
    import torch
    with torch.no_grad():
        code = encoder(*inputs)
    return explain_batch(head, (code,), real, output, **lrp_kw)


def explain_batch(model, inputs: tuple, real=None, output: int | None = None, **lrp_kw):
    """:func:`~hessflow.analysis.relevance.lrp` of one batch. A single-output model: its
    prediction. A multi-output model: output ``output``, or by default the sum of each sample's
    real outputs (``real``: (B, n_out) bool, e.g. the non-NaN entries of a padded frequency
    set), in one backward pass: by linearity, the masked sum of the per-output explanations."""
    from . import relevance as R
    n_out = int(getattr(model, "n_out", 0) or getattr(_last_linear(model), "out_features", 1))
    if n_out == 1 or output is not None:
        return R.lrp(model, inputs, output=None if n_out == 1 else int(output), **lrp_kw)
    if real is None:
        return R.lrp(model, inputs, **lrp_kw)  # the sum of all outputs
    real = real.reshape(len(real), -1)
    if not bool(real.any()):
        raise ValueError("real: no sample of the batch has a real output")
    res = R.lrp(model, inputs, weights=real, **lrp_kw)
    res.settings["output"] = "sum of real outputs"
    return res


def _last_linear(model):
    from torch import nn
    last = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            last = m
    return last


# -- statistics ----------------------------------------------------------------------------------
def _stats(values: np.ndarray, names, keep=None) -> dict:
    v = np.asarray(values, float)
    if keep is not None:
        v = v[np.asarray(keep, bool)]
    n = len(v)
    if n == 0:
        nan = {k: float("nan") for k in names}
        return {"n": 0, "mean": nan, "std": dict(nan), "sem": dict(nan)}
    mean, std = v.mean(0), (v.std(0, ddof=1) if n > 1 else np.zeros(v.shape[1]))
    sem = std / np.sqrt(n)
    return {"n": int(n), "mean": dict(zip(names, map(float, mean))),
            "std": dict(zip(names, map(float, std))), "sem": dict(zip(names, map(float, sem)))}


def outlier_mask(errors, factor: float = OUTLIER_FACTOR) -> tuple[np.ndarray, float]:
    """Outliers (|error| > factor x MAE) and the threshold."""
    e = np.abs(np.asarray(errors, float))
    if e.size == 0:
        return np.zeros(0, bool), float("nan")
    thr = factor * float(e.mean())
    return e > thr, thr


def summarise(types: dict, errors, label_std: float, paper_normalise=None,
              factor: float = OUTLIER_FACTOR) -> dict:
    """Per-type statistics from per-sample per-type relevance ``types`` ({names, signed,
    absolute}: (S, n)): in standardised units, in target units (x label_std) and normalised as in
    the paper (:func:`hessflow.analysis.feature_types.paper_normalise`: zero mean per type over the
    molecules, then one scale, the largest absolute value, for all types; its means are zero by
    construction, its standard deviations compare the spread of the types), over all samples
    and without the outliers (which are then also left out of the normalisation)."""
    names = list(types["names"])
    out_mask, thr = outlier_mask(errors, factor)
    keep = ~out_mask
    if paper_normalise is None:
        from .feature_types import paper_normalise
    res = {}
    for group, sel in (("all", np.ones(len(out_mask), bool)), ("without_outliers", keep)):
        g = {}
        for kind in ("signed", "absolute"):
            v = np.asarray(types[kind], float)
            g[kind] = _stats(v, names, sel)
            g[f"{kind}_target_units"] = _stats(v * label_std, names, sel)
            if sel.any():
                normed = paper_normalise(v, exclude=None if sel.all() else ~sel)  # rows of sel
                shifted = v[sel] - v[sel].mean(0)
                scale = float(np.abs(shifted).max())
            else:
                normed, scale = np.zeros((0, len(names))), float("nan")
            g[f"{kind}_normalised"] = {**_stats(normed, names), "scale": scale}
        res[group] = g
    return {"relevance": res, "outlier_threshold": thr, "outlier_mask": out_mask}


# -- LRP over a split ----------------------------------------------------------------------------
def _pad_to(a: np.ndarray, shape) -> np.ndarray:
    out = np.zeros(shape, dtype=a.dtype)
    out[tuple(slice(0, s) for s in a.shape)] = a
    return out


def _stack_ragged(chunks: list) -> np.ndarray:
    """Concatenate batch arrays along axis 0, zero-padding the other axes to their maximum."""
    if not chunks:
        return np.zeros(0)
    shape = tuple(max(c.shape[k] for c in chunks) for k in range(1, chunks[0].ndim))
    return np.concatenate([_pad_to(c, (len(c),) + shape) for c in chunks])


def _np(t) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def _types_of(model_kind: str, res, inputs, spec) -> dict:
    """Per-sample per-type relevance, averaged over the molecule's atoms."""
    from . import feature_types as T
    if model_kind == "weave":
        t = T.weave_feature_types(res, inputs[2])
        # the helper averages pair types over the n^2 real pairs; x n: summed over the partner
        # atom and averaged over atoms, like the atom types
        n = inputs[2].sum(1).detach().cpu().numpy().astype(float)[:, None]
        pair = np.array([k == "pair" for k in t.get("kinds", [])] or
                        [nm in _PAIR_TYPE_NAMES for nm in t["names"]])
        scale = np.where(pair[None, :], n, 1.0)
        return {"names": list(t["names"]), "signed": np.asarray(t["signed"]) * scale,
                "absolute": np.asarray(t["absolute"]) * scale}
    t = T.padded_feature_types(res, spec.max_atoms, n_molecules=1, n_conditions=0)
    z = inputs[0].reshape(len(inputs[0]), -1, 4)[..., 0]
    n = (z > 0).sum(1).clamp_min(1).detach().cpu().numpy().astype(float)[:, None]
    out = {"names": list(t["names"]), "signed": np.asarray(t["signed"]) / n,
           "absolute": np.asarray(t["absolute"]) / n}
    if "per_atom" in t:
        out["per_atom_signed"] = np.asarray(t["per_atom"]["signed"])[:, 0]
    return out


def _as_types(d: dict) -> dict:
    """The helpers' per-type output as {names, signed (S, n), absolute (S, n)}."""
    out = {"names": list(d["names"]), "signed": _np_any(d["signed"]),
           "absolute": _np_any(d["absolute"])}
    if "per_atom_signed" in d:
        out["per_atom_signed"] = _np_any(d["per_atom_signed"])
    return out


def _np_any(x) -> np.ndarray:
    try:
        import torch
        if isinstance(x, torch.Tensor):
            return _np(x)
    except ImportError:  # pragma: no cover
        pass
    return np.asarray(x, float)


def explain_run(run_dir, split: str = "test", rule: str = "epsilon", batch_size: int = 64,
                device: str = "auto", epsilon: float = 1e-6, gamma: float = 0.25,
                alpha: float = 1.0, beta: float = 0.0, bias: str = "absorb",
                outlier_factor: float = OUTLIER_FACTOR, output: int | None = None, out_dir=None,
                plot: bool = True, per_input: bool = True, progress: bool = False,
                built=None) -> dict:
    """LRP of a training run on one split; writes ``relevance.h5``, ``explain.json`` and
    ``relevance_bars.png`` into ``out_dir`` (default ``RUN_DIR/explain``) and returns the summary
    (explain.json's content).

    ``split``: test, val, train or all; ``rule``: epsilon, zplus, gamma or alphabeta with
    ``epsilon`` (the stabiliser of every rule), ``gamma``, ``alpha``, ``beta`` and ``bias``
    (absorb or ignore) as in :func:`hessflow.analysis.relevance.lrp`; ``device``: auto (GPU if
    present), cpu or cuda; ``per_input``: also keep every input's relevance in relevance.h5
    (S x N x N x 13 for weave pairs; off: per-type sums only). ``output``: for a multi-output
    target (the frequency set) the output unit to explain; by default the sum of each
    molecule's real (not padded) outputs is explained. A k-fold run is explained fold by fold
    (``RUN_DIR/fold0`` ...). ``built``: the :class:`~hessflow.ml.property.experiment.Built` of
    this run's spec (a caller that has just trained on it skips the featurisation)."""
    import torch
    from torch.utils.data import DataLoader, Subset

    from ..ml.core.training import default_collate
    from ..ml.property import experiment
    from ..system import torch_device
    from . import feature_types as T
    if rule not in RULES:
        raise HessflowError(f"--rule: {rule!r} is not one of {', '.join(RULES)}")
    if batch_size < 1:
        raise HessflowError(f"--batch-size: {batch_size} must be >= 1")
    run_dir = Path(run_dir).resolve()
    run = load_property_run(run_dir)
    spec, metrics = run.spec, run.metrics
    if spec.model == "schnet":  # the peer: gradient x input per atom (no LRP rules)
        from .gradient_relevance import explain_atoms_run
        return explain_atoms_run(run_dir, split, batch_size, device, outlier_factor, out_dir,
                                 plot, progress, built)
    if not (run_dir / "model.pt").exists() and (run_dir / "fold0").is_dir():
        raise HessflowError(f"{run_dir}: a k-fold run: explain one fold at a time, e.g. "
                            f"hessflow explain {run_dir / 'fold0'}")
    if not Path(spec.data).exists():
        raise HessflowError(f"{run_dir}: the run's data {spec.data} is not there any more "
                            f"(explain rebuilds the inputs from it)")
    t0 = time.perf_counter()
    saved = None
    if (run_dir / "splits.json").exists():  # the splits that were trained on, as saved
        saved = json.loads((run_dir / "splits.json").read_text())
        saved = {k: [int(i) for i in saved.get(k, [])] for k in ("train", "val", "test")}
    if built is None:
        built = experiment.build(spec, saved)
    elif saved is not None:
        built = experiment.with_splits(built, saved)
    mols, evalset, splits, collate = built.molecules, built.evalset, built.splits, built.collate
    mu = float(metrics.get("label_mean", built.label_mean))
    sd = float(metrics.get("label_std", built.label_std))
    idx = split_indices(splits, split)
    if not idx:
        raise HessflowError(f"--split {split}: the run has no molecules in it")
    try:
        dev = torch_device(device)
    except HessflowError as exc:
        raise HessflowError(f"--{exc}") from None  # "--device: CUDA requested but ..."
    model = load_property_model(run_dir, built.model_fn, dev)
    kind = spec.model
    enc_head = split_encoder(model, spec)
    lrp_kw = dict(rule=rule, epsilon=epsilon, gamma=gamma, alpha=alpha, beta=beta, bias=bias)
    loader = DataLoader(Subset(evalset, idx), batch_size=batch_size, shuffle=False,
                        collate_fn=collate or default_collate)
    chunks = {"prediction": [], "bias_relevance": [], "reference": [], "conservation_error": [],
              "signed": [], "absolute": [], "per_atom_signed": []}
    rel_chunks: list[list] = []
    code_chunks = {"signed": [], "absolute": [], "conservation_error": []}
    names = None
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(idx), desc="explain", unit="mol")
    n_out = int(getattr(model, "n_out", 0) or metrics.get("n_outputs", 1) or 1)
    if output is not None and not 0 <= int(output) < n_out:
        raise HessflowError(f"--output: {output} is not an output of a model with {n_out}")
    full_chunks = []
    for inputs, y_std in loader:
        inputs = tuple(t.to(dev) for t in inputs)
        real = torch.isfinite(y_std.reshape(len(y_std), -1)).to(dev)
        with torch.no_grad():
            full_chunks.append(_np(model(*inputs)).reshape(len(y_std), -1))
        try:
            res = explain_batch(model, inputs, real, output, **lrp_kw)
        except ValueError as exc:  # bad rule parameters, a model LRP cannot go through
            raise HessflowError(f"explain: {exc}") from None
        types = _as_types(_types_of(kind, res, inputs, spec))
        names = types["names"]
        for k in ("prediction", "bias_relevance", "reference", "conservation_error"):
            chunks[k].append(_np(getattr(res, k)).reshape(-1))
        for k in ("signed", "absolute", "per_atom_signed"):
            if k in types:
                chunks[k].append(types[k])
        if per_input:
            if not rel_chunks:
                rel_chunks = [[] for _ in res.relevance]
            for k, r in enumerate(res.relevance):
                rel_chunks[k].append(_np(r))
        if enc_head is not None:
            cres = code_relevance(*enc_head, inputs, real=real, output=output, **lrp_kw)
            c = _np(cres.relevance[0]).reshape(len(inputs[0]), -1)
            code_chunks["signed"].append(c)
            code_chunks["absolute"].append(np.abs(c))
            code_chunks["conservation_error"].append(_np(cres.conservation_error).ravel())
        if bar:
            bar.update(len(inputs[0]))
    if bar:
        bar.close()
    arr = {k: _stack_ragged(v) for k, v in chunks.items() if v}
    pred_std = arr["prediction"]  # the explained quantity, standardised
    pred = np.concatenate(full_chunks) * sd + mu  # (S, n_out), target units
    y = np.array([np.ravel(np.asarray(mols[i]["label"], float)) for i in idx])
    if n_out == 1:
        pred, y = pred[:, 0], y[:, 0]
        err = pred - y
    else:  # per molecule: mean |error| over its real outputs
        with np.errstate(invalid="ignore"):
            err = np.nanmean(np.abs(pred - y), axis=1)
    explained = ("the prediction" if n_out == 1 else
                 f"output {output} of {n_out}" if output is not None else
                 f"the sum of each molecule's real (not padded) outputs, of {n_out}")
    summ = summarise({"names": names, "signed": arr["signed"], "absolute": arr["absolute"]},
                     err, sd, T.paper_normalise, outlier_factor)
    out_mask = summ.pop("outlier_mask")
    cons = np.abs(arr["conservation_error"])
    scale = float(np.mean(np.abs(pred_std))) or 1.0
    mol_names = [str(mols[i].get("name") or i) for i in idx]
    atom_types = [n for n in names if n in _ATOM_TYPE_NAMES]
    pair_types = [n for n in names if n in _PAIR_TYPE_NAMES]
    summary = {
        "run_dir": str(run_dir), "split": split, "n_samples": len(idx), "model": kind,
        "target": spec.target, "rule": rule, "explained": explained, "n_outputs": n_out,
        "rule_parameters": {"epsilon": epsilon, "gamma": gamma, "alpha": alpha, "beta": beta,
                            "bias": bias},
        "device": str(dev), "seconds": None,
        "units": {"standardised": "relevance of the standardised prediction (y - label_mean) / "
                                  "label_std that the network was trained on",
                  "target_units": "standardised relevance x label_std (the target's units; "
                                  "label_mean is not distributed over the features)",
                  "normalised": "paper normalisation: zero mean per feature type, scaled by the "
                                "largest absolute value over the explained molecules"},
        "label_mean": mu, "label_std": sd,
        "feature_types": names,
        "feature_groups": ({"atom": atom_types, "pair": pair_types} if kind == "weave"
                           else {"per_atom": names}),
        "aggregation": ("per molecule and type: relevance summed over the type's columns "
                        + ("(pair types also over the partner atom), " if kind == "weave" else
                           "(coordinates: over x, y, z), ")
                        + "then averaged over the molecule's real atoms; absolute: the same "
                        "with |relevance| of each column"),
        "outliers": {"rule": OUTLIER_RULE.replace(f"{OUTLIER_FACTOR:g}", f"{outlier_factor:g}"),
                     "threshold_target_units": summ["outlier_threshold"],
                     "n": int(out_mask.sum()),
                     "names": [n for n, o in zip(mol_names, out_mask) if o],
                     "indices": [int(i) for i, o in zip(idx, out_mask) if o]},
        "prediction": {"mae_target_units": float(np.mean(np.abs(err))),
                       "mean_abs_standardised": scale},
        "conservation": {
            "definition": "|sum of input relevance + bias relevance - prediction| per molecule, "
                          "standardised units",
            "mean": float(cons.mean()), "max": float(cons.max()),
            "mean_relative": float(cons.mean() / scale), "max_relative": float(cons.max() / scale),
            "bias_relevance_mean": float(np.mean(arr["bias_relevance"])),
            "bias_relevance_mean_abs": float(np.mean(np.abs(arr["bias_relevance"])))},
        "relevance": summ["relevance"],
    }
    if enc_head is not None:
        code = {k: np.concatenate(v) for k, v in code_chunks.items()}
        cn = [f"code{k}" for k in range(code["signed"].shape[1])]
        csum = summarise({"names": cn, "signed": code["signed"], "absolute": code["absolute"]},
                         err, sd, T.paper_normalise, outlier_factor)
        csum.pop("outlier_mask")
        summary["code_layer"] = {
            "names": cn, "relevance": csum["relevance"],
            "conservation_max": float(np.abs(code["conservation_error"]).max())}
    out_dir = Path(out_dir) if out_dir else run_dir / "explain"
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays = {"explained_standardised": pred_std, "prediction": pred, "label": y,
              "error": err, "lrp_reference": arr["reference"],
              "bias_relevance": arr["bias_relevance"],
              "conservation_error": arr["conservation_error"], "outlier": out_mask,
              "index": np.asarray(idx), "types/signed": arr["signed"],
              "types/absolute": arr["absolute"]}
    if "per_atom_signed" in arr:  # padded MLP: (S, max_atoms, [element, coordinates])
        arrays["types/per_atom_signed"] = arr["per_atom_signed"]
    input_names = ("atoms", "pairs") if kind == "weave" else ("x",)  # the mask gets none
    for nm, ch in zip(input_names, rel_chunks):
        arrays[f"relevance/{nm}"] = _stack_ragged(ch).astype(np.float32)
    if enc_head is not None:
        arrays["relevance/code"] = code["signed"]
    h5 = out_dir / "relevance.h5"
    T.write_hdf5(h5, arrays)
    _h5_extra(h5, mol_names, {
        "feature_types": json.dumps(names), "rule": rule, "split": split, "model": kind,
        "target": spec.target, "label_mean": mu, "label_std": sd,
        "units": "relevance in standardised label units (x label_std: target units); "
                 "prediction, label, error in target units",
        "padding": "relevance/* zero-padded to the largest molecule of the split"})
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    summary["files"] = {"hdf5": "relevance.h5", "json": "explain.json"}
    if plot:
        from .plots import relevance_bars
        relevance_bars(summary, out_dir / "relevance_bars.png",
                       {"signed": arr["signed"], "absolute": arr["absolute"], "outlier": out_mask})
        summary["files"]["bars"] = "relevance_bars.png"
    (out_dir / "explain.json").write_text(json.dumps(summary, indent=1, default=_json_default))
    return summary


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _h5_extra(path, names, attrs: dict):
    import h5py
    with h5py.File(path, "a") as f:
        f.create_dataset("names", data=np.array(names, dtype=object),
                         dtype=h5py.string_dtype("utf-8"))
        for k, v in attrs.items():
            f.attrs[k] = v

