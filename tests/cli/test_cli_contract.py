"""The command line's contract (#17): one vocabulary of options, help that teaches, docs/cli.md
current, --json shapes, exit codes, deprecated spellings, quiet engines, per-epoch progress."""

import argparse
import io
import json
import re
import shutil
import subprocess
import sys
import warnings

import pytest

from hessflow.cli import EXAMPLES, build_parser, main
from hessflow.cli.docs import cli_markdown, commands
from hessflow.cli.engine_logs import engine_logs
from hessflow.cli.schemas import SCHEMAS, check
from hessflow.progress import EpochProgress

from tests.stock import REPO as ROOT  # noqa: E402
EXAMPLES_DIR = ROOT / "examples"


def hessflow(*args):
    return subprocess.run([sys.executable, "-m", "hessflow", *map(str, args)], capture_output=True,
                          text=True, timeout=900)


def _json(out):
    assert out.stdout.lstrip().startswith("{"), out.stdout[:300]
    return json.loads(out.stdout)


# -- help and docs -----------------------------------------------------------------------------
def test_every_option_of_every_command_has_help_and_each_command_an_example():
    p = build_parser()
    cmds = list(commands(p))
    assert {"hessflow compute", "hessflow status", "hessflow vae train", "hessflow bp evaluate",
            "hessflow report"} <= {n for n, _ in cmds}
    for name, sub in [("hessflow", p), *cmds]:
        for a in sub._actions:
            if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if a.help == argparse.SUPPRESS:  # a deprecated spelling: it must say so when used
                assert a.option_strings == ["--out"] or a.option_strings == ["--output"], a
                continue
            assert a.help and len(a.help) > 8, (name, a.option_strings or a.dest)
        if sub is not p:
            text = sub.format_help().rstrip().splitlines()
            assert text[-2] == "example:" and text[-1].startswith("  hessflow "), name
            argv = text[-1].split()[1:]  # the example itself parses
            assert sub.prog.split()[1:] == argv[:len(sub.prog.split()) - 1]
            p.parse_args(argv)


def test_top_level_help_is_plain_text_with_five_examples_and_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "``" not in text and ":mod:" not in text and ":func:" not in text
    assert len(EXAMPLES) == 5
    for _, cmd in EXAMPLES:
        assert cmd in text
    for code in ("0", "1", "2", "3"):
        assert re.search(rf"^  {code}\s+\w", text, re.M)


def test_committed_docs_cli_md_is_generated_from_the_parser():
    committed = (ROOT / "docs" / "cli.md").read_text()
    assert committed == cli_markdown(), "regenerate: python -m hessflow.cli.docs > docs/cli.md"


def test_defaults_are_shown_in_the_help():
    text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    text = " ".join(text.split())
    assert "(default: 100)" in text and "(default: alpha)" in text and "(default: 0)" in text


# -- the shape checker itself ------------------------------------------------------------------
def test_check_finds_missing_keys_and_wrong_types():
    shape = {"a": "integer", "b?": "number|null", "c": [{"d": "string"}], "e": {"*": "integer"}}
    assert check({"a": 1, "c": [{"d": "x"}], "e": {"x": 2}}, shape) == []
    problems = check({"a": True, "b": "1", "c": [{}], "e": {"x": 1.5}}, shape)
    assert len(problems) == 4 and "$.a: expected integer" in problems[0]
    assert "$.c[0]: missing key 'd'" in problems


# -- deprecated spellings ----------------------------------------------------------------------
@pytest.mark.parametrize("argv, dest, value, new", [
    (["train", "d.h5", "--out", "R"], "out_dir", "R", "--out-dir"),
    (["vae", "train", "d.csv", "--out", "R"], "out_dir", "R", "--out-dir"),
    (["bp", "train", "d.h5", "--out", "R"], "out_dir", "R", "--out-dir"),
    (["vae", "sample", "R", "--out", "x.csv"], "output", "x.csv", "-o/--output"),
    (["explain", "R", "--output", "3"], "target_index", 3, "--target-index"),
])
def test_old_spellings_still_work_with_one_deprecation_line(argv, dest, value, new, capsys):
    a = build_parser().parse_args(argv)
    assert getattr(a, dest) == value
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is deprecated" in err[0] and new in err[0]
    new_argv = [new.split("/")[-1] if x in ("--out", "--output") else x for x in argv]
    assert getattr(build_parser().parse_args(new_argv), dest) == value


def test_report_output_index_is_the_old_target_index(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nothing"), "--output", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "--target-index" in err[0] and "deprecated" in err[0]
    assert err[1] == f"hessflow: error: {tmp_path / 'nothing'}: no such run directory or store"


# -- exit codes --------------------------------------------------------------------------------
def test_exit_codes_usage_2_and_runtime_3(tmp_path):
    out = hessflow("compute", "--nonsense")  # argparse: a usage error
    assert out.returncode == 2
    out = hessflow("status", tmp_path / "missing.h5")
    assert out.returncode == 2 and out.stderr.strip() == \
        f"hessflow: error: {tmp_path / 'missing.h5'}: no such store"
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"this is not an HDF5 file\n" * 10)
    for cmd in (["info", bad], ["status", bad], ["status", bad, "--json"]):
        out = hessflow(*cmd)
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 3, (cmd, out.stderr)
        assert len(lines) == 1 and lines[0].startswith("hessflow: error: "), lines


# -- engines are quiet unless -v -------------------------------------------------------------
def test_engine_warnings_hidden_by_default_shown_with_verbose(capsys):
    def warn():
        warnings.warn_explicit("basis set has no diffuse functions", UserWarning, "x.py", 1,
                               module="pyscf.gto.mole")
    with engine_logs(0):
        warn()
        import logging
        logging.getLogger("geometric.nifty").warning("step 3 rejected")
    assert capsys.readouterr().err == ""
    with engine_logs(1), warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        warn()
        logging.getLogger("geometric.nifty").warning("step 3 rejected")
    assert len(seen) == 1
    assert "geometric.nifty: WARNING: step 3 rejected" in capsys.readouterr().err


def test_epoch_progress_line_has_units_time_and_eta():
    buf = io.StringIO()
    bar = EpochProgress("train", 50, stream=buf)
    line = bar.line(2, 0.23114, ("val MAE", 4.1271, "Bohr^3"), 2.0)
    assert line == "train epoch  3/50  loss=0.2311  val MAE=4.127 Bohr^3  2.00 s/epoch  ETA 1m34s"
    bar.epoch(3, 0.2, None)
    assert buf.getvalue().startswith("train epoch  4/50  loss=0.2  ")


# -- --json of every command that prints a summary -------------------------------------------
@pytest.fixture(scope="module")
def computed(tmp_path_factory):
    d = tmp_path_factory.mktemp("contract")
    shutil.copy(EXAMPLES_DIR / "xtb20.smi", d / "m.smi")
    with open(d / "m.smi", "a") as fh:
        fh.write("C1CC broken\n")
    out = hessflow("compute", d / "m.smi", "--store", d / "x.h5", "--engine", "xtb", "--tasks",
                   "opt,freq,polar", "--threads", "1", "--no-progress", "--json")
    return d, out


def test_compute_json_and_exit_code_1(computed):
    d, out = computed
    assert out.returncode == 1, out.stderr[-2000:]  # one molecule failed
    r = _json(out)
    assert check(r, SCHEMAS["compute"]) == []
    assert r["schema"] == "hessflow.compute/1" and (r["done"], r["failed"]) == (20, 1)
    broken = next(m for m in r["molecules"] if m["name"] == "broken")
    assert broken["status"] == "failed" and "invalid SMILES" in broken["reason"]
    water = next(m for m in r["molecules"] if m["name"] == "water")
    assert water["alpha_iso_bohr3"] > 0 and water["n_imag"] == 0


def test_info_status_json(computed):
    d, _ = computed
    info = _json(hessflow("info", d / "x.h5", "--json"))
    assert check(info, SCHEMAS["info"]) == [] and info["records"] == 21
    out = hessflow("status", d / "x.h5", "--json")
    assert out.returncode == 0, out.stderr
    st = _json(out)
    assert check(st, SCHEMAS["status"]) == []
    assert st["by_status"] == {"done": 20, "failed": 1, "pending": 0}
    assert st["throughput_records_per_h"] > 0 and st["mean_compute_s"] > 0


def test_train_json_progress_lines_and_quiet(computed, tmp_path):
    d, _ = computed
    out = hessflow("train", d / "x.h5", "--target", "alpha", "--model", "mlp", "--epochs", "3",
                   "--out-dir", tmp_path / "run", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    r = _json(out)
    assert check(r, SCHEMAS["train"]) == [] and r["unit"] == "Bohr^3" and r["target"] == "alpha"
    assert r["train"]["n"] + r["val"]["n"] + r["test"]["n"] == 20
    epochs = [ln for ln in out.stderr.splitlines() if ln.startswith("train epoch ")]
    assert len(epochs) == 3 and "s/epoch" in epochs[0] and "ETA" in epochs[0]
    assert "val MAE=" in epochs[0]
    text = hessflow("-q", "train", d / "x.h5", "--target", "alpha", "--model", "mlp", "--epochs",
                    "2", "--out-dir", tmp_path / "run2")
    assert text.returncode == 0 and "train epoch" not in text.stderr
    assert re.search(r"^test .* MAE=[0-9.]+ Bohr\^3 RMSE=[0-9.]+ Bohr\^3 ", text.stdout, re.M)


def test_bp_evaluate_json(computed, tmp_path):
    d, _ = computed
    out = hessflow("bp", "train", d / "x.h5", "--epochs", "2", "--hidden", "8,8", "--out-dir",
                   tmp_path / "bp")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "bp train epoch 1/2" in out.stderr and "MAE=" in out.stdout and "kcal/mol" in out.stdout
    r = _json(hessflow("bp", "evaluate", tmp_path / "bp", d / "x.h5", "--json"))
    assert check(r, SCHEMAS["bp evaluate"]) == [] and r["unit"] == "kcal/mol"


def test_run_json(tmp_path):
    (tmp_path / "m.smi").write_text("O water\nC1CC broken\n")
    (tmp_path / "wf.yaml").write_text("inputs: [m.smi]\nstore: s.h5\nqm: {engine: xtb, tasks: "
                                      "[opt, freq]}\nexecutor: {kind: threads, workers: 1}\n")
    out = hessflow("run", tmp_path / "wf.yaml", "--json", "--no-progress")
    assert out.returncode == 1, out.stderr[-2000:]
    r = _json(out)
    assert check(r, SCHEMAS["run"]) == []
    assert (r["done"], r["failed"]) == (1, 1) and r["store"].endswith("s.h5")


def test_error_lines_go_above_the_bar_never_onto_it(capsys):
    from hessflow.progress import Bar, NoBar, counts_text
    buf = io.StringIO()
    bar = Bar(3, stream=buf)
    bar.update()
    bar.write("error: broken: invalid SMILES 'C1CC'")
    bar.counts(1, 1, {"opt": 2, "freq": 0}, "qm")
    bar.close()
    text = buf.getvalue()
    # tqdm clears the bar's line first: the error starts a line of its own
    assert "\rerror: broken: invalid SMILES 'C1CC'\n" in text
    assert "done=1 failed=1 running=opt:2 stage=qm" in text
    buf2 = io.StringIO()
    bar = Bar(2, stream=buf2)
    print("error: water: SCF not converged", file=bar.lines(buf2))  # the workflow's print calls
    bar.close()
    assert "\rerror: water: SCF not converged\n" in buf2.getvalue()
    assert NoBar().lines(buf2) is buf2
    NoBar().write("error: x: y")
    assert capsys.readouterr().err == "error: x: y\n"
    assert counts_text(3, 0, 4) == "done=3 failed=0 running=4"
