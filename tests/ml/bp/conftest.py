"""A small GFN2-xTB store with gradients, made once per session for the force tests."""

import pytest

#: small molecules of H, C, N, O; 6 geometries each (the conformer and 5 displaced copies)
FORCE_SMILES = ["C", "CC", "CO", "CN", "O", "N", "CCO", "CC=O", "C#N", "OC=O", "CCN", "NC=O",
                "COC"]


@pytest.fixture(scope="session")
def force_store(tmp_path_factory):
    """13 molecules x 6 geometries (0.08 Bohr Gaussian displacements), GFN2-xTB single points
    with gradients (:func:`hessflow.workflows.bp_data.generate_xtb_store`)."""
    pytest.importorskip("tblite")
    from hessflow.workflows.bp_data import generate_xtb_store
    path = tmp_path_factory.mktemp("bp_forces") / "xtb.h5"
    counts = generate_xtb_store([(f"m{i}", s) for i, s in enumerate(FORCE_SMILES)], path,
                                n_geometries=6, sigma_bohr=0.08, seed=0)
    assert counts["done"] == 6 * len(FORCE_SMILES)
    return path
