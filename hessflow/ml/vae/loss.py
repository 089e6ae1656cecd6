"""The SMILES VAE's training objective.

Per molecule, averaged over the batch::

    token cross-entropy summed over the molecule's tokens (pads ignored)
    + kl_weight · Σ_d max(KL_d, free_bits)          (KL_d: batch-mean KL of latent dimension d)
    + prop_weight · mean squared error of the standardised properties

``free_bits`` (nats per dimension) stops the optimiser from pushing a dimension's KL below that,
against posterior collapse.
"""

from __future__ import annotations

import torch
from torch import nn

from .tokens import PAD_ID


def vae_loss(logits, ids, mu, logvar, props_pred, props_true, kl_weight: float, free_bits: float,
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
    return ce + kl_weight * kl_pen + prop_weight * prop, ce, kl, prop
