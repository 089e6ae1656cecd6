"""``qm.batch_size``: several molecules' tasks in one Parsl app (issue 14 item 4) give the same
records as one app per task, and a bad molecule in a batch fails alone. Real GFN2-xTB runs of
``hessflow run`` on local executors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from hessflow.errors import SettingsError
from hessflow.qm.record import FIXED_FIELDS, RAGGED_FIELDS, SCALAR_FIELDS
from hessflow.store import Store
from hessflow.workflows.config import QMSettings

pytest.importorskip("tblite")

MOLS = "O water\nC methane\nCO methanol\nN ammonia\n"
#: fields that say when and where, not what
CIRCUMSTANCE = {"created_unix", "updated_unix", "wall_time_s", "provenance"}
PROV_CIRCUMSTANCE = {"wall_s", "hosts", "attempts", "date"}


def run(d, batch, executor="{kind: threads, workers: 2}", env=None, name="m"):
    d.mkdir(exist_ok=True)
    (d / f"{name}.smi").write_text(MOLS)
    (d / f"{name}.yaml").write_text(
        f"inputs: [{name}.smi]\nstore: {name}.h5\n"
        f"qm: {{engine: xtb, tasks: [opt, freq, polar, hyperpolar], batch_size: {batch}}}\n"
        f"executor: {executor}\n")
    import os
    out = subprocess.run([sys.executable, "-m", "hessflow", "run", str(d / f"{name}.yaml"),
                          "--no-progress"], capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, **(env or {})))
    st = Store(d / f"{name}.h5")
    return out, {r["name"]: r for r in (st.get(k) for k in st.keys())}


# alpha and beta are finite differences of xTB dipoles in +-field (step 1e-3 a.u.): the SCC's
# convergence leaves ~1e-6 a.u. of noise, which decides a symmetric molecule's zeros (methane's
# beta 7.49e-6 vs 7.49e-6 + 1e-9, off-diagonal alpha 1.6e-6 in two runs); every other field is
# compared to 1e-10
BETA_NOISE_AU = 1e-5


MODE_FIELDS = ("modes_cartesian", "modes_mass_weighted")


def same_mode_spans(ma, mb, freqs, field, tol_cm1=1e-3):
    """Modes of a degenerate frequency (methane's T2, ammonia's E) are any basis of their
    subspace, and 1e-12 of Hessian noise picks another: compare, per group of equal frequencies,
    the projector onto the span of the group's modes (one mode: the mode up to its sign)."""
    ma, mb = (np.asarray(m).reshape(len(freqs), -1) for m in (ma, mb))
    order = np.argsort(freqs)
    groups, cur = [], [order[0]]
    for i, j in zip(order[:-1], order[1:]):
        if abs(freqs[j] - freqs[i]) < tol_cm1:
            cur.append(j)
        else:
            groups.append(cur)
            cur = [j]
    groups.append(cur)
    for g in groups:
        qa, qb = (np.linalg.qr(m[g].T)[0] for m in (ma, mb))
        assert np.allclose(qa @ qa.T, qb @ qb.T, atol=1e-6), (field, [freqs[i] for i in g])


def same_record(a, b):
    for f in SCALAR_FIELDS:
        if f in CIRCUMSTANCE:
            continue
        if isinstance(a[f], float):
            floor = BETA_NOISE_AU if f.startswith(("alpha", "beta")) else 1e-12
            assert a[f] == pytest.approx(b[f], rel=1e-10, abs=floor, nan_ok=True), f
        else:
            assert a[f] == b[f], f
    for f in list(FIXED_FIELDS) + list(RAGGED_FIELDS):
        if a[f] is None or b[f] is None:
            assert a[f] is None and b[f] is None, f
        elif f in MODE_FIELDS:
            same_mode_spans(a[f], b[f], a["frequencies_cm1"], f)
        else:
            floor = BETA_NOISE_AU if f.startswith(("alpha", "beta")) else 1e-12
            assert np.allclose(a[f], b[f], rtol=1e-10, atol=floor), f
    pa, pb = json.loads(a["provenance"]), json.loads(b["provenance"])
    # the input line, from two run folders
    assert pa.pop("source").rsplit("/", 2)[-1] == pb.pop("source").rsplit("/", 2)[-1]
    assert {k: v for k, v in pa.items() if k not in PROV_CIRCUMSTANCE} == \
        {k: v for k, v in pb.items() if k not in PROV_CIRCUMSTANCE}
    assert set(pa["wall_s"]) == set(pb["wall_s"])   # the same tasks (and conformer) ran


def test_batched_records_equal_one_app_per_task(tmp_path):
    out0, per_task = run(tmp_path / "tasks", 0)
    out3, batched = run(tmp_path / "batched", 3)     # batches of 3 and 1
    assert out0.returncode == 0 and out3.returncode == 0, out3.stderr[-2000:]
    assert set(per_task) == set(batched) == {"water", "methane", "methanol", "ammonia"}
    for name in per_task:
        assert batched[name]["status"] == "done"
        same_record(per_task[name], batched[name])


def test_one_bad_molecule_in_a_batch_fails_alone(tmp_path):
    fault = {"fail": {"molecule": "methanol", "task": "freq", "kind": "scf"}}
    out, recs = run(tmp_path, 4, env={"HESSFLOW_INJECT_FAULTS": json.dumps(fault)})
    assert out.returncode == 1
    assert recs["methanol"]["status"] == "failed"
    assert recs["methanol"]["reason"].startswith("freq: ") and "injected" in recs["methanol"]["reason"]
    assert recs["methanol"]["coords_opt_bohr"] is not None     # its optimisation is kept
    for name in ("water", "methane", "ammonia"):
        assert recs[name]["status"] == "done", recs[name]["reason"]


def test_a_batch_whose_worker_dies_is_rerun_one_molecule_per_app(tmp_path):
    """No Parsl retries: the worker running the batch is killed (by methanol's optimisation,
    once); the driver runs each molecule of the batch again in its own app, so all finish."""
    fault = {"crash": {"molecule": "methanol", "task": "opt", "marker_dir": str(tmp_path)}}
    out, recs = run(tmp_path, 4, executor="{kind: local, workers: 1, retries: 0}",
                    env={"HESSFLOW_INJECT_FAULTS": json.dumps(fault)})
    assert (tmp_path / "methanol.opt.crashed").exists()
    assert out.returncode == 0, out.stderr[-2000:]
    assert all(r["status"] == "done" for r in recs.values()) and len(recs) == 4


def test_batch_size_setting():
    assert QMSettings.from_mapping({"engine": "xtb"}).molecules_per_app == 1
    assert QMSettings.from_mapping({"engine": "pyscf"}).molecules_per_app == 0
    assert QMSettings.from_mapping({"engine": "pyscf", "batch_size": 5}).molecules_per_app == 5
    for bad in ("many", -1, 1.5):
        with pytest.raises(SettingsError, match="qm.batch_size"):
            QMSettings.from_mapping({"batch_size": bad})
