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
            "weight_decay": 0.0, "kfold": 0, "dae": None}
# the denoising autoencoder in front of the MLP: pre-trained on the training inputs (labels
# unused), then its encoder replaces the MLP's input layer, frozen or fine-tuned
DAE_DEFAULTS = {"code": 16, "hidden": [128, 64], "noise_std": 0.1, "epochs": 100, "lr": 1e-3,
                "batch_size": 64, "freeze": False}


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
    if s["kfold"] and not (isinstance(s["kfold"], int) and s["kfold"] >= 2):
        raise HessflowError(f"--kfold: {s['kfold']!r} is not a number of folds >= 2")
    if s["dae"] is not None:
        if s["model"] != "mlp":
            raise HessflowError("--dae: the autoencoder reads a flat feature vector; use --model mlp")
        dae = {**DAE_DEFAULTS, **({"code": s["dae"]} if isinstance(s["dae"], int) else s["dae"])}
        unknown = set(dae) - set(DAE_DEFAULTS)
        if unknown:
            raise HessflowError(f"dae: unknown setting(s) {sorted(unknown)}")
        if int(dae["code"]) < 1:
            raise HessflowError(f"--dae: code size {dae['code']!r} must be >= 1")
        s["dae"] = dae
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


def n_outputs(spec: dict) -> int:
    """1 for a scalar target; 3 * max_atoms - 6 (NaN-padded) for the frequency set."""
    return 3 * spec["max_atoms"] - 6 if spec["target"] in D.VECTOR_TARGETS else 1


def _pad_labels(mols, n_out):
    for m in mols:
        f = np.asarray(m["label"], float)
        if f.size > n_out:
            raise HessflowError(f"{m['name']}: {f.size} frequencies, more than the {n_out} outputs "
                                f"of max_atoms; raise max_atoms")
        m["label"] = np.concatenate([f, np.full(n_out - f.size, np.nan)])


def build(spec: dict, splits: dict | None = None):
    """Molecules, datasets (train and evaluation), splits (by molecule), collate, model factory.

    ``splits`` (e.g. one fold of a k-fold run) replaces the default random split."""
    from .models import MLP, TiedDAE, Weave
    from .train import random_split
    aug = parse_augment(spec["augment"])
    mols = D.load(spec["data"], spec["target"], spec["limit"], progress=False,
                  need_hessian=aug is not None)
    if len(mols) < 5:
        raise HessflowError(f"{spec['data']}: {len(mols)} molecules are too few to train on")
    n_out = n_outputs(spec)
    if n_out > 1:
        _pad_labels(mols, n_out)
    # featurise first: a molecule that cannot be featurised (no 3D embedding, say) is left out
    # with a one-line warning, and the splits index the molecules that remain
    if spec["model"] == "mlp":
        D.ensure_geometry(mols)
    else:
        graphs = D.WeaveDataset(mols)
    if splits is None:
        splits = random_split(len(mols), spec["val"], spec["test"], spec["seed"])
    augmented = None
    if aug:
        dist, temp, n = aug
        augmented = VibrationalDataset(mols, n, temp, dist, seed=spec["seed"])
    if spec["model"] == "mlp":
        base, evalset = (D.PaddedDataset(mols, spec["max_atoms"], augmented),
                         D.PaddedDataset(mols, spec["max_atoms"]))
        collate = None
        n_in = spec["max_atoms"] * 4

        dae = spec.get("dae")

        def model_fn():
            from torch import nn
            if not dae:
                return MLP(n_in, tuple(spec["hidden"]), n_out, "relu6")
            enc = TiedDAE(n_in, tuple(dae["hidden"]), dae["code"], dae["noise_std"]).encoder(
                freeze=dae["freeze"])
            return nn.Sequential(enc, MLP(dae["code"], tuple(spec["hidden"]), n_out, "relu6"))
    else:
        evalset = graphs
        base = evalset
        if augmented:  # the same graphs, drawing displaced geometries
            base = copy.copy(evalset)
            base.augment = augmented
        collate = D.weave_collate

        def model_fn():
            return Weave(n_out=n_out)
    return _on_splits(mols, base, evalset, splits, collate, model_fn)


def _on_splits(mols, base, evalset, splits: dict, collate, model_fn):
    """What :func:`build` returns: the labels standardised with the training molecules' mean and
    standard deviation; with augmentation every sample of a training molecule trains (evaluation
    stays per molecule)."""
    y = np.array([m["label"] for m in mols])[splits["train"]]
    mu, sd = float(np.nanmean(y)), float(np.nanstd(y) or 1.0)
    train_splits = dict(splits)
    aug = getattr(base, "augment", None)
    if aug:
        n = aug.n_augment
        train_splits["train"] = [i * n + j for i in splits["train"] for j in range(n)]
    return (mols, _Scaled(base, mu, sd), _Scaled(evalset, mu, sd), splits, train_splits, collate,
            model_fn, (mu, sd))


def pretrain_dae(spec: dict, dataset, indices, out: Path) -> dict:
    """Train the tied-weights DAE on the training inputs (reconstruction of clean inputs from
    noisy ones; labels unused). Every rank runs it identically (same seed, same data), so the
    supervised net starts from the same encoder everywhere. Returns its encoder weights."""
    import torch
    from torch import nn

    from .models import TiedDAE
    dae_cfg = spec["dae"]
    x = torch.stack([dataset[i][0][0] for i in indices])
    torch.manual_seed(spec["seed"])
    dae = TiedDAE(x.shape[1], tuple(dae_cfg["hidden"]), dae_cfg["code"], dae_cfg["noise_std"])
    opt = torch.optim.Adam(dae.parameters(), lr=dae_cfg["lr"])
    gen = torch.Generator().manual_seed(spec["seed"])
    history = []
    for _ in range(dae_cfg["epochs"]):
        dae.train()
        total = 0.0
        for batch in torch.randperm(len(x), generator=gen).split(dae_cfg["batch_size"]):
            opt.zero_grad()
            loss = nn.functional.mse_loss(dae(x[batch]), x[batch])
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
        history.append(total / len(x))
    dae.eval()
    with torch.no_grad():
        clean = float(nn.functional.mse_loss(dae(x), x))
    from .distributed import rank_world
    if rank_world()[0] == 0:
        out.mkdir(parents=True, exist_ok=True)
        torch.save(dae.state_dict(), out / "dae.pt")
    enc = dae.encoder()
    return {"state": {k: v.detach().clone() for k, v in enc.state_dict().items()},
            "reconstruction_mse": clean, "history": history}


def with_splits(built, splits: dict):
    """What :func:`build` returned, on other splits: the labels are re-standardised with the new
    training molecules, and an augmented training set expands to their samples."""
    mols, trainset, evalset, _, _, collate, model_fn, _ = built
    return _on_splits(mols, trainset.base, evalset.base, splits, collate, model_fn)


def _train_one(spec: dict, out: Path, splits: dict | None = None, built=None) -> dict:
    """Train and evaluate one model into ``out``. ``built`` (what :func:`build` returned, e.g.
    featurised once for a learning curve) is reused; ``splits`` then replaces its split (a
    subset of training molecules, say; the labels are re-standardised on it)."""
    from .metrics import regression_metrics
    from .train import TrainConfig, default_collate, train
    if built is None:
        built = build(spec, splits)
    elif splits is not None:
        built = with_splits(built, splits)
    mols, trainset, evalset, splits, train_splits, collate, model_fn, (mu, sd) = built
    dae_info = None
    if spec.get("dae"):
        dae_info = pretrain_dae(spec, trainset, train_splits["train"], out)
        base_fn = model_fn

        def model_fn():  # noqa: F811 -- the same net, its encoder starting from the DAE's
            m = base_fn()
            m[0].load_state_dict(dae_info["state"])
            return m
    cfg = TrainConfig(epochs=spec["epochs"], batch_size=spec["batch_size"], lr=spec["lr"],
                      patience=spec["patience"], seed=spec["seed"], device=spec["device"],
                      weight_decay=spec["weight_decay"])
    metrics = train(model_fn, trainset, train_splits, cfg, out, collate=collate or default_collate,
                    eval_dataset=evalset, eval_splits=splits)
    from .distributed import rank_world
    if rank_world()[0] == 0:
        preds = json.loads((out / "predictions.json").read_text())
        for split, d in preds.items():
            d["y"] = (np.asarray(d["y"], float) * sd + mu).tolist()
            d["pred"] = (np.asarray(d["pred"], float) * sd + mu).tolist()
            d["names"] = [mols[i]["name"] for i in splits[split]]
            metrics[split] = regression_metrics(d["y"], d["pred"])
        metrics.update(spec={k: v for k, v in spec.items()}, label_mean=mu, label_std=sd,
                       n_molecules=len(mols), n_outputs=n_outputs(spec), loss_units="standardised")
        if dae_info:
            metrics["dae"] = {"reconstruction_mse": dae_info["reconstruction_mse"],
                              "history": dae_info["history"]}
        (out / "predictions.json").write_text(json.dumps(preds, allow_nan=True))
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=str))
        (out / "splits.json").write_text(json.dumps({**splits, "names": [m["name"] for m in mols]}))
    return metrics


def run(spec: dict) -> dict:
    """One training run, or with ``kfold`` K, K runs (``fold0`` ... in the run directory, each a
    complete run directory) and ``kfold.json`` with every split's metrics as mean and standard
    deviation over the folds (the run directory's own ``metrics.json`` is that summary too)."""
    spec = validate(spec)
    out = Path(spec["out"])
    if not spec["kfold"]:
        return _train_one(spec, out)
    from .distributed import rank_world
    from .train import kfold_splits
    built = build(spec)  # featurised once for all folds
    folds = kfold_splits(len(built[0]), spec["kfold"], spec["val"], spec["seed"])
    per_fold = [_train_one(spec, out / f"fold{i}", f, built) for i, f in enumerate(folds)]
    summary = {"kfold": spec["kfold"], "spec": spec, "folds": [f"fold{i}" for i in range(len(folds))]}
    for split in ("train", "val", "test"):
        summary[split] = {}
        for key in per_fold[0][split]:
            vals = np.array([m[split][key] for m in per_fold], float)
            summary[split][key] = float(vals.mean()) if key != "n" else int(vals.sum())
            if key != "n":
                summary[split][key + "_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
    if rank_world()[0] == 0:
        (out / "kfold.json").write_text(json.dumps(summary, indent=1, default=str))
        (out / "metrics.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary


def main(argv=None):
    from .distributed import spec_main
    return spec_main(lambda path: run(json.loads(Path(path).read_text())), "train", argv)


if __name__ == "__main__":
    sys.exit(main())
