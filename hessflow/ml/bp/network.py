"""The Behler–Parrinello network: one atomic network shared by all elements, on element-channel
ACSF.

Every atom i gets the feature vector I_i = [ACSF_i, e(Z_i)]: the symmetry functions of
:mod:`hessflow.ml.bp.acsf` with neighbour channels e(Z_j), followed by the centre atom's own
channel vector e(Z_i). ``features="modes"`` (element-coupled) uses the elemental mode vectors m(Z)
of :mod:`hessflow.ml.bp.modes`; ``features="onehot"`` (baseline) a one-hot vector over the
elements of the data set. **One atomic network, shared by all elements** (the element enters
only through e(Z_i) and the neighbour channels) maps the standardised I_i to a number ε_i; the
energy is

    E = Σ_i e_ref(Z_i) + n_atoms · shift + scale · Σ_i ε_i           (Hartree)

with per-element reference energies e_ref (:mod:`hessflow.ml.bp.references`), and shift/scale
the mean per-atom residual and the standard deviation of the molecular residual over the
training geometries. Forces are −∂E/∂R by autograd (:meth:`BPNetwork.energy_and_forces`).
A trained network is saved as one bundle (``model.pt``) and read by :func:`load_bp_model`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ...errors import HessflowError
from ..core.nn import MLP
from .acsf import ACSF, onehot_table
from .config import MAX_Z, BPConfig, config_from_mapping, elements_text
from .modes import ElementalModes

BUNDLE_FORMAT = "hessflow-bp-1"


def atom_features(acsf: ACSF, numbers, coords, mask):
    """Per-atom features I_i = [ACSF_i, e(Z_i)], (B, N, n_features + C); ``coords`` in Bohr."""
    g = acsf(numbers, coords, mask)
    return torch.cat([g, acsf.channels(numbers, mask).to(g.dtype)], dim=-1)


class BPNetwork(nn.Module):
    """Shared atomic network over [ACSF, e(Z_i)]; see the module docstring for the energy."""

    def __init__(self, cfg: BPConfig, table):
        super().__init__()
        self.cfg = cfg
        self.acsf = ACSF(cfg.acsf, table)
        self.n_in = self.acsf.n_features + self.acsf.n_channels
        self.register_buffer("feat_mean", torch.zeros(self.n_in))
        self.register_buffer("feat_std", torch.ones(self.n_in))
        self.atomic = MLP(self.n_in, cfg.hidden, 1, act=cfg.activation)
        # float64 bookkeeping, kept out of the state dict so .float() never rounds it
        self.ref_energy_hartree = torch.full((MAX_Z + 1,), float("nan"), dtype=torch.float64)
        self.shift_hartree = 0.0
        self.scale_hartree = 1.0

    # features
    def features(self, numbers, coords, mask=None):
        """Raw per-atom features I_i = [ACSF, e(Z_i)] (unstandardised), (B, N, n_in)."""
        numbers = torch.as_tensor(numbers)
        return atom_features(self.acsf, numbers, coords, numbers > 0 if mask is None else mask)

    def forward(self, features, mask):
        """Σ_i ε_i over the real atoms: the standardised molecular residual, (B,)."""
        x = (features - self.feat_mean) / self.feat_std
        eps = self.atomic(x) * mask.to(x.dtype)
        return eps.sum(-1)

    # energies
    def reference_energy(self, numbers, mask=None) -> torch.Tensor:
        """Σ_i e_ref(Z_i) + n_atoms · shift (float64), (B,); error for an element without one."""
        numbers = torch.as_tensor(numbers).long()
        if mask is None:
            mask = numbers > 0
        ref = self.ref_energy_hartree.to(numbers.device)[numbers]
        missing = sorted({int(z) for z in numbers[mask & torch.isnan(ref)].tolist()})
        if missing:
            raise HessflowError(
                f"element {elements_text(missing)}: no reference energy (no training molecule "
                f"contains it); train with --reference atoms to predict elements unseen in training")
        ref = torch.where(mask, ref, torch.zeros_like(ref))
        return ref.sum(-1) + self.shift_hartree * mask.sum(-1).to(torch.float64)

    def energy_from_features(self, features, mask, reference):
        """E (Hartree) from raw features and a reference part (from :meth:`reference_energy`)."""
        dt = self.feat_mean.dtype
        return reference + self.scale_hartree * self(features.to(dt), mask).to(torch.float64)

    def energy_hartree(self, numbers, coords, mask=None):
        """E (Hartree), (B,), of molecules with ``numbers`` (B, N; 0 pads) at ``coords`` (Bohr)."""
        numbers = torch.as_tensor(numbers)
        if mask is None:
            mask = numbers > 0
        f = self.features(numbers, coords, mask)
        return self.energy_from_features(f, mask, self.reference_energy(numbers, mask))

    def energy_and_forces(self, numbers, coords, mask=None):
        """(E in Hartree, forces −∂E/∂R in Hartree/Bohr) by autograd."""
        coords = torch.as_tensor(coords).detach().clone().requires_grad_(True)
        e = self.energy_hartree(numbers, coords, mask)
        (grad,) = torch.autograd.grad(e.sum(), coords)
        return e.detach(), -grad

    # persistence
    def bundle(self, modes=None) -> dict:
        """Everything :func:`load_bp_model` needs, as saved in model.pt."""
        return {"format": BUNDLE_FORMAT, "config": self.cfg.to_dict(),
                "modes": None if modes is None else modes.to_dict(),
                "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
                "ref_energy_hartree": self.ref_energy_hartree.tolist(),
                "shift_hartree": float(self.shift_hartree),
                "scale_hartree": float(self.scale_hartree)}


def load_bp_model(run_dir_or_file) -> BPNetwork:
    """The network saved in a run directory's model.pt (float64, eval mode)."""
    p = Path(run_dir_or_file)
    f = p / "model.pt" if p.is_dir() else p
    if not f.exists():
        raise HessflowError(f"{p}: no model.pt (not a 'hessflow bp train' run directory)")
    b = torch.load(f, map_location="cpu", weights_only=False)
    if not isinstance(b, dict) or b.get("format") != BUNDLE_FORMAT:
        raise HessflowError(f"{f}: not a Behler-Parrinello model ({BUNDLE_FORMAT})")
    cfg = config_from_mapping(b["config"], f"{f}: config")
    if b["modes"] is not None:
        table = ElementalModes.from_dict(b["modes"]).table(MAX_Z)
    else:
        table = onehot_table(cfg.elements, MAX_Z)
    net = BPNetwork(cfg, table)
    net.load_state_dict(b["state_dict"])
    net.ref_energy_hartree = torch.tensor(b["ref_energy_hartree"], dtype=torch.float64)
    net.shift_hartree, net.scale_hartree = b["shift_hartree"], b["scale_hartree"]
    return net.double().eval()
