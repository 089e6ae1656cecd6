"""One training run from a spec (a JSON-able dict): data, target, model, augmentation, splits.

Run on every rank: ``mpiexec -n 2 python -m hessflow.ml.run SPEC.json`` (``hessflow train``
builds the spec and the launcher). Labels are standardised with the training split's mean and
standard deviation; metrics are reported in the target's own units.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np

from ..errors import HessflowError
from . import data as D
from .augment import DISTRIBUTIONS, VibrationalDataset

DEFAULTS = {"model": "weave", "target": "alpha", "ranks": 1, "augment": None, "epochs": 100,
            "batch_size": 32, "lr": 1e-3, "patience": 20, "seed": 0, "val": 0.1, "test": 0.1,
            "limit": None, "max_atoms": 29, "hidden": [100, 20], "device": "auto",
            "weight_decay": 0.0}


def parse_augment(text):
    """'quantum:300:100' -> (distribution, temperature K, samples per molecule)."""
    if not text:
        return None
    try:
        dist, temp, n = str(text).split(":")
        temp, n = float(temp), int(n)
    except ValueError:
        raise HessflowError(f"--augment: {text!r} is not DISTRIBUTION:TEMPERATURE_K:SAMPLES "
                            f"(e.g. quantum:300:100)") from None
    if dist not in DISTRIBUTIONS:
        raise HessflowError(f"--augment: distribution {dist!r} is not one of {', '.join(DISTRIBUTIONS)}")
    if n < 1 or temp < 0:
        raise HessflowError(f"--augment: need SAMPLES >= 1 and TEMPERATURE_K >= 0, got {text!r}")
    return dist, temp, n


def validate(spec: dict) -> dict:
    s = {**DEFAULTS, **spec}
    unknown = set(spec) - set(DEFAULTS) - {"data", "out"}
    if unknown:
        raise HessflowError(f"train: unknown setting(s) {sorted(unknown)}")
    if s["model"] not in ("weave", "mlp"):
        raise HessflowError(f"--model: {s['model']!r} is not weave or mlp")
    D._target(s["target"])
    parse_augment(s["augment"])
    for k in ("data", "out"):
        if not s.get(k):
            raise HessflowError(f"train: {k} is missing")
    return s


class _Scaled:
    """A dataset whose labels are standardised."""

    def __init__(self, base, mu, sd):
        self.base, self.mu, self.sd = base, mu, sd

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        x, y = self.base[i]
        return x, (y - self.mu) / self.sd


def build(spec: dict):
    """Molecules, datasets (train and evaluation), splits (by molecule), collate, model factory."""
    from .models import MLP, Weave
    from .train import random_split
    aug = parse_augment(spec["augment"])
    mols = D.load(spec["data"], spec["target"], spec["limit"], progress=False,
                  need_hessian=aug is not None)
    if len(mols) < 5:
        raise HessflowError(f"{spec['data']}: {len(mols)} molecules are too few to train on")
    splits = random_split(len(mols), spec["val"], spec["test"], spec["seed"])
    y = np.array([m["label"] for m in mols])
    mu, sd = float(y[splits["train"]].mean()), float(y[splits["train"]].std() or 1.0)
    augmented = None
    if aug:
        dist, temp, n = aug
        augmented = VibrationalDataset(mols, n, temp, dist, seed=spec["seed"])
    if spec["model"] == "mlp":
        D.ensure_geometry(mols)
        base, evalset = (D.PaddedDataset(mols, spec["max_atoms"], augmented),
                         D.PaddedDataset(mols, spec["max_atoms"]))
        collate = None
        n_in = spec["max_atoms"] * 4

        def model_fn():
            return MLP(n_in, tuple(spec["hidden"]), 1, "relu6")
    else:
        evalset = D.WeaveDataset(mols)
        base = evalset
        if augmented:  # the same graphs, drawing displaced geometries
            base = copy.copy(evalset)
            base.augment = augmented
        collate = D.weave_collate

        def model_fn():
            return Weave()
    train_splits = dict(splits)
    if augmented:  # every augmented sample of a training molecule trains; evaluation is per molecule
        n = augmented.n_augment
        train_splits["train"] = [i * n + j for i in splits["train"] for j in range(n)]
    return mols, _Scaled(base, mu, sd), _Scaled(evalset, mu, sd), splits, train_splits, collate, \
        model_fn, (mu, sd)


def run(spec: dict) -> dict:
    from .metrics import regression_metrics
    from .train import TrainConfig, default_collate, train
    spec = validate(spec)
    out = Path(spec["out"])
    mols, trainset, evalset, splits, train_splits, collate, model_fn, (mu, sd) = build(spec)
    cfg = TrainConfig(epochs=spec["epochs"], batch_size=spec["batch_size"], lr=spec["lr"],
                      patience=spec["patience"], seed=spec["seed"], device=spec["device"],
                      weight_decay=spec["weight_decay"])
    metrics = train(model_fn, trainset, train_splits, cfg, out, collate=collate or default_collate,
                    eval_dataset=evalset, eval_splits=splits)
    from .distributed import rank_world
    if rank_world()[0] == 0:
        preds = json.loads((out / "predictions.json").read_text())
        for split, d in preds.items():
            d["y"] = (np.asarray(d["y"]) * sd + mu).tolist()
            d["pred"] = (np.asarray(d["pred"]) * sd + mu).tolist()
            d["names"] = [mols[i]["name"] for i in splits[split]]
            metrics[split] = regression_metrics(d["y"], d["pred"])
        metrics.update(spec={k: v for k, v in spec.items()}, label_mean=mu, label_std=sd,
                       n_molecules=len(mols), loss_units="standardised")
        (out / "predictions.json").write_text(json.dumps(preds))
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=str))
        (out / "splits.json").write_text(json.dumps({**splits, "names": [m["name"] for m in mols]}))
    return metrics


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(argv[0]).read_text())
    try:
        run(spec)
    except HessflowError as exc:
        print(f"hessflow train: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
