"""The property models (PyTorch).

- :class:`MLP` — the vibration paper's 444-100-20-1 network with ReLU6 (widths configurable);
  defined in :mod:`hessflow.ml.core.nn` (the BP network's atomic nets are MLPs too).
- :class:`Weave` — Kearnes et al. 2016 weave graph convolution as used by Faber et al. 2017:
  weave layers update atom and pair features from each other (A->A, P->A, A->P, P->P), then a
  dense layer, sum pooling over atoms and an output MLP.
- :class:`TiedDAE` — a five-layer tied-weights denoising autoencoder (input, two hidden, code;
  the decoder reuses the transposed encoder weights) with Gaussian input noise; its
  :meth:`TiedDAE.encoder` can replace the input layer of a supervised net, frozen or not.
(The masked loss of multi-output heads with padded targets, e.g. the 3N-6 frequencies, is
:func:`hessflow.ml.core.regression.masked_mse`.)

All models are plain ``nn.Module``s made of ``nn.Linear`` layers, activations and sums, so that
layer-wise relevance propagation can go through them.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.nn import MLP, activation

__all__ = ["MLP", "Weave", "WeaveLayer", "TiedDAE", "activation"]


class WeaveLayer(nn.Module):
    """One weave module: new atom features from atoms and summed pairs; new pair features from
    pairs and the (order-symmetrised) atom pair."""

    def __init__(self, n_atom_in, n_pair_in, n_atom_out=50, n_pair_out=50, n_hidden=50,
                 act: str = "relu", update_pairs: bool = True):
        super().__init__()
        self.aa = nn.Linear(n_atom_in, n_hidden)
        self.pa = nn.Linear(n_pair_in, n_hidden)
        self.a_out = nn.Linear(2 * n_hidden, n_atom_out)
        self.update_pairs = update_pairs  # the last module feeds only atoms to the readout
        if update_pairs:
            self.ap = nn.Linear(2 * n_atom_in, n_hidden)
            self.pp = nn.Linear(n_pair_in, n_hidden)
            self.p_out = nn.Linear(2 * n_hidden, n_pair_out)
        self.act = activation(act)

    def forward(self, atoms, pairs, atom_mask):
        # atoms (B, N, Fa), pairs (B, N, N, Fp), atom_mask (B, N)
        pair_mask = (atom_mask[:, :, None] * atom_mask[:, None, :])[..., None]
        a_from_a = self.act(self.aa(atoms))
        a_from_p = (self.act(self.pa(pairs)) * pair_mask).sum(2)
        new_atoms = self.act(self.a_out(torch.cat([a_from_a, a_from_p], -1)))
        if not self.update_pairs:
            return new_atoms * atom_mask[..., None], pairs
        n = atoms.shape[1]
        ai = atoms[:, :, None, :].expand(-1, -1, n, -1)
        aj = atoms[:, None, :, :].expand(-1, n, -1, -1)
        p_from_a = self.act(self.ap(torch.cat([ai, aj], -1))) + self.act(self.ap(torch.cat([aj, ai], -1)))
        p_from_p = self.act(self.pp(pairs))
        new_pairs = self.act(self.p_out(torch.cat([p_from_a, p_from_p], -1)))
        return new_atoms * atom_mask[..., None], new_pairs * pair_mask


class Weave(nn.Module):
    """The weave network: ``n_layers`` weave modules of ``width`` (the last updates atoms
    only), a dense layer of ``n_dense``, sum pooling over the real atoms and a two-layer output
    head of ``n_out``. Inputs: atoms (B, N, 21), pairs (B, N, N, 13), atom mask (B, N)."""
    def __init__(self, n_atom_features: int = 21, n_pair_features: int = 13, n_layers: int = 2,
                 width: int = 50, n_dense: int = 128, n_out: int = 1, act: str = "relu"):
        super().__init__()
        layers, fa, fp = [], n_atom_features, n_pair_features
        for i in range(n_layers):
            layers.append(WeaveLayer(fa, fp, width, width, width, act,
                                     update_pairs=i < n_layers - 1))
            fa, fp = width, (width if i < n_layers - 1 else fp)
        self.layers = nn.ModuleList(layers)
        self.dense = nn.Linear(fa, n_dense)
        self.act = activation(act)
        self.head = nn.Sequential(nn.Linear(n_dense, n_dense), activation(act), nn.Linear(n_dense, n_out))
        self.n_out = n_out

    def forward(self, atoms, pairs, atom_mask):
        for layer in self.layers:
            atoms, pairs = layer(atoms, pairs, atom_mask)
        h = self.act(self.dense(atoms)) * atom_mask[..., None]
        y = self.head(h.sum(1))  # sum pooling: size-extensive properties (alpha, ZPVE)
        return y.squeeze(-1) if self.n_out == 1 else y


class TiedDAE(nn.Module):
    """Five layers: input -> h1 -> h2 -> code -> h2' -> h1' -> output with tied weights (the three
    encoder matrices, transposed, are the decoder)."""

    def __init__(self, n_in: int, hidden=(128, 64), n_code: int = 16, noise_std: float = 0.1,
                 act: str = "relu"):
        super().__init__()
        dims = [n_in, *hidden, n_code]
        self.enc = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.dec_bias = nn.ParameterList(nn.Parameter(torch.zeros(a)) for a in dims[:-1])
        self.act = activation(act)
        self.noise_std = noise_std

    def encode(self, x):
        for lin in self.enc:
            x = self.act(lin(x))
        return x

    def decode(self, code):
        x = code
        for i in reversed(range(len(self.enc))):
            x = nn.functional.linear(x, self.enc[i].weight.t(), self.dec_bias[i])
            if i > 0:
                x = self.act(x)
        return x

    def forward(self, x):
        if self.training and self.noise_std > 0:
            x = x + self.noise_std * torch.randn_like(x)
        return self.decode(self.encode(x))

    def encoder(self, freeze: bool = False) -> nn.Module:
        """The encoder as a module (Linear + activation layers) to put in front of a supervised
        net; ``freeze`` stops its training."""
        layers = []
        for lin in self.enc:
            layers += [lin, type(self.act)()]
        enc = nn.Sequential(*layers)
        for p in enc.parameters():
            p.requires_grad_(not freeze)
        return enc

