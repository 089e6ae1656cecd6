"""The SMILES VAE network: GRU encoder and decoder over tokens, a property predictor on the
latent mean.

- a token embedding shared by encoder and decoder;
- encoder: GRU over ``<bos> tokens <eos>`` (packed, pads never seen); the final hidden states of
  all layers give the posterior mean μ and log-variance;
- reparameterisation z = μ + σ·ε while training; μ itself when encoding for evaluation;
- decoder: z -> initial hidden state of a GRU whose input at every step is the previous token's
  embedding concatenated with z; a linear layer gives token logits. Training uses teacher
  forcing; ``teacher_forcing < 1`` feeds, per molecule and step, the model's own previous argmax
  token instead with probability ``1 - teacher_forcing``. Generation is greedy (argmax) or sampled
  (softmax with a temperature), batched, until ``<eos>`` or the maximum length;
- property predictor on μ: hidden layers, ReLU, -> one output per (standardised) property.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from .tokens import BOS_ID, EOS_ID, PAD_ID


class SmilesVAE(nn.Module):
    """GRU encoder/decoder over SMILES tokens with a property predictor on the latent mean."""

    def __init__(self, vocab_size: int, n_props: int = 0, embed: int = 48, hidden: int = 512,
                 layers: int = 2, latent: int = 56, predictor: Sequence[int] = (28, 14)):
        super().__init__()
        self.vocab_size, self.n_props = int(vocab_size), int(n_props)
        self.hidden, self.layers, self.latent = int(hidden), int(layers), int(latent)
        self.emb = nn.Embedding(vocab_size, embed, padding_idx=PAD_ID)
        self.encoder = nn.GRU(embed, hidden, layers, batch_first=True)
        self.to_mu = nn.Linear(hidden * layers, latent)
        self.to_logvar = nn.Linear(hidden * layers, latent)
        self.z_to_h = nn.Linear(latent, hidden * layers)
        self.decoder = nn.GRU(embed + latent, hidden, layers, batch_first=True)
        self.out = nn.Linear(hidden, vocab_size)
        self.predictor = None
        if n_props:
            mods, width = [], latent
            for h in predictor:
                mods += [nn.Linear(width, int(h)), nn.ReLU()]
                width = int(h)
            mods.append(nn.Linear(width, n_props))
            self.predictor = nn.Sequential(*mods)

    # encoder
    def encode(self, ids, lengths):
        """(μ, log σ²) of ``ids`` (B, T) padded, with ``lengths`` (B,) ids each."""
        packed = pack_padded_sequence(self.emb(ids), lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        _, h = self.encoder(packed)                   # (layers, B, H)
        h = h.transpose(0, 1).reshape(ids.shape[0], -1)
        return self.to_mu(h), self.to_logvar(h)

    # decoder
    def _h0(self, z):
        h = torch.tanh(self.z_to_h(z))
        return h.view(z.shape[0], self.layers, self.hidden).transpose(0, 1).contiguous()

    def decode_logits(self, z, ids, teacher_forcing: float = 1.0):
        """Logits (B, T-1, V) for predicting ``ids[:, 1:]`` from ``ids[:, :-1]`` and z."""
        inputs = ids[:, :-1]
        h = self._h0(z)
        if teacher_forcing >= 1.0:
            x = torch.cat([self.emb(inputs), z.unsqueeze(1).expand(-1, inputs.shape[1], -1)], -1)
            y, _ = self.decoder(x, h)
            return self.out(y)
        logits, prev = [], inputs[:, 0]
        for t in range(inputs.shape[1]):
            if t > 0:
                own = logits[-1].argmax(-1)
                use_true = torch.rand(prev.shape[0], device=z.device) < teacher_forcing
                prev = torch.where(use_true, inputs[:, t], own)
            y, h = self.decoder(torch.cat([self.emb(prev), z], -1).unsqueeze(1), h)
            logits.append(self.out(y[:, 0]))
        return torch.stack(logits, 1)

    def predict(self, z):
        """Standardised properties at latent points z (B, n_props)."""
        if self.predictor is None:
            return z.new_zeros(z.shape[0], 0)
        return self.predictor(z)

    def forward(self, ids, lengths, teacher_forcing: float = 1.0, sample: bool = True):
        mu, logvar = self.encode(ids, lengths)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        return self.decode_logits(z, ids, teacher_forcing), mu, logvar, self.predict(mu)

    @torch.no_grad()
    def generate(self, z, max_len: int, greedy: bool = True, temperature: float = 1.0,
                 generator: torch.Generator | None = None):
        """Token ids (B, ≤ max_len) decoded from z, starting at ``<bos>``; ``<pad>`` and
        ``<bos>`` are never emitted; rows stop at ``<eos>``."""
        b = z.shape[0]
        h = self._h0(z)
        prev = torch.full((b,), BOS_ID, dtype=torch.long, device=z.device)
        done = torch.zeros(b, dtype=torch.bool, device=z.device)
        out = []
        for _ in range(max_len):
            y, h = self.decoder(torch.cat([self.emb(prev), z], -1).unsqueeze(1), h)
            logits = self.out(y[:, 0])
            logits[:, PAD_ID] = -math.inf
            logits[:, BOS_ID] = -math.inf
            if greedy:
                nxt = logits.argmax(-1)
            else:
                p = torch.softmax(logits / max(temperature, 1e-6), -1)
                nxt = torch.multinomial(p.cpu(), 1, generator=generator)[:, 0].to(z.device)
            nxt = torch.where(done, torch.full_like(nxt, PAD_ID), nxt)
            out.append(nxt)
            done |= nxt == EOS_ID
            prev = nxt
            if bool(done.all()):
                break
        return torch.stack(out, 1) if out else torch.zeros(b, 0, dtype=torch.long)
