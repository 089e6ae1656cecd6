"""Relevance walked through each supported model: chains (MLP, TiedDAE encoder, nn.Sequential)
and the weave graph convolution.

Each walk re-runs the model's forward pass keeping the inputs and pre-activations of its linear
maps, and returns the output with a ``backward(R)`` that hands the output relevance ``R`` down to
the inputs with one :class:`~hessflow.analysis.lrp_rules._Rule` (see
:mod:`hessflow.analysis.relevance`).
"""

from __future__ import annotations

import torch
from torch import nn

from ..ml.property.models import MLP, TiedDAE, Weave
from .lrp_rules import PASS_THROUGH, _PairOfAtoms, _per_sample


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
