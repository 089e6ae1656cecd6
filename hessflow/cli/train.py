"""``hessflow train``: a property model (weave, MLP or SchNet) on a store, a QM9 CSV or extended XYZ."""

from __future__ import annotations

import json
import os

from .options import (add_json, add_no_progress, add_out_dir, add_parser, add_training_options,
                      print_json, progress_wanted)
from .progress_env import progress_env


def train_json(m: dict, spec) -> dict:
    """The ``train --json`` object (see :data:`hessflow.cli.schemas.SCHEMAS`) of a run's
    metrics ``m`` (``metrics.json``, or ``kfold.json`` with ``spec.kfold``)."""
    from ..ml.core.data import UNITS
    keys = ("n", "mae", "rmse", "mre", "pearson_r", "r2")
    return {"schema": "hessflow.train/1", "run_dir": str(spec.out), "target": spec.target,
            "unit": UNITS.get(spec.target, ""), "model": spec.model, "kfold": int(spec.kfold or 0),
            **{s: {k: m[s][k] for k in keys if k in m[s]} for s in ("train", "val", "test")},
            "best_epoch": m.get("best_epoch"), "epochs_run": m.get("epochs_run")}


def write_command(run_dir: str, a) -> None:
    """``RUN_DIR/command.json``: the command line that trained the run, the hessflow version and
    the start time (UTC), for the report's provenance."""
    import datetime
    import shlex

    from .. import __version__
    os.makedirs(run_dir, exist_ok=True)
    line = shlex.join(["hessflow", *getattr(a, "command_line", [])])
    with open(os.path.join(run_dir, "command.json"), "w") as fh:
        json.dump({"command_line": line, "hessflow_version": __version__, "cwd": os.getcwd(),
                   "started_utc": datetime.datetime.now(datetime.timezone.utc)
                  .strftime("%Y-%m-%d %H:%M:%S")}, fh, indent=1)


def _cmd_train(a):
    from ..analysis.plots import parity_plot
    from ..analysis.tables import kfold_lines, train_lines
    from ..ml.core.data import UNITS
    from ..ml.core.launch import launch
    from ..ml.property.experiment import TrainSpec, run
    out = a.out_dir or f"runs/train-{a.model}-{a.target}"
    spec = TrainSpec.from_options({"data": str(os.path.abspath(a.data)), "out": os.path.abspath(out),
                            "target": a.target, "model": a.model, "ranks": a.ranks,
                            "augment": a.augment, "epochs": a.epochs, "batch_size": a.batch_size,
                            "lr": a.lr, "patience": a.patience, "seed": a.seed, "limit": a.limit,
                            "device": a.device, "kfold": a.kfold or 0,
                            "dae": None if a.dae is None else {"code": a.dae,
                                                                "freeze": a.dae_freeze}})
    write_command(spec.out, a)
    with progress_env(progress_wanted(a), "train"):
        launch(spec, "hessflow.ml.property.experiment", spec.ranks, lambda path: run(spec), "train")
    with open(os.path.join(spec.out, "metrics.json")) as fh:
        m = json.load(fh)
    if spec.kfold:
        pngs = [parity_plot(os.path.join(spec.out, f)) for f in m["folds"]]
        if a.json:
            print_json(train_json(m, spec))
            return 0
        print("\n".join(kfold_lines(m, spec.kfold, UNITS.get(spec.target, ""))))
        print(f"run directory: {spec.out} (kfold.json; fold0..fold{spec.kfold - 1}: model.pt, "
              f"metrics.json, splits.json, {os.path.basename(pngs[0])})")
        return 0
    png = parity_plot(spec.out)
    if a.json:
        print_json(train_json(m, spec))
        return 0
    print("\n".join(train_lines(m, UNITS.get(spec.target, ""))))
    print(f"run directory: {spec.out} (model.pt, metrics.json, splits.json, {os.path.basename(png)})")
    return 0


def register(sub):
    t = add_parser(_cmd_train, sub, "train",
                   "train a model on a store (or QM9 CSV / extended XYZ)",
                   "hessflow train data.h5 --target alpha --model weave --epochs 50 "
                   "--out-dir runs/alpha",
                   "Train a property model (Kearnes weave graph convolution or a padded MLP) on "
                   "a store, and evaluate it on train/val/test (metrics in the target's units). "
                   "One line per epoch on stderr (loss, validation metric, s/epoch, ETA).")
    t.add_argument("data", help="FILE.h5, a MoleculeNet QM9 CSV, or QM9 .xyz file/folder")
    t.add_argument("--target", default="alpha",
                   help="alpha (Bohr^3), zpve (Hartree), gap, homo, lumo, energy (Hartree), dipole "
                        "(Debye), beta (a.u.), or frequencies (cm^-1; the 3N-6 harmonic "
                        "frequencies: a masked multi-output head)")
    t.add_argument("--model", default="weave", choices=["weave", "mlp", "schnet"],
                   help="weave (graph convolution on atoms and pairs), mlp (padded coordinates) "
                        "or schnet (PyTorch Geometric's SchNet, a peer on the same inputs; needs "
                        "pip install 'hessflow[peer]')")
    t.add_argument("--augment", metavar="DIST:T_K:SAMPLES",
                   help="vibration augmentation DISTRIBUTION:TEMPERATURE_K:SAMPLES, "
                        "e.g. quantum:300:100 (needs Hessians: a hessflow store; default: none)")
    add_training_options(t, epochs=100, batch_size=32, patience=20)
    t.add_argument("--kfold", type=int, metavar="K",
                   help="K-fold cross-validation (e.g. 10): K runs, metrics as mean and standard "
                        "deviation (default: one train/val/test split)")
    t.add_argument("--dae", type=int, metavar="CODE",
                   help="pre-train a tied-weights denoising autoencoder (code size CODE units) on "
                        "the inputs and put its encoder in front of the MLP (default: none)")
    t.add_argument("--dae-freeze", action="store_true", help="keep the DAE encoder fixed")
    add_out_dir(t, "default: runs/train-MODEL-TARGET")
    add_no_progress(t, "the per-epoch lines")
    add_json(t, "the metrics of each split")
