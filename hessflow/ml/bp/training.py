"""Training of the Behler–Parrinello network on energies, and forces (:func:`train_bp`).

On the one training loop :func:`hessflow.ml.core.training.train` (DDP, seeded, early stopping on
the validation molecules, checkpoint/resume, works under ``mpiexec``/``srun``/``torchrun``):
energies only with :class:`~hessflow.ml.core.regression.Regression` hooks, or, with
``BPConfig.force_weight > 0``, energies and forces with
:class:`~hessflow.ml.bp.forces.ForceRegression` (loss MSE(E) + force_weight · MSE(F)). The
targets are the energies less their reference part, standardised (see
:mod:`hessflow.ml.bp.references`); a geometry with an element without a reference has a NaN
target that the masked losses leave out. Whenever the data have forces, the metrics of every
split include the force MAE (``force_mae_hartree_bohr``, ``force_mae_ev_angstrom``).

Run directory: ``model.pt`` (the bundle of :func:`~hessflow.ml.bp.network.load_bp_model`),
``config.json`` (model and training settings, data, level, reference energies, modes),
``splits.json``, ``metrics.json``, ``predictions.json``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch

from ...errors import HessflowError
from ...qm.molecules.elements import symbol
from ...units import HARTREE_KCALMOL
from ..core.distributed import rank_world
from ..core.training import train
from ..core.regression import Regression
from .config import BPConfig, channel_table, elements_text
from .dataset import FeatureDataset, compute_features, pad_collate
from .evaluate import add_force_metrics, split_metrics
from .forces import ForceDataset, ForceRegression, feature_jacobians
from .network import BPNetwork
from .references import EnergyTargets, energy_targets, reference_energies


def is_main() -> bool:
    """Whether this process is rank 0 (the one that writes the run directory)."""
    return rank_world()[0] == 0


def prepare(mols, cfg: BPConfig) -> dict:
    """The configuration completed for ``mols`` (one-hot element list), its channel table, the
    modes, and every geometry's raw features. Pass it to :func:`train_bp` as ``prepared`` to
    train several networks of one feature kind on the same data without recomputing the ACSF."""
    all_z = sorted({int(z) for m in mols for z in m["numbers"]})
    if cfg.features == "onehot" and not cfg.elements:
        cfg = dataclasses.replace(cfg, elements=tuple(all_z))
    if cfg.features == "onehot":
        extra = sorted(set(all_z) - set(cfg.elements))
        if extra:
            raise HessflowError(f"elements: {elements_text(extra)} in the data but not in the "
                                f"one-hot element list {elements_text(cfg.elements)}")
    table, modes = channel_table(cfg)
    if modes is not None:
        untab = sorted(set(all_z) - set(modes.elements))
        if untab:
            raise HessflowError(f"element {elements_text(untab)}: no elemental modes")
    t0 = time.perf_counter()
    feats = compute_features(BPNetwork(cfg, table), mols)
    return {"cfg": cfg, "table": table, "modes": modes, "features": feats, "elements": all_z,
            "feature_seconds": time.perf_counter() - t0, "n_geometries": len(mols)}


def train_bp(mols, cfg: BPConfig, train_cfg, run_dir, splits: dict, level: dict | None = None,
             data_path: str = "", prepared: dict | None = None) -> dict:
    """Train a network on ``mols`` (see :func:`~hessflow.ml.bp.data.load_energies`) with ``splits``
    (see :func:`~hessflow.ml.bp.splits.molecule_splits`) and ``train_cfg`` (a
    :class:`hessflow.ml.core.training.TrainConfig`); write the run directory; return the metrics
    (kcal/mol). ``level``: the data's level of theory (for ``reference="atoms"``).
    ``prepared``: :func:`prepare` of the same ``mols`` and feature settings (reused features)."""
    run_dir = Path(run_dir)
    if prepared is None:
        prepared = prepare(mols, cfg)
    elif prepared["n_geometries"] != len(mols):
        raise HessflowError("prepared: computed for other data")
    pc = prepared["cfg"]
    if ((cfg.features, cfg.n_modes, cfg.modes_seed, cfg.acsf)
            != (pc.features, pc.n_modes, pc.modes_seed, pc.acsf)
            or (cfg.elements and cfg.elements != pc.elements)):
        raise HessflowError("prepared: computed with other feature settings")
    cfg = dataclasses.replace(cfg, elements=pc.elements)
    table, modes, feats = prepared["table"], prepared["modes"], prepared["features"]
    all_z, t_feat = prepared["elements"], prepared["feature_seconds"]
    tr = list(splits["train"])
    tg = energy_targets(mols, reference_energies(cfg.reference, mols, tr, all_z, level), tr)

    # feature standardisation over the training atoms
    f_tr = torch.cat([feats[i] for i in tr]).double()
    mean, std = f_tr.mean(0), f_tr.std(0)
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    holder = {}

    def make():
        net = BPNetwork(cfg, table)
        net.feat_mean.copy_(mean.float())
        net.feat_std.copy_(std.float())
        net.ref_energy_hartree = tg.table.clone()
        net.shift_hartree, net.scale_hartree = tg.shift, tg.scale
        holder["net"] = net
        return net

    tsplits = {k: list(splits[k]) for k in ("train", "val", "test")}
    forces = [m.get("forces_hartree_bohr") for m in mols]
    with_forces = [i for i, f in enumerate(forces) if f is not None]
    t_jac = 0.0
    if cfg.force_weight > 0:
        if not with_forces:
            raise HessflowError("force_weight: the data have no forces (a store without "
                                "gradient_hartree_bohr, an XYZ file without forces)")
        t0 = time.perf_counter()
        jac = feature_jacobians(BPNetwork(cfg, table), mols, with_forces)
        t_jac = time.perf_counter() - t0
        ds = ForceDataset(feats, jac, tg.target, forces, tg.scale)
        hooks = ForceRegression(cfg.force_weight, unit="kcal/mol",
                                label_scale=tg.scale * HARTREE_KCALMOL)
    else:
        ds = FeatureDataset(feats, tg.target)
        hooks = Regression(collate=pad_collate, finish=False, unit="kcal/mol",
                           label_scale=tg.scale * HARTREE_KCALMOL)
    t1 = time.perf_counter()
    hist = train(make, ds, tsplits, train_cfg, run_dir, hooks)
    t_train = time.perf_counter() - t1
    net = holder["net"].double().eval().cpu()

    metrics = {"features": cfg.features, "reference": cfg.reference, "unit": "kcal/mol",
               "n_geometries": len(mols), "n_molecules": len({m["group"] for m in mols}),
               "best_epoch": hist["best_epoch"], "epochs_run": hist["epochs_run"],
               "ranks": hist["ranks"], "feature_seconds": round(t_feat, 2),
               "force_weight": cfg.force_weight, "n_geometries_with_forces": len(with_forces),
               "jacobian_seconds": round(t_jac, 2),
               "train_seconds": round(t_train, 2), "history": hist["history"]}
    split_m, preds = split_metrics(net, feats, mols, splits, tg)
    add_force_metrics(split_m, net, mols, splits, tg)
    metrics.update(split_m)
    if is_main():
        _write_run(Path(run_dir), net, cfg, modes, train_cfg, data_path, level, tg, splits,
                   metrics, preds)
    return metrics


def _write_run(run_dir: Path, net: BPNetwork, cfg: BPConfig, modes, train_cfg, data_path, level,
               tg: EnergyTargets, splits, metrics, preds) -> None:
    """Rank 0: model.pt, config.json, splits.json, metrics.json, predictions.json (the checkpoint
    goes: the selected weights are in model.pt)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.save(net.bundle(modes), run_dir / "model.pt")
    (run_dir / "config.json").write_text(json.dumps({
        "model": cfg.to_dict(), "train": dataclasses.asdict(train_cfg), "data": str(data_path),
        "level": level,
        "reference_energy_hartree": {symbol(z): v for z, v in tg.by_element.items()},
        "shift_hartree": tg.shift, "scale_hartree": tg.scale,
        "modes": None if modes is None else {
            "reconstruction_rmse": modes.reconstruction_rmse,
            "vectors": {symbol(z): v.tolist() for z, v in zip(modes.elements, modes.modes)}},
    }, indent=1))
    (run_dir / "splits.json").write_text(json.dumps(splits))
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    (run_dir / "predictions.json").write_text(json.dumps(preds))
    ck = run_dir / "checkpoint.pt"
    if ck.exists():
        ck.unlink()
