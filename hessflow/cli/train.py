"""``hessflow train``: a property model (weave or MLP) on a store, a QM9 CSV or extended XYZ."""

from __future__ import annotations

import json
import os

from .options import add_training_options


def _cmd_train(a):
    from ..analysis.plots import parity_plot
    from ..analysis.tables import kfold_lines, train_lines
    from ..ml.core.launch import launch
    from ..ml.property.experiment import TrainSpec, run
    out = a.out or f"runs/train-{a.model}-{a.target}"
    spec = TrainSpec.from_options({"data": str(os.path.abspath(a.data)), "out": os.path.abspath(out),
                            "target": a.target, "model": a.model, "ranks": a.ranks,
                            "augment": a.augment, "epochs": a.epochs, "batch_size": a.batch_size,
                            "lr": a.lr, "patience": a.patience, "seed": a.seed, "limit": a.limit,
                            "device": a.device, "kfold": a.kfold or 0,
                            "dae": None if a.dae is None else {"code": a.dae,
                                                                "freeze": a.dae_freeze}})
    launch(spec, "hessflow.ml.property.experiment", spec.ranks, lambda path: run(spec), "train")
    with open(os.path.join(spec.out, "metrics.json")) as fh:
        m = json.load(fh)
    if spec.kfold:
        pngs = [parity_plot(os.path.join(spec.out, f)) for f in m["folds"]]
        print("\n".join(kfold_lines(m, spec.kfold)))
        print(f"run directory: {spec.out} (kfold.json; fold0..fold{spec.kfold - 1}: model.pt, "
              f"metrics.json, splits.json, {os.path.basename(pngs[0])})")
        return 0
    png = parity_plot(spec.out)
    print("\n".join(train_lines(m)))
    print(f"run directory: {spec.out} (model.pt, metrics.json, splits.json, {os.path.basename(png)})")
    return 0


def register(sub):
    t = sub.add_parser("train", help="train a model on a store (or QM9 CSV / extended XYZ)")
    t.add_argument("data", help="FILE.h5, a MoleculeNet QM9 CSV, or QM9 .xyz file/folder")
    t.add_argument("--target", default="alpha",
                   help="alpha, zpve, gap, homo, lumo, dipole, energy, beta, or frequencies (the "
                        "3N-6 harmonic frequencies: a masked multi-output head)")
    t.add_argument("--model", default="weave", choices=["weave", "mlp"])
    t.add_argument("--augment", help="vibration augmentation DISTRIBUTION:TEMPERATURE_K:SAMPLES, "
                                     "e.g. quantum:300:100 (needs Hessians: a hessflow store)")
    add_training_options(t, epochs=100, batch_size=32, patience=20)
    t.add_argument("--kfold", type=int, help="K-fold cross-validation (e.g. 10): K runs, "
                                              "metrics as mean and standard deviation")
    t.add_argument("--dae", type=int, metavar="CODE",
                   help="pre-train a tied-weights denoising autoencoder (code size CODE) on the "
                        "inputs and put its encoder in front of the MLP")
    t.add_argument("--dae-freeze", action="store_true", help="keep the DAE encoder fixed")
    t.add_argument("--out", help="run directory (default runs/train-MODEL-TARGET)")
    t.set_defaults(func=_cmd_train)
