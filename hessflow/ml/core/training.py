"""The one data-parallel training loop of hessflow, with hooks: property models, VAE, BP network.

:func:`train` runs the epochs; a :class:`Hooks` object says what one model family does in them::

    metrics = train(model_fn, dataset, splits, cfg, run_dir, hooks=Regression(), resume=False)

What the loop does, the same for every family:

- every rank builds ``model_fn()`` from ``torch.manual_seed(cfg.seed)``; DDP
  (:class:`~hessflow.ml.core.distributed.Distributed`, gloo on CPU, NCCL on GPU) keeps the
  weights identical;
- a seeded ``DistributedSampler`` (seed + epoch) splits each global batch of ``cfg.batch_size``
  across the ranks (per-rank batch B/W on W ranks: the update equals one rank's with batch B);
  at every epoch start torch's generator is re-seeded from (seed, epoch, rank), so noise,
  dropout, teacher forcing and the like are resumable;
- Adam (``cfg.lr``, ``cfg.weight_decay``), gradients clipped to norm ``cfg.grad_clip`` (0: not);
- per epoch: the mean of the batch terms over all ranks (``train_<term>``), the hooks'
  validation (``val_<term>``), one history record; the weights with the lowest validation
  loss so far are kept (the test split never takes part in training or selection);
- rank 0 writes ``run_dir/checkpoint.pt`` every epoch: model, optimiser and the training state
  (epoch, best validation loss, best epoch, best weights, history, seconds and samples trained,
  plus whatever the hooks put into ``loop.state``). ``resume=True`` continues from it and ends
  exactly where an uninterrupted run ends;
- early stopping after ``cfg.patience`` epochs without validation improvement;
- at the end the best weights are loaded into the model and ``hooks.finish`` evaluates and
  writes (rank 0 writes files; every rank takes part in collectives), then all ranks meet.

Hooks (override what differs; every method gets the :class:`Loop`):

- ``collate``: the DataLoader's collate function; ``parts``: names of the extra batch terms
  averaged per epoch besides ``loss``; ``name``: the progress bar's label;
- ``initial_state() -> dict``: extra entries of ``loop.state`` (checkpointed, restored);
- ``on_start(loop)``: after set-up and resume, before the first epoch (write the run's input
  files on ``loop.dd.is_main``);
- ``batch_loss(loop, batch, step) -> BatchLoss``: the forward pass through ``loop.net`` (the
  DDP-wrapped model) and the loss to back-propagate; ``step`` counts batches in the epoch
  (``loop.epoch + step / loop.steps`` is the fractional epoch, e.g. for KL annealing);
- ``validate(loop, train) -> dict``: validation terms (``"loss"`` selects the weights; an empty
  dict: the training loss selects); ``train`` holds this epoch's training means;
- ``record(loop, stats) -> dict``: the history record of an :class:`EpochStats`;
- ``on_epoch_end(loop, record)``: after the checkpoint (e.g. rank 0 writes history.json);
- ``progress_metric(loop, record) -> (label, value, unit) | None``: the validation metric of
  the per-epoch progress line (rank 0, stderr; on with ``cfg.progress`` or
  ``HESSFLOW_PROGRESS=1``, which the training commands set and ``-q``/``--no-progress`` clear);
- ``finish(loop, result) -> dict``: the final metrics, from a :class:`TrainResult`.

:class:`~hessflow.ml.core.regression.Regression` is the supervised family (property models;
BP with ``finish=False``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from torch.utils.data.distributed import DistributedSampler

from ...errors import HessflowError
from ...progress import EpochProgress, progress_from_env
from ...settings import meta
from .distributed import Distributed

__all__ = ["TrainConfig", "Loop", "BatchLoss", "EpochStats", "TrainResult", "Hooks", "train",
           "default_collate", "to_device", "distributed_loader", "resume_from", "end_epoch",
           "snapshot", "state_digest"]


@dataclasses.dataclass
class TrainConfig:
    """Settings of the loop itself (a model family keeps its own settings beside these)."""
    epochs: int = dataclasses.field(default=100, metadata=meta("epochs at most", minimum=0))
    batch_size: int = dataclasses.field(default=32, metadata=meta(
        "global batch (all ranks together; divisible by the ranks)", minimum=1))
    lr: float = dataclasses.field(default=1e-3, metadata=meta("Adam learning rate", minimum=0))
    weight_decay: float = dataclasses.field(default=0.0, metadata=meta("Adam weight decay", minimum=0))
    patience: int = dataclasses.field(default=20, metadata=meta(
        "epochs without validation improvement before stopping", minimum=1))
    seed: int = dataclasses.field(default=0, metadata=meta("seed of weights, sampler and noise"))
    device: str = dataclasses.field(default="auto", metadata=meta("auto | cpu | cuda"))
    loss: str = dataclasses.field(default="mse", metadata=meta(
        "regression loss over the real targets (Regression hooks)", choices=("mse", "mae")))
    progress: bool = dataclasses.field(default=False, metadata=meta("a progress bar on rank 0"))
    grad_clip: float = dataclasses.field(default=0.0, metadata=meta(
        "largest gradient norm (0: no clipping)", minimum=0))


# -- what the loop moves -------------------------------------------------------------------
def default_collate(batch):
    """Samples ``(inputs tuple, y)`` -> ``(tuple of stacked inputs, stacked y)``."""
    inputs = tuple(torch.stack([b[0][k] for b in batch]) for k in range(len(batch[0][0])))
    return inputs, torch.stack([torch.as_tensor(b[1]) for b in batch])


def to_device(tensors, device) -> tuple:
    """The tensors of a sequence, each moved to ``device``, as a tuple."""
    return tuple(t.to(device) for t in tensors)


# -- what the hooks see and return -----------------------------------------------------------
@dataclasses.dataclass
class Loop:
    """The running loop, handed to every hook.

    ``model``: the plain model (its weights are checkpointed and selected); ``net``: the same
    model DDP-wrapped (call it in ``batch_loss`` so that gradients are averaged over ranks);
    ``state``: the checkpointed training state (``epoch``, ``best_val``, ``best_epoch``,
    ``best_state``, ``history``, ``train_seconds``, ``train_samples`` and the hooks' entries);
    ``epoch``: the epoch being run; ``steps``: batches per epoch on this rank."""
    cfg: TrainConfig
    dd: Distributed
    run_dir: Path
    dataset: Any
    splits: dict
    model: nn.Module
    net: nn.Module
    optimizer: torch.optim.Optimizer
    state: dict
    steps: int = 0
    epoch: int = 0

    @property
    def device(self):
        return self.dd.device


@dataclasses.dataclass
class BatchLoss:
    """One batch: ``loss`` (a tensor, back-propagated), ``n`` samples (the weight of the batch
    in the epoch means) and ``parts``: the values of the hooks' extra terms (``Hooks.parts``)."""
    loss: torch.Tensor
    n: int
    parts: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class EpochStats:
    """One epoch: the training means over all ranks (``train``: ``loss`` and the hooks' parts),
    the validation terms (``val``), the samples trained on (all ranks) and the seconds the
    slowest rank spent in the training steps."""
    epoch: int
    train: dict
    val: dict
    samples: int
    seconds: float


@dataclasses.dataclass
class TrainResult:
    """The loop's outcome, for ``Hooks.finish`` (the best weights are loaded into the model).

    ``wall_seconds`` and ``samples_seen_rank`` (this rank's samples) cover this call only, from
    the first epoch to the last; ``train_seconds`` and ``train_samples`` (all ranks) count the
    training steps of every epoch, across resumes."""
    best_epoch: int
    best_val: float
    epochs_run: int
    ranks: int
    device: str
    history: list
    wall_seconds: float
    samples_seen_rank: int
    train_seconds: float
    train_samples: int

    def metrics(self) -> dict:
        """The common head of a run's metrics: best_epoch, epochs_run, ranks, device,
        train_samples_per_s_per_rank (this call: samples of this rank / wall seconds), history."""
        return {"best_epoch": self.best_epoch, "epochs_run": self.epochs_run,
                "ranks": self.ranks, "device": self.device,
                "train_samples_per_s_per_rank": (self.samples_seen_rank / self.wall_seconds
                                                 if self.wall_seconds > 0 else None),
                "history": self.history}


class Hooks:
    """What a model family does inside :func:`train` (see the module docstring). The defaults
    do nothing beyond the loop's own work; :meth:`batch_loss` must be given."""
    name: str = "train"
    parts: tuple = ()
    collate = staticmethod(default_collate)

    def initial_state(self) -> dict:
        return {}

    def on_start(self, loop: Loop) -> None:
        pass

    def batch_loss(self, loop: Loop, batch, step: int) -> BatchLoss:
        raise NotImplementedError

    def validate(self, loop: Loop, train: dict) -> dict:
        return {}

    def record(self, loop: Loop, stats: EpochStats) -> dict:
        return {"epoch": stats.epoch, **{f"train_{k}": v for k, v in stats.train.items()},
                **{f"val_{k}": v for k, v in stats.val.items()}}

    def on_epoch_end(self, loop: Loop, record: dict) -> None:
        pass

    def progress_metric(self, loop: Loop, record: dict):
        """``(label, value, unit)`` for the progress line: the validation loss, without a unit
        (a family whose loss has one overrides this; None: no validation)."""
        if "val_loss" not in record:
            return None
        return "val loss", float(record["val_loss"]), ""

    def finish(self, loop: Loop, result: TrainResult) -> dict:
        return result.metrics()


# -- the loop ----------------------------------------------------------------------------------
def train(model_fn: Callable[[], nn.Module], dataset, splits: dict, cfg: TrainConfig, run_dir,
          hooks: Hooks | None = None, resume: bool = False) -> dict:
    """Train ``model_fn()`` on ``dataset[splits["train"]]`` with DDP over however many ranks
    this process was launched with (see the module docstring); ``hooks`` (default
    :class:`Regression`) define the batch loss, validation, records and the final evaluation.
    ``run_dir``: where rank 0 writes the checkpoint and the hooks' files; ``resume``: continue
    from its ``checkpoint.pt`` if there is one. Returns ``hooks.finish``'s metrics."""
    if hooks is None:
        from .regression import Regression
        hooks = Regression()
    run_dir = Path(run_dir)
    with Distributed(cfg.device) as dd:
        if dd.world > 1 and cfg.batch_size % dd.world:
            raise HessflowError(f"batch_size: {cfg.batch_size} is not divisible by {dd.world} ranks")
        torch.manual_seed(cfg.seed)
        model = model_fn().to(dd.device)
        net = dd.wrap(model)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sampler, loader = distributed_loader(dataset, splits["train"], dd, cfg.batch_size,
                                             cfg.seed, hooks.collate)
        fresh = {"epoch": 0, "best_val": math.inf, "best_epoch": -1, "best_state": None,
                 "history": [], "train_seconds": 0.0, "train_samples": 0, **hooks.initial_state()}
        ckpt = run_dir / "checkpoint.pt"
        state = resume_from(ckpt, model, opt, dd.device, fresh) if resume else fresh
        for k, v in fresh.items():  # a checkpoint written before an entry existed
            state.setdefault(k, v)
        loop = Loop(cfg, dd, run_dir, dataset, splits, model, net, opt, state, len(loader),
                    state["epoch"])
        if dd.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
        hooks.on_start(loop)
        bar = None
        label = progress_from_env(cfg.progress, hooks.name) if dd.is_main else None
        if label:
            bar = EpochProgress(label, cfg.epochs)
        t_start = time.perf_counter()
        n_seen = 0
        while state["epoch"] < cfg.epochs:
            loop.epoch = epoch = state["epoch"]
            stats, rank_samples = _run_epoch(loop, hooks, sampler, loader)
            n_seen += rank_samples
            stats.val = hooks.validate(loop, stats.train)
            val_loss = stats.val.get("loss", stats.train["loss"])
            record = hooks.record(loop, stats)
            state["history"].append(record)
            end_epoch(state, val_loss, model, opt, ckpt, dd)
            hooks.on_epoch_end(loop, record)
            if bar:
                bar.epoch(epoch, stats.train["loss"], hooks.progress_metric(loop, record))
            if epoch - state["best_epoch"] >= cfg.patience:
                break
        elapsed = time.perf_counter() - t_start
        if state["best_state"] is None:  # every validation loss was NaN or infinite
            raise HessflowError(f"{hooks.name}: the validation loss was never finite in "
                                f"{state['epoch']} epoch(s) (NaN labels, or a validation set the "
                                "model cannot predict); no weights to keep")
        model.load_state_dict(state["best_state"])
        result = TrainResult(state["best_epoch"], state["best_val"], state["epoch"], dd.world,
                             str(dd.device), state["history"], elapsed, n_seen,
                             state["train_seconds"], state["train_samples"])
        metrics = hooks.finish(loop, result)
        dd.barrier()
        return metrics


def _run_epoch(loop: Loop, hooks: Hooks, sampler, loader) -> tuple[EpochStats, int]:
    """The training steps of ``loop.epoch``: its statistics over all ranks (``val`` still
    empty) and this rank's samples. Adds to the state's seconds and samples."""
    cfg, dd, state = loop.cfg, loop.dd, loop.state
    loop.net.train()
    sampler.set_epoch(loop.epoch)
    torch.manual_seed(cfg.seed * 100003 + loop.epoch * 1009 + dd.rank)  # noise, dropout: resumable
    sums = [0.0] * (1 + len(hooks.parts))  # loss and parts, times samples
    count = 0
    t0 = time.perf_counter()
    for step, batch in enumerate(loader):
        loop.optimizer.zero_grad()
        out = hooks.batch_loss(loop, batch, step)
        out.loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(loop.net.parameters(), cfg.grad_clip)
        loop.optimizer.step()
        sums[0] += float(out.loss.detach()) * out.n
        for j, k in enumerate(hooks.parts):
            sums[j + 1] += float(out.parts[k]) * out.n
        count += out.n
    elapsed = time.perf_counter() - t0
    tot = dd.allreduce(sums + [count])
    elapsed = max(dd.allreduce([elapsed], op="max")[0], 1e-9)
    state["train_seconds"] += elapsed
    state["train_samples"] += int(tot[-1])
    m = max(tot[-1], 1)
    train = {k: v / m for k, v in zip(("loss", *hooks.parts), tot)}
    return EpochStats(loop.epoch, train, {}, int(tot[-1]), elapsed), count


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
    (epoch, best so far, history, ...), else ``state``."""
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
    """A SHA-256 hash of the weights, to compare ranks or runs."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().numpy().tobytes())
    return h.hexdigest()
