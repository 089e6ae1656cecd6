"""`hessflow train` end to end on a store that hessflow itself computed (GFN2-xTB, 20 molecules)."""

import json
import subprocess
import sys

import pytest

pytest.importorskip("torch")



@pytest.fixture
def xtb_store(xtb20_store):
    """The session's GFN2-xTB store (tests/conftest.py), made by ``hessflow run``."""
    return xtb20_store


def train(*args):
    return subprocess.run([sys.executable, "-m", "hessflow", "train", *map(str, args)],
                          capture_output=True, text=True, timeout=900)


def test_mlp_one_rank_writes_a_complete_run_directory(xtb_store, tmp_path):
    out = train(xtb_store, "--target", "alpha", "--model", "mlp", "--epochs", "40",
                "--out", tmp_path / "run")
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "run"
    for f in ("model.pt", "metrics.json", "splits.json", "parity.png", "predictions.json", "spec.json"):
        assert (run / f).exists(), f
    m = json.loads((run / "metrics.json").read_text())
    assert set(m["train"]) >= {"mae", "rmse", "mre", "pearson_r", "r2"}
    assert m["train"]["n"] + m["val"]["n"] + m["test"]["n"] == 20
    h = m["history"]
    assert h[-1]["train_loss"] < h[0]["train_loss"]  # it learns
    splits = json.loads((run / "splits.json").read_text())
    assert not set(splits["test"]) & set(splits["train"])
    assert "train" in out.stdout and "R2=" in out.stdout


def test_weave_two_ranks_with_vibration_augmentation(xtb_store, tmp_path):
    out = train(xtb_store, "--target", "zpve", "--model", "weave", "--ranks", "2",
                "--augment", "quantum:300:10", "--epochs", "3", "--batch-size", "16",
                "--out", tmp_path / "run")
    assert out.returncode == 0, out.stderr[-3000:]
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["ranks"] == 2 and m["spec"]["augment"] == "quantum:300:10"
    assert m["train"]["n"] == 16  # evaluation is per molecule, training saw 10 samples each
    assert m["train"]["mae"] < 0.05  # Hartree: far below the spread of ZPVE (0.02-0.1)


def test_bad_arguments_are_one_line(xtb_store, tmp_path):
    out = train(xtb_store, "--augment", "quantum:hot:10", "--out", tmp_path / "r")
    assert out.returncode == 2 and "--augment: 'quantum:hot:10'" in out.stderr
    out = train(xtb_store, "--target", "colour", "--out", tmp_path / "r")
    assert out.returncode == 2 and "--target: 'colour'" in out.stderr
    out = train(xtb_store, "--model", "weave", "--dae", "8", "--out", tmp_path / "r")
    assert out.returncode == 2 and "--dae:" in out.stderr and "--model mlp" in out.stderr
    out = train(xtb_store, "--kfold", "1", "--out", tmp_path / "r")
    assert out.returncode == 2 and "--kfold: 1" in out.stderr


def test_frequency_set_target_trains_a_masked_multi_output_head(xtb_store, tmp_path):
    import numpy as np
    from hessflow.store import Store
    out = train(xtb_store, "--target", "frequencies", "--model", "weave", "--epochs", "3",
                "--out", tmp_path / "run")
    assert out.returncode == 0, out.stderr[-3000:]
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["n_outputs"] == 3 * 29 - 6
    preds = json.loads((tmp_path / "run" / "predictions.json").read_text())
    st = Store(xtb_store)
    names = {r["name"]: r for r in (st.get(k) for k in st.keys())}
    n_real = 0
    for split in ("train", "val", "test"):
        for name, y, p in zip(preds[split]["names"], preds[split]["y"], preds[split]["pred"]):
            y = np.asarray(y, float)
            freqs = np.sort(names[name]["frequencies_cm1"])
            k = len(freqs)  # 3N-6 real entries, the rest is padding that the loss never sees
            assert np.allclose(y[:k], freqs, rtol=1e-5)  # float32 round trip and np.isnan(y[k:]).all()
            assert len(p) == 3 * 29 - 6 and np.isfinite(p).all()
            n_real += k
    # metrics count the real frequencies only
    assert m["train"]["n"] + m["val"]["n"] + m["test"]["n"] == n_real


def test_kfold_tests_every_molecule_once_and_summarises_the_folds(xtb_store, tmp_path):
    out = train(xtb_store, "--target", "zpve", "--model", "mlp", "--kfold", "4", "--epochs", "2",
                "--out", tmp_path / "run")
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "kfold.json").read_text())
    tested = []
    for i in range(4):
        sp = json.loads((tmp_path / "run" / f"fold{i}" / "splits.json").read_text())
        assert not set(sp["test"]) & (set(sp["train"]) | set(sp["val"]))
        tested += sp["test"]
        assert (tmp_path / "run" / f"fold{i}" / "model.pt").exists()
    assert sorted(tested) == list(range(20))
    maes = [json.loads((tmp_path / "run" / f"fold{i}" / "metrics.json").read_text())["test"]["mae"]
            for i in range(4)]
    assert summary["test"]["n"] == 20
    assert abs(summary["test"]["mae"] - sum(maes) / 4) < 1e-12
    assert "4-fold cross-validation" in out.stdout


def test_dae_encoder_in_front_of_the_mlp_frozen_keeps_its_pretrained_weights(xtb_store, tmp_path):
    import torch
    out = train(xtb_store, "--target", "zpve", "--model", "mlp", "--dae", "8", "--dae-freeze",
                "--epochs", "3", "--out", tmp_path / "run")
    assert out.returncode == 0, out.stderr[-3000:]
    dae = torch.load(tmp_path / "run" / "dae.pt")
    model = torch.load(tmp_path / "run" / "model.pt")
    # the model's first module is the DAE encoder: three Linear layers (0, 2, 4 in the Sequential)
    for i, layer in enumerate((0, 2, 4)):
        assert torch.equal(model[f"0.{layer}.weight"], dae[f"enc.{i}.weight"])
    assert model["1.net.0.weight"].shape[1] == 8  # the MLP reads the 8-unit code
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    h = m["dae"]["history"]
    assert h[-1] < h[0]  # the autoencoder learned to reconstruct its inputs


def test_load_store_reads_what_training_needs(xtb_store):
    import numpy as np

    from hessflow.ml.core.data import load_store
    from hessflow.store import Store
    st = Store(xtb_store)
    plain = load_store(xtb_store, "zpve")
    assert len(plain) == 20 and all(m["hessian"] is None for m in plain)  # not read: not needed
    with_h = load_store(xtb_store, "zpve", need_hessian=True, limit=5)
    assert len(with_h) == 5
    for m, key in zip(with_h, st.table(["key"])["key"]):
        rec = st.get(key)
        assert m["name"] == rec["name"] and m["label"] == rec["zpve_hartree"]
        assert np.array_equal(m["hessian"], rec["hessian_hartree_bohr2"])
        assert np.array_equal(m["coords_bohr"], rec["coords_opt_bohr"])
