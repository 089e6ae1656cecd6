"""Layer-wise relevance propagation (hessflow.analysis.relevance): checks that can fail.

- LRP-0 equals gradient x input on bias-free ReLU networks (MLP and weave);
- z+ relevances have the sign of the prediction (non-negative for positive predictions);
- conservation (sum of input relevance + bias share = prediction) for the MLP, the weave model
  with masks (two molecules of different size in one batch), the DAE code units and
  DAE-encoder + MLP; padding does not change a molecule's relevance;
- equality with zennit (the reference implementation) for every rule and both bias modes;
- a trained net whose target depends on one feature block puts its relevance on that block;
- aggregate / paper_normalise / feature-type helpers / HDF5 output on hand-computed examples.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from hessflow.analysis.feature_types import (aggregate, padded_feature_types,  # noqa: E402
                                             paper_normalise, weave_feature_types, write_hdf5)
from hessflow.analysis.relevance import LRPResult, lrp  # noqa: E402
from hessflow.ml.property.features import ATOM_BLOCKS, PAIR_BLOCKS, Blocks, weave_from_smiles  # noqa: E402
from hessflow.ml.property.models import MLP, TiedDAE, Weave  # noqa: E402

# the rules that conserve relevance (alpha1-beta0 is z+ spelled out)
CONSERVING = [("epsilon", {}), ("zplus", {}), ("alphabeta", {"alpha": 1.0, "beta": 0.0}),
              ("gamma", {"gamma": 0.25})]
# "epsilon -> 0": the stabiliser leaks epsilon / |z'| of each unit's relevance, and z' can be ~1e-4
EPS0 = 1e-15
ALL_RULES = CONSERVING + [("alphabeta", {"alpha": 2.0, "beta": 1.0}), ("gamma", {"gamma": 2.0})]


def _sum_in(res):
    return sum(r.reshape(r.shape[0], -1).sum(1) for r in res.relevance)


def _assert_conserves(res, rtol=1e-9):
    total = res.prediction if res.prediction.dim() == 1 else res.prediction.sum(-1)
    scale = total.abs().max().item() + res.bias_relevance.abs().max().item() + 1e-30
    assert res.conservation_error.max().item() <= rtol * scale
    # the reported error is what it says it is
    torch.testing.assert_close(res.conservation_error, (_sum_in(res) - (total - res.reference)).abs())


def _weave_batch(smiles, dtype=torch.float64):
    graphs = [weave_from_smiles(s) for s in smiles]
    n = max(len(g.numbers) for g in graphs)
    atoms = torch.zeros(len(graphs), n, ATOM_BLOCKS.size, dtype=dtype)
    pairs = torch.zeros(len(graphs), n, n, PAIR_BLOCKS.size, dtype=dtype)
    mask = torch.zeros(len(graphs), n, dtype=dtype)
    for b, g in enumerate(graphs):
        k = len(g.numbers)
        atoms[b, :k] = torch.tensor(g.atoms, dtype=dtype)
        pairs[b, :k, :k] = torch.tensor(g.pairs, dtype=dtype)
        mask[b, :k] = 1
    return atoms, pairs, mask


@pytest.fixture(scope="module")
def weave_batch():
    # ethanol (9 atoms) and hydrogen cyanide (3 atoms): the second is padded to 9
    return _weave_batch(["CCO", "C#N"])


def _weave_model(seed=0, **kw):
    torch.manual_seed(seed)
    return Weave(width=12, n_dense=16, **kw).double().eval()


# -- 1. LRP-0 = gradient x input ----------------------------------------------------------------
def test_epsilon_to_zero_is_gradient_times_input_on_a_bias_free_relu_mlp():
    torch.manual_seed(1)
    model = MLP(30, (24, 12), act="relu", bias=False).double()
    x = torch.randn(16, 30, dtype=torch.float64)
    res = lrp(model, (x,), rule="epsilon", epsilon=1e-12)
    xg = x.clone().requires_grad_()
    grad, = torch.autograd.grad(model(xg).sum(), xg)
    # the stabiliser leaks epsilon / |z| of a unit's relevance: 1e-12 keeps that below 1e-8 here
    torch.testing.assert_close(res.relevance[0], grad * x, rtol=1e-7, atol=1e-10)
    assert torch.all(res.bias_relevance == 0)


def test_epsilon_to_zero_is_gradient_times_input_on_a_bias_free_weave(weave_batch):
    """Checks the weave propagation (concatenations, symmetric pair sum, masked pair sum, sum
    pooling, atom copies feeding atoms and pairs) against autograd."""
    model = _weave_model(2)
    for mod in model.modules():
        if isinstance(mod, nn.Linear):
            nn.init.zeros_(mod.bias)
    atoms, pairs, mask = weave_batch
    res = lrp(model, (atoms, pairs, mask), rule="epsilon", epsilon=1e-12)
    a, p = atoms.clone().requires_grad_(), pairs.clone().requires_grad_()
    ga, gp = torch.autograd.grad(model(a, p, mask).sum(), (a, p))
    scale = (ga * atoms).abs().max().item()
    torch.testing.assert_close(res.relevance[0], ga * atoms, rtol=1e-6, atol=1e-9 * scale)
    torch.testing.assert_close(res.relevance[1], gp * pairs, rtol=1e-6, atol=1e-9 * scale)


# -- 2. z+ is sign-preserving ---------------------------------------------------------------------
@pytest.mark.parametrize("bias", ["absorb", "ignore"])
def test_zplus_relevance_is_non_negative_for_non_negative_inputs(bias, weave_batch):
    torch.manual_seed(3)
    model = MLP(20, (16, 8), act="relu").double()
    x = torch.rand(64, 20, dtype=torch.float64)
    with torch.no_grad():  # predictions of both signs
        model.net[-1].bias -= model(x).median()
    res = lrp(model, (x,), rule="zplus", bias=bias)
    # relevance starts as the prediction: z+ keeps its sign on every input
    signed = res.relevance[0] * torch.sign(res.prediction)[:, None]
    assert (res.prediction > 0).any() and (res.prediction < 0).any()
    assert signed.min() >= 0 and signed.max() > 0
    assert res.relevance[0][res.prediction > 0].min() >= 0
    w = _weave_model(4)
    atoms, pairs, mask = weave_batch
    res = lrp(w, (atoms, pairs, mask), rule="zplus", bias=bias)
    s = torch.sign(res.prediction)
    assert (res.relevance[0] * s[:, None, None]).min() >= 0
    assert (res.relevance[1] * s[:, None, None, None]).min() >= 0
    # alpha1-beta0 is the same rule
    res2 = lrp(w, (atoms, pairs, mask), rule="alphabeta", alpha=1.0, beta=0.0, bias=bias)
    for r1, r2 in zip(res.relevance, res2.relevance):
        torch.testing.assert_close(r1, r2)


# -- 2b. several outputs: one weighted pass = the weighted sum of per-output passes --------------
@pytest.mark.parametrize("rule,kw", ALL_RULES)
@pytest.mark.parametrize("bias", ["absorb", "ignore"])
def test_weighted_outputs_equal_the_sum_of_per_output_explanations(rule, kw, bias, weave_batch):
    torch.manual_seed(11)
    mlp = MLP(40, (24, 12), n_out=3, act="relu6").double()
    x = torch.randn(6, 40, dtype=torch.float64)
    weave = _weave_model(12, n_out=3)
    for model, inputs in ((mlp, (x,)), (weave, weave_batch)):
        out = model(*inputs)
        w = (torch.rand(out.shape, generator=torch.Generator().manual_seed(3)) > 0.4).double()
        w[0] = 0  # a sample with no real output explains nothing
        one = lrp(model, inputs, rule=rule, epsilon=EPS0, bias=bias, weights=w, **kw)
        parts = [lrp(model, inputs, rule=rule, epsilon=EPS0, bias=bias, output=k, **kw)
                 for k in range(3)]

        def wsum(get):
            return sum(get(p) * w[:, k].reshape((-1,) + (1,) * (get(p).dim() - 1))
                       for k, p in enumerate(parts))
        torch.testing.assert_close(one.prediction, (out * w).sum(-1))
        torch.testing.assert_close(one.prediction, wsum(lambda p: p.prediction))
        for j in range(len(inputs)):
            torch.testing.assert_close(one.relevance[j], wsum(lambda p: p.relevance[j]))
        torch.testing.assert_close(one.bias_relevance, wsum(lambda p: p.bias_relevance))
        assert torch.all(one.relevance[0][0] == 0)
        assert one.relevance[0].abs().max() > 0
    with pytest.raises(ValueError, match="weights: shape"):
        lrp(mlp, (x,), weights=w)  # the weave batch's shape, not the MLP's
    with pytest.raises(ValueError, match="one or the other"):
        lrp(mlp, (x,), output=0, weights=torch.ones(6, 3))


# -- 3. conservation ----------------------------------------------------------------------------
@pytest.mark.parametrize("rule,kw", CONSERVING)
@pytest.mark.parametrize("bias", ["absorb", "ignore"])
def test_conservation_mlp(rule, kw, bias):
    torch.manual_seed(5)
    model = MLP(40, (24, 12), act="relu6").double()
    x = torch.randn(32, 40, dtype=torch.float64)
    res = lrp(model, (x,), rule=rule, epsilon=EPS0, bias=bias, **kw)
    torch.testing.assert_close(res.prediction, model(x))
    _assert_conserves(res)
    if bias == "ignore":
        assert torch.all(res.bias_relevance == 0) and torch.all(res.reference == 0)
    else:
        torch.testing.assert_close(res.reference, res.bias_relevance)
        assert res.bias_relevance.abs().max() > 0  # the biases did take a share


def test_conservation_float32_with_the_default_epsilon():
    torch.manual_seed(6)
    model = MLP(116, (100, 20))  # float32, relu6
    x = torch.randn(64, 116)
    res = lrp(model, (x,))
    assert res.relevance[0].dtype == torch.float32
    _assert_conserves(res, rtol=1e-4)


@pytest.mark.parametrize("rule,kw", CONSERVING)
@pytest.mark.parametrize("bias", ["absorb", "ignore"])
def test_conservation_weave_with_masks(rule, kw, bias, weave_batch):
    model = _weave_model(7)
    atoms, pairs, mask = weave_batch
    res = lrp(model, (atoms, pairs, mask), rule=rule, epsilon=EPS0, bias=bias, **kw)
    torch.testing.assert_close(res.prediction, model(atoms, pairs, mask))
    if bias == "absorb":
        _assert_conserves(res)
    else:
        # the self-pairs' features are all zero, so their pair units are driven by the biases
        # alone: with the biases ignored that relevance has no input to go to and is lost,
        # which conservation_error reports
        assert res.conservation_error.max() > 1e-3 * res.prediction.abs().max()
    assert [r.shape for r in res.relevance] == [atoms.shape, pairs.shape, mask.shape]
    assert torch.all(res.relevance[2] == 0)  # the mask gets no relevance
    k = int(mask[1].sum())  # padded atoms and pairs of the small molecule get none either
    assert torch.all(res.relevance[0][1, k:] == 0)
    assert torch.all(res.relevance[1][1, k:] == 0) and torch.all(res.relevance[1][1, :, k:] == 0)
    # padding does not change a molecule's relevances: HCN alone, unpadded
    alone = lrp(model, (atoms[1:, :k], pairs[1:, :k, :k], mask[1:, :k]), rule=rule, epsilon=EPS0,
                bias=bias, **kw)
    torch.testing.assert_close(alone.relevance[0][0], res.relevance[0][1, :k])
    torch.testing.assert_close(alone.relevance[1][0], res.relevance[1][1, :k, :k])
    torch.testing.assert_close(alone.bias_relevance[0], res.bias_relevance[1])


@pytest.mark.parametrize("rule,kw", CONSERVING)
def test_conservation_dae_code_units(rule, kw):
    torch.manual_seed(8)
    dae = TiedDAE(30, hidden=(16, 8), n_code=4).double()
    x = torch.randn(20, 30, dtype=torch.float64)
    code = dae.encode(x)
    for k in range(4):
        res = lrp(dae, (x,), rule=rule, epsilon=EPS0, output=k, **kw)
        torch.testing.assert_close(res.prediction, code[:, k])
        _assert_conserves(res)
    # all code units at once: their relevances add up
    both = lrp(dae, (x,), rule=rule, epsilon=EPS0, **kw)
    assert both.prediction.shape == (20, 4)
    _assert_conserves(both)


@pytest.mark.parametrize("rule,kw", CONSERVING)
def test_conservation_dae_encoder_in_front_of_an_mlp(rule, kw):
    torch.manual_seed(9)
    dae = TiedDAE(30, hidden=(16, 8), n_code=4).double()
    net = nn.Sequential(dae.encoder(freeze=True), MLP(4, (8,), act="relu").double())
    x = torch.randn(20, 30, dtype=torch.float64)
    res = lrp(net, (x,), rule=rule, epsilon=EPS0, **kw)
    torch.testing.assert_close(res.prediction, net(x))
    _assert_conserves(res)


# -- 4. the same numbers as zennit ----------------------------------------------------------------
def _zennit(model, x, rule, kw, epsilon, bias):
    """zennit's LRP with one rule on every nn.Linear and pass-through activations. zennit's hooks
    treat the gradient arriving at a layer as the relevance of its outputs, so the output
    relevance f(x) (what hessflow starts from) is passed as ``grad_outputs``."""
    from tests.zennit_compat import import_zennit
    import_zennit()
    from zennit import rules as zr
    from zennit.composites import LayerMapComposite
    zp = None if bias == "absorb" else ["bias"]
    hook = {"epsilon": lambda: zr.Epsilon(epsilon=epsilon, zero_params=zp),
            "zplus": lambda: zr.ZPlus(stabilizer=epsilon, zero_params=zp),
            "gamma": lambda: zr.Gamma(gamma=kw.get("gamma"), stabilizer=epsilon, zero_params=zp),
            "alphabeta": lambda: zr.AlphaBeta(alpha=kw.get("alpha"), beta=kw.get("beta"),
                                              stabilizer=epsilon, zero_params=zp)}[rule]()
    composite = LayerMapComposite([(nn.Linear, hook),
                                   ((nn.ReLU, nn.ReLU6, nn.Tanh, nn.Softplus), zr.Pass())])
    xg = x.clone().requires_grad_()
    with composite.context(model) as modified:
        out = modified(xg)
        rel, = torch.autograd.grad(out, xg, grad_outputs=out.detach())
    return rel


def _compare_with_zennit(model, x, rule, kw, bias, epsilon=1e-6):
    ours = lrp(model, (x,), rule=rule, epsilon=epsilon, bias=bias, **kw).relevance[0]
    ref = _zennit(model, x, rule, kw, epsilon, bias)
    xg = x.clone().requires_grad_()
    grad, = torch.autograd.grad(model(xg).sum(), xg)
    assert not torch.allclose(ref, grad * x)  # zennit's hooks were active
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())


@pytest.mark.parametrize("rule,kw", ALL_RULES)
@pytest.mark.parametrize("bias", ["absorb", "ignore"])
def test_same_as_zennit_on_the_padded_coordinates_mlp(rule, kw, bias):
    """The vibration paper's network shape on 29 padded atoms (4 * 29 inputs), 100-20-1, ReLU6
    (zennit passes relevance through ReLU6 with its Pass rule like hessflow)."""
    torch.manual_seed(10)
    model = MLP(4 * 29, (100, 20), act="relu6").double()
    x = torch.randn(16, 4 * 29, dtype=torch.float64)
    _compare_with_zennit(model, x, rule, kw, bias)


@pytest.mark.parametrize("rule,kw", ALL_RULES)
@pytest.mark.parametrize("bias", ["absorb", "ignore"])
def test_same_as_zennit_on_small_dense_nets(rule, kw, bias):
    torch.manual_seed(11)
    dense = nn.Sequential(nn.Linear(10, 8), nn.Tanh(), nn.Linear(8, 6), nn.Softplus(),
                          nn.Linear(6, 1)).double()
    x = torch.randn(12, 10, dtype=torch.float64)
    _compare_with_zennit(dense, x, rule, kw, bias)
    dae = TiedDAE(12, hidden=(10, 8), n_code=5).double()
    net = nn.Sequential(dae.encoder(), MLP(5, (6,), act="relu").double())
    _compare_with_zennit(net, torch.randn(12, 12, dtype=torch.float64), rule, kw, bias)


# -- 5. relevance lands on the feature type the target depends on ------------------------------
def test_trained_net_puts_relevance_on_the_only_informative_block():
    torch.manual_seed(0)
    blocks = Blocks(("noise_a", "signal", "noise_b"), (4, 3, 5))
    sig = blocks.slices()["signal"]

    def target(x):
        s = x[:, sig]
        return 2 * s[:, 0] + torch.relu(s[:, 1]) - 0.5 * s[:, 2] ** 2

    x = torch.randn(2000, blocks.size)
    y = target(x)
    model = MLP(blocks.size, (32, 16), act="relu")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-2)
    for _ in range(400):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
    x_test = torch.randn(300, blocks.size)
    with torch.no_grad():
        assert ((model(x_test) - target(x_test)) ** 2).mean() < 0.05 * y.var()  # it learnt
    for rule in ("epsilon", "gamma"):
        agg = aggregate(lrp(model, (x_test,), rule=rule).relevance[0], blocks)
        share = agg["absolute"].mean(0)
        assert agg["names"] == ["noise_a", "signal", "noise_b"]
        assert share[1] > 0.85, (rule, share)
    # z+ is not faithful on signed inputs, but still ranks the signal first
    share = aggregate(lrp(model, (x_test,), rule="zplus").relevance[0], blocks)["absolute"].mean(0)
    assert share.argmax() == 1


# -- 6. aggregation and normalisation by hand ------------------------------------------------------
def test_aggregate_by_hand():
    blocks = Blocks(("a", "b"), (1, 2))
    # 2 samples, 2 atoms, 3 columns; the second atom of sample 0 is padding
    R = np.array([[[1.0, 2.0, -3.0], [9.0, 9.0, 9.0]],
                  [[-1.0, 0.5, 0.5], [2.0, -4.0, 1.0]]])
    mask = np.array([[1, 0], [1, 1]])
    out = aggregate(R, blocks, mask=mask, normalise=False)
    assert out["names"] == ["a", "b"]
    np.testing.assert_allclose(out["signed"], [[1.0, -1.0], [(-1 + 2) / 2, (1.0 - 3.0) / 2]])
    np.testing.assert_allclose(out["absolute"], [[1.0, 5.0], [(1 + 2) / 2, (1.0 + 5.0) / 2]])
    norm = aggregate(R, blocks, mask=mask)
    np.testing.assert_allclose(norm["absolute"], [[1 / 6, 5 / 6], [1.5 / 4.5, 3 / 4.5]])
    np.testing.assert_allclose(norm["signed"], [[1 / 6, -1 / 6], [0.5 / 4.5, -1 / 4.5]])
    # pair relevance with an atom mask: the pair mask is m_i m_j
    P = np.ones((1, 2, 2, 3))
    P[0, 1, :, :] = P[0, :, 1, :] = 100.0
    out = aggregate(P, blocks, mask=np.array([[1, 0]]), normalise=False)
    np.testing.assert_allclose(out["signed"], [[1.0, 2.0]])
    # flat features, no positions; a sample without relevance stays zero
    out = aggregate(np.array([[1.0, -1.0, 3.0], [0.0, 0.0, 0.0]]), blocks)
    np.testing.assert_allclose(out["absolute"], [[0.2, 0.8], [0.0, 0.0]])
    np.testing.assert_allclose(out["signed"], [[0.2, 0.4], [0.0, 0.0]])
    with pytest.raises(ValueError, match="relevance"):
        aggregate(np.zeros((2, 4)), blocks)


def test_paper_normalise_by_hand():
    v = np.array([[1.0, 10.0], [3.0, 14.0], [100.0, 0.0]])
    out = paper_normalise(v, exclude=np.array([False, False, True]))
    # without the outlier: means (2, 12); shifted [[-1, -2], [1, 2]]; largest |value| 2
    np.testing.assert_allclose(out, [[-0.5, -1.0], [0.5, 1.0]])
    np.testing.assert_allclose(paper_normalise([1.0, 2.0, 3.0]), [-1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="exclude"):
        paper_normalise(v, exclude=np.array([True]))


def test_feature_type_helpers_and_hdf5(tmp_path, weave_batch):
    h5py = pytest.importorskip("h5py")
    atoms, pairs, mask = weave_batch
    res = lrp(_weave_model(12), (atoms, pairs, mask))
    types = weave_feature_types(res, mask)
    assert types["names"] == list(ATOM_BLOCKS.names) + list(PAIR_BLOCKS.names)
    assert types["kinds"].count("atom") == 8 and types["signed"].shape == (2, 12)
    # atom types are per-atom means: times the atom count they add up to the atoms' relevance
    n_atoms = mask.sum(1).numpy()
    np.testing.assert_allclose(types["signed"][:, :8].sum(1) * n_atoms,
                               res.relevance[0].sum((1, 2)).numpy(), rtol=1e-10)
    np.testing.assert_allclose(types["signed"][:, 8:].sum(1) * n_atoms ** 2,
                               res.relevance[1].sum((1, 2, 3)).numpy(), rtol=1e-10)

    torch.manual_seed(13)
    model = MLP(2 * 3 * 4 + 2, (8,), act="relu").double()
    x = torch.randn(5, 26, dtype=torch.float64)
    pr = lrp(model, (x,))
    pt = padded_feature_types(pr, max_atoms=3, n_molecules=2, n_conditions=2)
    R = pr.relevance[0].numpy()
    assert pt["names"] == ["element", "coordinates", "conditions"]
    np.testing.assert_allclose(pt["signed"][:, 0], R[:, :24].reshape(5, 6, 4)[..., 0].sum(1))
    np.testing.assert_allclose(pt["absolute"][:, 1], np.abs(R[:, :24].reshape(5, 6, 4)[..., 1:]).sum((1, 2)))
    np.testing.assert_allclose(pt["per_atom"]["signed"][:, 1, 2, 1], R[:, 21:24].sum(1))
    np.testing.assert_allclose(pt["signed"].sum(1), R.sum(1))

    path = write_hdf5(tmp_path / "rel.h5", res, names=["atoms", "pairs", "atom_mask"])
    with h5py.File(path) as fh:
        np.testing.assert_array_equal(fh["relevance/pairs"][()], res.relevance[1].numpy())
        np.testing.assert_array_equal(fh["conservation_error"][()], res.conservation_error.numpy())
        assert set(fh) >= {"prediction", "reference", "bias_relevance", "relevance"}
        assert fh.attrs["rule"] == "epsilon" and fh.attrs["bias"] == "absorb"
    with pytest.raises(ValueError, match="names"):
        write_hdf5(tmp_path / "x.h5", res, names=["atoms"])


def test_clear_errors():
    model = MLP(6, (4,), act="relu")
    x = torch.randn(3, 6)
    with pytest.raises(ValueError, match="rule: 'lrp0'"):
        lrp(model, (x,), rule="lrp0")
    with pytest.raises(ValueError, match="alpha, beta"):
        lrp(model, (x,), rule="alphabeta", alpha=2.0, beta=0.5)
    with pytest.raises(ValueError, match="bias"):
        lrp(model, (x,), bias="share")
    with pytest.raises(ValueError, match="output: 1"):
        lrp(model, (x,), output=1)
    with pytest.raises(ValueError, match=r"inputs\[0\]: expected shape \(batch, 6\)"):
        lrp(model, (torch.randn(3, 5),))
    with pytest.raises(ValueError, match="cannot propagate through Sigmoid"):
        lrp(nn.Sequential(nn.Linear(6, 2), nn.Sigmoid()), (x,))
    with pytest.raises(ValueError, match="atoms, pairs, atom_mask"):
        lrp(Weave(), (torch.zeros(1, 3, 21),))
    assert isinstance(lrp(model, x), LRPResult)  # a single tensor is accepted
