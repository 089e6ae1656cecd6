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

from ..ml.property.models import Weave
from .lrp_rules import BIAS_MODES, RULES, _per_sample, _Rule
from .lrp_walks import _chain, _weave

__all__ = ["RULES", "BIAS_MODES", "LRPResult", "lrp"]



@dataclass
class LRPResult:
    """What :func:`lrp` returns (relevance in the units of the explained output)."""
    prediction: torch.Tensor             # (B,); (B, n_out) when neither output nor weights is given
    relevance: tuple                     # one tensor per model input, same shape (mask inputs: zeros)
    bias_relevance: torch.Tensor         # (B,) relevance absorbed by the biases (zero for "ignore")
    reference: torch.Tensor              # (B,) prediction - sum of input relevance expected by the rule
    conservation_error: torch.Tensor     # (B,) |sum R_input - (prediction - reference)|
    settings: dict = field(default_factory=dict)  # rule, epsilon, gamma, alpha, beta, bias, output


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
