"""Supervised regression on the one training loop: the ``((inputs...), y)`` sample convention,
masked losses for NaN-padded multi-output targets, prediction, and the :class:`Regression` hooks
(property models; the BP network with ``finish=False``).
"""

from __future__ import annotations

import json
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from .metrics import regression_metrics
from .training import BatchLoss, Hooks, Loop, TrainResult, default_collate, to_device


class ArrayDataset(Dataset):
    """Samples ``((x[i],), y[i])`` of two arrays, as float32 tensors."""

    def __init__(self, x, y):
        self.x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        self.y = torch.as_tensor(np.asarray(y), dtype=torch.float32)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return (self.x[i],), self.y[i]


def masked_mse(pred, target, mask):
    """Mean squared error over the real entries (``mask`` true) of padded multi-output targets."""
    mask = mask.to(pred.dtype)
    return ((pred - target) ** 2 * mask).sum() / mask.sum().clamp_min(1)


def masked_loss(name: str) -> Callable:
    """``loss(pred, y)``: mean squared (``"mse"``) or absolute (``"mae"``) error over the real
    (finite) targets: a set-valued target padded with NaN (the frequencies) trains a masked
    multi-output head; scalar targets are all real. (With several ranks each rank averages over
    its own real entries before DDP averages the gradients.)"""
    if name == "mse":
        return lambda pred, y: masked_mse(pred, torch.nan_to_num(y), torch.isfinite(y))
    if name == "mae":
        def mae(pred, y):
            mask = torch.isfinite(y).to(pred.dtype)
            return ((pred - torch.nan_to_num(y)).abs() * mask).sum() / mask.sum().clamp_min(1)
        return mae
    raise ValueError(f"loss: {name!r} is not mse or mae")


@torch.no_grad()
def predict(model, dataset, indices, device, batch_size=256, collate=default_collate):
    """(targets, predictions) as numpy arrays of ``model`` (put in eval mode) over
    ``dataset[indices]``, batches of ``(inputs, y)`` samples; two empty arrays for no indices."""
    model.eval()
    loader = DataLoader(Subset(dataset, list(indices)), batch_size=batch_size, shuffle=False,
                        collate_fn=collate)
    ys, ps = [], []
    for inputs, y in loader:
        ps.append(model(*to_device(inputs, device)).cpu())
        ys.append(y)
    if not ys:
        return np.zeros(0), np.zeros(0)
    return torch.cat(ys).numpy(), torch.cat(ps).numpy()


class Regression(Hooks):
    """Supervised regression on ``(inputs, y)`` samples: ``cfg.loss`` (masked MSE or MAE over
    the finite targets) of ``net(*inputs)``; validation MSE on ``eval_splits["val"]`` (no
    validation molecules: the training loss selects); rank 0 writes ``splits.json``
    (``eval_splits``) at the start.

    ``eval_dataset``/``eval_splits`` (default: the training ones) are used for validation and
    the final metrics, e.g. the equilibrium molecules when the training set draws augmented
    samples. ``finish=True``: MAE, RMSE, MRE, Pearson r, R² on every split (in the dataset's
    label units) and rank 0 writes ``model.pt``, ``metrics.json``, ``predictions.json``;
    ``finish=False``: return :meth:`TrainResult.metrics` only, for a caller that evaluates and
    saves in its own way.

    ``unit`` and ``label_scale`` (target units per label unit, e.g. the label standard
    deviation) turn the validation MAE of the progress line into the target's units
    (``val MAE=4.127 Bohr^3``); without them it is in the labels' own (training) units."""
    name = "train"

    def __init__(self, collate=default_collate, eval_dataset=None, eval_splits: dict | None = None,
                 finish: bool = True, unit: str = "", label_scale: float = 1.0):
        self.collate = collate
        self.eval_dataset, self.eval_splits, self.finish_run = eval_dataset, eval_splits, finish
        self.loss_fn, self._data, self._splits = None, None, None
        self.unit, self.label_scale, self.val_mae = unit, float(label_scale), None

    def on_start(self, loop: Loop) -> None:
        self.loss_fn = masked_loss(loop.cfg.loss)
        self._data = loop.dataset if self.eval_dataset is None else self.eval_dataset
        self._splits = loop.splits if self.eval_splits is None else self.eval_splits
        if loop.dd.is_main:
            (loop.run_dir / "splits.json").write_text(json.dumps(self._splits))

    def batch_loss(self, loop: Loop, batch, step: int) -> BatchLoss:
        inputs, y = batch
        return BatchLoss(self.loss_fn(loop.net(*to_device(inputs, loop.device)), y.to(loop.device)),
                         len(y))

    def validate(self, loop: Loop, train: dict) -> dict:
        yv, pv = predict(loop.model, self._data, self._splits["val"], loop.device,
                         collate=self.collate)
        self.val_mae = float(np.nanmean(np.abs(pv - yv))) if len(yv) else None
        return {"loss": float(np.nanmean((pv - yv) ** 2)) if len(yv) else train["loss"]}

    def progress_metric(self, loop: Loop, record: dict):
        if self.val_mae is None:
            return None
        return ("val MAE", self.val_mae * self.label_scale, self.unit or "(label units)")

    def finish(self, loop: Loop, result: TrainResult) -> dict:
        metrics = result.metrics()
        if not self.finish_run:
            return metrics
        preds = {}
        for split in ("train", "val", "test"):
            y, p = predict(loop.model, self._data, self._splits[split], loop.device,
                           collate=self.collate)
            metrics[split] = regression_metrics(y, p)
            preds[split] = {"y": y.tolist(), "pred": p.tolist()}
        if loop.dd.is_main:
            torch.save(loop.model.state_dict(), loop.run_dir / "model.pt")
            (loop.run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
            (loop.run_dir / "predictions.json").write_text(json.dumps(preds))
        return metrics
