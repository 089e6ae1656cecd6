"""Elemental modes: an autoencoder that compresses the element property table to k numbers per
element, the mode vector m(Z) ∈ (−1, 1)^k.

Pipeline (:func:`fit_modes`)
    1. the table of :mod:`hessflow.ml.bp.element_data` (22 elements × 9 columns);
    2. ``polarizability_bohr3`` is log-transformed (it spans 1.4–290 Bohr³), then every column is
       standardised to zero mean and unit variance over the tabulated elements;
    3. missing entries (the Pauling electronegativity of He, Ne, Ar) are set to 0 — the column
       mean — on input, and left out of the loss and of the reported error (a masked MSE);
    4. an autoencoder ``9 → hidden → k (tanh) → hidden → 9`` is trained full-batch in float64 with
       Adam from a seeded initialisation (same seed, same modes, bit for bit on one machine);
    5. the bottleneck activations are the mode vectors m(Z).

The reconstruction error is reported on the standardised scale (units of each column's standard
deviation over the elements) and per column in the column's unit. With the defaults (k = 4,
hidden = 16, 3000 Adam steps, learning rate 0.02 cosine-annealed to 0.0002) the RMS error over
the observed entries is below :data:`RECONSTRUCTION_RMSE_BOUND` (0.05 standard deviations;
asserted in tests/ml/bp/test_elemental.py; measured 0.0095, largest single entry 0.037).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from ...errors import HessflowError
from . import element_data

#: columns modelled on a log scale (they span orders of magnitude)
LOG_COLUMNS = ("polarizability_bohr3",)
#: stated bound on the RMS reconstruction error (standardised units) of the default modes
RECONSTRUCTION_RMSE_BOUND = 0.05


def _preprocess(values: np.ndarray, columns) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log-transform, then standardise (NaN-aware). Returns (x, mean, std); NaN stays NaN."""
    x = np.array(values, dtype=float)
    for j, c in enumerate(columns):
        if c in LOG_COLUMNS:
            x[:, j] = np.log(x[:, j])
    mean = np.nanmean(x, axis=0)
    std = np.nanstd(x, axis=0)
    std[std == 0] = 1.0
    return (x - mean) / std, mean, std


def _autoencoder(n_in: int, n_modes: int, hidden: int):
    import torch
    from torch import nn
    enc = nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, n_modes), nn.Tanh())
    dec = nn.Sequential(nn.Linear(n_modes, hidden), nn.Tanh(), nn.Linear(hidden, n_in))
    return enc.to(torch.float64), dec.to(torch.float64)


@dataclasses.dataclass
class ElementalModes:
    """The modes of every tabulated element and what is needed to decode them again."""

    elements: tuple            # atomic numbers, ascending
    columns: tuple             # property names (element_data.COLUMNS)
    modes: np.ndarray          # (n_elements, n_modes)
    mean: np.ndarray           # per column, after the log transform
    std: np.ndarray
    decoder_state: dict        # decoder weights (lists), to map modes back to properties
    encoder_state: dict
    hidden: int
    seed: int
    steps: int
    reconstruction_rmse: float         # standardised units, observed entries
    reconstruction_max_abs: float      # standardised units, observed entries
    column_mae: dict                   # column -> MAE in the column's own unit

    @property
    def n_modes(self) -> int:
        return int(self.modes.shape[1])

    def vector(self, z: int) -> np.ndarray:
        """The mode vector m(Z) of element ``z`` (atomic number); HessflowError naming the
        element when it is not tabulated."""
        try:
            return self.modes[self.elements.index(int(z))]
        except ValueError:
            from ...qm.molecules.elements import symbol
            try:
                name = symbol(z)
            except KeyError:
                name = f"Z={z}"
            raise HessflowError(f"element {name}: no elemental modes (the property table covers "
                                f"{', '.join(symbol(e) for e in self.elements)})") from None

    def table(self, max_z: int = 54) -> np.ndarray:
        """(max_z + 1, n_modes) lookup table indexed by Z; zero rows for untabulated Z (and Z = 0,
        the padding atom)."""
        out = np.zeros((max_z + 1, self.n_modes))
        for i, z in enumerate(self.elements):
            if z <= max_z:
                out[z] = self.modes[i]
        return out

    def _net(self, which: str):
        import torch
        enc, dec = _autoencoder(len(self.columns), self.n_modes, self.hidden)
        net = enc if which == "encoder" else dec
        state = self.encoder_state if which == "encoder" else self.decoder_state
        net.load_state_dict({k: torch.tensor(v, dtype=torch.float64) for k, v in state.items()})
        return net

    def decode(self, point) -> dict:
        """Properties (each column in its own unit) of a point in mode space (k numbers, or
        (n, k) for several), e.g. an interpolation (1−λ)m(Z_a) + λm(Z_b) between two elements."""
        import torch
        b = torch.as_tensor(np.atleast_2d(np.asarray(point, float)), dtype=torch.float64)
        with torch.no_grad():
            x = self._net("decoder")(b).numpy() * self.std + self.mean
        for j, c in enumerate(self.columns):
            if c in LOG_COLUMNS:
                x[:, j] = np.exp(x[:, j])
        out = {c: x[:, j] for j, c in enumerate(self.columns)}
        if np.ndim(point) == 1:
            out = {c: float(v[0]) for c, v in out.items()}
        return out

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for k in ("modes", "mean", "std"):
            d[k] = np.asarray(d[k]).tolist()
        d["elements"], d["columns"] = list(self.elements), list(self.columns)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ElementalModes":
        d = dict(d)
        d["elements"], d["columns"] = tuple(d["elements"]), tuple(d["columns"])
        for k in ("modes", "mean", "std"):
            d[k] = np.asarray(d[k], dtype=float)
        return cls(**d)


def _state_lists(net) -> dict:
    return {k: v.detach().cpu().numpy().tolist() for k, v in net.state_dict().items()}


@functools.lru_cache(maxsize=8)
def _fit(n_modes: int, seed: int, hidden: int, steps: int, lr: float) -> ElementalModes:
    import torch
    elements, columns, values = element_data.property_table()
    x, mean, std = _preprocess(values, columns)
    observed = np.isfinite(x)
    x_in = np.where(observed, x, 0.0)  # missing -> column mean
    X = torch.tensor(x_in, dtype=torch.float64)
    M = torch.tensor(observed, dtype=torch.float64)
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG state alone
        torch.manual_seed(seed)
        enc, dec = _autoencoder(len(columns), n_modes, hidden)
    params = list(enc.parameters()) + list(dec.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr * 1e-2)
    for _ in range(steps):
        opt.zero_grad()
        err = (dec(enc(X)) - X) * M
        loss = (err ** 2).sum() / M.sum()
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        modes = enc(X)
        rec = dec(modes).numpy()
    res = (rec - x)[observed]
    # per-column MAE in the column's own unit (log columns compared after exp)
    phys_rec = rec * std + mean
    col_mae = {}
    for j, c in enumerate(columns):
        ok = observed[:, j]
        a, b = phys_rec[ok, j], values[ok, j]
        if c in LOG_COLUMNS:
            a = np.exp(a)
        col_mae[c] = float(np.abs(a - b).mean())
    return ElementalModes(elements=elements, columns=columns, modes=modes.numpy(), mean=mean,
                          std=std, decoder_state=_state_lists(dec), encoder_state=_state_lists(enc),
                          hidden=hidden, seed=seed, steps=steps,
                          reconstruction_rmse=float(np.sqrt(np.mean(res ** 2))),
                          reconstruction_max_abs=float(np.abs(res).max()), column_mae=col_mae)


def fit_modes(n_modes: int = 4, seed: int = 0, hidden: int = 16, steps: int = 3000,
              lr: float = 2e-2) -> ElementalModes:
    """Train the autoencoder on the element table and return the modes (cached per argument set;
    a few seconds on one core)."""
    if not 1 <= int(n_modes) <= len(element_data.COLUMNS):
        raise HessflowError(f"--modes: {n_modes} must be between 1 and "
                            f"{len(element_data.COLUMNS)} (the number of tabulated properties)")
    return dataclasses.replace(_fit(int(n_modes), int(seed), int(hidden), int(steps), float(lr)))


def interpolate_modes(modes: ElementalModes, z_a: int, z_b: int, lam: float) -> np.ndarray:
    """(1−λ)m(Z_a) + λm(Z_b): a point between elements ``z_a`` and ``z_b`` (atomic numbers) in
    mode space."""
    return (1.0 - lam) * modes.vector(z_a) + lam * modes.vector(z_b)
