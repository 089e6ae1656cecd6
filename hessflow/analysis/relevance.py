"""Layer-wise relevance propagation (LRP) for hessflow's regression models.

:func:`lrp` explains one prediction ``f(x)`` of a :class:`~hessflow.ml.property.models.MLP`,
a :class:`~hessflow.ml.property.models.Weave`, the encoder of a
:class:`~hessflow.ml.property.models.TiedDAE` (its code units) or an ``nn.Sequential`` of
these pieces (e.g. ``nn.Sequential(dae.encoder(), mlp)``) by a relevance per input feature.
The output unit starts with relevance ``R = f(x)``; every linear map
``z_j = sum_i x_i w_ij + b_j`` hands the relevance ``R_j`` of its outputs down to its inputs in
proportion to their (rule-modified) contributions ``z_ij = x_i w_ij``:

    R_i = x_i sum_j w'_ij R_j / stab(z'_j)      (the "gradient trick": s = R / z', c = W'^T s, R_x = x c)

Rules (one rule for every linear map of the model and for its weight-free sums):

``epsilon``
    ``z' = z`` and ``stab(z) = z + epsilon * sign(z)`` (``sign(0) = +1``). With ``epsilon -> 0``
    this is LRP-0, which equals gradient x input for ReLU networks without biases.
``zplus``
    Positive contributions only: ``z'_ij = (x_i w_ij)^+`` (for non-negative inputs, e.g. after a
    ReLU, that is the positive-weights rule ``x_i w_ij^+``; for positive outputs it is the
    ``gamma -> infinity`` limit of ``gamma``). Identical to ``alphabeta`` with alpha=1, beta=0.
``gamma``
    ``z'_ij = z_ij + gamma z_ij^+`` for units whose pre-activation ``z_j`` is positive and
    ``z_ij + gamma z_ij^-`` for negative ones (the generalised gamma rule of zennit, which for
    non-negative inputs and positive outputs is Montavon et al.'s ``w + gamma w^+``); units with
    ``z_j = 0`` pass no relevance.
``alphabeta``
    ``R_i = alpha R_i(positive contributions) - beta R_i(negative contributions)``, each part
    normalised by its own sum; ``alpha - beta = 1``, both non-negative (default alpha=1, beta=0).

``epsilon`` is the stabiliser of every rule (as zennit's ``stabilizer``). The weight-free sums of
the weave model (the symmetric pair term ``ap(cat[a_i, a_j]) + ap(cat[a_j, a_i])``, the masked sum
over pairs and the sum pooling over atoms) use the same rule with unit weights. Elementwise
activations (ReLU, ReLU6, Tanh, Softplus) pass relevance through unchanged; concatenations split
it; a tensor used twice (atoms feeding atoms and pairs) collects the relevance of both uses;
multiplying by the 0/1 atom or pair mask keeps relevance on the real atoms and pairs, and the mask
input itself gets none (its relevance tensor is zeros). Relevance is computed with the model's
real forward pass (biases included) for the activations: the rules only change how relevance is
divided.

Bias treatment (``bias=``):

``"absorb"`` (default)
    Every bias is one more contributor of its unit (its positive part with the positive
    contributions for ``zplus``/``alphabeta``, ``b + gamma b^+-`` for ``gamma``) and keeps its share;
    ``bias_relevance`` is the sum of the shares of all biases of all layers. This is zennit's default.
``"ignore"``
    The biases are left out of the denominators (zennit's ``zero_params=["bias"]``), so all relevance
    goes to the inputs and ``bias_relevance`` is zero. A unit driven by its bias alone (all its
    inputs zero, e.g. the weave model's self-pairs, whose 13 features are all zero) then has no
    input to pass its relevance to, and that relevance is lost (``conservation_error`` shows it).

``reference`` is what the rule does not distribute to the inputs: ``bias_relevance`` for
``"absorb"``, zero for ``"ignore"``; ``conservation_error = |sum R_input - (prediction - reference)|``
per sample. It is zero up to float rounding and the stabiliser's leak (``epsilon / (|z'| + epsilon)``
of every ``R_j``) for ``epsilon``, ``zplus`` (= alpha1-beta0) and ``gamma`` wherever no denominator
that receives relevance vanishes (with ``"absorb"`` in ReLU networks: always, but for a ``zplus``
output unit without any positive contribution); ``alphabeta`` with ``beta > 0`` conserves only
where every unit has both positive and negative contributions.

Everything is batched, without autograd, on the model's device and in its dtype (inputs are moved
and cast to the model's first parameter). The explained forward pass is the deterministic one (no
denoising noise of a :class:`TiedDAE` in training mode). Each supported model's forward pass is
re-run here keeping the inputs and pre-activations of its linear maps, then walked backwards; for
the weave model's ``ap(cat[a_i, a_j])`` the pair pre-activations are formed from the atoms
(``W_L a_i + W_R a_j + b``, one map serving both orders), so the prediction equals the model's up
to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..ml.property.features import ATOM_BLOCKS, PAIR_BLOCKS, Blocks, padded_blocks
from ..ml.property.models import MLP, TiedDAE, Weave

RULES = ("epsilon", "zplus", "gamma", "alphabeta")
BIAS_MODES = ("absorb", "ignore")
#: elementwise modules that pass relevance through unchanged
PASS_THROUGH = (nn.ReLU, nn.ReLU6, nn.Tanh, nn.Softplus, nn.Identity)


@dataclass
class LRPResult:
    """What :func:`lrp` returns (relevance in the units of the explained output)."""
    prediction: torch.Tensor             # (B,); (B, n_out) when neither output nor weights is given
    relevance: tuple                     # one tensor per model input, same shape (mask inputs: zeros)
    bias_relevance: torch.Tensor         # (B,) relevance absorbed by the biases (zero for "ignore")
    reference: torch.Tensor              # (B,) prediction - sum of input relevance expected by the rule
    conservation_error: torch.Tensor     # (B,) |sum R_input - (prediction - reference)|
    settings: dict = field(default_factory=dict)  # rule, epsilon, gamma, alpha, beta, bias, output


# -- rules ---------------------------------------------------------------------------------------
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


# -- chains: MLP, TiedDAE encoder, nn.Sequential ----------------------------------------------------
def _chain_steps(module, top: bool = True) -> list:
    """The model as a flat list of nn.Linear and pass-through activation modules."""
    if isinstance(module, TiedDAE):
        if not top:
            raise ValueError("model: a TiedDAE inside nn.Sequential is its reconstruction; put "
                             "dae.encoder() in the Sequential instead")
        steps = []
        for lin in module.enc:
            steps += [lin, module.act]
        return steps
    if isinstance(module, MLP):
        return _chain_steps(module.net, False)
    if isinstance(module, nn.Sequential):
        return [s for child in module for s in _chain_steps(child, False)]
    if isinstance(module, (nn.Linear, *PASS_THROUGH)):
        return [module]
    raise ValueError(f"model: LRP cannot propagate through {type(module).__name__} (supported: MLP, "
                     "Weave, TiedDAE, nn.Sequential of nn.Linear, ReLU, ReLU6, Tanh, Softplus)")


def _chain_forward(steps, x):
    """Forward pass; returns the output and the (layer, input, pre-activation) of every Linear."""
    tape = []
    for m in steps:
        if isinstance(m, nn.Linear):
            z = m(x)
            tape.append((m, x, z))
            x = z
        else:
            x = m(x)
    return x, tape


def _chain_backward(tape, R, rule):
    bias = None
    for lin, x, z in reversed(tape):
        R, rb = rule.linear(x, lin, z, R)
        rb = _per_sample(rb) if rb.dim() > 1 else rb
        bias = rb if bias is None else bias + rb
    return R, bias


def _chain(model, inputs, rule):
    steps = _chain_steps(model)
    lins = [m for m in steps if isinstance(m, nn.Linear)]
    if not lins:
        raise ValueError(f"model: {type(model).__name__} has no nn.Linear layer to explain")
    if len(inputs) != 1:
        raise ValueError(f"inputs: {type(model).__name__} takes one tensor, got {len(inputs)}")
    x = inputs[0]
    if x.dim() != 2 or x.shape[1] != lins[0].in_features:
        raise ValueError(f"inputs[0]: expected shape (batch, {lins[0].in_features}), got "
                         f"{tuple(x.shape)}")
    out, tape = _chain_forward(steps, x)

    def backward(R):
        r, bias = _chain_backward(tape, R, rule)
        return (r,), bias
    return out, backward


# -- weave ---------------------------------------------------------------------------------------
def _weave_layer_forward(layer, A, P, m):
    """The forward pass of :class:`WeaveLayer`, keeping what LRP needs."""
    act = layer.act
    pm = (m[:, :, None] * m[:, None, :])[..., None]
    t = {"A": A, "P": P, "pm": pm, "m": m}
    t["z_aa"] = layer.aa(A)
    t["z_pa"] = layer.pa(P)
    t["h_pa"] = act(t["z_pa"]) * pm
    t["c1"] = torch.cat([act(t["z_aa"]), t["h_pa"].sum(2)], -1)
    t["z_ao"] = layer.a_out(t["c1"])
    new_atoms = act(t["z_ao"]) * m[..., None]
    if not layer.update_pairs:
        return t, new_atoms, P
    # ap(cat[a_i, a_j]) at (i, j) is ap(cat[a_j, a_i]) at (j, i): one pre-activation z1 serves
    # both terms of the symmetric sum, p_from_a = act(z1) + act(z1)^T
    t["z1"] = _PairOfAtoms.z(A, layer.ap.weight, layer.ap.bias)
    u1 = act(t["z1"])
    t["u"] = torch.stack([u1, u1.transpose(1, 2)], -1)  # p_from_a = u.sum(-1)
    t["z_pp"] = layer.pp(P)
    t["c2"] = torch.cat([t["u"].sum(-1), act(t["z_pp"])], -1)
    t["z_po"] = layer.p_out(t["c2"])
    return t, new_atoms, act(t["z_po"]) * pm


def _weave_layer_backward(layer, t, R_atoms, R_pairs, rule):
    """Relevance of a weave layer's input atoms and pairs from that of its outputs (``R_pairs``
    None when its output pairs are not used further); returns (R_A, R_P, bias (B,))."""
    R_atoms = R_atoms * t["m"][..., None]
    R_c1, b = rule.linear(t["c1"], layer.a_out, t["z_ao"], R_atoms)
    bias = _per_sample(b)
    h = layer.aa.out_features
    R_aa, R_apa = R_c1[..., :h], R_c1[..., h:]
    R_A, b = rule.linear(t["A"], layer.aa, t["z_aa"], R_aa)
    bias = bias + _per_sample(b)
    R_hpa = rule.sum(t["h_pa"], 2, R_apa)  # zero on padded pairs: h_pa is zero there
    R_P, b = rule.linear(t["P"], layer.pa, t["z_pa"], R_hpa)
    bias = bias + _per_sample(b)
    if layer.update_pairs and R_pairs is not None:
        # R_pairs is zero on padded pairs already: they are zero inputs of the next layer
        R_c2, b = rule.linear(t["c2"], layer.p_out, t["z_po"], R_pairs)
        bias = bias + _per_sample(b)
        h = layer.ap.out_features
        R_pfa, R_pfp = R_c2[..., :h], R_c2[..., h:]
        R_pp, b = rule.linear(t["P"], layer.pp, t["z_pp"], R_pfp)
        R_P, bias = R_P + R_pp, bias + _per_sample(b)
        R_u = rule.sum(t["u"], -1, R_pfa)
        # the relevance of both copies of each ap unit (the second term is the transposed first)
        R_z1 = R_u[..., 0] + R_u[..., 1].transpose(1, 2)
        R_ap, b = rule.linear(t["A"], layer.ap, t["z1"], R_z1, op=_PairOfAtoms)
        R_A, bias = R_A + R_ap, bias + _per_sample(b)
    return R_A, R_P, bias


def _weave(model: Weave, inputs, rule):
    if len(inputs) != 3:
        raise ValueError(f"inputs: the weave model takes (atoms, pairs, atom_mask), got {len(inputs)} "
                         "tensors")
    atoms, pairs, mask = inputs
    B, N = mask.shape[:2] if mask.dim() == 2 else (None, None)
    if mask.dim() != 2 or atoms.shape[:2] != (B, N) or pairs.shape[:3] != (B, N, N):
        raise ValueError(f"inputs: expected atoms (B, N, F), pairs (B, N, N, F) and atom_mask (B, N); "
                         f"got {tuple(atoms.shape)}, {tuple(pairs.shape)}, {tuple(mask.shape)}")
    first = model.layers[0]
    if atoms.shape[-1] != first.aa.in_features or pairs.shape[-1] != first.pa.in_features:
        raise ValueError(f"inputs: the model takes {first.aa.in_features} atom and "
                         f"{first.pa.in_features} pair features, got {atoms.shape[-1]} and "
                         f"{pairs.shape[-1]}")
    tapes, A, P = [], atoms, pairs
    for layer in model.layers:
        t, A, P = _weave_layer_forward(layer, A, P, mask)
        tapes.append(t)
    z_d = model.dense(A)
    h = model.act(z_d) * mask[..., None]
    out, head = _chain_forward(_chain_steps(model.head, False), h.sum(1))

    def backward(R):
        R_pool, bias = _chain_backward(head, R, rule)
        R_h = rule.sum(h, 1, R_pool) * mask[..., None]
        R_A, b = rule.linear(A, model.dense, z_d, R_h)
        bias = bias + _per_sample(b)
        R_P = None  # the last layer's pairs are not used by the readout
        for layer, t in zip(reversed(model.layers), reversed(tapes)):
            R_A, R_P, b = _weave_layer_backward(layer, t, R_A, R_P, rule)
            bias = bias + b
        return (R_A, R_P, torch.zeros_like(mask)), bias
    return out, backward


# -- public API ----------------------------------------------------------------------------------
def lrp(model, inputs: tuple, rule: str = "epsilon", epsilon: float = 1e-6, gamma: float = 0.25,
        alpha: float = 1.0, beta: float = 0.0, bias: str = "absorb",
        output: int | None = None, weights=None) -> LRPResult:
    """Relevance of every input feature for the prediction of ``model`` on a batch ``inputs``.

    ``model``: :class:`MLP`, :class:`Weave`, :class:`TiedDAE` (explains its code units: the
    encoder), or an ``nn.Sequential`` of MLPs, ``dae.encoder()``, ``nn.Linear`` and activations.
    ``inputs``: the tuple of tensors the model is called with (a single tensor is accepted), e.g.
    ``(x,)`` or ``(atoms, pairs, atom_mask)``. ``rule``, ``epsilon`` (the stabiliser of every rule),
    ``gamma``, ``alpha``, ``beta`` and ``bias`` as in the module docstring. ``output``: the index of
    the output unit to explain (e.g. a code unit); with ``None`` a single-output model's output is
    explained, and a multi-output model's outputs are explained together (their relevances add up,
    ``prediction`` is (B, n_out), and conservation refers to the sum of the outputs).
    ``weights`` (B, n_out), instead of ``output``: explain each sample's ``sum_k w_k out_k`` (e.g.
    a 0/1 mask of its real outputs) in one backward pass. Every rule is linear in the relevance
    it starts from, so this equals the weighted sum of the per-output explanations;
    ``prediction`` is then that weighted sum, (B,).
    """
    r = _Rule(rule, epsilon, gamma, alpha, beta, bias)
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    param = next(model.parameters(), None)
    if param is None:
        raise ValueError(f"model: {type(model).__name__} has no parameters to explain")
    inputs = tuple(torch.as_tensor(t).to(device=param.device, dtype=param.dtype) for t in inputs)
    with torch.no_grad():
        if isinstance(model, Weave):
            out, backward = _weave(model, inputs, r)
        else:
            out, backward = _chain(model, inputs, r)
        n_out = out.shape[-1]
        if weights is not None:
            if output is not None:
                raise ValueError("output and weights: give one or the other")
            w = torch.as_tensor(weights).to(device=out.device, dtype=out.dtype)
            if w.shape != out.shape:
                raise ValueError(f"weights: shape {tuple(w.shape)} is not the output shape "
                                 f"{tuple(out.shape)}")
            R = out * w
            prediction = total = R.sum(-1)
        elif output is None:
            R = out
            prediction = out[:, 0] if n_out == 1 else out
            total = out.sum(-1)
        else:
            if not isinstance(output, (int, np.integer)) or not 0 <= output < n_out:
                raise ValueError(f"output: {output!r} is not an output index of a model with {n_out} "
                                 "output(s)")
            R = torch.zeros_like(out)
            R[:, output] = out[:, output]
            prediction = total = out[:, output]
        relevance, bias_rel = backward(R)
        reference = bias_rel if r.absorb else torch.zeros_like(bias_rel)
        sum_in = sum(_per_sample(t) for t in relevance)
        err = (sum_in - (total - reference)).abs()
    settings = {"rule": rule, "epsilon": epsilon, "gamma": gamma, "alpha": r.alpha, "beta": r.beta,
                "bias": bias, "output": "weighted sum" if weights is not None else output}
    return LRPResult(prediction, tuple(relevance), bias_rel, reference, err, settings)


def _np(a):
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def aggregate(relevance, blocks: Blocks, mask=None, normalise: bool = True) -> dict:
    """Relevance per feature block, per sample.

    ``relevance``: (S, F), (S, N, F) or (S, N, N, F) with ``F = blocks.size``. For each sample and
    block: ``signed`` is the relevance summed over the block's columns and ``absolute`` the sum of
    the columns' absolute relevances, both averaged over the real positions (atoms or pairs):
    ``mask`` is (S, N) for atoms, (S, N, N) for pairs, or for pair relevance an atom mask (S, N)
    from which the pair mask ``m_i m_j`` is made (self-pairs included, as the weave model uses
    them). With ``normalise`` each sample's two rows are divided by the sum of its ``absolute``
    row (so that row sums to 1; a sample without relevance stays zero).
    Returns ``{"names": [...], "signed": (S, n_blocks), "absolute": (S, n_blocks)}``.
    """
    R = _np(relevance).astype(float)
    if R.ndim < 2 or R.shape[-1] != blocks.size:
        raise ValueError(f"relevance: shape {R.shape} does not end in the {blocks.size} columns of "
                         "the blocks")
    onehot = np.zeros((blocks.size, len(blocks.widths)))
    onehot[np.arange(blocks.size), blocks.index()] = 1
    signed, absolute = R @ onehot, np.abs(R) @ onehot
    pos = tuple(range(1, R.ndim - 1))
    if pos:
        if mask is None:
            w = np.ones(R.shape[:-1])
        else:
            w = _np(mask).astype(float)
            if R.ndim == 4 and w.ndim == 2:
                w = w[:, :, None] * w[:, None, :]
            if w.shape != R.shape[:-1]:
                raise ValueError(f"mask: shape {w.shape} does not match the relevance positions "
                                 f"{R.shape[:-1]}")
        count = w.sum(pos)
        if np.any(count <= 0):
            raise ValueError("mask: a sample has no real atom")
        signed = (signed * w[..., None]).sum(pos) / count[:, None]
        absolute = (absolute * w[..., None]).sum(pos) / count[:, None]
    if normalise:
        tot = absolute.sum(1, keepdims=True)
        scale = np.divide(1.0, tot, out=np.zeros_like(tot), where=tot > 0)
        signed, absolute = signed * scale, absolute * scale
    return {"names": list(blocks.names), "signed": signed, "absolute": absolute}


def weave_feature_types(result: LRPResult, atom_mask) -> dict:
    """Per-sample relevance of the weave feature types: the 8 atom types (``ATOM_BLOCKS``, averaged
    over the real atoms) and the 4 pair types (``PAIR_BLOCKS``, averaged over the real atom pairs,
    self-pairs included). Not normalised (see :func:`paper_normalise`).
    Returns ``{"names", "kinds" ("atom"/"pair"), "signed": (S, 12), "absolute": (S, 12)}``."""
    a = aggregate(result.relevance[0], ATOM_BLOCKS, atom_mask, normalise=False)
    p = aggregate(result.relevance[1], PAIR_BLOCKS, atom_mask, normalise=False)
    return {"names": a["names"] + p["names"],
            "kinds": ["atom"] * len(a["names"]) + ["pair"] * len(p["names"]),
            "signed": np.hstack([a["signed"], p["signed"]]),
            "absolute": np.hstack([a["absolute"], p["absolute"]])}


def padded_feature_types(result: LRPResult, max_atoms, n_molecules=1, n_conditions=0) -> dict:
    """Element (Z) vs coordinates (x, y, z) relevance of a padded-coordinates input
    (:func:`~hessflow.ml.property.features.padded_blocks` layout), per sample.

    ``per_atom``: ``signed`` / ``absolute`` (S, n_molecules, max_atoms, 2) with the last axis
    (element, coordinates), the coordinates summed over x, y, z. Overall (``names``, ``signed``,
    ``absolute``, (S, 2) or (S, 3) with the conditions): totals over all atoms (padding rows have
    zero inputs and so exactly zero relevance)."""
    blocks = padded_blocks(n_molecules, n_conditions, max_atoms)
    agg = aggregate(result.relevance[0], blocks, normalise=False)
    S, k = agg["signed"].shape[0], n_molecules * max_atoms * 2
    per_s = agg["signed"][:, :k].reshape(S, n_molecules, max_atoms, 2)
    per_a = agg["absolute"][:, :k].reshape(S, n_molecules, max_atoms, 2)
    names = ["element", "coordinates"]
    signed, absolute = [per_s.sum((1, 2))], [per_a.sum((1, 2))]
    if n_conditions:
        names.append("conditions")
        signed.append(agg["signed"][:, k:])
        absolute.append(agg["absolute"][:, k:])
    return {"names": names, "signed": np.hstack(signed), "absolute": np.hstack(absolute),
            "per_atom": {"names": ["element", "coordinates"], "signed": per_s, "absolute": per_a}}


def paper_normalise(values, exclude=None) -> np.ndarray:
    """The paper's scaling of per-sample, per-type relevances ``values`` (S, T) (or (S,)): each
    type is shifted to zero mean over the dataset, then everything is divided by the largest
    absolute shifted value over the dataset (one scale for all types, so types stay comparable).
    ``exclude``: boolean (S,) mask of outlier samples, left out of the statistics and of the
    returned rows (shape (S - n_excluded, T))."""
    v = np.asarray(_np(values), float)
    one_d = v.ndim == 1
    v = v.reshape(len(v), -1)
    if exclude is not None:
        ex = np.asarray(_np(exclude), bool)
        if ex.shape != (len(v),):
            raise ValueError(f"exclude: expected a boolean mask of shape ({len(v)},), got {ex.shape}")
        v = v[~ex]
    if len(v) == 0:
        raise ValueError("values: no sample left to normalise")
    v = v - v.mean(0)
    scale = np.abs(v).max()
    if scale > 0:
        v = v / scale
    return v[:, 0] if one_d else v


def write_hdf5(path, result_or_arrays, names=None):
    """Per-sample relevances to an HDF5 file.

    From an :class:`LRPResult`: one dataset ``relevance/<name>`` per model input (``names``, default
    ``input0``, ``input1``...), plus ``prediction``, ``reference``, ``bias_relevance`` and
    ``conservation_error``; the LRP settings as attributes of the file. From a dict: one dataset
    per key; from a list/tuple of arrays: ``relevance/<name>`` per array."""
    import h5py
    attrs = {}
    if isinstance(result_or_arrays, LRPResult):
        res = result_or_arrays
        names = list(names) if names is not None else [f"input{i}" for i in range(len(res.relevance))]
        if len(names) != len(res.relevance):
            raise ValueError(f"names: {len(names)} names for {len(res.relevance)} inputs")
        data = {f"relevance/{n}": r for n, r in zip(names, res.relevance)}
        data.update(prediction=res.prediction, reference=res.reference,
                    bias_relevance=res.bias_relevance, conservation_error=res.conservation_error)
        attrs = {k: ("none" if v is None else v) for k, v in res.settings.items()}
    elif isinstance(result_or_arrays, dict):
        data = dict(result_or_arrays)
    elif isinstance(result_or_arrays, (list, tuple)):
        names = list(names) if names is not None else [f"input{i}" for i in range(len(result_or_arrays))]
        if len(names) != len(result_or_arrays):
            raise ValueError(f"names: {len(names)} names for {len(result_or_arrays)} arrays")
        data = {f"relevance/{n}": a for n, a in zip(names, result_or_arrays)}
    else:
        raise ValueError(f"result_or_arrays: expected an LRPResult, a dict or a list of arrays, got "
                         f"{type(result_or_arrays).__name__}")
    with h5py.File(path, "w") as fh:
        for key, arr in data.items():
            a = _np(arr)
            big = a.ndim >= 2 and a.size > 1024
            fh.create_dataset(key, data=a, compression="gzip" if big else None)
        fh.attrs.update(attrs)
    return path
