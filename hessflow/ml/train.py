"""Data-parallel training with ``torch.distributed`` (DDP), seeded and resumable.

- every rank builds the model from the same seed; DDP keeps the weights identical;
- a ``DistributedSampler`` (seed + epoch) splits each global batch across ranks: with per-rank
  batch B/W on W ranks the update equals that of one rank with batch B;
- model selection (early stopping) uses the validation split only; the test split is evaluated
  once, with the selected weights;
- rank 0 writes ``checkpoint.pt`` every epoch (model, optimiser, epoch, best state, history);
  ``resume=True`` continues from it and ends exactly where an uninterrupted run ends;
- metrics (MAE, RMSE, MRE, Pearson r, R²) on every split go to ``metrics.json``, the splits to
  ``splits.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from torch.utils.data.distributed import DistributedSampler

from .distributed import Distributed
from .metrics import regression_metrics


@dataclasses.dataclass
class TrainConfig:
    epochs: int = 100
    batch_size: int = 32          # global batch (all ranks together)
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 20            # epochs without validation improvement before stopping
    seed: int = 0
    device: str = "auto"
    loss: str = "mse"             # mse | mae
    progress: bool = False


# -- splits ----------------------------------------------------------------------------------
def random_split(n: int, val: float = 0.1, test: float = 0.1, seed: int = 0) -> dict:
    perm = np.random.default_rng(seed).permutation(n)
    n_test, n_val = int(round(test * n)), int(round(val * n))
    return {"test": perm[:n_test].tolist(), "val": perm[n_test:n_test + n_val].tolist(),
            "train": perm[n_test + n_val:].tolist()}


def kfold_splits(n: int, k: int = 10, val: float = 0.1, seed: int = 0) -> list[dict]:
    """k folds: fold i tests on the i-th part; a validation part is drawn from the rest."""
    if not 2 <= k <= n:
        raise ValueError(f"k: {k} folds need 2 <= k <= {n} samples")
    perm = np.random.default_rng(seed).permutation(n)
    parts = np.array_split(perm, k)
    out = []
    for i in range(k):
        rest = np.concatenate([p for j, p in enumerate(parts) if j != i])
        n_val = max(1, int(round(val * len(rest))))
        out.append({"test": parts[i].tolist(), "val": rest[:n_val].tolist(),
                    "train": rest[n_val:].tolist()})
    return out


# -- data ------------------------------------------------------------------------------------
class ArrayDataset(Dataset):
    def __init__(self, x, y):
        self.x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        self.y = torch.as_tensor(np.asarray(y), dtype=torch.float32)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return (self.x[i],), self.y[i]


def default_collate(batch):
    inputs = tuple(torch.stack([b[0][k] for b in batch]) for k in range(len(batch[0][0])))
    return inputs, torch.stack([torch.as_tensor(b[1]) for b in batch])


# -- training --------------------------------------------------------------------------------
def _loss_fn(name):
    """Mean squared / absolute error over the real (finite) targets: a set-valued target padded
    with NaN (the frequencies) trains a masked multi-output head; scalar targets are all real.
    (With several ranks each rank averages over its own real entries before DDP averages the
    gradients.)"""
    from .models import masked_mse
    if name == "mse":
        return lambda pred, y: masked_mse(pred, torch.nan_to_num(y), torch.isfinite(y))
    if name == "mae":
        def mae(pred, y):
            mask = torch.isfinite(y).to(pred.dtype)
            return ((pred - torch.nan_to_num(y)).abs() * mask).sum() / mask.sum().clamp_min(1)
        return mae
    raise ValueError(f"loss: {name!r} is not mse or mae")


def _to(inputs, device):
    return tuple(t.to(device) for t in inputs)


@torch.no_grad()
def predict(model, dataset, indices, device, batch_size=256, collate=default_collate):
    model.eval()
    loader = DataLoader(Subset(dataset, list(indices)), batch_size=batch_size, shuffle=False,
                        collate_fn=collate)
    ys, ps = [], []
    for inputs, y in loader:
        ps.append(model(*_to(inputs, device)).cpu())
        ys.append(y)
    if not ys:
        return np.zeros(0), np.zeros(0)
    return torch.cat(ys).numpy(), torch.cat(ps).numpy()


def train(model_fn: Callable[[], nn.Module], dataset, splits: dict, cfg: TrainConfig,
          run_dir, resume: bool = False, collate=default_collate, eval_dataset=None,
          eval_splits: dict | None = None, finish: bool = True) -> dict:
    """Train ``model_fn()`` on ``dataset[splits['train']]`` with DDP over however many ranks this
    process was launched with. Returns the metrics (also written by rank 0 to ``run_dir``).

    ``eval_dataset``/``eval_splits`` (default: the training ones) are used for validation and for
    the final metrics, e.g. the equilibrium molecules when ``dataset`` draws augmented samples.
    ``finish=False``: return once the best epoch's weights are loaded into the model, without
    the final metrics and files (``model.pt``, ``metrics.json``, ``predictions.json``), for a
    caller that evaluates and saves in its own way."""
    run_dir = Path(run_dir)
    eval_dataset = eval_dataset if eval_dataset is not None else dataset
    eval_splits = eval_splits if eval_splits is not None else splits
    with Distributed(cfg.device) as dd:
        if dd.world > 1 and cfg.batch_size % dd.world:
            raise ValueError(f"batch_size: {cfg.batch_size} is not divisible by {dd.world} ranks")
        torch.manual_seed(cfg.seed)
        model = model_fn().to(dd.device)
        ddp = dd.wrap(model)
        opt = torch.optim.Adam(ddp.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        loss_fn = _loss_fn(cfg.loss)
        sampler, loader = distributed_loader(dataset, splits["train"], dd, cfg.batch_size,
                                             cfg.seed, collate)
        state = {"epoch": 0, "best_val": math.inf, "best_epoch": -1, "best_state": None,
                 "history": []}
        ckpt = run_dir / "checkpoint.pt"
        if resume:
            state = resume_from(ckpt, model, opt, dd.device, state)
        if dd.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "splits.json").write_text(json.dumps(eval_splits))
        t_start = time.perf_counter()
        n_seen = 0
        while state["epoch"] < cfg.epochs:
            epoch = state["epoch"]
            ddp.train()
            sampler.set_epoch(epoch)
            torch.manual_seed(cfg.seed * 100003 + epoch * 1009 + dd.rank)  # noise, dropout: resumable
            total, count = 0.0, 0
            for inputs, y in loader:
                opt.zero_grad()
                loss = loss_fn(ddp(*_to(inputs, dd.device)), y.to(dd.device))
                loss.backward()
                opt.step()
                total += loss.item() * len(y)
                count += len(y)
            n_seen += count
            total, count = dd.allreduce([total, count])
            train_loss = total / max(count, 1)
            yv, pv = predict(model, eval_dataset, eval_splits["val"], dd.device, collate=collate)
            val_loss = float(np.nanmean((pv - yv) ** 2)) if len(yv) else train_loss
            state["history"].append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
            end_epoch(state, val_loss, model, opt, ckpt, dd)
            if epoch - state["best_epoch"] >= cfg.patience:
                break
        elapsed = time.perf_counter() - t_start
        model.load_state_dict(state["best_state"])
        metrics = {"best_epoch": state["best_epoch"], "epochs_run": state["epoch"],
                   "ranks": dd.world, "device": str(dd.device),
                   "train_samples_per_s_per_rank": n_seen / elapsed if elapsed > 0 else None,
                   "history": state["history"]}
        if not finish:
            dd.barrier()
            return metrics
        preds = {}
        for split in ("train", "val", "test"):
            y, p = predict(model, eval_dataset, eval_splits[split], dd.device, collate=collate)
            metrics[split] = regression_metrics(y, p)
            preds[split] = {"y": y.tolist(), "pred": p.tolist()}
        if dd.is_main:
            torch.save(model.state_dict(), run_dir / "model.pt")
            (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
            (run_dir / "predictions.json").write_text(json.dumps(preds))
        dd.barrier()
        return metrics


def distributed_loader(dataset, indices, dd, global_batch: int, seed: int, collate):
    """(sampler, loader) over ``dataset[indices]``: a seeded ``DistributedSampler`` hands each
    of the ``dd.world`` ranks its share of every global batch of ``global_batch``."""
    train_set = Subset(dataset, list(indices))
    sampler = DistributedSampler(train_set, num_replicas=dd.world, rank=dd.rank, shuffle=True,
                                 seed=seed, drop_last=False)
    return sampler, DataLoader(train_set, batch_size=global_batch // dd.world, sampler=sampler,
                               collate_fn=collate)


def resume_from(ckpt: Path, model, opt, device, state: dict) -> dict:
    """Load model and optimiser from a rank-0 checkpoint if there is one; its training state
    (epoch, best so far, history), else ``state``."""
    if not Path(ckpt).exists():
        return state
    saved = torch.load(ckpt, map_location=device, weights_only=False)
    model.load_state_dict(saved["model"])
    opt.load_state_dict(saved["optimizer"])
    return saved["state"]


def end_epoch(state: dict, val_loss: float, model, opt, ckpt: Path, dd) -> None:
    """Close epoch ``state["epoch"]``: keep the weights if ``val_loss`` is the best so far,
    advance the epoch, and (rank 0) checkpoint model, optimiser and state for ``resume``."""
    epoch = state["epoch"]
    if val_loss < state["best_val"]:
        state.update(best_val=val_loss, best_epoch=epoch, best_state=snapshot(model))
    state["epoch"] = epoch + 1
    if dd.is_main:
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "state": state},
                   ckpt)


def snapshot(model: nn.Module) -> dict:
    """A CPU copy of the weights (the best epoch so far)."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def state_digest(model: nn.Module) -> str:
    """A hash of the weights, to compare ranks or runs."""
    import hashlib
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().numpy().tobytes())
    return h.hexdigest()
