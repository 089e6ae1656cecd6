"""Atom-centred symmetry functions (ACSF) in torch, with element channels.

Differentiable with respect to the coordinates (forces are autograd derivatives) and batched over
molecules padded to a common atom count (``mask`` marks the real atoms; padding atoms have
``Z = 0``). Atomic units: distances in Bohr, η in Bohr⁻².

For centre atom i, with R_ij = |r_j − r_i|, cutoff f_c(R) = ½(cos(πR/R_c) + 1) for R < R_c (else 0)
and an element channel vector e(Z) ∈ R^C for each neighbour (one-hot over an element list — the
baseline — or the elemental mode vectors m(Z) of :mod:`hessflow.ml.bp.modes` —
element-coupled):

    radial   G_R[p, c]   = Σ_{j≠i} exp(−η_p (R_ij − R_s,p)²) f_c(R_ij) e_c(Z_j)

    angular  G_A[q, c, d] = 2^(1−ζ_q) Σ_{j≠i} Σ_{k≠i,j} (1 + cos(θ_ijk − θ_s,q))^ζ_q
                            × exp(−η_q ((R_ij + R_ik)/2 − R_s,q)²) f_c(R_ij) f_c(R_ik) e_c(Z_j) e_d(Z_k)

The angular term is the ANI (Smith et al. 2017) form, with a shifted angle θ_s and the averaged
distance, times the outer product e(Z_j) ⊗ e(Z_k) of the two neighbours' channel vectors. The
sum runs over *ordered* pairs (j, k), so the summed outer product is symmetric in (c, d); only
its upper triangle c ≤ d is kept (C(C+1)/2 numbers per q). With one-hot channels this is exactly
ANI's one block per unordered element pair (a like-element pair counted for both orders).

Parameter grids (:class:`ACSFParams`): the radial functions are all (η, R_s) combinations; the
angular functions all (η, R_s, ζ, θ_s) combinations. Output per atom:
``[G_R (n_radial × C), G_A (n_angular × C(C+1)/2)]``, radial block first, each block ordered
parameter-major (index = p * C + c).

cos(θ − θ_s) is expanded as cos θ cos θ_s + sin θ sin θ_s with sin θ = sqrt(max(1 − cos²θ, 1e-12));
θ as a function of the coordinates has a kink at exactly collinear triples (θ = 0 or π), where
for θ_s ∉ {0, π} the function is not differentiable: there the derivative is that of the clamped
sin θ (finite). The values are exact everywhere.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import torch
from torch import nn

from ...settings import from_mapping, meta, settings_error

_SIN2_FLOOR = 1e-12


def _values(where: str, value):
    if not value:
        raise settings_error(where, "needs at least one value")
    return value


def _positive(where: str, value):
    if value <= 0:
        raise settings_error(where, f"must be positive (Bohr), got {value!r}")
    return value


def _zetas(where: str, value):
    if min(_values(where, value)) < 1:
        raise settings_error(where, f"{list(value)} must be >= 1")
    return value


def _field(default, help_: str, check, unit: str = ""):
    return dataclasses.field(default=default, metadata=meta(help_, check=check, unit=unit))


@dataclasses.dataclass
class ACSFParams:
    """Symmetry-function parameters (Bohr, Bohr⁻², radians). The defaults cover bonded and
    second-neighbour distances of organic molecules: radial shells every 0.64 Bohr from 1.5 to
    8.5 Bohr inside 9 Bohr (4.8 Å), angular terms inside 6.5 Bohr (3.4 Å) at four distances and
    four angles. A typed settings group (:mod:`hessflow.settings`): :meth:`from_dict` checks
    user input (``hessflow bp train --acsf``) with one-line errors naming the field."""

    radial_cutoff_bohr: float = _field(9.0, "radial cutoff R_c", _positive, "Bohr")
    radial_eta_per_bohr2: tuple[float, ...] = _field((4.0,), "radial widths η", _values,
                                                     "Bohr^-2")
    radial_shifts_bohr: tuple[float, ...] = _field(
        tuple(float(x) for x in np.round(np.linspace(1.5, 8.5, 12), 4)), "radial shifts R_s",
        _values, "Bohr")
    angular_cutoff_bohr: float = _field(6.5, "angular cutoff R_c", _positive, "Bohr")
    angular_eta_per_bohr2: tuple[float, ...] = _field((1.2,), "angular widths η", _values,
                                                      "Bohr^-2")
    angular_shifts_bohr: tuple[float, ...] = _field((1.8, 3.0, 4.2, 5.4), "angular shifts R_s",
                                                    _values, "Bohr")
    zetas: tuple[float, ...] = _field((8.0,), "angular exponents ζ (>= 1)", _zetas)
    theta_shifts_rad: tuple[float, ...] = _field(
        tuple(math.pi * (2 * i + 1) / 8 for i in range(4)), "angle shifts θ_s", _values, "rad")

    def __post_init__(self):  # the grids as tuples of floats however they were given
        for f in dataclasses.fields(self):
            if isinstance(getattr(self, f.name), (list, tuple)):
                setattr(self, f.name, tuple(float(x) for x in getattr(self, f.name)))

    @property
    def radial_grid(self):
        """[(η, R_s)] in output order."""
        return list(itertools.product(self.radial_eta_per_bohr2, self.radial_shifts_bohr))

    @property
    def angular_grid(self):
        """[(η, R_s, ζ, θ_s)] in output order."""
        return list(itertools.product(self.angular_eta_per_bohr2, self.angular_shifts_bohr,
                                      self.zetas, self.theta_shifts_rad))

    def to_dict(self) -> dict:
        """The parameters as plain data (lists), as saved in a run's config.json."""
        return {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d, where: str = "acsf") -> "ACSFParams":
        """Checked parameters from a mapping of fields (others default); a key of runs saved
        before the η fields were renamed (``radial_eta_bohr2``) is read as its new name."""
        if isinstance(d, dict):
            d = {_RENAMED.get(k, k): v for k, v in d.items()}
        return from_mapping(cls, d, where)


#: field names of earlier versions, still read from saved runs
_RENAMED = {"radial_eta_bohr2": "radial_eta_per_bohr2",
            "angular_eta_bohr2": "angular_eta_per_bohr2"}


def cutoff(r, r_c: float):
    """f_c(R) = ½(cos(πR/R_c) + 1) for R < R_c, else 0."""
    return torch.where(r < r_c, 0.5 * (torch.cos(math.pi * r / r_c) + 1.0), torch.zeros_like(r))


class ACSF(nn.Module):
    """``ACSF(params, channel_table)(numbers, coords_bohr, mask) -> (B, N, n_features)``.

    ``channel_table``: (max_Z + 1, C) array; row Z is e(Z) (row 0, the padding atom, is ignored).
    """

    def __init__(self, params: ACSFParams, channel_table):
        super().__init__()
        self.params = params
        table = torch.as_tensor(np.asarray(channel_table, dtype=np.float64))
        self.register_buffer("channel_table", table)
        self.n_channels = int(table.shape[1])
        rg, ag = params.radial_grid, params.angular_grid
        self.register_buffer("r_eta", torch.tensor([g[0] for g in rg], dtype=torch.float64))
        self.register_buffer("r_shift", torch.tensor([g[1] for g in rg], dtype=torch.float64))
        self.register_buffer("a_eta", torch.tensor([g[0] for g in ag], dtype=torch.float64))
        self.register_buffer("a_shift", torch.tensor([g[1] for g in ag], dtype=torch.float64))
        self.register_buffer("a_zeta", torch.tensor([g[2] for g in ag], dtype=torch.float64))
        self.register_buffer("a_theta", torch.tensor([g[3] for g in ag], dtype=torch.float64))
        iu = torch.triu_indices(self.n_channels, self.n_channels)
        self.register_buffer("pair_index", iu[0] * self.n_channels + iu[1], persistent=False)
        self.n_radial = len(rg) * self.n_channels
        self.n_angular = len(ag) * self.n_channels * (self.n_channels + 1) // 2

    @property
    def n_features(self) -> int:
        return self.n_radial + self.n_angular

    def channels(self, numbers, mask=None):
        """e(Z) for every atom, zero for padding: (B, N, C)."""
        e = self.channel_table[numbers.long()]
        if mask is not None:
            e = e * mask[..., None].to(e.dtype)
        return e

    def forward(self, numbers, coords, mask=None):
        numbers = torch.as_tensor(numbers)
        if numbers.dim() == 1:  # one molecule
            return self.forward(numbers[None], coords[None], None if mask is None else mask[None])[0]
        if mask is None:
            mask = numbers > 0
        mask = mask.bool()
        dtype = coords.dtype
        B, N = numbers.shape
        e = self.channels(numbers, mask).to(dtype)
        eye = torch.eye(N, dtype=torch.bool, device=coords.device)
        pair = mask[:, :, None] & mask[:, None, :] & ~eye
        vec = coords[:, None, :, :] - coords[:, :, None, :]          # r_j - r_i, (B, i, j, 3)
        r2 = (vec ** 2).sum(-1)
        r = torch.sqrt(torch.where(pair, r2, torch.ones_like(r2)))   # 1 where no pair: no NaN grads
        pf = pair.to(dtype)
        p = self.params

        # radial
        fc_r = cutoff(r, p.radial_cutoff_bohr) * pf
        g = torch.exp(-self.r_eta.to(dtype) * (r[..., None] - self.r_shift.to(dtype)) ** 2) \
            * fc_r[..., None]                                         # (B, i, j, P)
        g_r = torch.einsum("bijp,bjc->bipc", g, e).reshape(B, N, self.n_radial)

        # angular
        fc_a = cutoff(r, p.angular_cutoff_bohr) * pf
        u = vec / r[..., None]
        cos = torch.einsum("bijx,bikx->bijk", u, u).clamp(-1.0, 1.0)
        sin = torch.sqrt(torch.clamp(1.0 - cos ** 2, min=_SIN2_FLOOR))
        th = self.a_theta.to(dtype)
        zeta = self.a_zeta.to(dtype)
        ang = (1.0 + cos[..., None] * torch.cos(th) + sin[..., None] * torch.sin(th)) ** zeta \
            * 2.0 ** (1.0 - zeta)                                      # (B, i, j, k, Q)
        ravg = 0.5 * (r[:, :, :, None] + r[:, :, None, :])
        rad = torch.exp(-self.a_eta.to(dtype) * (ravg[..., None] - self.a_shift.to(dtype)) ** 2)
        not_same = (~eye).to(dtype)                                    # k != j
        w = fc_a[:, :, :, None] * fc_a[:, :, None, :] * not_same
        t = ang * rad * w[..., None]                                   # (B, i, j, k, Q)
        x = torch.einsum("bijkq,bkd->bijqd", t, e)
        full = torch.einsum("bijqd,bjc->biqcd", x, e)                  # (B, i, Q, C, C)
        Q = full.shape[2]
        g_a = full.reshape(B, N, Q, -1)[..., self.pair_index].reshape(B, N, self.n_angular)
        out = torch.cat([g_r, g_a], dim=-1)
        return out * mask[..., None].to(dtype)


def onehot_table(elements, max_z: int = 54) -> np.ndarray:
    """(max_z + 1, len(elements)) one-hot channel table over ``elements`` (atomic numbers)."""
    t = np.zeros((max_z + 1, len(elements)))
    for c, z in enumerate(elements):
        t[int(z), c] = 1.0
    return t
