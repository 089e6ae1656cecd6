"""The property-model training experiment: one typed :class:`TrainSpec` (data, target, model,
augmentation, splits) -> a trained run directory, or k of them (k-fold cross-validation).

Run on every rank: ``mpiexec -n 2 python -m hessflow.ml.property.experiment SPEC.json``
(``hessflow train`` and the workflow's train stage write the spec and start the ranks). Labels
are standardised with the training split's mean and standard deviation; metrics are reported in
the target's own units (:data:`hessflow.ml.core.data.UNITS`).

Run directory: ``spec.json``, ``model.pt``, ``metrics.json``, ``predictions.json`` (per split:
labels, predictions, names, in target units), ``splits.json`` (by molecule, with the names),
``checkpoint.pt``, ``dae.pt`` (with ``dae``); a k-fold run has ``fold0`` ... and ``kfold.json``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ...errors import HessflowError, SettingsError
from ...settings import from_mapping, meta, settings_error, to_mapping
from ...system import cpu_count
from ..core import data as D
from .augment import DISTRIBUTIONS, VibrationalDataset

__all__ = ["TrainSpec", "DaeSpec", "SchNetSpec", "Built", "ScaledDataset", "parse_augment", "option_errors", "build",
           "with_splits", "pretrain_dae", "train_one", "run", "main"]


# -- the spec ------------------------------------------------------------------------------------
def parse_augment(text, where: str = "--augment"):
    """``'quantum:300:100'`` -> (distribution, temperature in K, samples per molecule); None for
    no augmentation (None or empty). ``where`` names the setting in the one-line error."""
    if not text:
        return None
    try:
        dist, temp, n = str(text).split(":")
        temp, n = float(temp), int(n)
    except ValueError:
        raise settings_error(where, f"{text!r} is not DISTRIBUTION:TEMPERATURE_K:SAMPLES "
                                    f"(e.g. quantum:300:100)") from None
    if dist not in DISTRIBUTIONS:
        raise settings_error(where, f"distribution {dist!r} is not one of {', '.join(DISTRIBUTIONS)}")
    if n < 1 or temp < 0:
        raise settings_error(where, f"need SAMPLES >= 1 and TEMPERATURE_K >= 0, got {text!r}")
    return dist, temp, n


def _check_augment(where, value):
    parse_augment(value, where)
    return value


def _check_kfold(where, value):
    if value and value < 2:
        raise settings_error(where, f"{value!r} is not a number of folds >= 2 (0: no k-fold)")
    return value


def _check_widths(where, value):
    if any(h < 1 for h in value):
        raise settings_error(where, f"hidden widths must be >= 1, got {list(value)}")
    return value


@dataclasses.dataclass
class DaeSpec:
    """The tied-weights denoising autoencoder in front of the MLP: pre-trained on the training
    inputs (labels unused), then its encoder replaces the MLP's input layer, frozen or
    fine-tuned. (In a spec, ``dae: N`` is short for ``dae: {code: N}``.)"""
    code: int = dataclasses.field(default=16, metadata=meta("code (bottleneck) size", minimum=1))
    hidden: tuple[int, ...] = dataclasses.field(default=(128, 64), metadata=meta(
        "encoder hidden widths", check=_check_widths))
    noise_std: float = dataclasses.field(default=0.1, metadata=meta(
        "Gaussian input noise (standard deviation, in input units)", minimum=0))
    epochs: int = dataclasses.field(default=100, metadata=meta("pre-training epochs", minimum=1))
    lr: float = dataclasses.field(default=1e-3, metadata=meta("Adam learning rate", minimum=0))
    batch_size: int = dataclasses.field(default=64, metadata=meta("pre-training batch", minimum=1))
    freeze: bool = dataclasses.field(default=False, metadata=meta(
        "keep the encoder fixed while the MLP trains"))


@dataclasses.dataclass
class SchNetSpec:
    """The size of the SchNet peer (``model: schnet``; PyG's parameters, see
    :mod:`hessflow.ml.property.schnet`). A small SchNet by default, for CPU budgets; the
    paper's QM9 model has 128 features, 6 interactions and a 5 Angstrom cutoff."""
    hidden: int = dataclasses.field(default=64, metadata=meta(
        "atom feature width (hidden_channels)", minimum=1))
    filters: int = dataclasses.field(default=64, metadata=meta(
        "continuous-filter width (num_filters)", minimum=1))
    interactions: int = dataclasses.field(default=3, metadata=meta(
        "interaction blocks (num_interactions)", minimum=1))
    gaussians: int = dataclasses.field(default=25, metadata=meta(
        "Gaussians of the distance expansion (num_gaussians)", minimum=1))
    cutoff_bohr: float = dataclasses.field(default=9.5, metadata=meta(
        "interaction cutoff in Bohr (9.5 Bohr = 5.0 Angstrom)", minimum=0))


@dataclasses.dataclass
class TrainSpec:
    """One property-model training run (``hessflow train``, the workflow's train stage).

    Build it with :meth:`parse` (checked, one-line errors with "did you mean"); ``to_mapping``
    gives the JSON form written to ``spec.json``."""
    data: str = dataclasses.field(default="", metadata=meta(
        "hessflow store (.h5), QM9 CSV or QM9 extended XYZ (file or folder)"))
    out: str = dataclasses.field(default="", metadata=meta("run directory"))
    model: str = dataclasses.field(default="weave", metadata=meta(
        "weave (graph convolution), mlp (padded coordinates) or schnet (PyTorch Geometric's "
        "SchNet, the peer)", choices=("weave", "mlp", "schnet")))
    target: str = dataclasses.field(default="alpha", metadata=meta(
        "the property to learn", choices=tuple(D.TARGETS)))
    ranks: int = dataclasses.field(default=1, metadata=meta("data-parallel ranks", minimum=1))
    augment: str | None = dataclasses.field(default=None, metadata=meta(
        "vibrational augmentation DISTRIBUTION:TEMPERATURE_K:SAMPLES, e.g. quantum:300:100",
        check=_check_augment))
    epochs: int = dataclasses.field(default=100, metadata=meta("epochs at most", minimum=1))
    batch_size: int = dataclasses.field(default=32, metadata=meta(
        "global batch (all ranks together)", minimum=1))
    lr: float = dataclasses.field(default=1e-3, metadata=meta("Adam learning rate", minimum=0))
    patience: int = dataclasses.field(default=20, metadata=meta(
        "epochs without validation improvement before stopping", minimum=1))
    seed: int = dataclasses.field(default=0, metadata=meta("split, initialisation and noise seed"))
    val: float = dataclasses.field(default=0.1, metadata=meta(
        "validation fraction", minimum=0, maximum=1))
    test: float = dataclasses.field(default=0.1, metadata=meta("test fraction", minimum=0, maximum=1))
    limit: int | None = dataclasses.field(default=None, metadata=meta(
        "only the first N molecules (None or 0: all)", minimum=0))
    max_atoms: int = dataclasses.field(default=29, metadata=meta(
        "padding size of the MLP input and of the frequency head", minimum=1))
    hidden: tuple[int, ...] = dataclasses.field(default=(100, 20), metadata=meta(
        "MLP hidden widths", check=_check_widths))
    device: str = dataclasses.field(default="auto", metadata=meta("auto (GPU if present), cpu, cuda"))
    weight_decay: float = dataclasses.field(default=0.0, metadata=meta("Adam weight decay", minimum=0))
    kfold: int = dataclasses.field(default=0, metadata=meta(
        "k-fold cross-validation with K folds (0: one run)", minimum=0, check=_check_kfold))
    dae: DaeSpec | None = dataclasses.field(default=None, metadata=meta(
        "a denoising autoencoder in front of the MLP (code size, or its settings)"))
    schnet: SchNetSpec = dataclasses.field(default_factory=SchNetSpec, metadata=meta(
        "the SchNet network's size (model schnet)"))

    @classmethod
    def parse(cls, mapping: Mapping | None, where: str = "") -> "TrainSpec":
        """The checked spec of ``mapping`` (a dict from JSON, YAML or command-line options).
        ``where``: the dotted prefix of the fields in errors (``"stages.train"``); raises
        :class:`~hessflow.errors.SettingsError`. ``data`` and ``out`` are required."""
        m = dict(mapping or {})
        if isinstance(m.get("dae"), int) and not isinstance(m["dae"], bool):
            m["dae"] = {"code": m["dae"]}
        spec = from_mapping(cls, m, where)
        if spec.dae is not None and spec.model != "mlp":
            raise settings_error(_at(where, "dae"), "the autoencoder reads a flat feature vector; "
                                                    "use --model mlp")
        if spec.model == "schnet" and spec.target in D.VECTOR_TARGETS:
            raise settings_error(_at(where, "target"), f"{spec.target!r} is a set-valued target; "
                                                       "SchNet learns scalar targets (use weave)")
        for k in ("data", "out"):
            if not getattr(spec, k):
                raise settings_error(_at(where, k), "is missing")
        return spec

    @classmethod
    def from_options(cls, mapping: Mapping) -> "TrainSpec":
        """:meth:`parse` for ``hessflow train``'s options: errors name the option
        (``--batch-size: ...``), see :func:`option_errors`."""
        try:
            spec = cls.parse(mapping)
        except SettingsError as exc:
            raise option_errors(exc) from None
        note = spec.oversubscription()
        if note:
            print(f"hessflow: warning: {note}", file=sys.stderr)
        return spec

    def oversubscription(self, cores: int | None = None) -> str | None:
        """A one-line note when more ranks are asked for than this machine's ``cores`` (default
        the usable cores) outside a Slurm allocation, else None. Accepted, not refused: the
        ranks then share cores, slower but with the same results, which is how a multi-rank
        decomposition is tried on a laptop; inside an allocation (or through a profile's
        ``srun``) the ranks run where Slurm places them, so the login or batch node's cores say
        nothing about it."""
        cores = cpu_count() if cores is None else cores
        if self.ranks <= cores or os.environ.get("SLURM_JOB_ID"):
            return None
        return (f"--ranks {self.ranks} on {cores} core{'s' * (cores != 1)} of this machine: the "
                f"ranks share cores (slower, same results)")

    def check_molecules(self, n: int) -> None:
        """Raise a one-line :class:`~hessflow.errors.SettingsError` when ``n`` molecules cannot
        hold ``kfold`` folds (each fold needs a test molecule)."""
        if self.kfold and self.kfold > n:
            raise settings_error("kfold", f"{self.kfold} folds need at least {self.kfold} "
                                          f"molecules; {self.data} has {n}")

    @property
    def n_outputs(self) -> int:
        """1 for a scalar target; 3 * max_atoms - 6 (NaN-padded) for the frequency set."""
        return 3 * self.max_atoms - 6 if self.target in D.VECTOR_TARGETS else 1

    def to_mapping(self) -> dict:
        """The JSON-ready form (``spec.json``, ``metrics.json``'s ``spec``)."""
        return to_mapping(self)


def _at(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def option_errors(exc: SettingsError) -> SettingsError:
    """``exc`` with its field named as the command-line option of ``hessflow train``
    (``batch_size: ...`` -> ``--batch-size: ...``; ``dae.code`` -> ``--dae``)."""
    field, _, reason = str(exc).partition(": ")
    option = "--" + field.split(".")[0].split("[")[0].replace("_", "-")
    return SettingsError(f"{option}: {reason}")


# -- data and model ------------------------------------------------------------------------------
class ScaledDataset:
    """``base`` with standardised labels: sample ``(x, (y - mu) / sd)``."""

    def __init__(self, base, mu: float, sd: float):
        self.base, self.mu, self.sd = base, mu, sd

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        x, y = self.base[i]
        return x, (y - self.mu) / self.sd


@dataclasses.dataclass
class Built:
    """A spec's data and model, ready to train (what :func:`build` returns).

    ``splits``: indices of ``molecules`` (train/val/test); ``train_splits``: indices of
    ``trainset`` samples (with augmentation every sample of a training molecule; evaluation
    stays per molecule on ``evalset``); ``collate``: the batch function (None: the default);
    ``model_fn()``: a fresh network; labels are standardised with ``label_mean`` and
    ``label_std`` (target units) of the training molecules."""
    molecules: list
    trainset: ScaledDataset
    evalset: ScaledDataset
    splits: dict
    train_splits: dict
    collate: Callable | None
    model_fn: Callable[[], Any]
    label_mean: float
    label_std: float


def _pad_labels(mols, n_out):
    for m in mols:
        f = np.asarray(m["label"], float)
        if f.size > n_out:
            raise HessflowError(f"{m['name']}: {f.size} frequencies, more than the {n_out} outputs "
                                f"of max_atoms; raise max_atoms")
        m["label"] = np.concatenate([f, np.full(n_out - f.size, np.nan)])


def build(spec: TrainSpec, splits: dict | None = None) -> Built:
    """Molecules, datasets (train and evaluation), splits (by molecule), collate and model
    factory of ``spec``. ``splits`` (e.g. one fold of a k-fold run) replaces the default
    random split."""
    from ..core.splits import random_split
    from . import datasets as DS
    from .models import MLP, TiedDAE, Weave
    if spec.model == "schnet":  # before the data are read: the optional library is there
        from .schnet import require
        require()
    aug = parse_augment(spec.augment)
    mols = D.load(spec.data, spec.target, spec.limit, progress=False, need_hessian=aug is not None)
    if len(mols) < 5:
        raise HessflowError(f"{spec.data}: {len(mols)} molecules are too few to train on")
    n_out = spec.n_outputs
    if n_out > 1:
        _pad_labels(mols, n_out)
    # featurise first: a molecule that cannot be featurised (no 3D embedding, say) is left out
    # with a one-line warning, and the splits index the molecules that remain
    if spec.model in ("mlp", "schnet"):
        DS.ensure_geometry(mols)
    else:
        graphs = DS.WeaveDataset(mols)
    if splits is None:
        splits = random_split(len(mols), spec.val, spec.test, spec.seed)
    augmented = None
    if aug:
        dist, temp, n = aug
        augmented = VibrationalDataset(mols, n, temp, dist, seed=spec.seed)
    if spec.model == "mlp":
        base, evalset = (DS.PaddedDataset(mols, spec.max_atoms, augmented),
                         DS.PaddedDataset(mols, spec.max_atoms))
        collate = None
        n_in = spec.max_atoms * 4
        dae = spec.dae

        def model_fn():
            from torch import nn
            if not dae:
                return MLP(n_in, tuple(spec.hidden), n_out, "relu6")
            enc = TiedDAE(n_in, tuple(dae.hidden), dae.code, dae.noise_std).encoder(
                freeze=dae.freeze)
            return nn.Sequential(enc, MLP(dae.code, tuple(spec.hidden), n_out, "relu6"))
    elif spec.model == "schnet":
        from . import schnet as S
        base, evalset, collate = S.AtomsDataset(mols, augmented), S.AtomsDataset(mols), \
            S.atoms_collate
        sizes = dataclasses.asdict(spec.schnet)

        def model_fn():
            return S.SchNetModel(**sizes)
    else:
        evalset = graphs
        base = evalset
        if augmented:  # the same graphs, drawing displaced geometries
            base = copy.copy(evalset)
            base.augment = augmented
        collate = DS.weave_collate

        def model_fn():
            return Weave(n_out=n_out)
    return _on_splits(mols, base, evalset, splits, collate, model_fn)


def _on_splits(mols, base, evalset, splits: dict, collate, model_fn) -> Built:
    """The :class:`Built` of these datasets on ``splits``: labels standardised with the training
    molecules' mean and standard deviation; with augmentation every sample of a training
    molecule trains (evaluation stays per molecule)."""
    y = np.array([m["label"] for m in mols])[splits["train"]]
    mu, sd = float(np.nanmean(y)), float(np.nanstd(y) or 1.0)
    train_splits = dict(splits)
    aug = getattr(base, "augment", None)
    if aug:
        n = aug.n_augment
        train_splits["train"] = [i * n + j for i in splits["train"] for j in range(n)]
    return Built(mols, ScaledDataset(base, mu, sd), ScaledDataset(evalset, mu, sd), splits,
                 train_splits, collate, model_fn, mu, sd)


def with_splits(built: Built, splits: dict) -> Built:
    """``built`` on other splits: the labels are re-standardised with the new training
    molecules, and an augmented training set expands to their samples."""
    return _on_splits(built.molecules, built.trainset.base, built.evalset.base, splits,
                      built.collate, built.model_fn)


def pretrain_dae(spec: TrainSpec, dataset, indices, out: Path) -> dict:
    """Train the tied-weights DAE of ``spec.dae`` on the inputs ``dataset[indices]``
    (reconstruction of clean inputs from noisy ones; labels unused). Every rank runs it
    identically (same seed, same data), so the supervised net starts from the same encoder
    everywhere; rank 0 writes ``out/dae.pt``. Returns the encoder weights (``state``), the clean
    reconstruction MSE and the per-epoch training MSE (``history``), in input units squared."""
    import torch
    from torch import nn

    from ..core.distributed import rank_world
    from .models import TiedDAE
    cfg = spec.dae
    x = torch.stack([dataset[i][0][0] for i in indices])
    torch.manual_seed(spec.seed)
    dae = TiedDAE(x.shape[1], tuple(cfg.hidden), cfg.code, cfg.noise_std)
    opt = torch.optim.Adam(dae.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(spec.seed)
    history = []
    for _ in range(cfg.epochs):
        dae.train()
        total = 0.0
        for batch in torch.randperm(len(x), generator=gen).split(cfg.batch_size):
            opt.zero_grad()
            loss = nn.functional.mse_loss(dae(x[batch]), x[batch])
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
        history.append(total / len(x))
    dae.eval()
    with torch.no_grad():
        clean = float(nn.functional.mse_loss(dae(x), x))
    if rank_world()[0] == 0:
        out.mkdir(parents=True, exist_ok=True)
        torch.save(dae.state_dict(), out / "dae.pt")
    enc = dae.encoder()
    return {"state": {k: v.detach().clone() for k, v in enc.state_dict().items()},
            "reconstruction_mse": clean, "history": history}


# -- training --------------------------------------------------------------------------------------
def train_one(spec: TrainSpec, out: Path, splits: dict | None = None,
              built: Built | None = None) -> dict:
    """Train and evaluate one model into ``out``; return its metrics (target units). ``built``
    (featurised once, e.g. for a learning curve or the folds) is reused; ``splits`` then
    replaces its split (a subset of training molecules, say; the labels are re-standardised)."""
    from ..core.distributed import rank_world
    from ..core.metrics import regression_metrics
    from ..core.training import TrainConfig, default_collate, train
    from ..core.regression import Regression
    if built is None:
        built = build(spec, splits)
    elif splits is not None:
        built = with_splits(built, splits)
    mols, splits, mu, sd = built.molecules, built.splits, built.label_mean, built.label_std
    model_fn = built.model_fn
    dae_info = None
    if spec.dae:
        dae_info = pretrain_dae(spec, built.trainset, built.train_splits["train"], out)

        def model_fn():  # the same net, its encoder starting from the DAE's
            m = built.model_fn()
            m[0].load_state_dict(dae_info["state"])
            return m
    cfg = TrainConfig(epochs=spec.epochs, batch_size=spec.batch_size, lr=spec.lr,
                      patience=spec.patience, seed=spec.seed, device=spec.device,
                      weight_decay=spec.weight_decay)
    scalar = np.ndim(sd) == 0  # a multi-output head (frequencies) reports standardised units
    hooks = Regression(collate=built.collate or default_collate, eval_dataset=built.evalset,
                       eval_splits=splits, unit=D.UNITS.get(spec.target, "") if scalar else "",
                       label_scale=float(sd) if scalar else 1.0)
    metrics = train(model_fn, built.trainset, built.train_splits, cfg, out, hooks)
    if rank_world()[0] == 0:
        preds = json.loads((out / "predictions.json").read_text())
        for split, d in preds.items():
            d["y"] = (np.asarray(d["y"], float) * sd + mu).tolist()
            d["pred"] = (np.asarray(d["pred"], float) * sd + mu).tolist()
            d["names"] = [mols[i]["name"] for i in splits[split]]
            metrics[split] = regression_metrics(d["y"], d["pred"])
        metrics.update(spec=spec.to_mapping(), label_mean=mu, label_std=sd,
                       n_molecules=len(mols), n_outputs=spec.n_outputs, loss_units="standardised")
        if dae_info:
            metrics["dae"] = {"reconstruction_mse": dae_info["reconstruction_mse"],
                              "history": dae_info["history"]}
        (out / "predictions.json").write_text(json.dumps(preds, allow_nan=True))
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=str))
        (out / "splits.json").write_text(json.dumps({**splits, "names": [m["name"] for m in mols]}))
    return metrics


def run(spec: TrainSpec | Mapping) -> dict:
    """One training run, or with ``kfold`` K, K runs (``fold0`` ... in the run directory, each a
    complete run directory) and ``kfold.json`` with every split's metrics as mean and standard
    deviation over the folds (the run directory's own ``metrics.json`` is that summary too).
    A mapping is parsed with :meth:`TrainSpec.parse` first."""
    from ..core.distributed import rank_world
    from ..core.splits import kfold_splits
    if not isinstance(spec, TrainSpec):
        spec = TrainSpec.parse(spec)
    out = Path(spec.out)
    if not spec.kfold:
        return train_one(spec, out)
    built = build(spec)  # featurised once for all folds
    spec.check_molecules(len(built.molecules))
    folds = kfold_splits(len(built.molecules), spec.kfold, spec.val, spec.seed)
    per_fold = [train_one(spec, out / f"fold{i}", f, built) for i, f in enumerate(folds)]
    summary = {"kfold": spec.kfold, "spec": spec.to_mapping(),
               "folds": [f"fold{i}" for i in range(len(folds))]}
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
    """``python -m hessflow.ml.property.experiment SPEC.json`` on every rank."""
    from ..core.launch import spec_main
    return spec_main(lambda path: run(json.loads(Path(path).read_text())), "train", argv)


if __name__ == "__main__":
    sys.exit(main())
