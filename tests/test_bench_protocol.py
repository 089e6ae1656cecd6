"""The measurement scaffolding of issue #14 (benchmarks/qm_protocol.py, bench_protocol.py,
bench_settings.py): the molecule set, the scaling fit, and each script's plumbing on tiny runs."""

import json

import numpy as np
import pytest

from benchmarks import bench_protocol, bench_settings, qm_protocol
from hessflow.qm.level import Level

from tests.stock import SHARED_QM9


def test_fit_exponent_recovers_a_power_law():
    n = np.array([20, 40, 80, 160])
    fit = qm_protocol.fit_exponent(n, 1e-4 * n ** 3.2)
    assert fit["p"] == pytest.approx(3.2, abs=1e-9) and fit["p_stderr"] < 1e-9 and fit["n"] == 4
    assert qm_protocol.fit_exponent([10, 20], [1, 2]) is None  # too few points
    assert qm_protocol.fit_exponent([10, None, 20, 40], [1, 5, 0, 3]) is None  # unusable points dropped


def test_differences_are_relative_where_they_should_be():
    a = {"energy_hartree": -1.0, "frequencies_cm1": [1000.0, 2000.0], "zpve_hartree": 0.02,
         "alpha_bohr3": [[10.0, 0], [0, 5.0]]}
    b = {"energy_hartree": -1.0 + 2e-7, "frequencies_cm1": [1000.5, 1999.0], "zpve_hartree": 0.0202,
         "alpha_bohr3": [[10.01, 0], [0, 5.0]]}
    d = qm_protocol.differences(a, b)
    assert d["energy_hartree"] == pytest.approx(2e-7) and d["freq_cm1"] == pytest.approx(1.0)
    assert d["zpve_rel"] == pytest.approx(0.01) and d["alpha_rel"] == pytest.approx(1e-3)


@pytest.mark.skipif(not SHARED_QM9.exists(), reason=f"QM9 subset not present at {SHARED_QM9}")
def test_the_qm9_set_is_fixed_and_spans_3_to_9_heavy_atoms():
    s = qm_protocol.select_qm9(20)
    assert len(s) == 20 and len({m[0] for m in s}) == 20
    assert {m[2] for m in s} == set(range(3, 10))
    assert [m[0] for m in s] == [m[0] for m in qm_protocol.select_qm9(20)]


@pytest.mark.skipif(not SHARED_QM9.exists(), reason=f"QM9 subset not present at {SHARED_QM9}")
def test_protocol_benchmark_plumbing_with_xtb():
    mols = qm_protocol.select_qm9(20)[:2]
    data = bench_protocol.run("t", "xtb", mols, Level(method="gfn2-xtb", threads=1), 1e9,
                              save=False, log=lambda *a: None)
    assert len(data["entries"]) == 2
    for e in data["entries"].values():
        assert e["status"] == "ok", e
        assert set(e["stages"]) == set(qm_protocol.STAGES)
        assert e["total_cpu_s"] > 0 and e["n_basis"] is None and "zpve_hartree" in e
    text = bench_protocol.doc_section(data)
    assert "| t | xtb | - | 2 |" in text and "Scaling" in text
    json.dumps(data)


@pytest.mark.slow
def test_settings_benchmark_plumbing_on_water():
    """baseline, a coarser response grid and density fitting at STO-3G: each variant runs at the
    shared baseline minimum; the coarser grid changes the numbers a little, the baseline not."""
    data = bench_settings.run(["baseline", "response-sg1", "df", "gpu"], [("water", "O", 1, {})],
                              Level(basis="sto-3g", grid=1, threads=1), save=False,
                              log=lambda *a: None)
    ents = data["entries"]
    assert {e["status"] for k, e in ents.items() if not k.startswith("gpu")} == {"ok"}
    d = qm_protocol.differences(ents["baseline|water|sto-3g"], ents["response-sg1|water|sto-3g"])
    assert 0 < d["alpha_rel"] < 1e-2 and d["freq_cm1"] < 5
    text = bench_settings.report(data)
    assert "response-sg1" in text and "df" in text
    json.dumps(data)
    # threads per task vs workers per node: the same two tasks both ways, in worker processes
    out = bench_settings.packing([("water", "O", 1, {})] * 2, Level(basis="sto-3g", grid=1), 2,
                                 save=False, log=lambda *a: None, data=data)
    rows = [out["1 worker x 2 threads"], out["2 workers x 1 thread"]]
    assert [(r["workers"], r["threads"]) for r in rows] == [(1, 2), (2, 1)]
    assert all(r["status"] == ["ok"] and r["cpu_s"] > 0 and r["wall_s"] > 0 for r in rows)
    assert "2 workers x 1 thread" in bench_settings.packing_report({"packing": [out]})
