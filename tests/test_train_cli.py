"""`hessflow train` end to end on a store that hessflow itself computed (GFN2-xTB, 20 molecules)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def xtb_store(tmp_path_factory):
    d = tmp_path_factory.mktemp("store")
    shutil.copy(EXAMPLES / "xtb20.smi", d)
    (d / "wf.yaml").write_text("inputs: [xtb20.smi]\nstore: x.h5\nqm: {engine: xtb}\n"
                               "executor: {kind: threads, workers: 2}\n")
    out = subprocess.run([sys.executable, "-m", "hessflow", "run", str(d / "wf.yaml"), "--no-progress"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return d / "x.h5"


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
