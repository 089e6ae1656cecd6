"""Inverse design with a trained SMILES VAE: prior samples, molecules near a target property value,
latent interpolation between two molecules, and the latent principal components (the data of the
latent PCA figure drawn by :mod:`hessflow.analysis.latent`).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from ...errors import HessflowError
from .metrics import canonical
from .trained import VAERun


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


@dataclasses.dataclass
class LatentPCA:
    """The posterior means of some molecules on their first two principal components."""

    split: str                   # the split they come from ("all" when the run has none)
    indices: list                # molecule indices into the run's data
    coords: np.ndarray           # (n, 2) PC1, PC2 coordinates (latent units)
    explained: np.ndarray        # fraction of the variance on PC1 (and PC2)
    colours: dict                # property -> (n,) values in the property's unit
    units: dict                  # property -> unit


def latent_pca(run: VAERun, split: str = "test", max_points: int = 3000,
               seed: int = 0) -> LatentPCA:
    """The posterior means of ``split`` (all molecules when the split is empty; at most
    ``max_points`` of them, drawn with ``seed``) projected on their first two principal
    components, with every property's values to colour them by."""
    from ..core.data import UNITS
    idx = list(run.splits.get(split) or range(len(run.smiles)))
    if not idx:
        raise HessflowError("latent PCA: the run has no molecules")
    if len(idx) > max_points:
        idx = sorted(np.random.default_rng(seed).choice(idx, max_points, replace=False).tolist())
    mu = run.encode([run.smiles[i] for i in idx])
    x = mu - mu.mean(0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    explained = (s ** 2 / max((s ** 2).sum(), 1e-30))[:2]
    return LatentPCA(split=split, indices=idx, coords=x @ vt[:2].T, explained=explained,
                     colours={p: run.y[idx, k] for k, p in enumerate(run.properties)},
                     units={p: UNITS.get(p, "") for p in run.properties})
