"""Element-channel ACSF (hessflow.ml.bp.acsf): a hand-computed case, invariances, padding, cutoff,
and forces of the Behler-Parrinello network against finite differences."""

import itertools
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hessflow.ml.bp import BPConfig, BPNetwork  # noqa: E402
from hessflow.ml.bp.acsf import ACSF, ACSFParams, cutoff, onehot_table  # noqa: E402

# a small parameter set with two values on every axis, so the grids' ordering is exercised
SMALL = ACSFParams(radial_cutoff_bohr=6.0, radial_eta_per_bohr2=(0.5, 2.0), radial_shifts_bohr=(1.0, 2.5),
                   angular_cutoff_bohr=5.0, angular_eta_per_bohr2=(0.7, 1.5), angular_shifts_bohr=(1.5, 2.5),
                   zetas=(1.0, 4.0), theta_shifts_rad=(0.4, 2.0))


def random_table(n_channels=3, seed=0):
    t = np.zeros((55, n_channels))
    t[1:] = np.random.default_rng(seed).uniform(-1, 1, (54, n_channels))
    return t


def acsf_by_hand(numbers, coords, table, p: ACSFParams):
    """The formulas of the module docstring with explicit Python loops (math only)."""
    n, c = len(numbers), table.shape[1]

    def fc(r, rc):
        return 0.5 * (math.cos(math.pi * r / rc) + 1) if r < rc else 0.0

    def dist(a, b):
        return math.dist(coords[a], coords[b])

    out = []
    for i in range(n):
        rad = []
        for eta, rs in itertools.product(p.radial_eta_per_bohr2, p.radial_shifts_bohr):
            for ch in range(c):
                rad.append(sum(math.exp(-eta * (dist(i, j) - rs) ** 2)
                               * fc(dist(i, j), p.radial_cutoff_bohr) * table[numbers[j], ch]
                               for j in range(n) if j != i))
        ang = []
        for eta, rs, zeta, ths in itertools.product(p.angular_eta_per_bohr2, p.angular_shifts_bohr,
                                                    p.zetas, p.theta_shifts_rad):
            for c1 in range(c):
                for c2 in range(c1, c):
                    s = 0.0
                    for j in range(n):
                        for k in range(n):
                            if j == i or k == i or j == k:
                                continue
                            rij, rik = dist(i, j), dist(i, k)
                            vj = [coords[j][x] - coords[i][x] for x in range(3)]
                            vk = [coords[k][x] - coords[i][x] for x in range(3)]
                            theta = math.acos(sum(a * b for a, b in zip(vj, vk)) / (rij * rik))
                            s += (2 ** (1 - zeta) * (1 + math.cos(theta - ths)) ** zeta
                                  * math.exp(-eta * ((rij + rik) / 2 - rs) ** 2)
                                  * fc(rij, p.angular_cutoff_bohr) * fc(rik, p.angular_cutoff_bohr)
                                  * table[numbers[j], c1] * table[numbers[k], c2])
                    ang.append(s)
        out.append(rad + ang)
    return np.array(out)


def test_values_equal_the_formula_computed_by_hand_for_three_atoms():
    numbers = [8, 1, 6]
    coords = [[0.0, 0.0, 0.0], [1.8, 0.3, -0.2], [-0.7, 2.4, 0.5]]  # Bohr, not collinear
    for table in (random_table(3), onehot_table([1, 6, 8])):
        acsf = ACSF(SMALL, table)
        got = acsf(torch.tensor(numbers), torch.tensor(coords, dtype=torch.float64)).numpy()
        want = acsf_by_hand(numbers, coords, table, SMALL)
        assert got.shape == (3, acsf.n_features) == want.shape
        assert acsf.n_features == 4 * 3 + 16 * 6
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
        assert np.abs(want).max() > 0.1  # a non-trivial case


def _molecule():
    # fluoroethanol-like cluster with three like H atoms on one carbon (Bohr)
    numbers = np.array([6, 6, 8, 9, 1, 1, 1, 1, 1])
    coords = np.array([[0.0, 0.0, 0.0], [2.87, 0.0, 0.0], [3.8, 2.3, 0.2], [-0.9, -1.1, 2.0],
                       [-0.7, 1.9, -0.1], [-0.6, -1.0, -1.6], [3.5, -1.0, 1.7], [3.5, -1.1, -1.6],
                       [5.6, 2.2, 0.4]])
    return numbers, coords


@pytest.mark.parametrize("table", [random_table(4, 1), onehot_table([1, 6, 8, 9])])
def test_invariant_to_rotation_translation_and_permutation_of_like_atoms(table):
    numbers, coords = _molecule()
    acsf = ACSF(ACSFParams(), table)
    z = torch.tensor(numbers)
    ref = acsf(z, torch.tensor(coords))
    rot, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(3, 3)))
    moved = coords @ rot.T + np.array([10.0, -3.0, 7.5])
    np.testing.assert_allclose(acsf(z, torch.tensor(moved)).numpy(), ref.numpy(), atol=1e-10)
    perm = np.array([0, 1, 2, 3, 5, 4, 8, 6, 7])  # swap H's: 4<->5, cycle 6,7,8
    assert (numbers[perm] == numbers).all()
    got = acsf(z, torch.tensor(coords[perm])).numpy()
    np.testing.assert_allclose(got, ref.numpy()[perm], atol=1e-10)  # features follow their atoms


def test_padded_batch_equals_single_molecules_and_cutoff_is_smooth():
    numbers, coords = _molecule()
    acsf = ACSF(ACSFParams(), random_table(4, 2))
    z2, x2 = np.array([8, 1, 1]), np.array([[0, 0, 0.22], [0, 1.43, -0.89], [0, -1.43, -0.89]])
    zb = torch.zeros(2, 9, dtype=torch.long)
    xb = torch.zeros(2, 9, 3, dtype=torch.float64)
    zb[0], xb[0] = torch.tensor(numbers), torch.tensor(coords)
    zb[1, :3], xb[1, :3] = torch.tensor(z2), torch.tensor(x2)
    out = acsf(zb, xb)
    np.testing.assert_allclose(out[0].numpy(), acsf(torch.tensor(numbers), torch.tensor(coords)).numpy())
    np.testing.assert_allclose(out[1, :3].numpy(), acsf(torch.tensor(z2), torch.tensor(x2)).numpy())
    assert (out[1, 3:] == 0).all()
    # f_c and its slope vanish at R_c; a neighbour beyond both cutoffs adds nothing
    r = torch.tensor([8.999999, 9.0, 9.5], dtype=torch.float64, requires_grad=True)
    f = cutoff(r, 9.0)
    (g,) = torch.autograd.grad(f.sum(), r)
    assert f.max() < 1e-12 and g.abs().max() < 1e-6
    far = np.vstack([coords, [[30.0, 0, 0]]])
    out_far = acsf(torch.tensor(np.append(numbers, 9)), torch.tensor(far))
    np.testing.assert_allclose(out_far[:9].numpy(), acsf(torch.tensor(numbers), torch.tensor(coords)).numpy())


@pytest.mark.parametrize("features", ["modes", "onehot"])
def test_forces_equal_finite_differences_of_the_energy(features):
    numbers, coords = _molecule()
    cfg = BPConfig(features=features, elements=(1, 6, 8, 9), hidden=(16, 16))
    from hessflow.ml.bp.config import channel_table
    torch.manual_seed(0)
    net = BPNetwork(cfg, channel_table(cfg)[0]).double()
    feats = net.features(torch.tensor(numbers), torch.tensor(coords))
    net.feat_mean.copy_(feats.mean(0))
    net.feat_std.copy_(feats.std(0).clamp(min=1e-3))
    net.ref_energy_hartree[[1, 6, 8, 9]] = torch.tensor([-0.5, -37.8, -75.0, -99.7], dtype=torch.float64)
    e, f = net.energy_and_forces(torch.tensor(numbers), torch.tensor(coords))
    h = 1e-5
    fd = np.zeros_like(coords)
    for a in range(len(numbers)):
        for x in range(3):
            cp, cm = coords.copy(), coords.copy()
            cp[a, x] += h
            cm[a, x] -= h
            with torch.no_grad():
                ep = float(net.energy_hartree(torch.tensor(numbers), torch.tensor(cp)))
                em = float(net.energy_hartree(torch.tensor(numbers), torch.tensor(cm)))
            fd[a, x] = -(ep - em) / (2 * h)
    assert np.abs(f.numpy()).max() > 1e-3  # non-trivial forces
    np.testing.assert_allclose(f.numpy(), fd, atol=1e-7, rtol=1e-6)
    # Newton's third law: an isolated molecule feels no net force
    np.testing.assert_allclose(f.numpy().sum(0), 0, atol=1e-10)
