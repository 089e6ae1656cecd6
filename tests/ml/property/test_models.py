"""Model architecture checks that can fail: sizes, symmetries, tied weights, masking."""

import pytest

torch = pytest.importorskip("torch")

from hessflow.ml.core.regression import masked_mse  # noqa: E402
from hessflow.ml.property.features import weave_from_smiles  # noqa: E402
from hessflow.ml.property.models import MLP, TiedDAE, Weave  # noqa: E402


def test_mlp_is_the_papers_444_100_20_1_relu6():
    m = MLP()
    lin = [l for l in m.net if isinstance(l, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in lin] == [(444, 100), (100, 20), (20, 1)]
    assert sum(isinstance(l, torch.nn.ReLU6) for l in m.net) == 2
    assert m(torch.zeros(7, 444)).shape == (7,)


def _batch(smiles_list, max_atoms):
    atoms = torch.zeros(len(smiles_list), max_atoms, 21)
    pairs = torch.zeros(len(smiles_list), max_atoms, max_atoms, 13)
    mask = torch.zeros(len(smiles_list), max_atoms)
    for b, s in enumerate(smiles_list):
        g = weave_from_smiles(s)
        n = len(g.numbers)
        atoms[b, :n] = torch.tensor(g.atoms, dtype=torch.float32)
        pairs[b, :n, :n] = torch.tensor(g.pairs, dtype=torch.float32)
        mask[b, :n] = 1
    return atoms, pairs, mask


def test_weave_is_permutation_and_padding_invariant():
    torch.manual_seed(0)
    model = Weave().eval()
    atoms, pairs, mask = _batch(["CCO"], 9)
    y = model(atoms, pairs, mask)
    perm = torch.randperm(9)
    y_perm = model(atoms[:, perm], pairs[:, perm][:, :, perm], mask[:, perm])
    assert torch.allclose(y, y_perm, atol=1e-5)
    a2, p2, m2 = _batch(["CCO"], 15)  # six more padded atoms
    assert torch.allclose(y, model(a2, p2, m2), atol=1e-5)
    a3, p3, m3 = _batch(["CCO", "CCC"], 11)
    out = model(a3, p3, m3)
    assert out.shape == (2,) and not torch.isclose(out[0], out[1])


def test_tied_dae_shares_weights_learns_and_freezes():
    torch.manual_seed(0)
    dae = TiedDAE(20, hidden=(16, 12), n_code=4, noise_std=0.05)
    n_params = sum(p.numel() for p in dae.parameters())
    assert n_params == (20 * 16 + 16) + (16 * 12 + 12) + (12 * 4 + 4) + (20 + 16 + 12)  # no decoder matrices
    basis = torch.randn(4, 20)
    x = torch.relu(torch.randn(256, 4)) @ basis  # data on a 4-d manifold
    opt = torch.optim.Adam(dae.parameters(), lr=1e-2)
    first = None
    for _ in range(400):
        loss = ((dae(x) - x) ** 2).mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    dae.eval()
    assert ((dae(x) - x) ** 2).mean().item() < 0.2 * first
    enc = dae.encoder(freeze=True)
    assert enc(x).shape == (256, 4) and not any(p.requires_grad for p in enc.parameters())
    assert torch.allclose(enc(x), dae.encode(x))


def test_masked_loss_ignores_padding():
    pred = torch.tensor([[1.0, 2.0, 99.0]])
    target = torch.tensor([[1.0, 3.0, 0.0]])
    mask = torch.tensor([[1, 1, 0]])
    assert masked_mse(pred, target, mask).item() == pytest.approx(0.5)
