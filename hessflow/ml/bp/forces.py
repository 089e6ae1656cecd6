"""Training the Behler–Parrinello network on energies and forces.

The network's energy depends on the coordinates only through the per-atom features I_i (the
ACSF; the channel part e(Z_i) is constant), so its forces are

    F = −∂E/∂R = −scale · Σ_i Σ_f (∂ε_i/∂I_if) · ∂I_if/∂R

The feature Jacobians ∂I/∂R do not depend on trainable weights: :func:`feature_jacobians`
computes them once per geometry (forward-mode autograd through the torch ACSF, float64, stored
as float32), as the features themselves are computed once. Training then needs only ∂ε/∂I,
one more (double) backward pass through the atomic network. That this equals the autograd
forces of :meth:`~hessflow.ml.bp.network.BPNetwork.energy_and_forces` through the whole ACSF is
tested.

Loss (:class:`ForceRegression`): MSE of the standardised energy target plus ``force_weight``
times the MSE over force components of F/scale (Bohr⁻¹, the forces in the units of the
standardised energy), over the geometries that have forces. Validation selects on the same sum.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from ..core.regression import Regression
from ..core.training import BatchLoss, Loop, to_device
from .dataset import padded
from .network import BPNetwork, atom_features


def feature_jacobians(net: BPNetwork, mols, idx=None, batch_size: int = 16) -> list:
    """∂I_if/∂R_ax of the raw per-atom features of the geometries ``idx`` (all by default):
    one (n, F, n, 3) float32 tensor each (None for geometries not in ``idx``), in Bohr⁻¹ times
    the features' units. Forward mode (3N tangents), vectorised over batches of geometries
    padded to a common atom count (sorted by size to keep the padding small)."""
    acsf64 = copy.deepcopy(net.acsf).double()
    idx = list(range(len(mols))) if idx is None else list(idx)
    idx.sort(key=lambda i: len(mols[i]["numbers"]))
    out: list = [None] * len(mols)

    def feats(c, z):
        return atom_features(acsf64, z[None], c[None], z[None] > 0)[0]
    jac = torch.func.vmap(torch.func.jacfwd(feats))
    for s in range(0, len(idx), batch_size):
        sel = idx[s:s + batch_size]
        z, x = padded(mols, sel)
        j = jac(x, z)
        for b, i in enumerate(sel):
            k = len(mols[i]["numbers"])
            out[i] = j[b, :k, :, :k].float().contiguous()
    return out


class ForceDataset(Dataset):
    """Samples ``((features, jacobian), (target, forces/scale))``: per-atom features (n, F),
    their Jacobian (n, F, n, 3), the standardised energy target and the forces in its units
    (n, 3; NaN for a geometry without forces)."""

    def __init__(self, features, jacobians, targets, forces, scale_hartree: float):
        self.x, self.j = list(features), list(jacobians)
        self.y = torch.as_tensor(np.asarray(targets), dtype=torch.float32)
        self.f = [torch.full((x.shape[0], 3), float("nan")) if f is None else
                  torch.as_tensor(np.asarray(f) / scale_hartree, dtype=torch.float32)
                  for x, f in zip(self.x, forces)]

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        j = self.j[i] if self.j[i] is not None else torch.zeros(
            (*self.x[i].shape, self.x[i].shape[0], 3))
        return (self.x[i], j), (self.y[i], self.f[i])


def force_collate(batch):
    """((features (B, N, F), mask (B, N), jacobians (B, N, F, N, 3)), (targets (B,), forces
    (B, N, 3), NaN on padding)): a batch padded to its largest molecule."""
    n = max(b[0][0].shape[0] for b in batch)
    nf = batch[0][0][0].shape[1]
    f = torch.zeros(len(batch), n, nf)
    jac = torch.zeros(len(batch), n, nf, n, 3)
    mask = torch.zeros(len(batch), n, dtype=torch.bool)
    forces = torch.full((len(batch), n, 3), float("nan"))
    for b, ((x, j), (_, fb)) in enumerate(batch):
        k = x.shape[0]
        f[b, :k], jac[b, :k, :, :k], mask[b, :k], forces[b, :k] = x, j, True, fb
    return (f, mask, jac), (torch.stack([b[1][0] for b in batch]), forces)


def standardised_energy_and_forces(net, features, mask, jac, create_graph: bool):
    """(Σ_i ε_i (B,), its forces −∂/∂R (B, N, 3)) from raw features and their Jacobians; the
    energy is the network's standardised residual, the forces are in its units (Bohr⁻¹)."""
    features = features.detach().requires_grad_(True)
    eps = net(features, mask)
    (g,) = torch.autograd.grad(eps.sum(), features, create_graph=create_graph)
    return eps, -torch.einsum("bif,bifax->bax", g, jac)


def _mse(pred, target):
    ok = torch.isfinite(target)
    return ((pred - torch.nan_to_num(target)) ** 2 * ok).sum() / ok.sum().clamp_min(1), int(ok.sum())


class ForceRegression(Regression):
    """Regression hooks on energies and forces (see the module docstring): batch terms
    ``energy`` and ``force`` (the two MSEs), validation on ``loss`` = their weighted sum; the
    progress line shows the validation energy MAE in ``unit``."""
    parts = ("energy", "force")

    def __init__(self, force_weight: float, unit: str = "", label_scale: float = 1.0):
        super().__init__(collate=force_collate, finish=False, unit=unit, label_scale=label_scale)
        self.force_weight = float(force_weight)

    def _terms(self, net, batch, device, create_graph):
        (f, mask, jac), (y, forces) = batch
        f, mask, jac = to_device((f, mask, jac), device)
        y, forces = y.to(device), forces.to(device)
        eps, pred_f = standardised_energy_and_forces(net, f, mask, jac, create_graph)
        e_mse, _ = _mse(eps, y)
        f_mse, n_f = _mse(pred_f, forces)
        return e_mse, f_mse, (eps - y).abs().detach(), n_f

    def batch_loss(self, loop: Loop, batch, step: int) -> BatchLoss:
        e_mse, f_mse, _, _ = self._terms(loop.net, batch, loop.device, create_graph=True)
        loss = e_mse + self.force_weight * f_mse
        return BatchLoss(loss, len(batch[1][0]), {"energy": e_mse.item(), "force": f_mse.item()})

    def validate(self, loop: Loop, train: dict) -> dict:
        idx = list(self._splits["val"])
        if not idx:
            self.val_mae = None
            return {"loss": train["loss"]}
        loop.model.eval()
        loader = DataLoader(Subset(self._data, idx), batch_size=64, shuffle=False,
                            collate_fn=self.collate)
        se = sf = nf = ae = 0.0
        for batch in loader:
            e_mse, f_mse, abs_e, n_f = self._terms(loop.model, batch, loop.device, False)
            se += e_mse.item() * len(abs_e)
            sf += f_mse.item() * n_f
            nf += n_f
            ae += float(abs_e.sum())
        e_mse, f_mse = se / len(idx), (sf / nf if nf else 0.0)
        self.val_mae = ae / len(idx)
        return {"loss": e_mse + self.force_weight * f_mse, "energy": e_mse, "force": f_mse}
