"""Building blocks shared by every model family: activations and the fully connected net.

The property models (:mod:`hessflow.ml.property.models`) and the Behler-Parrinello atomic nets
(:mod:`hessflow.ml.bp.network`) are both made of :class:`MLP`; keeping it in the core lets the
families build on the core and never on each other.
"""

from __future__ import annotations

from torch import nn


def activation(name: str) -> nn.Module:
    """A fresh activation module: ``relu``, ``relu6``, ``tanh`` or ``softplus``."""
    try:
        return {"relu": nn.ReLU, "relu6": nn.ReLU6, "tanh": nn.Tanh, "softplus": nn.Softplus}[name]()
    except KeyError:
        raise ValueError(f"activation: {name!r} is not relu, relu6, tanh or softplus") from None


class MLP(nn.Module):
    """A fully connected net ``n_in`` -> ``hidden`` widths -> ``n_out`` with activation ``act``
    after every hidden layer; a single output is returned as shape (B,)."""
    def __init__(self, n_in: int = 444, hidden=(100, 20), n_out: int = 1, act: str = "relu6",
                 bias: bool = True):
        super().__init__()
        layers, width = [], n_in
        for h in hidden:
            layers += [nn.Linear(width, h, bias=bias), activation(act)]
            width = h
        layers.append(nn.Linear(width, n_out, bias=bias))
        self.net = nn.Sequential(*layers)
        self.n_out = n_out

    def forward(self, x):
        y = self.net(x)
        return y.squeeze(-1) if self.n_out == 1 else y
