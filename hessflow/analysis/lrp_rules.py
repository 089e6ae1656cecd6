"""The LRP rules: how one linear map or weight-free sum hands relevance to its inputs.

The rules (epsilon, z+, gamma, alpha-beta) and bias treatments are described in
:mod:`hessflow.analysis.relevance`; :class:`_Rule` implements them for a plain linear map
(:class:`_Dense`) and for ``nn.Linear`` on every pair of atoms (:class:`_PairOfAtoms`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

RULES = ("epsilon", "zplus", "gamma", "alphabeta")
BIAS_MODES = ("absorb", "ignore")
#: elementwise modules that pass relevance through unchanged
PASS_THROUGH = (nn.ReLU, nn.ReLU6, nn.Tanh, nn.Softplus, nn.Identity)


class _Dense:
    """A plain linear map ``z = x W^T (+ b)`` for the rules: the modified pre-activations and the
    input relevance ``x * (s W)`` of the gradient trick."""

    @staticmethod
    def z(x, w, b):
        return F.linear(x, w, b)

    @staticmethod
    def rel(x, s, w):
        return (s @ w).mul_(x)


class _PairOfAtoms:
    """``nn.Linear`` on the concatenation ``[a_i, a_j]`` for every pair (i, j) of atoms, computed
    from the atoms without forming the (B, N, N, 2F) concatenation: ``z_ij = W_L a_i + W_R a_j
    + b``; the relevance of atom n collects that of its copies as ``a_i`` (summed over j) and as
    ``a_j`` (summed over i)."""

    @staticmethod
    def z(a, w, b):
        f = a.shape[-1]
        z = F.linear(a, w[:, :f])[:, :, None] + F.linear(a, w[:, f:])[:, None]
        return z if b is None else z + b

    @staticmethod
    def rel(a, s, w):
        f = a.shape[-1]
        return a * (s.sum(2) @ w[:, :f] + s.sum(1) @ w[:, f:])


class _Rule:
    """One LRP rule: how a linear map (:meth:`linear`) and a weight-free sum (:meth:`sum`) hand
    the relevance of their outputs to their inputs."""

    def __init__(self, name, epsilon, gamma, alpha, beta, bias):
        if name not in RULES:
            raise ValueError(f"rule: {name!r} is not one of {', '.join(RULES)}")
        if bias not in BIAS_MODES:
            raise ValueError(f"bias: {bias!r} is not one of {', '.join(BIAS_MODES)}")
        if not epsilon >= 0:
            raise ValueError(f"epsilon: must be >= 0, got {epsilon}")
        if name == "gamma" and not gamma >= 0:
            raise ValueError(f"gamma: must be >= 0, got {gamma}")
        if name == "zplus":
            alpha, beta = 1.0, 0.0
        if name == "alphabeta" and (alpha < 0 or beta < 0 or abs(alpha - beta - 1) > 1e-12):
            raise ValueError(f"alpha, beta: need alpha - beta = 1 and both >= 0, got alpha={alpha}, "
                             f"beta={beta}")
        self.name, self.eps, self.gamma = name, float(epsilon), float(gamma)
        self.alpha, self.beta, self.absorb = float(alpha), float(beta), bias == "absorb"

    def _stab(self, z):
        """``z + epsilon sign(z)``, ``sign(0) = +1`` (as zennit; ``-0.0`` counts as negative)."""
        return torch.copysign(torch.tensor(self.eps, dtype=z.dtype, device=z.device), z).add_(z)

    def _ratio(self, R, z):
        """``R / stab(z)`` (the ``s`` of the gradient trick), in one new tensor."""
        d = self._stab(z)
        return torch.div(R, d, out=d)

    def _part(self, op, xp, xn, w_p, w_n, b, R):
        """Relevance through ``z' = x^+ w_p^T + x^- w_n^T (+ b)``: (R_x, R_bias)."""
        z = op.z(xp, w_p, b)
        if xn is not None:
            z.add_(op.z(xn, w_n, None))
        s = self._ratio(R, z)
        r = op.rel(xp, s, w_p)
        if xn is not None:
            r.add_(op.rel(xn, s, w_n))
        return r, _bias_share(s, b)

    def linear(self, x, lin: nn.Linear, z, R, op=_Dense):
        """Relevance of the inputs ``x`` (..., I) of ``lin``, whose pre-activations ``z`` (..., O)
        carry ``R`` (..., O): (R_x (..., I), R_bias (...)). ``op``: :class:`_Dense`, or
        :class:`_PairOfAtoms` with ``x`` the atoms (B, N, I/2) and ``z``, ``R`` (B, N, N, O)."""
        w = lin.weight
        b = lin.bias if (self.absorb and lin.bias is not None) else None
        if self.name == "epsilon":
            if lin.bias is not None and b is None:
                z = z - lin.bias
            return op.rel(x, s := self._ratio(R, z), w), _bias_share(s, b)
        if bool((x < 0).any()):
            xp, xn = x.clamp(min=0), x.clamp(max=0)
        else:  # e.g. after a ReLU: no negative-input terms
            xp, xn = x, None
        w_p, w_n = w.clamp(min=0), w.clamp(max=0)
        if self.name == "gamma":
            w_a, w_b = w + self.gamma * w_p, w + self.gamma * w_n
            b_a = None if b is None else b + self.gamma * b.clamp(min=0)
            b_b = None if b is None else b + self.gamma * b.clamp(max=0)
            r_pos, rb_pos = self._part(op, xp, xn, w_a, w_b, b_a, R * (z > 0))
            r_neg, rb_neg = self._part(op, xp, xn, w_b, w_a, b_b, R * (z < 0))
            return r_pos + r_neg, rb_pos + rb_neg
        # zplus = alphabeta(1, 0)
        b_p = None if b is None else b.clamp(min=0)
        r, rb = self._part(op, xp, xn, w_p, w_n, b_p, R)
        r, rb = self.alpha * r, self.alpha * rb
        if self.beta:
            b_n = None if b is None else b.clamp(max=0)
            r_n, rb_n = self._part(op, xp, xn, w_n, w_p, b_n, R)
            r, rb = r - self.beta * r_n, rb - self.beta * rb_n
        return r, rb

    def sum(self, h, dim, R):
        """Relevance of the summands ``h`` of ``h.sum(dim)``, which carries ``R``: the rule with
        unit weights and no bias."""
        R = R.unsqueeze(dim)
        if self.name == "epsilon":
            return h * self._ratio(R, h.sum(dim, keepdim=True))
        hp, hn = h.clamp(min=0), h.clamp(max=0)
        if self.name == "gamma":
            z = h.sum(dim, keepdim=True)
            ha, hb = h + self.gamma * hp, h + self.gamma * hn
            return (ha * self._ratio(R * (z > 0), ha.sum(dim, keepdim=True))
                    + hb * self._ratio(R * (z < 0), hb.sum(dim, keepdim=True)))
        r = hp * self._ratio(self.alpha * R, hp.sum(dim, keepdim=True))
        if self.beta:
            r = r - hn * self._ratio(self.beta * R, hn.sum(dim, keepdim=True))
        return r


def _bias_share(s, b):
    if b is None:
        return torch.zeros(s.shape[:-1], dtype=s.dtype, device=s.device)
    return s @ b


def _per_sample(t):
    return t.reshape(t.shape[0], -1).sum(1)
