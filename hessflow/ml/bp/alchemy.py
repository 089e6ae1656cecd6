""""Alchemical" interpolation between element assignments of one geometry.

Intermediate states are (1 − λ) I_a + λ I_b of the two states' per-atom features (and of their
reference energies), so λ = 0 and 1 are the network's energies of the two molecules.
"""

from __future__ import annotations

import numpy as np
import torch

from ...errors import HessflowError
from .network import BPNetwork


def interpolate_features(features_a, features_b, lam: float):
    """(1 − λ) I_a + λ I_b: the feature vector of an "alchemical" intermediate state."""
    if tuple(features_a.shape) != tuple(features_b.shape):
        raise HessflowError(f"interpolate: feature shapes differ ({tuple(features_a.shape)} vs "
                            f"{tuple(features_b.shape)}); the two states need the same atoms")
    return (1.0 - lam) * features_a + lam * features_b


@torch.no_grad()
def alchemical_energies(net: BPNetwork, numbers_a, numbers_b, coords_bohr, lambdas) -> np.ndarray:
    """Energies (Hartree) along (1 − λ) I_a + λ I_b for two element assignments of the same
    geometry (e.g. an O → S substitution), with the reference part interpolated the same way. At
    λ = 0 and 1 these are the network's energies of the two molecules."""
    za, zb = torch.as_tensor(numbers_a)[None], torch.as_tensor(numbers_b)[None]
    if za.shape != zb.shape:
        raise HessflowError("alchemical_energies: the two states need the same number of atoms")
    x = torch.as_tensor(np.asarray(coords_bohr, float)).to(net.feat_mean.dtype)[None]
    ma, mb = za > 0, zb > 0
    fa, fb = net.features(za, x, ma), net.features(zb, x, mb)
    ra, rb = net.reference_energy(za, ma), net.reference_energy(zb, mb)
    out = []
    for lam in lambdas:
        f = interpolate_features(fa, fb, float(lam))
        out.append(float(net.energy_from_features(f, ma | mb, (1 - lam) * ra + lam * rb)[0]))
    return np.array(out)
