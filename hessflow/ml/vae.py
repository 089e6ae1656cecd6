"""SMILES variational autoencoder with a property predictor on the latent space (inverse design).

Model (:class:`SmilesVAE`), sizes configurable in :class:`VAEConfig`:

- a token embedding (48) shared by encoder and decoder;
- encoder: GRU (2 layers × 512) over ``<bos> tokens <eos>`` (packed, pads never seen); the final
  hidden states of all layers give the posterior mean μ and log-variance (latent 56);
- reparameterisation z = μ + σ·ε while training; μ itself when encoding for evaluation;
- decoder: z -> initial hidden state of a GRU (2 × 512) whose input at every step is the
  previous token's embedding concatenated with z; a linear layer gives token logits. Training
  uses teacher forcing; ``teacher_forcing < 1`` feeds, per molecule and step, the model's own
  previous argmax token instead with probability ``1 - teacher_forcing``. Generation is greedy
  (argmax) or sampled (softmax with a temperature), batched, until ``<eos>`` or the maximum length;
- property predictor on μ: hidden layers (28, 14), ReLU, -> one output per property, trained on
  properties standardised with the training split's mean and standard deviation.

Loss per molecule, averaged over the batch::

    token cross-entropy summed over the molecule's tokens (pads ignored)
    + β(epoch) · Σ_d max(KL_d, free_bits)          (KL_d: batch-mean KL of latent dimension d)
    + prop_weight · mean squared error of the standardised properties

β is annealed from 0 to ``beta`` over ``warmup_epochs`` (``anneal``: ``sigmoid``, ``linear`` or
``none``), evaluated at every step (fractional epoch), so a resumed run anneals exactly like an
uninterrupted one. ``free_bits`` (nats per dimension) stops the optimiser from pushing a
dimension's KL below that, against posterior collapse.

Training is data-parallel exactly like :mod:`hessflow.ml.train` (:class:`Distributed`, a seeded
``DistributedSampler``, DDP, rank 0 writes ``checkpoint.pt`` every epoch, ``resume=True``
continues). The weights selected are those with the lowest validation objective (β = ``beta``,
z = μ); the test split is used only for the final metrics.

Metrics (``metrics.json``):

- reconstruction: greedy decoding of μ of the held-out test molecules; a molecule counts when the
  decoded string parses and its canonical SMILES equals the input's;
- prior samples (z ~ N(0, I), greedy): validity (fraction RDKit parses), uniqueness (distinct
  canonical SMILES among the valid), novelty (fraction of the distinct valid ones not in the
  training split);
- predictor: MAE, RMSE, MRE, Pearson r and R² per property on every split, in the property's units.

Operations on a finished run (:func:`load_run`): :func:`sample_prior`, :func:`sample_near_target`,
:func:`interpolate`, :func:`latent_pca_plot`.

Run directory: ``model.pt`` (weights), ``vocab.json``, ``config.json`` (model and training
settings, properties, standardisation), ``splits.json``, ``molecules.csv`` (the data: SMILES and
properties), ``history.json``, ``metrics.json``, ``latent_pca.png``, ``checkpoint.pt``.

Run on every rank: ``mpiexec -n 2 python -m hessflow.ml.vae SPEC.json`` (``hessflow vae train``
writes the spec and launches it).
"""

from __future__ import annotations

import csv
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
from torch.nn.utils.rnn import pack_padded_sequence
from torch.utils.data import DataLoader, Dataset, Subset

from ..errors import HessflowError
from .distributed import Distributed
from .train import _to, distributed_loader, end_epoch, resume_from, state_digest
from .metrics import regression_metrics
from .smiles import BOS_ID, EOS_ID, PAD_ID, Vocab


@dataclasses.dataclass
class VAEConfig:
    # model
    embed: int = 48
    hidden: int = 512
    layers: int = 2
    latent: int = 56
    predictor: tuple = (28, 14)
    # training
    epochs: int = 50
    batch_size: int = 128          # global batch (all ranks together)
    lr: float = 1e-3
    beta: float = 0.1              # final KL weight (1.0 collapsed the posterior in short runs)
    anneal: str = "sigmoid"        # sigmoid | linear | none
    warmup_epochs: float = 10.0    # epochs over which β rises from 0 to beta
    free_bits: float = 0.0         # nats per latent dimension not penalised
    prop_weight: float = 5.0
    teacher_forcing: float = 1.0   # probability of feeding the true previous token
    grad_clip: float = 5.0         # max gradient norm (0: none)
    patience: int = 1000           # epochs without validation improvement before stopping
    seed: int = 0
    device: str = "auto"
    val: float = 0.1
    test: float = 0.1
    # evaluation
    n_prior: int = 1000            # prior samples for validity / uniqueness / novelty
    n_recon: int | None = None     # test molecules decoded for reconstruction (None: all)
    progress: bool = False

    def check(self):
        """One-line errors for settings that cannot work."""
        for f in ("embed", "hidden", "layers", "latent", "epochs", "batch_size"):
            if int(getattr(self, f)) < 1:
                raise HessflowError(f"{f}: must be >= 1, got {getattr(self, f)}")
        if self.anneal not in ("sigmoid", "linear", "none"):
            raise HessflowError(f"anneal: {self.anneal!r} is not sigmoid, linear or none")
        if not 0.0 <= self.teacher_forcing <= 1.0:
            raise HessflowError(f"teacher_forcing: {self.teacher_forcing} is not in [0, 1]")
        for f in ("beta", "free_bits", "prop_weight", "lr", "warmup_epochs"):
            if float(getattr(self, f)) < 0:
                raise HessflowError(f"{f}: must be >= 0, got {getattr(self, f)}")
        if any(int(h) < 1 for h in self.predictor):
            raise HessflowError(f"predictor: hidden widths must be >= 1, got {list(self.predictor)}")
        return self

    def model_kwargs(self) -> dict:
        return {"embed": int(self.embed), "hidden": int(self.hidden), "layers": int(self.layers),
                "latent": int(self.latent), "predictor": tuple(int(h) for h in self.predictor)}


def beta_at(cfg: VAEConfig, epoch: float) -> float:
    """The KL weight at (fractional) ``epoch``."""
    if cfg.anneal == "none" or cfg.warmup_epochs <= 0:
        return float(cfg.beta)
    if cfg.anneal == "linear":
        return float(cfg.beta) * min(1.0, epoch / cfg.warmup_epochs)
    # sigmoid: midpoint at warmup/2, 0.7 % of beta at 0 and 99.3 % at warmup_epochs
    k = 10.0 / cfg.warmup_epochs
    return float(cfg.beta) / (1.0 + math.exp(-k * (epoch - cfg.warmup_epochs / 2)))


# -- model -----------------------------------------------------------------------------------
class SmilesVAE(nn.Module):
    """GRU encoder/decoder over SMILES tokens with a property predictor on the latent mean."""

    def __init__(self, vocab_size: int, n_props: int = 0, embed: int = 48, hidden: int = 512,
                 layers: int = 2, latent: int = 56, predictor: Sequence[int] = (28, 14)):
        super().__init__()
        self.vocab_size, self.n_props = int(vocab_size), int(n_props)
        self.hidden, self.layers, self.latent = int(hidden), int(layers), int(latent)
        self.emb = nn.Embedding(vocab_size, embed, padding_idx=PAD_ID)
        self.encoder = nn.GRU(embed, hidden, layers, batch_first=True)
        self.to_mu = nn.Linear(hidden * layers, latent)
        self.to_logvar = nn.Linear(hidden * layers, latent)
        self.z_to_h = nn.Linear(latent, hidden * layers)
        self.decoder = nn.GRU(embed + latent, hidden, layers, batch_first=True)
        self.out = nn.Linear(hidden, vocab_size)
        self.predictor = None
        if n_props:
            mods, width = [], latent
            for h in predictor:
                mods += [nn.Linear(width, int(h)), nn.ReLU()]
                width = int(h)
            mods.append(nn.Linear(width, n_props))
            self.predictor = nn.Sequential(*mods)

    # encoder
    def encode(self, ids, lengths):
        """(μ, log σ²) of ``ids`` (B, T) padded, with ``lengths`` (B,) ids each."""
        packed = pack_padded_sequence(self.emb(ids), lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        _, h = self.encoder(packed)                   # (layers, B, H)
        h = h.transpose(0, 1).reshape(ids.shape[0], -1)
        return self.to_mu(h), self.to_logvar(h)

    # decoder
    def _h0(self, z):
        h = torch.tanh(self.z_to_h(z))
        return h.view(z.shape[0], self.layers, self.hidden).transpose(0, 1).contiguous()

    def decode_logits(self, z, ids, teacher_forcing: float = 1.0):
        """Logits (B, T-1, V) for predicting ``ids[:, 1:]`` from ``ids[:, :-1]`` and z."""
        inputs = ids[:, :-1]
        h = self._h0(z)
        if teacher_forcing >= 1.0:
            x = torch.cat([self.emb(inputs), z.unsqueeze(1).expand(-1, inputs.shape[1], -1)], -1)
            y, _ = self.decoder(x, h)
            return self.out(y)
        logits, prev = [], inputs[:, 0]
        for t in range(inputs.shape[1]):
            if t > 0:
                own = logits[-1].argmax(-1)
                use_true = torch.rand(prev.shape[0], device=z.device) < teacher_forcing
                prev = torch.where(use_true, inputs[:, t], own)
            y, h = self.decoder(torch.cat([self.emb(prev), z], -1).unsqueeze(1), h)
            logits.append(self.out(y[:, 0]))
        return torch.stack(logits, 1)

    def predict(self, z):
        """Standardised properties at latent points z (B, n_props)."""
        if self.predictor is None:
            return z.new_zeros(z.shape[0], 0)
        return self.predictor(z)

    def forward(self, ids, lengths, teacher_forcing: float = 1.0, sample: bool = True):
        mu, logvar = self.encode(ids, lengths)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        return self.decode_logits(z, ids, teacher_forcing), mu, logvar, self.predict(mu)

    @torch.no_grad()
    def generate(self, z, max_len: int, greedy: bool = True, temperature: float = 1.0,
                 generator: torch.Generator | None = None):
        """Token ids (B, ≤ max_len) decoded from z, starting at ``<bos>``; ``<pad>`` and
        ``<bos>`` are never emitted; rows stop at ``<eos>``."""
        b = z.shape[0]
        h = self._h0(z)
        prev = torch.full((b,), BOS_ID, dtype=torch.long, device=z.device)
        done = torch.zeros(b, dtype=torch.bool, device=z.device)
        out = []
        for _ in range(max_len):
            y, h = self.decoder(torch.cat([self.emb(prev), z], -1).unsqueeze(1), h)
            logits = self.out(y[:, 0])
            logits[:, PAD_ID] = -math.inf
            logits[:, BOS_ID] = -math.inf
            if greedy:
                nxt = logits.argmax(-1)
            else:
                p = torch.softmax(logits / max(temperature, 1e-6), -1)
                nxt = torch.multinomial(p.cpu(), 1, generator=generator)[:, 0].to(z.device)
            nxt = torch.where(done, torch.full_like(nxt, PAD_ID), nxt)
            out.append(nxt)
            done |= nxt == EOS_ID
            prev = nxt
            if bool(done.all()):
                break
        return torch.stack(out, 1) if out else torch.zeros(b, 0, dtype=torch.long)


def vae_loss(logits, ids, mu, logvar, props_pred, props_true, beta: float, free_bits: float,
             prop_weight: float):
    """(total, reconstruction, KL, property MSE), each per molecule averaged over the batch."""
    target = ids[:, 1:]
    ce = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                     ignore_index=PAD_ID, reduction="sum") / ids.shape[0]
    kl_d = (0.5 * (mu ** 2 + logvar.exp() - 1.0 - logvar)).mean(0)  # per dimension, batch mean
    kl = kl_d.sum()
    kl_pen = torch.clamp(kl_d, min=free_bits).sum() if free_bits > 0 else kl
    if props_true.shape[-1]:
        prop = nn.functional.mse_loss(props_pred, props_true)
    else:
        prop = ce.new_zeros(())
    return ce + beta * kl_pen + prop_weight * prop, ce, kl, prop


# -- data ------------------------------------------------------------------------------------
class SmilesDataset(Dataset):
    """Token ids (padded to the longest), lengths and standardised properties."""

    def __init__(self, smiles: Sequence[str], vocab: Vocab, y=None):
        ids, lengths = vocab.encode_batch(smiles)
        self.ids = torch.as_tensor(ids)
        self.lengths = torch.as_tensor(lengths)
        y = np.zeros((len(smiles), 0)) if y is None else np.asarray(y, float).reshape(len(smiles), -1)
        self.y = torch.as_tensor(y, dtype=torch.float32)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return self.ids[i], self.lengths[i], self.y[i]


def collate(batch):
    """Stack and trim the padding to the longest molecule of the batch."""
    ids = torch.stack([b[0] for b in batch])
    lengths = torch.stack([b[1] for b in batch])
    return ids[:, :int(lengths.max())], lengths, torch.stack([b[2] for b in batch])


def load_molecules(path, properties: Sequence[str] = (), limit: int | None = None):
    """(names, SMILES, properties (n, P) in the target units) from a MoleculeNet QM9 CSV, a
    hessflow store (done records with a SMILES and finite values) or a ``.smi`` file (SMILES
    [name] per line; no properties)."""
    from .data import TARGETS
    for p in properties:
        if p not in TARGETS:
            raise HessflowError(f"--properties: {p!r} is not one of {', '.join(TARGETS)}")
    path = Path(path)
    if not path.exists():
        raise HessflowError(f"{path}: no such file")
    names, smiles, ys = [], [], []
    if path.suffix == ".csv":
        cols = []
        for p in properties:
            col = TARGETS[p][1]
            if col is None:
                raise HessflowError(f"--properties: {p!r} is not a QM9 CSV column")
            cols.append(col)
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            fields = reader.fieldnames or []
            if "smiles" not in fields:
                raise HessflowError(f"{path}: no 'smiles' column (MoleculeNet QM9 CSV expected)")
            for c in cols:
                if c not in fields:
                    raise HessflowError(f"{path}: no {c!r} column (MoleculeNet QM9 CSV expected)")
            for row in reader:
                try:
                    vals = [float(row[c]) for c in cols]
                except ValueError:
                    raise HessflowError(f"{path}: {row.get('mol_id') or row['smiles']}: "
                                        f"non-numeric value in {cols}") from None
                names.append(row.get("mol_id") or f"row{len(names)}")
                smiles.append(row["smiles"].strip())
                ys.append(vals)
                if limit and len(smiles) >= limit:
                    break
    elif path.suffix in (".h5", ".hdf5"):
        from ..store import Store
        cols = [TARGETS[p][0] for p in properties]
        with Store(path, "r") as st:
            t = st.table(["name", "smiles", "status", *cols])
        for k in range(len(t["status"])):
            vals = [float(t[c][k]) for c in cols]
            if t["status"][k] != "done" or not t["smiles"][k] or not np.all(np.isfinite(vals)):
                continue
            names.append(t["name"][k])
            smiles.append(t["smiles"][k])
            ys.append(vals)
            if limit and len(smiles) >= limit:
                break
    elif path.suffix in (".smi", ".txt"):
        if properties:
            raise HessflowError(f"{path}: a SMILES file has no properties; use a QM9 CSV or a store")
        for line in path.read_text().splitlines():
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            smiles.append(parts[0])
            names.append(parts[1] if len(parts) > 1 else f"line{len(names)}")
            ys.append([])
            if limit and len(smiles) >= limit:
                break
    else:
        raise HessflowError(f"{path}: expected a QM9 CSV (.csv), a hessflow store (.h5) or .smi")
    if not smiles:
        raise HessflowError(f"{path}: no molecules with a SMILES"
                            + (f" and values for {', '.join(properties)}" if properties else ""))
    return names, smiles, np.asarray(ys, float).reshape(len(smiles), len(properties))


# -- chemistry metrics -----------------------------------------------------------------------
def canonical(smiles: str) -> str | None:
    """RDKit's canonical SMILES, or None when RDKit cannot parse it (or it is empty)."""
    from rdkit import Chem, RDLogger
    RDLogger.DisableLog("rdApp.*")
    if not smiles:
        return None
    mol = Chem.MolFromSmiles(smiles)
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    return Chem.MolToSmiles(mol)


def validity(strings: Sequence[str]) -> float:
    """Fraction of ``strings`` that RDKit parses into a molecule (NaN for none)."""
    if not len(strings):
        return float("nan")
    return sum(canonical(s) is not None for s in strings) / len(strings)


def sample_metrics(strings: Sequence[str], training: set) -> dict:
    """Validity, uniqueness (distinct among valid) and novelty (distinct valid not in
    ``training``, a set of canonical SMILES) of generated strings."""
    can = [canonical(s) for s in strings]
    valid = [c for c in can if c is not None]
    uniq = set(valid)
    novel = uniq - training
    n = len(strings)
    return {"n": n, "valid": len(valid), "unique": len(uniq), "novel": len(novel),
            "validity": len(valid) / n if n else float("nan"),
            "uniqueness": len(uniq) / len(valid) if valid else float("nan"),
            "novelty": len(novel) / len(uniq) if uniq else float("nan")}


# -- training --------------------------------------------------------------------------------
def _split(n: int, cfg: VAEConfig) -> dict:
    from .train import random_split
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
        loss, ce, kl, prop = vae_loss(logits, ids, mu, logvar, p, y, cfg.beta, 0.0, cfg.prop_weight)
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
            _write_molecules(run_dir / "molecules.csv", names, smiles, y, properties, splits)
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
                beta = beta_at(cfg, epoch + step / steps)
                opt.zero_grad()
                logits, mu, logvar, p = ddp(ids, lengths, cfg.teacher_forcing)
                loss, ce, kl, prop = vae_loss(logits, ids, mu, logvar, p, yb, beta, cfg.free_bits,
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
            rec = {"epoch": epoch, "beta": beta_at(cfg, epoch + 1), "train_loss": tot[0] / m,
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
            try:
                latent_pca_plot(run, run_dir / "latent_pca.png")
            except Exception as exc:  # noqa: BLE001 - a figure must not lose the run
                print(f"hessflow vae: latent PCA plot not written: {exc}", file=sys.stderr)
        dd.barrier()
        return metrics


def _write_molecules(path, names, smiles, y, properties, splits):
    split_of = {}
    for k in ("train", "val", "test"):
        for i in splits.get(k, []):
            split_of[int(i)] = k
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "smiles", "split", *properties])
        for i, (nm, s) in enumerate(zip(names, smiles)):
            w.writerow([nm, s, split_of.get(i, ""), *[repr(float(v)) for v in y[i]]])


# -- a trained run ---------------------------------------------------------------------------
class VAERun:
    """A trained model with its vocabulary, configuration and data."""

    def __init__(self, model: SmilesVAE, vocab: Vocab, config: dict, run_dir=None, smiles=None,
                 y=None, splits=None):
        self.model, self.vocab, self.config = model.eval(), vocab, config
        self.run_dir = Path(run_dir) if run_dir else None
        self.properties = list(config["properties"])
        self.mean = np.asarray(config["prop_mean"], float)
        self.std = np.asarray(config["prop_std"], float)
        self.max_len = int(config["max_len"])
        self.smiles = list(smiles or [])
        self.y = np.asarray(y if y is not None else np.zeros((len(self.smiles), len(self.properties))))
        self.splits = splits or {"train": list(range(len(self.smiles))), "val": [], "test": []}
        self._training = None

    @property
    def device(self):
        return next(self.model.parameters()).device

    @property
    def training_set(self) -> set:
        """Canonical SMILES of the training split (for novelty)."""
        if self._training is None:
            self._training = {c for c in (canonical(self.smiles[i]) for i in self.splits["train"])
                              if c is not None}
        return self._training

    @torch.no_grad()
    def encode(self, smiles: Sequence[str], batch: int = 512) -> np.ndarray:
        """Posterior means μ (n, latent)."""
        self.model.eval()
        out = []
        for k in range(0, len(smiles), batch):
            ids, lengths = self.vocab.encode_batch(list(smiles[k:k + batch]))
            mu, _ = self.model.encode(torch.as_tensor(ids, device=self.device),
                                      torch.as_tensor(lengths))
            out.append(mu.cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.latent))

    @torch.no_grad()
    def decode(self, z, greedy: bool = True, temperature: float = 1.0, seed: int = 0,
               batch: int = 512) -> list[str]:
        """Strings decoded from latent points z (n, latent)."""
        self.model.eval()
        z = np.asarray(z, np.float32).reshape(-1, self.model.latent)
        g = torch.Generator().manual_seed(int(seed))
        out = []
        for k in range(0, len(z), batch):
            ids = self.model.generate(torch.as_tensor(z[k:k + batch], device=self.device),
                                      self.max_len, greedy, temperature, g)
            out += [self.vocab.decode(row) for row in ids.cpu().numpy()]
        return out

    @torch.no_grad()
    def predict_z(self, z) -> np.ndarray:
        """Properties (n, P) in their units predicted at latent points z."""
        z = torch.as_tensor(np.asarray(z, np.float32).reshape(-1, self.model.latent),
                            device=self.device)
        return self.model.predict(z).cpu().numpy() * self.std + self.mean

    def predict(self, smiles: Sequence[str]) -> np.ndarray:
        """Properties (n, P) predicted from the posterior means of ``smiles``."""
        return self.predict_z(self.encode(smiles))


def load_run(run_dir, device: str = "cpu") -> VAERun:
    """The model, vocabulary, configuration and data of a finished ``hessflow vae train`` run."""
    run_dir = Path(run_dir)
    for f in ("model.pt", "vocab.json", "config.json"):
        if not (run_dir / f).exists():
            raise HessflowError(f"{run_dir}: no {f} (not a finished 'hessflow vae train' run)")
    config = json.loads((run_dir / "config.json").read_text())
    vocab = Vocab.load(run_dir / "vocab.json")
    from .distributed import device_for
    dev = device_for(0, device)
    model = SmilesVAE(**config["model"]).to(dev)
    model.load_state_dict(torch.load(run_dir / "model.pt", map_location=dev, weights_only=True))
    smiles, y, splits = [], None, None
    if (run_dir / "molecules.csv").exists():
        with open(run_dir / "molecules.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        smiles = [r["smiles"] for r in rows]
        y = np.array([[float(r[p]) for p in config["properties"]] for r in rows], float)
        y = y.reshape(len(rows), len(config["properties"]))
    if (run_dir / "splits.json").exists():
        splits = json.loads((run_dir / "splits.json").read_text())
    return VAERun(model, vocab, config, run_dir, smiles, y, splits)


def evaluate(run: VAERun, cfg: VAEConfig) -> dict:
    """Reconstruction (test split), prior-sample validity/uniqueness/novelty and predictor
    metrics per property on every split."""
    out = {}
    test = list(run.splits.get("test", []))
    if cfg.n_recon is not None:
        test = test[:int(cfg.n_recon)]
    if test:
        src = [run.smiles[i] for i in test]
        dec = run.decode(run.encode(src))
        ok = []
        for s, d in zip(src, dec):
            c = canonical(d)
            ok.append(c is not None and c == canonical(s))
        out["reconstruction"] = {"n": len(src), "accuracy": float(np.mean(ok)),
                                 "exact_string": float(np.mean([d == s for s, d in zip(src, dec)])),
                                 "validity": validity(dec), "split": "test",
                                 "decoding": "greedy, z = posterior mean"}
    if cfg.n_prior:
        z = np.random.default_rng(cfg.seed + 7).standard_normal((int(cfg.n_prior), run.model.latent))
        strings = run.decode(z)
        out["prior"] = {**sample_metrics(strings, run.training_set),
                        "decoding": "greedy, z ~ N(0, I)"}
    if run.properties:
        out["predictor"] = {}
        for split in ("train", "val", "test"):
            idx = list(run.splits.get(split, []))
            if not idx:
                continue
            pred = run.predict([run.smiles[i] for i in idx])
            out["predictor"][split] = {p: regression_metrics(run.y[idx, k], pred[:, k])
                                       for k, p in enumerate(run.properties)}
    return out


# -- operations ------------------------------------------------------------------------------
def sample_prior(run: VAERun, n: int = 100, greedy: bool = True, temperature: float = 1.0,
                 seed: int = 0) -> list[dict]:
    """``n`` points z ~ N(0, I) decoded: SMILES, canonical SMILES (None when invalid), novel
    (not in the training split) and the properties predicted at z."""
    z = np.random.default_rng(seed).standard_normal((int(n), run.model.latent))
    strings = run.decode(z, greedy, temperature, seed)
    pred = run.predict_z(z)
    train = run.training_set
    rows = []
    for s, p in zip(strings, pred):
        c = canonical(s)
        rows.append({"smiles": s, "canonical": c, "valid": c is not None,
                     "novel": c is not None and c not in train,
                     **{f"pred_{q}": float(v) for q, v in zip(run.properties, p)}})
    return rows


def parse_target(text: str, properties: Sequence[str]) -> dict:
    """'gap=0.25,homo=-0.24' -> {'gap': 0.25, 'homo': -0.24} (properties of the run only)."""
    out = {}
    for part in str(text).split(","):
        if not part.strip():
            continue
        name, eq, value = part.partition("=")
        name = name.strip()
        if not eq:
            raise HessflowError(f"--target: {part!r} is not PROPERTY=VALUE (e.g. gap=0.25)")
        if name not in properties:
            raise HessflowError(f"--target: {name!r} is not a property of this run "
                                f"({', '.join(properties) or 'none'})")
        try:
            out[name] = float(value)
        except ValueError:
            raise HessflowError(f"--target: {value!r} for {name} is not a number") from None
    if not out:
        raise HessflowError(f"--target: {text!r} names no property")
    return out


def sample_near_target(run: VAERun, target: dict, n: int = 100, neighbours: int = 20,
                       radius: float = 0.5, oversample: int = 10, seed: int = 0) -> list[dict]:
    """Molecules predicted close to ``target`` ({property: value}, in the property's units).

    The ``neighbours`` training molecules whose properties are closest to the target (distance in
    standard deviations) are encoded; ``n × oversample`` points are drawn around their μ
    (Gaussian, ``radius`` per latent dimension) and decoded greedily. Valid distinct molecules
    are re-encoded and scored by the predictor; the ``n`` closest to the target are returned,
    best first, with ``pred_<property>`` (predictor on the re-encoded molecule), ``distance``
    (standard deviations from the target, RMS over the targeted properties) and ``novel``."""
    if not isinstance(target, str):
        target = ",".join(f"{k}={v}" for k, v in target.items())
    target = parse_target(target, run.properties)
    cols = [run.properties.index(p) for p in target]
    t = np.array([target[p] for p in target])
    sd = run.std[cols]
    train = np.asarray(run.splits["train"], int)
    if not len(train) or run.y.shape[0] == 0:
        raise HessflowError("sample: the run has no training molecules to start from")
    dist = np.sqrt((((run.y[train][:, cols] - t) / sd) ** 2).mean(1))
    near = train[np.argsort(dist, kind="stable")[:max(1, int(neighbours))]]
    mu = run.encode([run.smiles[i] for i in near])
    rng = np.random.default_rng(seed)
    m = int(n) * max(1, int(oversample))
    z = mu[rng.integers(0, len(mu), m)] + radius * rng.standard_normal((m, mu.shape[1]))
    strings = run.decode(z)
    seen, keep = set(), []
    for s in strings:
        c = canonical(s)
        if c is None or c in seen:
            continue
        seen.add(c)
        keep.append((s, c))
    if not keep:
        return []
    pred = run.predict([s for s, _ in keep])
    d = np.sqrt((((pred[:, cols] - t) / sd) ** 2).mean(1))
    train_set = run.training_set
    rows = [{"smiles": c, "novel": c not in train_set, "distance": float(d[k]),
             **{f"pred_{q}": float(v) for q, v in zip(run.properties, pred[k])}}
            for k, (s, c) in enumerate(keep)]
    rows.sort(key=lambda r: r["distance"])
    return rows[:int(n)]


def interpolate(run: VAERun, smiles_a: str, smiles_b: str, steps: int = 10) -> list[dict]:
    """Linear path between the posterior means of two molecules: ``steps`` points (endpoints
    included), each decoded greedily, with validity and the properties predicted at the point."""
    if steps < 2:
        raise HessflowError(f"--steps: need at least 2 points, got {steps}")
    for s in (smiles_a, smiles_b):
        if canonical(s) is None:
            raise HessflowError(f"{s}: RDKit cannot parse this SMILES")
    mu = run.encode([smiles_a, smiles_b])
    ts = np.linspace(0.0, 1.0, int(steps))
    z = (1 - ts)[:, None] * mu[0] + ts[:, None] * mu[1]
    strings = run.decode(z)
    pred = run.predict_z(z)
    rows = []
    for t, s, p in zip(ts, strings, pred):
        c = canonical(s)
        rows.append({"t": float(t), "smiles": s, "canonical": c, "valid": c is not None,
                     **{f"pred_{q}": float(v) for q, v in zip(run.properties, p)}})
    return rows


def latent_pca_plot(run: VAERun, png=None, split: str = "test", max_points: int = 3000,
                    seed: int = 0) -> Path:
    """The posterior means of ``split`` (all molecules when the split is empty) projected on
    their first two principal components, one panel per property coloured by its value."""
    from ..analysis.plots import _plt
    from .data import UNITS
    idx = list(run.splits.get(split) or range(len(run.smiles)))
    if not idx:
        raise HessflowError("latent PCA: the run has no molecules")
    if len(idx) > max_points:
        idx = sorted(np.random.default_rng(seed).choice(idx, max_points, replace=False).tolist())
    mu = run.encode([run.smiles[i] for i in idx])
    x = mu - mu.mean(0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    pc = x @ vt[:2].T
    var = (s ** 2 / max((s ** 2).sum(), 1e-30))[:2]
    props = run.properties or [None]
    plt = _plt()
    fig, axes = plt.subplots(1, len(props), figsize=(4.2 * len(props), 3.8), dpi=110,
                             squeeze=False)
    for ax, p in zip(axes[0], props):
        c = run.y[idx, run.properties.index(p)] if p else None
        sc = ax.scatter(pc[:, 0], pc[:, 1], c=c, s=5, cmap="viridis", alpha=0.8)
        if p:
            fig.colorbar(sc, ax=ax, label=f"{p} ({UNITS.get(p, '')})")
            ax.set_title(p)
        ax.set_xlabel(f"PC1 ({var[0]:.0%})")
        ax.set_ylabel(f"PC2 ({var[1]:.0%})" if len(var) > 1 else "PC2")
    fig.suptitle(f"latent means, {split} split (n={len(idx)})", fontsize=9)
    fig.tight_layout()
    out = Path(png or (run.run_dir or Path(".")) / "latent_pca.png")
    fig.savefig(out)
    plt.close(fig)
    return out


# -- entry point (every rank) ----------------------------------------------------------------
SPEC_KEYS = {"data", "out", "properties", "limit", "resume"} | \
    {f.name for f in dataclasses.fields(VAEConfig)}


def config_from_spec(spec: dict) -> VAEConfig:
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise HessflowError(f"vae train: unknown setting(s) {sorted(unknown)}")
    kw = {k: spec[k] for k in spec if k in {f.name for f in dataclasses.fields(VAEConfig)}}
    if "predictor" in kw:
        kw["predictor"] = tuple(kw["predictor"])
    return VAEConfig(**kw).check()


def run_spec(spec: dict) -> dict:
    """Load the data named by ``spec`` and train (called on every rank)."""
    cfg = config_from_spec(spec)
    props = list(spec.get("properties") or [])
    names, smiles, y = load_molecules(spec["data"], props, spec.get("limit"))
    return train_vae(smiles, y, props, cfg, spec["out"], resume=bool(spec.get("resume")),
                     names=names, source=spec["data"])


def main(argv=None):
    from .distributed import spec_main
    return spec_main(lambda path: run_spec(json.loads(Path(path).read_text())), "vae train", argv)


if __name__ == "__main__":
    sys.exit(main())
