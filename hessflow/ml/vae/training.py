"""Training of the SMILES VAE (:func:`train_vae`) on the one training loop of
:mod:`hessflow.ml.core.training` (DDP, seeded sampler, rank-0 checkpoint every epoch, resumable).

What the VAE adds through its :class:`VAEHooks`: the batch loss of
:func:`~hessflow.ml.vae.loss.vae_loss` with teacher forcing (``teacher_forcing`` < 1: the model's
own previous token with probability 1 − ratio, drawn from the loop's per-epoch seeded generator)
and the KL weight annealed from 0 to ``kl_weight`` over ``warmup_epochs``
(:func:`~hessflow.ml.vae.config.kl_weight_at`), evaluated at every step (fractional epoch), so a
resumed run anneals exactly like an uninterrupted one. The weights selected are those with the
lowest validation objective (final KL weight, z = μ, no free bits); the test split is used only
for the final metrics (:func:`~hessflow.ml.vae.metrics.evaluate`). Rank 0 writes the run
directory (:mod:`hessflow.ml.vae.trained`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from ...errors import HessflowError
from ..core.splits import random_split
from ..core.training import (BatchLoss, EpochStats, Hooks, Loop, TrainConfig, TrainResult,
                             state_digest, to_device, train)
from .config import VAEConfig, kl_weight_at
from .data import SmilesDataset, collate
from .loss import vae_loss
from .metrics import evaluate
from .model import SmilesVAE
from .tokens import Vocab
from .trained import VAERun, write_molecules


@torch.no_grad()
def validation_objective(model, dataset, indices, device, cfg: VAEConfig) -> dict:
    """Validation objective with z = μ and the final KL weight (no free bits), per molecule:
    ``{loss, recon, kl, prop}`` over ``dataset[indices]`` ({} for no indices)."""
    model.eval()
    if not len(indices):
        return {}
    loader = DataLoader(Subset(dataset, list(indices)), batch_size=512, collate_fn=collate)
    tot = {"loss": 0.0, "recon": 0.0, "kl": 0.0, "prop": 0.0}
    n = 0
    for batch in loader:
        ids, lengths, y = to_device(batch, device)
        logits, mu, logvar, p = model(ids, lengths, sample=False)
        loss, ce, kl, prop = vae_loss(logits, ids, mu, logvar, p, y, cfg.kl_weight, 0.0,
                                      cfg.prop_weight)
        for k, v in zip(tot, (loss, ce, kl, prop)):
            tot[k] += float(v) * len(ids)
        n += len(ids)
    return {k: v / n for k, v in tot.items()}


class VAEHooks(Hooks):
    """The SMILES VAE inside the training loop (see the module docstring)."""

    name, parts = "vae", ("recon", "kl", "prop")
    collate = staticmethod(collate)

    def __init__(self, cfg: VAEConfig, vocab: Vocab, config: dict, names: Sequence[str],
                 smiles: Sequence[str], y: np.ndarray):
        """``config``: what config.json holds; ``y`` (n, P): the properties in their units."""
        self.cfg, self.vocab, self.config = cfg, vocab, config
        self.names, self.smiles, self.y = list(names), list(smiles), y

    def on_start(self, loop: Loop) -> None:
        """Rank 0: vocab.json, config.json, splits.json and molecules.csv."""
        if loop.dd.is_main:
            self.vocab.save(loop.run_dir / "vocab.json")
            (loop.run_dir / "config.json").write_text(json.dumps(self.config, indent=1))
            (loop.run_dir / "splits.json").write_text(json.dumps(loop.splits))
            write_molecules(loop.run_dir / "molecules.csv", self.names, self.smiles, self.y,
                            self.config["properties"], loop.splits)

    def batch_loss(self, loop: Loop, batch, step: int) -> BatchLoss:
        ids, lengths, yb = to_device(batch, loop.device)
        kl_weight = kl_weight_at(self.cfg, loop.epoch + step / loop.steps)
        logits, mu, logvar, p = loop.net(ids, lengths, self.cfg.teacher_forcing)
        loss, ce, kl, prop = vae_loss(logits, ids, mu, logvar, p, yb, kl_weight,
                                      self.cfg.free_bits, self.cfg.prop_weight)
        return BatchLoss(loss, len(ids), {"recon": ce.detach(), "kl": kl.detach(),
                                          "prop": prop.detach()})

    def validate(self, loop: Loop, train: dict) -> dict:
        return validation_objective(loop.model, loop.dataset, loop.splits["val"], loop.device,
                                    self.cfg)

    def record(self, loop: Loop, stats: EpochStats) -> dict:
        t = stats.train
        return {"epoch": stats.epoch, "kl_weight": kl_weight_at(self.cfg, stats.epoch + 1),
                "train_loss": t["loss"], "train_recon": t["recon"], "train_kl": t["kl"],
                "train_prop": t["prop"], "molecules_per_s": stats.samples / stats.seconds,
                **{f"val_{k}": v for k, v in stats.val.items()}}

    def progress_metric(self, loop: Loop, record: dict):
        """The validation reconstruction loss (token cross-entropy per molecule)."""
        if "val_recon" not in record:
            return None
        return "val recon", float(record["val_recon"]), "nats/molecule"

    def on_epoch_end(self, loop: Loop, record: dict) -> None:
        if loop.dd.is_main:
            (loop.run_dir / "history.json").write_text(json.dumps(loop.state["history"], indent=1))

    def finish(self, loop: Loop, result: TrainResult) -> dict:
        """The metrics (every rank); rank 0 writes model.pt and metrics.json."""
        digests = loop.dd.gather(state_digest(loop.model))
        metrics = {"best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
                   "ranks": result.ranks, "device": result.device, "rank_digests": digests,
                   "train_molecules_per_s": (result.train_samples / result.train_seconds
                                             if result.train_seconds > 0 else None),
                   "properties": self.config["properties"], "n_molecules": len(self.smiles),
                   "split_sizes": {k: len(v) for k, v in loop.splits.items()}}
        if loop.dd.is_main:
            torch.save(loop.model.state_dict(), loop.run_dir / "model.pt")
            run = VAERun(loop.model, self.vocab, self.config, loop.run_dir, self.smiles, self.y,
                         loop.splits)
            metrics.update(evaluate(run, self.cfg))
            metrics["history"] = result.history
            (loop.run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
        return metrics


def train_vae(smiles: Sequence[str], y, properties: Sequence[str], cfg: VAEConfig, run_dir,
              resume: bool = False, splits: dict | None = None, names: Sequence[str] | None = None,
              source: str = "") -> dict:
    """Train the VAE on ``smiles`` (and properties ``y`` (n, P) named ``properties``) with DDP
    over however many ranks this process was launched with; returns the metrics (rank 0 writes
    the run directory). ``splits`` (train/val/test indices) default to a seeded random split."""
    cfg.check()
    run_dir = Path(run_dir)
    smiles = list(smiles)
    n = len(smiles)
    properties = list(properties)
    y = np.zeros((n, 0)) if y is None else np.asarray(y, float).reshape(n, len(properties))
    names = list(names) if names is not None else [f"mol{i}" for i in range(n)]
    if splits is None:
        if resume and (run_dir / "splits.json").exists():
            splits = {k: v for k, v in json.loads((run_dir / "splits.json").read_text()).items()
                      if k in ("train", "val", "test")}
        else:
            splits = random_split(n, cfg.val, cfg.test, cfg.seed)
    if not splits["train"]:
        raise HessflowError(f"{source or 'data'}: {n} molecules leave no training split")
    # the vocabulary of every molecule (tokens carry no labels; the held-out molecules must be
    # encodable to measure their reconstruction); a resumed run keeps the saved one
    if resume and (run_dir / "vocab.json").exists():
        vocab = Vocab.load(run_dir / "vocab.json")
    else:
        vocab = Vocab.build(smiles)
    tr = np.asarray(splits["train"], int)
    mean = y[tr].mean(0) if len(properties) else np.zeros(0)
    sd = y[tr].std(0) if len(properties) else np.zeros(0)
    sd = np.where(sd > 0, sd, 1.0)
    dataset = SmilesDataset(smiles, vocab, (y - mean) / sd)
    max_len = int(dataset.lengths.max())
    config = {"model": {"vocab_size": len(vocab), "n_props": len(properties), **cfg.model_kwargs()},
              "train": dataclasses.asdict(cfg), "properties": properties,
              "prop_mean": mean.tolist(), "prop_std": sd.tolist(), "max_len": max_len,
              "n_molecules": n, "source": str(source)}

    model_kwargs = config["model"]
    loop_cfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                           patience=cfg.patience, seed=cfg.seed, device=cfg.device,
                           progress=cfg.progress, grad_clip=cfg.grad_clip)
    return train(lambda: SmilesVAE(**model_kwargs), dataset, splits, loop_cfg, run_dir,
                 VAEHooks(cfg, vocab, config, names, smiles, y), resume=resume)
