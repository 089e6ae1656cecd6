"""Featurisers against hand-computed features."""

import numpy as np
import pytest

from hessflow.ml.property.features import (ATOM_BLOCKS, PAIR_BLOCKS, coulomb_matrix, padded_blocks,
                                  padded_coordinates, padded_sample, unpad_coordinates,
                                  weave_from_smiles)


def test_padded_layout_round_trips_and_has_the_papers_444_columns():
    rng = np.random.default_rng(0)
    a = (np.array([8, 1, 1]), rng.normal(size=(3, 3)))
    b = (np.array([6, 8, 1, 1]), rng.normal(size=(4, 3)))
    x = padded_sample([a, b], conditions=[300.0, 1.0, 0.5, 2.0], max_atoms=55)
    assert x.shape == (444,)
    blocks = padded_blocks(2, 4, 55)
    assert blocks.size == 444 and blocks.names[0] == "mol0.atom0.element"
    z, c = unpad_coordinates(x[:220])
    assert np.array_equal(z, a[0]) and np.array_equal(c, a[1])
    z, c = unpad_coordinates(x[220:440])
    assert np.array_equal(z, b[0]) and np.array_equal(c, b[1])
    assert np.array_equal(x[440:], [300.0, 1.0, 0.5, 2.0])
    assert np.all(x[12:220] == 0)  # padding
    with pytest.raises(ValueError, match="max_atoms"):
        padded_coordinates(np.ones(56), np.zeros((56, 3)))


def test_coulomb_matrix_by_hand():
    m = coulomb_matrix([1, 1], [[0, 0, 0], [0, 0, 1.4]], max_atoms=3)
    assert np.allclose(m, [[0.5, 1 / 1.4, 0], [1 / 1.4, 0.5, 0], [0, 0, 0]])
    w = coulomb_matrix([1, 8, 1], [[0, 1.43, -0.88], [0, 0, 0.22], [0, -1.43, -0.88]])
    assert w[0, 0] == pytest.approx(0.5 * 8 ** 2.4)  # sorted: oxygen first
    d_oh = np.linalg.norm([0, 1.43, -1.10])
    assert w[0, 1] == pytest.approx(8 / d_oh)


def test_weave_atom_and_pair_features_of_formaldehyde():
    g = weave_from_smiles("C=O")
    assert g.atoms.shape == (4, 21) and g.pairs.shape == (4, 4, 13)
    a, p = ATOM_BLOCKS.slices(), PAIR_BLOCKS.slices()
    c, o, h = g.atoms[0], g.atoms[1], g.atoms[2]
    assert list(c[a["atom_type"]]) == [0, 1, 0, 0, 0] and list(o[a["atom_type"]]) == [0, 0, 0, 1, 0]
    assert list(h[a["atom_type"]]) == [1, 0, 0, 0, 0]
    assert list(c[a["hybridisation"]]) == [0, 1, 0]               # sp2
    assert list(o[a["hbond_donor_acceptor"]]) == [0, 1]           # carbonyl O: acceptor
    assert o[a["partial_charge"]][0] < 0 < c[a["partial_charge"]][0]
    assert c[a["ring_sizes"]].sum() == 0 and c[a["aromatic"]][0] == 0
    assert list(g.pairs[0, 1, p["bond_type"]]) == [0, 1, 0, 0]    # C=O double
    assert list(g.pairs[2, 3, p["graph_distance"]]) == [0, 1, 1, 1, 1, 1, 1]  # H..H: 2 bonds
    assert g.pairs[0, 1, p["distance"]][0] == pytest.approx(1.21, abs=0.03)   # Angstrom
    assert np.allclose(g.pairs[..., p["distance"]][..., 0], g.pairs[..., p["distance"]][..., 0].T)


def test_weave_rings_chirality_and_donors():
    cp = weave_from_smiles("C1CC1")
    a, p = ATOM_BLOCKS.slices(), PAIR_BLOCKS.slices()
    assert list(cp.atoms[0, a["ring_sizes"]]) == [1, 0, 0, 0, 0, 0]
    assert cp.pairs[0, 1, p["same_ring"]][0] == 1 and cp.pairs[0, 3, p["same_ring"]][0] == 0
    benzene = weave_from_smiles("c1ccccc1")
    assert benzene.atoms[0, a["aromatic"]][0] == 1
    assert list(benzene.atoms[0, a["ring_sizes"]]) == [0, 0, 0, 1, 0, 0]
    assert list(benzene.pairs[0, 1, p["bond_type"]]) == [0, 0, 0, 1]
    r = weave_from_smiles("C[C@@H](N)O")
    s = weave_from_smiles("C[C@H](N)O")
    assert r.atoms[1, a["chirality"]].sum() == 1 and s.atoms[1, a["chirality"]].sum() == 1
    assert not np.array_equal(r.atoms[1, a["chirality"]], s.atoms[1, a["chirality"]])
    ethanol = weave_from_smiles("CCO")
    assert list(ethanol.atoms[2, a["hbond_donor_acceptor"]]) == [1, 1]  # hydroxyl O: both
    with pytest.raises(ValueError, match="Z=17"):
        weave_from_smiles("CCl")
