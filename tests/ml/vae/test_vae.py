"""SMILES VAE: tokeniser, RDKit metrics, a tiny model that memorises 8 molecules, operations on it,
resumable training, DDP over 2 MPI ranks, and ``hessflow vae train | sample | interpolate``."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("rdkit")

from hessflow.errors import HessflowError  # noqa: E402
from hessflow.ml import vae  # noqa: E402
from hessflow.ml.vae.tokens import BOS_ID, EOS_ID, Vocab, tokenize  # noqa: E402

VENV_BIN = Path(sys.executable).parent

# eight molecules covering the token kinds: Cl, Br, bracket atoms, aromatic, %10 ring closure
EIGHT = ["CCO", "ClCC(=O)O", "BrC1CC1", "c1cc[nH]c1", "C[NH3+]", "CC(=O)[O-]",
         "C%10CCCC%10", "N#CC=C"]

# 24 rows of QM9 (MoleculeNet columns, B3LYP values: mu in Debye, orbital energies in Hartree)
QM9_ROWS = """mol_id,smiles,mu,homo,lumo,gap
gdb_20088,CC1C(O)C1C1CO1,2.707,-0.2306,0.0751,0.3057
gdb_84826,OC1C=CCC1NC=O,3.6126,-0.2457,-0.0047,0.241
gdb_126244,CCc1cn[nH]c1NC,3.6564,-0.1879,0.0471,0.2351
gdb_119534,CCCC12CC1CC2=O,2.9659,-0.2364,-0.0052,0.2311
gdb_113785,CCC1CN1C1(C)CC1,1.0673,-0.2095,0.083,0.2925
gdb_9419,CCCCC(C)CC,0.0608,-0.2945,0.0855,0.3799
gdb_38077,O1C2C=CC3C1C=CC23,1.2434,-0.2339,-0.0052,0.2288
gdb_17619,CN(C)C(=O)C1CO1,4.576,-0.2419,0.0101,0.252
gdb_73838,CC1=C(C)C2CC3C2C13,0.1184,-0.2015,0.0313,0.2328
gdb_113382,CCC1CC1(CO)CO,3.1262,-0.2449,0.0591,0.304
gdb_67009,OC12C3OC(CC1=O)C23,2.4205,-0.2326,-0.0269,0.2057
gdb_70373,CC1(NC2CC12O)C#C,0.9928,-0.2183,0.0393,0.2576
gdb_97063,CN=C1OCC(C)C1=O,3.8837,-0.2464,-0.0625,0.1839
gdb_56592,CC(C(O)C#N)C1CN1,3.8091,-0.2555,0.0074,0.2628
gdb_117512,CCCC(C#N)C(N)=O,0.5061,-0.2661,0.0109,0.277
gdb_31343,c1nc(c2n1CC2)CO,5.2159,-0.218,0.0316,0.2496
gdb_14009,O=CC1CC11CCO1,3.4875,-0.2371,-0.0208,0.2163
gdb_72715,OC12CCC11OC2C=C1,1.6765,-0.2292,-0.0131,0.2161
gdb_4228,CCCC(F)(F)F,2.1377,-0.3446,0.086,0.4306
gdb_133153,Cc1c(cn[nH]c1=O)F,1.8373,-0.2428,-0.0603,0.1825
gdb_124524,CC(C)c1nc(no1)N,1.8285,-0.2345,-0.0026,0.2319
gdb_58128,CC(O)C(C)(C)NC=O,3.3352,-0.2477,0.0275,0.2753
gdb_64513,OC1(C2CN2)C2COC12,1.7517,-0.2285,0.0508,0.2793
gdb_90521,CC1CC2C(CC12)C#N,4.4537,-0.2852,0.0308,0.316
"""

TINY = dict(embed=16, hidden=64, layers=1, latent=8, predictor=(8, 4), batch_size=8, lr=3e-3,
            kl_weight=0.01, anneal="none", patience=10_000, device="cpu", n_prior=40)


def _clean_env():
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "PMI_RANK", "PMI_SIZE",
              "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS"):
        env.pop(k, None)
    return env


# -- tokeniser -------------------------------------------------------------------------------
@pytest.mark.parametrize("smiles", EIGHT + [
    "ClC(Br)c1ccccc1", "C[C@@H](N)C(=O)O", "[13CH3]C(=O)[O-]", "F/C=C/F", "C1CC%10CCC1%10",
    "c1ccc2ccccc2c1", "O=C=O", "[Na+].[Cl-]", "OCC1OC(O)C(O)C(O)C1O"])
def test_tokenise_and_encode_round_trip_exactly(smiles):
    toks = tokenize(smiles)
    assert "".join(toks) == smiles
    vocab = Vocab.build([smiles])
    ids = vocab.encode(smiles)
    assert ids[0] == BOS_ID and ids[-1] == EOS_ID
    assert vocab.decode(ids) == smiles


def test_multi_character_tokens_are_single_tokens():
    assert tokenize("ClCBr") == ["Cl", "C", "Br"]
    assert tokenize("C[C@@H](Cl)[NH3+]") == ["C", "[C@@H]", "(", "Cl", ")", "[NH3+]"]
    assert tokenize("C%10CC%10C1CC1") == ["C", "%10", "C", "C", "%10", "C", "1", "C", "C", "1"]
    assert tokenize("c1cc[nH]c1") == ["c", "1", "c", "c", "[nH]", "c", "1"]


def test_vocabulary_is_deterministic_and_saved(tmp_path):
    v = Vocab.build(EIGHT)
    assert v.tokens[:3] == ["<pad>", "<bos>", "<eos>"]
    assert Vocab.build(list(reversed(EIGHT))) == v
    assert Vocab.load(v.save(tmp_path / "vocab.json")) == v
    ids, lengths = v.encode_batch(EIGHT)
    assert ids.shape == (8, max(lengths)) and [v.decode(r) for r in ids] == EIGHT


def test_unknown_token_and_untokenisable_smiles_are_one_line_errors():
    v = Vocab.build(["CCO", "CCN"])
    with pytest.raises(HessflowError, match=r"^CCCl: token 'Cl' is not in the vocabulary"):
        v.encode("CCCl")
    with pytest.raises(HessflowError, match=r"^CC&C: cannot tokenise '&C' at position 2"):
        tokenize("CC&C")


# -- RDKit metrics -----------------------------------------------------------------------------
def test_validity_and_sample_metrics_count_known_strings():
    strings = ["CCO", "c1ccccc1", "C1CC", "C(C", "", "c1cccc1"]  # 2 valid: ring/branch/aromaticity
    assert vae.validity(strings) == pytest.approx(2 / 6)
    assert vae.validity([]) != vae.validity([])  # NaN
    m = vae.sample_metrics(["CCO", "OCC", "CCO", "c1ccccc1", "C(C"], training={"CCO"})
    assert (m["valid"], m["unique"], m["novel"]) == (4, 2, 1)
    assert m["validity"] == 0.8 and m["uniqueness"] == 0.5 and m["novelty"] == 0.5


def test_molecules_from_a_store_keep_done_records_with_values(tmp_path):
    from hessflow.store import Store
    recs = [("a", "CCO", "done", 0.30, 1.6), ("b", "c1ccccc1", "done", 0.25, 0.0),
            ("c", "CCN", "failed", 0.28, 1.2), ("d", "CC#N", "done", float("nan"), 3.9)]
    with Store(tmp_path / "s.h5", "a") as st:
        for name, smi, status, gap, mu in recs:
            st.put({"key": name, "name": name, "smiles": smi, "status": status,
                    "gap_hartree": gap, "dipole_debye": mu})
    names, smiles, y = vae.load_molecules(tmp_path / "s.h5", ["gap", "dipole"])
    assert names == ["a", "b"] and smiles == ["CCO", "c1ccccc1"]
    assert y.tolist() == [[0.30, 1.6], [0.25, 0.0]]
    assert vae.load_molecules(tmp_path / "s.h5", [])[1] == ["CCO", "c1ccccc1", "CC#N"]


def test_kl_weight_annealing_schedules():
    lin = vae.VAEConfig(kl_weight=2.0, anneal="linear", warmup_epochs=4)
    assert [vae.kl_weight_at(lin, e) for e in (0, 2, 4, 9)] == [0.0, 1.0, 2.0, 2.0]
    sig = vae.VAEConfig(kl_weight=1.0, anneal="sigmoid", warmup_epochs=10)
    assert vae.kl_weight_at(sig, 0) < 0.01 and vae.kl_weight_at(sig, 5) == 0.5 \
        and vae.kl_weight_at(sig, 10) > 0.99
    assert vae.kl_weight_at(vae.VAEConfig(kl_weight=0.3, anneal="none"), 0) == 0.3
    with pytest.raises(HessflowError, match="^anneal: 'cosine'"):
        vae.VAEConfig(anneal="cosine").check()


def test_teacher_forcing_ratio_and_decoding_modes():
    import torch
    v = Vocab.build(EIGHT)
    torch.manual_seed(0)
    m = vae.SmilesVAE(len(v), 1, embed=8, hidden=16, layers=2, latent=4)
    ids, lengths = (torch.as_tensor(a) for a in v.encode_batch(EIGHT))
    full, mu, logvar, p = m(ids, lengths, teacher_forcing=1.0, sample=False)
    stepwise = m(ids, lengths, teacher_forcing=1.0 - 1e-12, sample=False)[0]  # the step loop
    assert full.shape == (8, ids.shape[1] - 1, len(v)) and p.shape == (8, 1)
    assert torch.allclose(full, stepwise, atol=1e-5)  # step loop with true tokens == one GRU call
    own = m(ids, lengths, teacher_forcing=0.0, sample=False)[0]
    assert own.shape == full.shape and not torch.allclose(own, full)
    z = torch.randn(5, 4)
    g1, g2 = m.generate(z, 12), m.generate(z, 12)
    assert torch.equal(g1, g2) and g1.shape[1] <= 12
    s = m.generate(z, 12, greedy=False, generator=torch.Generator().manual_seed(1))
    assert not (s[:, 0] <= BOS_ID).any()  # <pad> and <bos> are never emitted


# -- a tiny model that memorises eight molecules ---------------------------------------------
@pytest.fixture(scope="module")
def overfit(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("overfit")
    y = np.array([[float(k), float(k % 3)] for k in range(8)])
    cfg = vae.VAEConfig(epochs=150, **TINY)
    split = {"train": list(range(8)), "val": [], "test": list(range(8))}
    metrics = vae.train_vae(EIGHT, y, ["gap", "dipole"], cfg, run_dir, splits=split)
    return run_dir, metrics


def test_tiny_vae_memorises_eight_molecules(overfit):
    run_dir, m = overfit
    assert m["reconstruction"]["n"] == 8 and m["reconstruction"]["accuracy"] == 1.0
    h = m["history"]
    assert h[-1]["train_recon"] < 0.05 * h[0]["train_recon"]
    assert m["predictor"]["train"]["gap"]["r2"] > 0.8  # and the predictor learns
    from hessflow.analysis.latent import write_latent_pca  # the figure: the analysis layer
    assert write_latent_pca(run_dir) == run_dir / "latent_pca.png"
    for f in ("model.pt", "vocab.json", "config.json", "metrics.json", "splits.json",
              "history.json", "molecules.csv", "latent_pca.png", "checkpoint.pt"):
        assert (run_dir / f).exists(), f
    run = vae.load_vae_run(run_dir)
    assert run.decode(run.encode(EIGHT)) == EIGHT  # the saved model reproduces it


def test_prior_samples_are_checked_with_rdkit(overfit):
    from rdkit import Chem, RDLogger
    RDLogger.DisableLog("rdApp.*")
    run = vae.load_vae_run(overfit[0])
    rows = vae.sample_prior(run, 30, greedy=False, temperature=1.0, seed=3)
    assert len(rows) == 30
    for r in rows:
        parsed = bool(r["smiles"]) and Chem.MolFromSmiles(r["smiles"]) is not None
        assert r["valid"] == parsed
        assert r["novel"] == (parsed and Chem.MolToSmiles(Chem.MolFromSmiles(r["smiles"]))
                              not in run.training_set)
        assert set(r) >= {"pred_gap", "pred_dipole"}
    p = overfit[1]["prior"]
    assert p["n"] == 40 and 0 <= p["validity"] <= 1 and p["valid"] == round(p["validity"] * 40)


def test_interpolation_endpoints_decode_to_the_inputs(overfit):
    run = vae.load_vae_run(overfit[0])
    rows = vae.interpolate(run, "ClCC(=O)O", "c1cc[nH]c1", steps=6)
    assert [r["t"] for r in rows] == pytest.approx(np.linspace(0, 1, 6))
    assert rows[0]["canonical"] == vae.canonical("ClCC(=O)O")
    assert rows[-1]["canonical"] == vae.canonical("c1cc[nH]c1")
    assert all(np.isfinite(r["pred_gap"]) for r in rows)
    with pytest.raises(HessflowError, match=r"^CCS: token 'S' is not in the vocabulary"):
        vae.interpolate(run, "CCO", "CCS")


def test_sampling_near_a_target_property(overfit):
    run = vae.load_vae_run(overfit[0])
    rows = vae.sample_near_target(run, {"gap": 6.0}, n=5, neighbours=2, radius=0.3, seed=1)
    assert 1 <= len(rows) <= 5
    assert [r["distance"] for r in rows] == sorted(r["distance"] for r in rows)
    assert all(vae.canonical(r["smiles"]) == r["smiles"] for r in rows)  # valid, canonical
    assert len({r["smiles"] for r in rows}) == len(rows)
    with pytest.raises(HessflowError, match="^--target: 'alpha' is not a property of this run"):
        vae.sample_near_target(run, "alpha=3", n=2)


def test_resumed_training_ends_where_an_uninterrupted_run_ends(tmp_path):
    y = np.arange(8.0)[:, None]
    split = {"train": list(range(8)), "val": [0, 1], "test": [2, 3]}
    kw = dict(TINY, n_prior=0, n_recon=2)
    full = vae.train_vae(EIGHT, y, ["gap"], vae.VAEConfig(epochs=4, **kw), tmp_path / "full",
                         splits=split)
    vae.train_vae(EIGHT, y, ["gap"], vae.VAEConfig(epochs=2, **kw), tmp_path / "cut", splits=split)
    resumed = vae.train_vae(EIGHT, y, ["gap"], vae.VAEConfig(epochs=4, **kw), tmp_path / "cut",
                            splits=split, resume=True)
    assert resumed["rank_digests"] == full["rank_digests"]
    strip = [{k: v for k, v in h.items() if k != "molecules_per_s"} for h in full["history"]]
    assert [{k: v for k, v in h.items() if k != "molecules_per_s"}
            for h in resumed["history"]] == strip


# -- command line, 2 MPI ranks -----------------------------------------------------------------
def hessflow(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "hessflow", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=_clean_env())


@pytest.fixture(scope="module")
def qm9_tiny(tmp_path_factory):
    p = tmp_path_factory.mktemp("data") / "qm9_tiny.csv"
    p.write_text(QM9_ROWS)
    return p


SMALL = ["--embed", "8", "--hidden", "32", "--layers", "2", "--latent", "6", "--batch-size", "8",
         "--n-prior", "20", "--no-progress"]


def test_cli_train_on_two_mpi_ranks_then_sample_and_interpolate(qm9_tiny, tmp_path):
    if not (VENV_BIN / "mpiexec").exists():
        pytest.skip("mpiexec not installed (pip install mpich)")
    run = tmp_path / "run"
    out = hessflow("vae", "train", qm9_tiny, "--properties", "gap,homo,lumo,dipole", "--epochs", "2",
                   "--ranks", "2", *SMALL, "--out", run)
    assert out.returncode == 0, out.stderr[-3000:]
    m = json.loads((run / "metrics.json").read_text())
    assert m["ranks"] == 2 and len(m["rank_digests"]) == 2
    assert m["rank_digests"][0] == m["rank_digests"][1]  # DDP: the same weights on both ranks
    assert m["epochs_run"] == 2 and m["split_sizes"] == {"train": 20, "val": 2, "test": 2}
    assert set(m["predictor"]["test"]) == {"gap", "homo", "lumo", "dipole"}
    assert "reconstruction" in out.stdout and "validity" in out.stdout and "gap" in out.stdout
    for f in ("model.pt", "vocab.json", "config.json", "splits.json", "history.json", "latent_pca.png"):
        assert (run / f).exists(), f

    out = hessflow("vae", "sample", run, "--n", "10", "-o", tmp_path / "s.csv")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "10 prior samples" in out.stdout and (tmp_path / "s.csv").exists()
    out = hessflow("vae", "sample", run, "--n", "3", "--target", "gap=0.25", "--oversample", "4")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "nearest to gap=0.25" in out.stdout
    out = hessflow("vae", "interpolate", run, "CCCCC(C)CC", "CCCC(F)(F)F", "--steps", "4")
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].split("\t") == ["smiles", "t", "valid", "pred_gap", "pred_homo", "pred_lumo",
                                    "pred_dipole"] and len(lines) == 5


def test_cli_errors_are_one_line(qm9_tiny, tmp_path):
    out = hessflow("vae", "train", qm9_tiny, "--properties", "gap,colour", "--out", tmp_path / "r")
    assert out.returncode == 2 and "--properties: 'colour' is not one of" in out.stderr
    out = hessflow("vae", "train", qm9_tiny, "--properties", "alpha", "--out", tmp_path / "r")
    assert out.returncode == 2 and "no 'alpha' column" in out.stderr
    out = hessflow("vae", "sample", tmp_path / "nowhere")
    assert out.returncode == 2 and "no model.pt" in out.stderr
