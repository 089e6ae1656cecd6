"""The command line: compute/info/export, exit codes, one-line errors, nothing computed is lost."""

import csv
import io
import subprocess
import sys

import numpy as np
import pytest

from hessflow.cli import main
from hessflow.store import Store

FAST = ["--engine", "xtb", "--no-progress"]


def run(*args):
    return subprocess.run([sys.executable, "-m", "hessflow", *map(str, args)], capture_output=True,
                          text=True, timeout=600)


def test_compute_records_bad_inputs_and_keeps_going(tmp_path):
    smi = tmp_path / "m.smi"
    smi.write_text("O water\nC1CC broken_ring\n[U] uranium\nC mult=2 bad_mult\nC#N hcn\n")
    store = tmp_path / "s.h5"
    out = run("compute", smi, "--store", store, *FAST)
    assert out.returncode == 1  # some molecules failed
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert errors == [
        "error: broken_ring: invalid SMILES 'C1CC'",
        "error: uranium: unsupported element(s) U in '[U]'",
        "error: bad_mult: 10 electrons (charge 0) contradict multiplicity 2",
    ]
    assert "done=2 skipped=0 failed=3" in out.stdout
    st = Store(store)
    by_name = {r["name"]: r for r in st.records()}
    assert by_name["water"]["status"] == "done" and by_name["hcn"]["status"] == "done"
    assert by_name["broken_ring"]["status"] == "failed"
    assert by_name["broken_ring"]["reason"] == "input: invalid SMILES 'C1CC'"
    # a rerun skips the finished molecules and re-tries only the failed ones
    again = run("compute", smi, "--store", store, *FAST)
    assert "done=0 skipped=2 failed=3" in again.stdout
    assert len(Store(store)) == 5


def test_partial_record_is_kept_and_completed_later(tmp_path):
    smi = tmp_path / "m.smi"
    smi.write_text("O water\n")
    store = tmp_path / "s.h5"
    assert run("compute", smi, "--store", store, "--tasks", "opt,freq", *FAST).returncode == 0
    (first,) = Store(store).records()
    assert first["tasks"] == "opt,freq,sp" and np.isnan(first["alpha_iso_bohr3"])
    assert run("compute", smi, "--store", store, "--tasks", "opt,freq,polar", *FAST).returncode == 0
    (second,) = Store(store).records()
    assert second["key"] == first["key"] and second["tasks"] == "opt,freq,polar,sp"
    assert np.array_equal(second["hessian_hartree_bohr2"], first["hessian_hartree_bohr2"])
    assert second["alpha_iso_bohr3"] > 0


def test_info_and_export_csv_and_extxyz(tmp_path, capsys):
    smi = tmp_path / "m.smi"
    smi.write_text("O water\nN ammonia\nC1CC broken\n")
    store = tmp_path / "s.h5"
    assert main(["compute", str(smi), "--store", str(store), *FAST]) == 1
    capsys.readouterr()
    assert main(["info", str(store)]) == 0
    info = capsys.readouterr().out
    assert "records: 3" in info and "done=2" in info and "failed=1" in info and "xtb=3" in info
    out = tmp_path / "s.csv"
    assert main(["export", str(store), "--format", "csv", "-o", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    required = ("key,name,smiles,status,energy_hartree,zpve_hartree,alpha_iso_bohr3,beta_par_au,"
                "homo_hartree,lumo_hartree,dipole_debye,n_imag").split(",")
    assert list(rows[0])[:12] == required
    assert len(rows) == 3
    water = next(r for r in rows if r["name"] == "water")
    assert float(water["zpve_hartree"]) > 0 and int(water["n_imag"]) == 0
    broken = next(r for r in rows if r["name"] == "broken")
    assert broken["status"] == "failed" and broken["energy_hartree"] == ""
    assert main(["export", str(store), "--format", "extxyz"]) == 0
    xyz = capsys.readouterr().out.splitlines()
    assert xyz[0] == "3" and 'name="water"' in xyz[1] and "zpve_hartree=" in xyz[1]
    assert len(xyz) == 2 * 2 + 3 + 4  # two done molecules


@pytest.mark.parametrize("args, message", [
    (["compute", "{tmp}/missing.smi", "--store", "{tmp}/s.h5"], "missing.smi: no such file"),
    (["compute", "{tmp}/empty.smi", "--store", "{tmp}/s.h5"], "empty.smi: empty file"),
    (["compute", "{tmp}/ok.smi", "--store", "{tmp}/s.h5", "--tasks", "opt,magic"],
     "tasks: magic not among opt,freq,polar,hyperpolar"),
    (["info", "{tmp}/nothing.h5"], "nothing.h5: no such store"),
])
def test_errors_are_one_line_with_exit_code_2(tmp_path, args, message):
    (tmp_path / "empty.smi").write_text("")
    (tmp_path / "ok.smi").write_text("O\n")
    out = run(*[a.format(tmp=tmp_path) for a in args])
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("hessflow: error:")


def test_status_counts_and_throughput(tmp_path, capsys):
    smi = tmp_path / "m.smi"
    smi.write_text("O water\nC1CC broken\n")
    store = tmp_path / "s.h5"
    assert run("compute", smi, "--store", store, *FAST).returncode == 1
    assert main(["status", str(store)]) == 0
    first, second = capsys.readouterr().out.strip().splitlines()
    assert first == f"{store}: 2 records: done=1 failed=1 pending=0"
    assert second.startswith("throughput: ") and "records/h" in second and "s/record" in second


def test_device_setting_of_compute_on_a_machine_without_a_gpu(tmp_path):
    """--device cuda without a usable GPU is one line (exit 3, a runtime error) and computes
    nothing; --device auto falls back to the CPU engine with a note and computes as pyscf."""
    smi = tmp_path / "w.smi"
    smi.write_text("[H][H] hydrogen\n")
    from hessflow.qm.engines.gpu4pyscf_engine import cuda_unavailable_reason
    if not cuda_unavailable_reason():
        pytest.skip("a GPU is usable here: the fallback cannot be seen")
    out = run("compute", smi, "--store", tmp_path / "g.h5", "--device", "cuda", "--tasks", "opt")
    assert out.returncode == 3 and "device cuda" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "g.h5").exists()
    out = run("compute", smi, "--store", tmp_path / "a.h5", "--device", "auto", "--tasks", "opt",
              "--basis", "sto-3g", "--method", "hf", "--no-progress", "--json")
    assert out.returncode == 0, out.stderr
    assert "cpu" in out.stderr.lower()  # the note says where it runs
    from hessflow.store import Store
    with Store(tmp_path / "a.h5") as st:
        assert [r["engine"] for r in st.records()] == ["pyscf"]


def test_compute_stores_the_gradient_of_the_final_geometry_and_exports_forces(tmp_path):
    """`hessflow compute` (xtb) keeps the gradient (Hartree/Bohr) at the geometry of the energy:
    the input geometry without "opt" (equal to tblite's own gradient there), the minimum with
    it (below geomeTRIC's GAU threshold); extxyz carries it as ASE forces (eV/Angstrom)."""
    import ase.io
    from tblite.interface import Calculator
    from hessflow.units import ANGSTROM_BOHR, HARTREE_EV
    smi = tmp_path / "m.smi"
    smi.write_text("O water\n")
    grads = {}
    for tasks in ("polar", "opt"):
        store = tmp_path / f"{tasks}.h5"
        assert run("compute", smi, "--store", store, "--tasks", tasks, *FAST).returncode == 0
        (rec,) = Store(store).records()
        grad = grads[tasks] = rec["gradient_hartree_bohr"]
        coords = rec["coords_opt_bohr"] if tasks == "opt" else rec["coords_input_bohr"]
        calc = Calculator("GFN2-xTB", rec["numbers"], coords)
        calc.set("verbosity", 0)
        calc.set("accuracy", 1e-6)  # the xtb engine's SCC accuracy
        res = calc.singlepoint()
        assert grad.shape == (3, 3)
        assert np.allclose(grad, res.get("gradient"), atol=1e-7)
        assert abs(rec["energy_hartree"] - res.get("energy")) < 1e-7
        if tasks == "opt":
            assert np.linalg.norm(grad, axis=1).max() < 4.5e-4
        else:
            assert np.abs(grad).max() > 1e-3  # RDKit's geometry is no GFN2-xTB minimum
    out = tmp_path / "w.xyz"
    assert main(["export", str(tmp_path / "polar.h5"), "--format", "extxyz", "-o", str(out)]) == 0
    (atoms,) = ase.io.read(out, index=":")
    want = -grads["polar"] * HARTREE_EV * ANGSTROM_BOHR
    assert np.allclose(atoms.get_forces(), want, atol=1e-6)
