"""One line for every bad input, never a traceback (issue #12, item 8).

A table of bad inputs -> the expected one-line message (and exit status), each run as a user runs
it: ``python -m hessflow ...`` in a fresh process.
"""

import os
import shutil
import subprocess
import sys

import pytest

from hessflow.errors import SettingsError

WATER_XYZ = "3\nwater\nO 0.000 0.000 0.117\nH 0.000 0.757 -0.467\nH 0.000 -0.757 -0.467\n"
SIX = "O water\nN ammonia\nC methane\nC=O formaldehyde\nCO methanol\nCC ethane\n"


def hessflow(*args, cwd, shell_tail=None, timeout=300):
    """Run ``python -m hessflow ARGS`` in ``cwd`` (``shell_tail``: a pipe to append, e.g.
    ``"| true"``). Returns the CompletedProcess."""
    cmd = [sys.executable, "-m", "hessflow", *map(str, args)]
    if shell_tail:
        import shlex
        cmd = " ".join(map(shlex.quote, cmd)) + " " + shell_tail
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          shell=bool(shell_tail))


def one_line(err: str) -> str:
    err = err.strip()
    assert "Traceback" not in err, err[-3000:]
    assert err.count("\n") == 0, err[-3000:]
    return err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "binary.smi").write_bytes(bytes(range(256)) * 3)
    (d / "latin1.smi").write_bytes("CCO \u00e9thanol\n".encode("latin-1"))
    (d / "bom.csv").write_bytes(b"\xef\xbb\xbfsmiles,name\nO,water\n")
    (d / "bom.xyz").write_bytes(b"\xef\xbb\xbf" + WATER_XYZ.encode())
    (d / "water.smi").write_text("O water\n")
    (d / "mixed").mkdir()
    (d / "mixed" / "a_binary.smi").write_bytes(bytes(range(256)))
    (d / "mixed" / "b_latin1.smi").write_bytes("N \u00e9\n".encode("latin-1"))
    (d / "mixed" / "c_water.smi").write_text("O water\n")
    (d / "six.smi").write_text(SIX)
    from hessflow import api
    s = api.compute(str(d / "six.smi"), str(d / "six.h5"), engine="xtb", tasks=("polar",),
                    progress=False)
    assert s.done == 6
    return d


XTB = ("--engine", "xtb", "--tasks", "opt", "--no-progress")

# (case id, arguments, exit status, text the single stderr line must hold)
CASES = [
    ("binary file", ["compute", "binary.smi", "--store", "o1.h5", *XTB], 2,
     "binary.smi: binary data, not a text file of molecules"),
    ("latin-1 file", ["compute", "latin1.smi", "--store", "o2.h5", *XTB], 2,
     "latin1.smi: not UTF-8 text (byte 0xe9 on line 1); if it is Latin-1, convert it"),
    ("--limit -1", ["compute", "water.smi", "--store", "o3.h5", "--limit", "-1", *XTB], 2,
     "--limit: must be >= 0, got -1"),
    ("--method nonsense with xtb", ["compute", "water.smi", "--store", "o4.h5", "--method",
                                    "nonsense", *XTB], 2,
     "level.method: 'nonsense' is not an xTB method"),
    ("--method b3lyp with xtb", ["compute", "water.smi", "--store", "o5.h5", "--method",
                                 "b3lyp", *XTB], 2,
     "level.method: 'b3lyp' is not an xTB method"),
    ("train --epochs -5", ["train", "six.h5", "--epochs", "-5", "--out-dir", "r1"], 2,
     "--epochs: must be >= 1, got -5"),
    ("train --limit -1", ["train", "six.h5", "--limit", "-1", "--out-dir", "r2"], 2,
     "--limit: must be >= 0, got -1"),
    ("train --kfold 50 on 6 molecules", ["train", "six.h5", "--kfold", "50", "--epochs", "1",
                                         "--out-dir", "r3"], 2,
     "kfold: 50 folds need at least 50 molecules;"),
]


@pytest.mark.parametrize("case, args, rc, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line(files, case, args, rc, message):
    out = hessflow(*args, cwd=files)
    assert out.returncode == rc, (out.returncode, out.stderr[-3000:])
    assert message in one_line(out.stderr)


def test_device_cuda_without_gpu_is_one_line(files):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    out = hessflow("train", "six.h5", "--device", "cuda", "--epochs", "1", "--out-dir", "r4",
                   cwd=files)
    assert out.returncode == 2
    assert "device: CUDA requested but no GPU is visible" in one_line(out.stderr)


@pytest.mark.parametrize("name", ["bom.csv", "bom.xyz"])
def test_utf8_bom_is_read(files, name):
    """Excel's "CSV UTF-8" and some editors start a file with a byte-order mark: it is text."""
    out = hessflow("compute", name, "--store", f"{name}.h5", *XTB, cwd=files)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "done=1 skipped=0 failed=0" in out.stdout


def test_unreadable_file_does_not_abort_a_directory(files):
    out = hessflow("compute", "mixed", "--store", "mixed.h5", *XTB, cwd=files)
    assert out.returncode == 1, out.stderr[-3000:]  # some inputs failed
    assert "Traceback" not in out.stderr
    assert "done=1 skipped=0 failed=2" in out.stdout
    assert "error: a_binary.smi: binary data" in out.stderr
    assert "error: b_latin1.smi: not UTF-8 text" in out.stderr
    from hessflow.store import Store
    with Store(files / "mixed.h5", "r") as st:
        recs = {r["name"]: r for r in st.records()}
    assert recs["water"]["status"] == "done"
    assert recs["a_binary.smi"]["status"] == "failed" and "binary" in recs["a_binary.smi"]["reason"]


def test_workflow_method_is_checked_against_its_engine(tmp_path):
    import yaml

    from hessflow.workflows.config import load_config
    (tmp_path / "m.smi").write_text("O water\n")
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump({"name": "wf", "inputs": ["m.smi"], "store": "wf.h5",
                                    "qm": {"engine": "xtb", "level": {"method": "nonsense"}}}))
    with pytest.raises(SettingsError, match=r"^qm\.level\.method: 'nonsense' is not an xTB"):
        load_config(path)


def test_ranks_beyond_the_cores_warn_in_one_line(capsys):
    """Accepted with a warning, not refused: oversubscribed ranks give the same results (slower),
    and inside a Slurm allocation the ranks run where Slurm puts them."""
    from hessflow.ml.property.experiment import TrainSpec
    spec = TrainSpec.parse({"data": "x.h5", "out": "r", "ranks": 8})
    env = os.environ.pop("SLURM_JOB_ID", None)
    try:
        assert spec.oversubscription(cores=2) == \
            "--ranks 8 on 2 cores of this machine: the ranks share cores (slower, same results)"
        assert spec.oversubscription(cores=8) is None
        os.environ["SLURM_JOB_ID"] = "1"
        assert spec.oversubscription(cores=2) is None
    finally:
        os.environ.pop("SLURM_JOB_ID", None)
        if env is not None:
            os.environ["SLURM_JOB_ID"] = env


def _read_only_mount_ok(d) -> bool:
    if not shutil.which("unshare"):
        return False
    r = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o ro,size=1m none {d}"],
                       capture_output=True)
    return r.returncode == 0


def test_compute_into_read_only_directory_is_one_line(files):
    ro = files / "ro"
    ro.mkdir(exist_ok=True)
    if os.geteuid() != 0:
        ro.chmod(0o555)
        out = hessflow("compute", "water.smi", "--store", "ro/s.h5", *XTB, cwd=files)
    elif _read_only_mount_ok(ro):
        import shlex
        cmd = " ".join(map(shlex.quote, [sys.executable, "-m", "hessflow", "compute", "water.smi",
                                         "--store", "ro/s.h5", *XTB]))
        out = subprocess.run(["unshare", "-m", "sh", "-c",
                              f"mount -t tmpfs -o ro,size=1m none ro && exec {cmd}"],
                             cwd=files, capture_output=True, text=True, timeout=120)
    else:
        pytest.skip("root, and no read-only mount possible: every directory is writable")
    assert out.returncode == 3, out.stderr[-3000:]  # a store / file-system error (docs/cli.md)
    err = one_line(out.stderr)
    assert "ro/s.h5" in err and ("Read-only" in err or "Permission denied" in err), err


def test_output_into_a_closed_pipe_is_quiet(files):
    out = hessflow("info", "six.h5", cwd=files, shell_tail="| true")
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr, out.stderr
