"""Metrics of the SMILES VAE: RDKit validity, uniqueness and novelty of generated strings, and the
metrics of a trained run (:func:`evaluate`, what ``metrics.json`` holds besides training).

- reconstruction: greedy decoding of μ of the held-out test molecules; a molecule counts when the
  decoded string parses and its canonical SMILES equals the input's;
- prior samples (z ~ N(0, I), greedy): validity (fraction RDKit parses), uniqueness (distinct
  canonical SMILES among the valid), novelty (fraction of the distinct valid ones not in the
  training split);
- predictor: MAE, RMSE, MRE, Pearson r and R² per property on every split, in the property's units.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..core.metrics import regression_metrics
from .config import VAEConfig

if TYPE_CHECKING:
    from .trained import VAERun


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
