"""`hessflow explain` and `hessflow report` end to end on tiny runs trained on a store hessflow
computed itself (GFN2-xTB opt + freq for 20 small molecules: Hessians, so augmentation works)."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hessflow.cli import main  # noqa: E402
from hessflow.ml.property.features import ATOM_BLOCKS, PAIR_BLOCKS  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def store(xtb20_store):
    """The session's GFN2-xTB store of 20 molecules (tests/conftest.py)."""
    return xtb20_store


@pytest.fixture(scope="module")
def weave_run(store, tmp_path_factory):
    """Weave on ZPVE with quantum vibration augmentation, a few epochs."""
    out = tmp_path_factory.mktemp("runs") / "weave"
    rc = main(["train", str(store), "--target", "zpve", "--model", "weave", "--augment",
               "quantum:300:3", "--epochs", "4", "--batch-size", "8", "--out", str(out)])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def mlp_run(store, tmp_path_factory):
    """Padded-coordinates MLP, in a directory whose name needs HTML escaping."""
    out = tmp_path_factory.mktemp("runs") / "mlp <b>&'x"
    rc = main(["train", str(store), "--target", "zpve", "--model", "mlp", "--epochs", "15",
               "--out", str(out)])
    assert rc == 0
    return out


def _png_ok(path: Path):
    assert path.exists(), path
    assert path.read_bytes()[:8] == PNG_MAGIC, path
    import matplotlib.image as mpimg
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50


def test_explain_weave_every_feature_type_and_conservation(weave_run, capsys):
    assert main(["explain", str(weave_run), "--split", "all", "--batch-size", "7",
                 "--no-progress"]) == 0
    assert "conservation error" in capsys.readouterr().out
    ex = weave_run / "explain"
    s = json.loads((ex / "explain.json").read_text())
    types = list(ATOM_BLOCKS.names) + list(PAIR_BLOCKS.names)
    assert set(types) <= set(s["feature_types"])
    assert s["n_samples"] == 20 and s["split"] == "all" and s["rule"] == "epsilon"
    for group in ("all", "without_outliers"):
        for key in ("signed", "absolute", "signed_target_units", "absolute_target_units",
                    "signed_normalised", "absolute_normalised"):
            d = s["relevance"][group][key]
            assert set(types) <= set(d["mean"]) and set(types) <= set(d["std"]), (group, key)
    # the network predicts standardised labels; target units are x label_std
    a = s["relevance"]["all"]
    for t in types:
        assert a["signed_target_units"]["mean"][t] == pytest.approx(
            a["signed"]["mean"][t] * s["label_std"], rel=1e-6, abs=1e-12)
        assert a["absolute"]["mean"][t] >= abs(a["signed"]["mean"][t]) - 1e-9
    # epsilon rule (bias absorbed): relevance + bias share sums to the prediction
    c = s["conservation"]
    assert c["max_relative"] < 1e-2 and c["mean"] <= c["max"]
    assert c["max"] < 1e-2 * s["prediction"]["mean_abs_standardised"]
    assert "3 x MAE" in s["outliers"]["rule"]
    assert s["relevance"]["without_outliers"]["signed"]["n"] == 20 - s["outliers"]["n"]
    _png_ok(ex / "relevance_bars.png")
    import h5py
    with h5py.File(ex / "relevance.h5", "r") as f:
        sizes = {k: f[k].shape[0] for k in f if isinstance(f[k], h5py.Dataset) and f[k].shape}
    assert sizes and all(n == 20 for n in sizes.values()), sizes


@pytest.mark.parametrize("rule", ["epsilon", "zplus", "gamma", "alphabeta"])
def test_explain_mlp_rules_element_vs_coordinates(mlp_run, tmp_path, rule):
    from hessflow.analysis.explain import explain_run
    s = explain_run(mlp_run, split="train", rule=rule, out_dir=tmp_path / rule, plot=False)
    assert s["feature_types"] == ["element", "coordinates"]
    assert s["n_samples"] == 16 and (tmp_path / rule / "explain.json").exists()
    if rule == "epsilon":
        assert s["conservation"]["max_relative"] < 1e-2


def _chromium(url: str, tmp_path: Path) -> str:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed: the HTML report is not checked in a browser")
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={tmp_path / 'chromium-profile'}",
           "--virtual-time-budget=5000", "--dump-dom", url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def _body_attrs(dom: str) -> dict:
    body = re.search(r"<body([^>]*)>", dom)
    assert body, dom[:500]
    return dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))


def test_report_opens_in_chromium_with_every_figure(weave_run, tmp_path, capsys):
    shutil.rmtree(weave_run / "explain", ignore_errors=True)  # report runs explain itself
    assert main(["report", str(weave_run)]) == 0
    page = weave_run / "report" / "index.html"
    assert str(page) in capsys.readouterr().out
    text = page.read_text()
    for png in ("parity.png", "learning_curve.png", "relevance_bars.png", "augmentation.png"):
        _png_ok(weave_run / "report" / png)
        assert f'data-file="{png}"' in text, png
    assert (weave_run / "explain" / "explain.json").exists()
    for heading in ("Metrics", "Parity", "Learning curve", "Relevance", "augmentation", "Settings"):
        assert heading in text
    assert "MAE" in text and "R²" in text and "quantum:300:3" in text
    assert "Vibrational spectra" not in text  # only for a frequencies target
    # provenance: the labels' engine and level, the version and the command line that trained it
    import hessflow
    prov = text[text.index('id="provenance"'):]
    prov = prov[:prov.index("</table>")]
    assert "xtb gfn2-xtb (20 records)" in prov and f"trained by hessflow</td><td class=\"k\">" \
        f"{hessflow.__version__}" in prov
    assert "hessflow train " in prov and "--target zpve" in prov and "quantum:300:3" in prov
    # self-contained: copied elsewhere, every figure still shows
    copy = tmp_path / "copied"
    shutil.copytree(weave_run / "report", copy)
    attrs = _body_attrs(_chromium((copy / "index.html").as_uri(), tmp_path))
    n_img = text.count("<img ")
    assert n_img == 4
    assert attrs.get("data-images-ok") == f"{n_img}/{n_img}", attrs
    assert attrs.get("data-js-errors") == "none", attrs


def test_report_escapes_text_and_says_when_not_explained(mlp_run, tmp_path):
    shutil.rmtree(mlp_run / "explain", ignore_errors=True)
    assert main(["report", str(mlp_run), "--no-explain"]) == 0
    text = (mlp_run / "report" / "index.html").read_text()
    assert "Not explained yet" in text and "hessflow explain" in text
    assert not (mlp_run / "explain").exists()
    assert "mlp <b>" not in text and "mlp &lt;b&gt;&amp;&#x27;x" in text
    assert "augmentation.png" not in text  # the run had no augmentation
    attrs = _body_attrs(_chromium((mlp_run / "report" / "index.html").as_uri(), tmp_path))
    assert attrs.get("data-images-ok") == "2/2" and attrs.get("data-js-errors") == "none", attrs


def test_explain_dae_code_layer_and_frequency_target(store, tmp_path):
    """A DAE encoder in front of the MLP: every code unit gets relevance. The frequency set: the
    sum of each molecule's real outputs is explained, and the report draws the spectra."""
    from hessflow.analysis.explain import explain_run
    from hessflow.analysis.report import write_report
    dae = tmp_path / "dae"
    assert main(["train", str(store), "--target", "zpve", "--model", "mlp", "--dae", "4",
                 "--epochs", "5", "--out", str(dae)]) == 0
    s = explain_run(dae, split="all", plot=False)
    assert s["code_layer"]["names"] == ["code0", "code1", "code2", "code3"]
    assert s["code_layer"]["conservation_max"] < 1e-3
    assert s["feature_types"] == ["element", "coordinates"]
    assert s["conservation"]["max_relative"] < 1e-2

    freq = tmp_path / "freq"
    assert main(["train", str(store), "--target", "frequencies", "--model", "weave",
                 "--epochs", "2", "--out", str(freq)]) == 0
    s = explain_run(freq)
    assert s["n_outputs"] > 1 and "real" in s["explained"]
    assert s["conservation"]["max_relative"] < 1e-2
    one = explain_run(freq, output=0, out_dir=tmp_path / "out0", plot=False)
    assert one["explained"].startswith("output 0")
    page = write_report(freq)
    text = page.read_text()
    assert "Vibrational spectra" in text and 'data-file="spectra.png"' in text
    _png_ok(page.parent / "spectra.png")
    attrs = _body_attrs(_chromium(page.as_uri(), tmp_path))
    assert attrs.get("data-images-ok") == "4/4" and attrs.get("data-js-errors") == "none", attrs


def test_kfold_run_is_explained_per_fold(store, tmp_path, capsys):
    run = tmp_path / "kfold"
    assert main(["train", str(store), "--target", "zpve", "--model", "mlp", "--kfold", "3",
                 "--epochs", "3", "--out", str(run)]) == 0
    assert main(["explain", str(run), "--no-progress"]) == 2
    assert "explain one fold at a time" in capsys.readouterr().err
    assert main(["explain", str(run / "fold1"), "--no-progress"]) == 0
    assert json.loads((run / "fold1" / "explain" / "explain.json").read_text())["n_samples"] == 7
    assert main(["report", str(run)]) == 0
    text = (run / "report" / "index.html").read_text()
    assert "3-fold cross-validation" in text and "fold2" in text and " ± " in text


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["explain", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a training run directory" in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        main(["explain", str(tmp_path), "--rule", "magic"])


def test_code_layer_of_an_encoder_in_front():
    """A net whose first module is an encoder (a DAE's code layer): relevance per code unit."""
    from torch import nn

    from hessflow.analysis.explain import code_relevance, split_encoder
    from hessflow.ml.property.models import MLP, TiedDAE
    torch.manual_seed(0)
    dae = TiedDAE(12, hidden=(8,), n_code=4)
    net = nn.Sequential()
    net.add_module("encoder", dae.encoder())
    net.add_module("head", MLP(4, (6,), 1, "relu"))
    enc, head = split_encoder(net)
    assert enc is net[0]
    x = torch.randn(5, 12)
    res = code_relevance(enc, head, (x,), rule="epsilon")
    assert res.relevance[0].shape == (5, 4)
    with torch.no_grad():
        pred = net(x)
    assert torch.allclose(res.prediction.reshape(-1), pred.reshape(-1), atol=1e-5)
    from hessflow.ml.property.models import Weave
    assert split_encoder(Weave()) is None  # 'head' alone is not an encoder in front


def test_spectra_plot_for_a_frequencies_target(tmp_path):
    from hessflow.analysis.plots import frequency_spectra
    y = [[1600.0, 3650.0, 3750.0, float("nan")], [500.0, 1200.0, 2900.0, 3000.0]]
    p = [[1580.0, 3600.0, 3790.0, 0.0], [520.0, 1180.0, 2950.0, 3010.0]]
    png = frequency_spectra({"test": {"y": y, "pred": p, "names": ["water", "x"]}},
                            tmp_path / "s.png")
    _png_ok(png)
    assert frequency_spectra({"test": {"y": [1.0], "pred": [1.0]}}, tmp_path / "n.png") is None


def test_learning_curve_log_axis_labels_more_than_two_ticks(tmp_path):
    from hessflow.analysis.plots import _plt, log_axis
    plt = _plt()
    for lo, hi in ((0.48, 1.9), (0.02, 3.0), (1e-5, 2.0)):
        fig, ax = plt.subplots()
        v = np.geomspace(lo, hi, 20)
        ax.plot(np.arange(20), v)
        log_axis(ax, v)
        fig.canvas.draw()
        y0, y1 = ax.get_ylim()
        labels = [t.get_text() for t in ax.get_yticklabels()
                  if y0 <= t.get_position()[1] <= y1 and t.get_text()]
        plt.close(fig)
        assert len(labels) >= 3, (lo, hi, labels)
        assert all("$" not in t for t in labels), labels  # plain numbers, not 2x10^-1


def test_relevance_bars_without_outliers_draw_one_group(monkeypatch, tmp_path):
    """No outliers: the "without outliers" bars would repeat the others, so they are not drawn."""
    from hessflow.analysis import plots
    names = ["element", "coordinates"]
    stats = {"n": 5, "mean": dict.fromkeys(names, 0.1), "std": dict.fromkeys(names, 0.01)}
    summary = {"feature_types": names, "outliers": {"n": 0, "rule": "none"}, "split": "all",
               "rule": "epsilon", "n_samples": 5,
               "relevance": {g: {"signed": stats, "absolute": stats}
                             for g in ("all", "without_outliers")}}
    bars = []
    real_bar = plots._plt().Axes.bar
    monkeypatch.setattr(plots._plt().Axes, "bar",
                        lambda self, *a, **k: bars.append(k.get("label")) or real_bar(self, *a, **k))
    _png_ok(plots.relevance_bars(summary, tmp_path / "b.png"))
    assert bars == ["all molecules (n=5)"] * 2
    bars.clear()
    summary["outliers"]["n"] = 1
    plots.relevance_bars(summary, tmp_path / "c.png")
    assert bars == ["all molecules (n=5)", "without outliers (n=5)"] * 2


def test_dataset_report_of_a_store_in_chromium(store, tmp_path, capsys):
    """``hessflow report FILE.h5``: the page of a store: every figure loads, no JS error."""
    from hessflow.store import Store
    bad = tmp_path / "bad.smi"
    bad.write_text("C1CC broken\n[U] uranium\n")
    mixed = tmp_path / "mixed.h5"
    shutil.copy(store, mixed)
    assert main(["compute", str(bad), "--store", str(mixed), "--engine", "xtb",
                 "--no-progress"]) == 1
    capsys.readouterr()
    out = tmp_path / "page.html"
    assert main(["report", str(mixed), "-o", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    text = out.read_text()
    for heading in ("Records", "Failure reasons", "Engines and levels", "Labels", "Frequencies",
                    "Molecule sizes", "Cost", "Hosts and attempts"):
        assert f">{heading}" in text, heading
    assert "input: invalid SMILES" in text and "input: unsupported element" in text
    assert "xtb gfn2-xtb" in text and "ZPVE" in text
    n = len(Store(mixed))
    assert f"{n} records, 20 done" in text
    n_img = text.count("<img ")
    assert n_img == 4  # labels, frequencies (histogram + stick spectra), sizes, cost
    for png in ("labels.png", "frequencies.png", "sizes.png", "cost.png"):
        _png_ok(tmp_path / "page_files" / png)
    copy = tmp_path / "elsewhere.html"  # self-contained: the page alone shows every figure
    shutil.copy(out, copy)
    attrs = _body_attrs(_chromium(copy.as_uri(), tmp_path))
    assert attrs.get("data-images-ok") == f"{n_img}/{n_img}", attrs
    assert attrs.get("data-js-errors") == "none", attrs
    # the default page sits beside the store
    assert main(["report", str(mixed)]) == 0
    assert (tmp_path / "mixed.report.html").exists()
