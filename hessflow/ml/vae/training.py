"""Training of the SMILES VAE (:func:`train_vae`): data-parallel, seeded, resumable.

Training is data-parallel exactly like :mod:`hessflow.ml.train` (:class:`Distributed`, a seeded
``DistributedSampler``, DDP, rank 0 writes ``checkpoint.pt`` every epoch, ``resume=True``
continues). The KL weight is annealed from 0 to ``kl_weight`` over ``warmup_epochs``
(:func:`~hessflow.ml.vae.config.kl_weight_at`), evaluated at every step (fractional epoch), so a
resumed run anneals exactly like an uninterrupted one. The weights selected are those with the
lowest validation objective (final KL weight, z = μ, no free bits); the test split is used only
for the final metrics (:func:`~hessflow.ml.vae.metrics.evaluate`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from ...errors import HessflowError
from ..distributed import Distributed
from ..train import _to, distributed_loader, end_epoch, resume_from, state_digest
from .config import VAEConfig, kl_weight_at
from .data import SmilesDataset, collate
from .loss import vae_loss
from .metrics import evaluate
from .model import SmilesVAE
from .tokens import Vocab
from .trained import VAERun, write_molecules


def _split(n: int, cfg: VAEConfig) -> dict:
    from ..train import random_split
    return random_split(n, cfg.val, cfg.test, cfg.seed)


@torch.no_grad()
def _objective(model, dataset, indices, device, cfg: VAEConfig) -> dict:
    """Validation objective with z = μ and the final β (no free bits), per molecule."""
    model.eval()
    if not len(indices):
        return {}
    loader = DataLoader(Subset(dataset, list(indices)), batch_size=512, collate_fn=collate)
    tot = {"loss": 0.0, "recon": 0.0, "kl": 0.0, "prop": 0.0}
    n = 0
    for ids, lengths, y in loader:
        ids, lengths, y = _to((ids, lengths, y), device)
        logits, mu, logvar, p = model(ids, lengths, sample=False)
        loss, ce, kl, prop = vae_loss(logits, ids, mu, logvar, p, y, cfg.kl_weight, 0.0,
                                        cfg.prop_weight)
        for k, v in zip(tot, (loss, ce, kl, prop)):
            tot[k] += float(v) * len(ids)
        n += len(ids)
    return {k: v / n for k, v in tot.items()}


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
            splits = _split(n, cfg)
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

    with Distributed(cfg.device) as dd:
        if dd.world > 1 and cfg.batch_size % dd.world:
            raise HessflowError(f"batch_size: {cfg.batch_size} is not divisible by {dd.world} ranks")
        torch.manual_seed(cfg.seed)
        model = SmilesVAE(**config["model"]).to(dd.device)
        ddp = dd.wrap(model)
        opt = torch.optim.Adam(ddp.parameters(), lr=cfg.lr)
        sampler, loader = distributed_loader(dataset, splits["train"], dd, cfg.batch_size,
                                             cfg.seed, collate)
        state = {"epoch": 0, "best_val": math.inf, "best_epoch": -1, "best_state": None,
                 "history": [], "train_seconds": 0.0, "train_molecules": 0}
        ckpt = run_dir / "checkpoint.pt"
        if resume:
            state = resume_from(ckpt, model, opt, dd.device, state)
        if dd.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            vocab.save(run_dir / "vocab.json")
            (run_dir / "config.json").write_text(json.dumps(config, indent=1))
            (run_dir / "splits.json").write_text(json.dumps(splits))
            write_molecules(run_dir / "molecules.csv", names, smiles, y, properties, splits)
        bar = None
        if cfg.progress and dd.is_main:
            from tqdm import tqdm
            bar = tqdm(total=cfg.epochs, initial=state["epoch"], desc="vae", unit="epoch",
                       file=sys.stderr)
        steps = len(loader)
        while state["epoch"] < cfg.epochs:
            epoch = state["epoch"]
            ddp.train()
            sampler.set_epoch(epoch)
            torch.manual_seed(cfg.seed * 100003 + epoch * 1009 + dd.rank)  # ε, teacher forcing
            sums = [0.0, 0.0, 0.0, 0.0, 0.0]  # loss, recon, kl, prop (× molecules), molecules
            t0 = time.perf_counter()
            for step, (ids, lengths, yb) in enumerate(loader):
                ids, lengths, yb = _to((ids, lengths, yb), dd.device)
                kl_weight = kl_weight_at(cfg, epoch + step / steps)
                opt.zero_grad()
                logits, mu, logvar, p = ddp(ids, lengths, cfg.teacher_forcing)
                loss, ce, kl, prop = vae_loss(logits, ids, mu, logvar, p, yb, kl_weight, cfg.free_bits,
                                              cfg.prop_weight)
                loss.backward()
                if cfg.grad_clip > 0:
                    nn.utils.clip_grad_norm_(ddp.parameters(), cfg.grad_clip)
                opt.step()
                for k, v in enumerate((loss, ce, kl, prop)):
                    sums[k] += float(v.detach()) * len(ids)
                sums[4] += len(ids)
            elapsed = time.perf_counter() - t0
            tot = dd.allreduce(sums)
            elapsed = max(dd.allreduce([elapsed], op="max")[0], 1e-9)
            state["train_seconds"] += elapsed
            state["train_molecules"] += int(tot[4])
            m = max(tot[4], 1)
            rec = {"epoch": epoch, "kl_weight": kl_weight_at(cfg, epoch + 1), "train_loss": tot[0] / m,
                   "train_recon": tot[1] / m, "train_kl": tot[2] / m, "train_prop": tot[3] / m,
                   "molecules_per_s": tot[4] / elapsed}
            val = _objective(model, dataset, splits["val"], dd.device, cfg)
            rec.update({f"val_{k}": v for k, v in val.items()})
            state["history"].append(rec)
            val_loss = val.get("loss", rec["train_loss"])
            end_epoch(state, val_loss, model, opt, ckpt, dd)
            if dd.is_main:
                (run_dir / "history.json").write_text(json.dumps(state["history"], indent=1))
            if bar:
                bar.update()
                bar.set_postfix(loss=f"{rec['train_loss']:.3g}", val=f"{val_loss:.3g}")
            if epoch - state["best_epoch"] >= cfg.patience:
                break
        if bar:
            bar.close()
        model.load_state_dict(state["best_state"])
        digests = dd.gather(state_digest(model))
        metrics = {"best_epoch": state["best_epoch"], "epochs_run": state["epoch"],
                   "ranks": dd.world, "device": str(dd.device), "rank_digests": digests,
                   "train_molecules_per_s": (state["train_molecules"] / state["train_seconds"]
                                             if state["train_seconds"] > 0 else None),
                   "properties": properties, "n_molecules": n,
                   "split_sizes": {k: len(v) for k, v in splits.items()}}
        if dd.is_main:
            torch.save(model.state_dict(), run_dir / "model.pt")
            run = VAERun(model, vocab, config, run_dir, smiles, y, splits)
            metrics.update(evaluate(run, cfg))
            metrics["history"] = state["history"]
            (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
        dd.barrier()
        return metrics
