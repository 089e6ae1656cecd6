"""The workflows shipped in examples/ load and run as they are: 20 molecules with xTB and 3 with
PySCF, on local cores and on the real single-node Slurm (tests/conftest_slurm.py)."""

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from hessflow.errors import HessflowError
from hessflow.store import Store
from hessflow.workflows.config import load_config

from tests.stock import EXAMPLES  # noqa: E402


def run_example(tmp_path, name, *extra):
    copy_examples(tmp_path)
    out = subprocess.run([sys.executable, "-m", "hessflow", *extra, str(tmp_path / name)],
                         capture_output=True, text=True, timeout=1800)
    return out


def copy_examples(tmp_path):
    for f in EXAMPLES.iterdir():
        if f.suffix in (".yaml", ".smi"):
            shutil.copy(f, tmp_path / f.name)


# -- loading (no QM, no Slurm) ---------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_every_example_config_loads_with_its_own_name(name):
    import yaml
    raw = yaml.safe_load((EXAMPLES / name).read_text())
    if not all((EXAMPLES / p).exists() for p in raw["inputs"]):
        pytest.skip("inputs outside the repository")
    cfg = load_config(EXAMPLES / name)
    assert cfg.name == raw.get("name", Path(name).stem)  # not the last stage's name
    assert cfg.executor.kind == raw["executor"]["kind"]
    assert set(cfg.stages) == set(raw.get("stages") or {})
    if "train" in cfg.stages:  # the training stages get the 'mpi' executor
        assert cfg.executor.mpi is not None


def test_workflow_name_reaches_the_driver_job_name(tmp_path):
    copy_examples(tmp_path)
    cfg = load_config(tmp_path / "slurm.yaml")
    assert cfg.name == "slurm_xtb"
    lines = cfg.driver_script().splitlines()
    assert "#SBATCH --job-name=hessflow-slurm_xtb" in lines
    assert f"#SBATCH --output={tmp_path}/runs/slurm_xtb/slurm/hessflow-slurm_xtb.%j.out" in lines
    assert "#SBATCH --time=01:00:00" in lines and "#SBATCH --partition=debug" in lines
    assert lines[-1].endswith(f"-m hessflow run {tmp_path / 'slurm.yaml'} --no-progress")
    # the same through the command line, rendered and written, not submitted
    out = subprocess.run([sys.executable, "-m", "hessflow", "submit", str(tmp_path / "slurm.yaml"),
                          "--dry-run"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "#SBATCH --job-name=hessflow-slurm_xtb" in out.stdout.splitlines()
    written = (tmp_path / "runs" / "slurm_xtb" / "driver.sbatch").read_text()
    assert written == out.stdout.rstrip("\n") + "\n"
    out = subprocess.run([sys.executable, "-m", "hessflow", "submit",
                          str(tmp_path / "xtb_local.yaml"), "--dry-run"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "executor.kind: 'submit' needs a slurm profile" in out.stderr


def test_command_stages_become_the_commands_argv(tmp_path):
    (tmp_path / "m.smi").write_text("O water\n")
    path = tmp_path / "wf.yaml"
    path.write_text("inputs: [m.smi]\nstore: s.h5\nexecutor: {kind: threads, workers: 1}\n"
                    "stages:\n  bp: {features: onehot, ranks: 2, hidden: [32, 16], "
                    "exclude_element: [F, Cl], few_shot: 3, after: 0.5}\n"
                    "  vae: {properties: [gap, homo], resume: true, no_progress: false, "
                    "data: other.h5}\n  train: {model: mlp, out: tr}\n")
    cfg = load_config(path)
    assert cfg.stages["train"].spec.out == str(tmp_path / "tr")  # relative to the config file
    bp, vae = cfg.stages["bp"], cfg.stages["vae"]
    assert bp.argv == ["bp", "train", str(tmp_path / "s.h5"), "--out-dir",
                       str(tmp_path / "runs" / "wf" / "bp"), "--ranks", "2", "--features",
                       "onehot", "--exclude-element", "F,Cl", "--few-shot", "3", "--hidden",
                       "32,16"]
    assert bp.ranks == 2 and bp.after == 0.5 and vae.ranks == 1
    assert vae.argv == ["vae", "train", str(tmp_path / "other.h5"), "--out-dir",
                        str(tmp_path / "runs" / "wf" / "vae"), "--ranks", "1", "--properties",
                        "gap,homo", "--resume"]
    assert cfg.executor.mpi is not None  # the command stages run on the 'mpi' executor
    # the argv parses with the command's own parser
    from hessflow.cli import build_parser
    a = build_parser().parse_args(bp.argv)
    assert (a.features, a.ranks, a.exclude_element, a.hidden) == ("onehot", 2, ["F,Cl"], "32,16")


@pytest.mark.parametrize("stage", ["bp", "vae"])
def test_every_command_stage_setting_is_an_option_of_the_command(stage, capsys):
    import dataclasses

    from hessflow.cli import build_parser
    from hessflow.workflows.config import STAGES
    with pytest.raises(SystemExit):
        build_parser().parse_args([stage, "train", "--help"])
    import re
    options = set(re.findall(r"^  (?:-\w, )?(--[a-z][a-z-]*)", capsys.readouterr().out, re.M))
    own = {"data", "out", "after"}  # the positional, --out (set by the stage) and the stage's own
    fields = {"--" + f.name.replace("_", "-") for f in dataclasses.fields(STAGES[stage])
              if f.name not in own}
    assert fields <= options, fields - options
    assert options - fields - {"--help", "--out-dir"} == set()  # and every option is a setting


@pytest.mark.parametrize("stage, message", [
    ({"bp": {"features": "onehat"}}, "stages.bp.features: 'onehat' is not one of modes | onehot"),
    ({"bp": {"modes": "four"}}, "stages.bp.modes: expected int"),
    ({"bp": {"feature": "modes"}}, "stages.bp.feature: unknown key (did you mean 'features'?)"),
    ({"vae": {"anneal": "cosine"}}, "stages.vae.anneal: 'cosine' is not one of sigmoid"),
    ({"vae": {"ranks": 0}}, "stages.vae.ranks: must be >= 1, got 0"),
    ({"vae": {"after": 0}}, "stages.vae.after: 0.0 is not a fraction in (0, 1]"),
    ({"explain": {"rule": "lucky"}, "train": {}}, "stages.explain.rule: 'lucky' is not one of"),
    ({"augment": {"write": "yes"}}, "stages.augment.write: expected true or false"),
    ({"conformers": {"store": "s.h5"}}, "stages.conformers.store: "),
    ({"conformers": {"level": {"basis_set": "x"}}},
     "stages.conformers.level.basis_set: unknown key (did you mean 'basis'?)"),
    ({"trian": {}}, "stages.trian: unknown stage (did you mean 'train'?)"),
])
def test_stage_settings_errors_name_the_field_in_one_line(tmp_path, stage, message):
    import yaml
    (tmp_path / "m.smi").write_text("O water\n")
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump({"inputs": ["m.smi"], "store": "s.h5", "stages": stage,
                                    "executor": {"kind": "threads", "workers": 1}}))
    with pytest.raises(HessflowError) as err:
        load_config(path)
    assert str(err.value).startswith(message) and "\n" not in str(err.value), str(err.value)


# -- running ---------------------------------------------------------------------------------
def test_xtb_20_molecules_on_local_cores(tmp_path):
    out = run_example(tmp_path, "xtb_local.yaml", "run", "--no-progress")
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "done=20 skipped=0 failed=0"
    st = Store(tmp_path / "xtb20.h5")
    assert len(st) == 20 and {st.status(k) for k in st.keys()} == {"done"}


def test_xtb_20_molecules_on_slurm(tmp_path, slurm_cluster):
    out = run_example(tmp_path, "slurm.yaml", "run", "--no-progress")
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "done=20 skipped=0 failed=0"
    st = Store(tmp_path / "slurm_xtb.h5")
    hosts = {r["provenance"] for r in st.records()}
    assert len(st) == 20 and all(slurm_cluster.node in h for h in hosts)


@pytest.mark.slow
def test_pyscf_3_molecules_on_slurm_with_monitoring(tmp_path, slurm_cluster):
    out = run_example(tmp_path, "slurm_pyscf.yaml", "run", "--no-progress")
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "done=3 skipped=0 failed=0"
    recs = {r["name"]: r for r in Store(tmp_path / "slurm_pyscf.h5").records()}
    assert set(recs) == {"water", "ammonia", "hydrogen_cyanide"}
    assert len(recs["hydrogen_cyanide"]["frequencies_cm1"]) == 4
    assert all(r["beta_vec_au"] > 0 and r["alpha_iso_bohr3"] > 0 for r in recs.values())
    db = tmp_path / "runs" / "slurm_pyscf" / "parsl" / "monitoring.db"
    with sqlite3.connect(db) as con:
        (n,) = con.execute("select count(*) from task").fetchone()
    assert n >= 3 * 5  # every app is in Parsl's monitoring database


def test_smiles_to_trained_model_in_one_config_on_local_cores(tmp_path):
    out = run_example(tmp_path, "smiles_to_model.yaml", "run", "--no-progress")
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "done=20 skipped=0 failed=0"
    run = tmp_path / "runs" / "smiles_to_model"
    assert "train: weave on zpve, 2 rank(s)" in out.stderr
    import h5py
    import json
    with h5py.File(run / "augmented.h5", "r") as f:
        assert len(f) == 20 and f.attrs["n_augment"] == 10
    m = json.loads((run / "train" / "metrics.json").read_text())
    assert m["ranks"] == 2 and (run / "train" / "parity.png").exists()
    assert m["train"]["n"] + m["val"]["n"] + m["test"]["n"] == 20
    # the explain stage: relevance per weave feature type on every molecule, and the report
    assert "explain: epsilon LRP on the all split" in out.stderr
    ex = json.loads((run / "train" / "explain" / "explain.json").read_text())
    assert ex["n_samples"] == 20 and ex["rule"] == "epsilon"
    assert (run / "train" / "explain" / "relevance_bars.png").exists()
    assert "<img" in (run / "train" / "report" / "index.html").read_text()


def test_training_stage_runs_on_slurm_mpi_executor(tmp_path, slurm_cluster):
    import json
    import yaml
    for f in EXAMPLES.iterdir():
        if f.suffix == ".smi":
            shutil.copy(f, tmp_path / f.name)
    cfg = {"inputs": ["xtb20.smi"], "store": "s.h5", "limit": 10,
           "qm": {"engine": "xtb", "tasks": ["opt", "freq"]},
           "executor": {"kind": "slurm", "partition": "debug", "walltime": "00:20:00",
                        "cores_per_node": 2, "workers": 2, "max_idletime": 5,
                        "mpi": {"ranks": 2, "walltime": "00:20:00"}},
           "stages": {"train": {"target": "zpve", "model": "mlp", "ranks": 2, "epochs": 5,
                                "batch_size": 8, "augment": "quantum:300:5"},
                      "bp": {"features": "onehot", "ranks": 2, "epochs": 5, "batch_size": 4,
                             "val": 0.2, "test": 0.2}}}
    (tmp_path / "wf.yaml").write_text(yaml.safe_dump(cfg))
    out = subprocess.run([sys.executable, "-m", "hessflow", "run", str(tmp_path / "wf.yaml"),
                          "--no-progress"], capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    train = tmp_path / "runs" / "wf" / "train"
    assert "srun -n 2 --mpi=pmi2" in (train / "train.err").read_text()  # Parsl's MPI block
    assert json.loads((train / "metrics.json").read_text())["ranks"] == 2
    bp = tmp_path / "runs" / "wf" / "bp"  # a command stage on the same MPI executor
    assert "bp:" in out.stdout + out.stderr and (bp / "metrics.json").exists(), out.stderr[-3000:]
