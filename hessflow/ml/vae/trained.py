"""A trained SMILES VAE run: the model with its vocabulary, configuration and data
(:class:`VAERun`), and its run directory (:func:`load_vae_run`, :func:`write_molecules`).

Run directory: ``model.pt`` (weights), ``vocab.json``, ``config.json`` (model and training
settings, properties, standardisation), ``splits.json``, ``molecules.csv`` (the data: SMILES and
properties), ``history.json``, ``metrics.json``, ``checkpoint.pt``; ``hessflow vae train`` adds
``latent_pca.png`` (:mod:`hessflow.analysis.latent`).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ...errors import HessflowError
from ...system import torch_device
from .metrics import canonical
from .model import SmilesVAE
from .tokens import Vocab


def write_molecules(path, names, smiles, y, properties, splits):
    """``molecules.csv``: name, SMILES, split and the properties (in their units) of every
    molecule."""
    split_of = {}
    for k in ("train", "val", "test"):
        for i in splits.get(k, []):
            split_of[int(i)] = k
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "smiles", "split", *properties])
        for i, (nm, s) in enumerate(zip(names, smiles)):
            w.writerow([nm, s, split_of.get(i, ""), *[repr(float(v)) for v in y[i]]])


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


def load_vae_run(run_dir, device: str = "cpu") -> VAERun:
    """The model (on ``device``: cpu, cuda or auto), vocabulary, configuration and data of a
    finished ``hessflow vae train`` run."""
    run_dir = Path(run_dir)
    for f in ("model.pt", "vocab.json", "config.json"):
        if not (run_dir / f).exists():
            raise HessflowError(f"{run_dir}: no {f} (not a finished 'hessflow vae train' run)")
    config = json.loads((run_dir / "config.json").read_text())
    vocab = Vocab.load(run_dir / "vocab.json")
    dev = torch_device(device)
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
