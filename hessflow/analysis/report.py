"""``hessflow report RUN_DIR``: one self-contained HTML page for a training run.

``RUN_DIR/report/index.html`` embeds every figure as a base64 PNG (the PNG files are written next
to it too), so the page works wherever the directory is copied. It shows:

- the metrics per split (n, MAE, RMSE, MRE, Pearson r, R²) in the target's units;
- the parity plot and the learning curve (train/validation loss per epoch);
- the relevance bars of ``hessflow explain`` (run first when missing, unless told not to);
- the per-atom displacement distributions of the run's vibration augmentation, when it used one;
- predicted vs DFT vibrational spectra, for a ``frequencies`` target only;
- its provenance: the QM engine and level of the labels (from the store), the hessflow version
  that trained it and the one writing the page, the command line (``RUN_DIR/command.json``,
  written by ``hessflow train``);
- the run's settings (its spec).

All text is HTML-escaped. A small inline script records, once the page has loaded, how many
images decoded (``<body data-images-ok="N/M">``) and any JavaScript error
(``data-js-errors``), so a headless browser can check the page.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

from ..errors import HessflowError
from .runs import load_property_run

METRIC_COLUMNS = (("n", "n"), ("mae", "MAE"), ("rmse", "RMSE"), ("mre", "MRE"),
                  ("pearson_r", "r"), ("r2", "R²"))

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
 max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em}
h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.9em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td.k,th.k{text-align:left}figure{margin:1em 0}
img{max-width:100%;height:auto}figcaption{font-size:.85em;color:#555;max-width:900px}
.note{background:#fff8e0;border:1px solid #eed;padding:.6em;font-size:.9em}
code{background:#f6f6f6;font-size:.85em}
"""

_SCRIPT = """
window.onerror = function (msg, src, line) {
  var b = document.body; if (!b) return false;
  var prev = b.dataset.jsErrors ? b.dataset.jsErrors + " | " : "";
  b.dataset.jsErrors = prev + String(msg) + " (line " + line + ")"; return false;
};
window.addEventListener("load", function () {
  var imgs = document.getElementsByTagName("img"), ok = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++;
  }
  document.body.dataset.imagesOk = ok + "/" + imgs.length;
  if (!document.body.dataset.jsErrors) document.body.dataset.jsErrors = "none";
});
"""


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _fmt(v) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}" '
            f'data-file="{_e(Path(path).name)}">')


def _figure(path: Path, alt: str, caption: str) -> str:
    return f"<figure>{_img(path, alt)}<figcaption>{_e(caption)}</figcaption></figure>"


def _note(text: str, command: str | None = None) -> str:
    cmd = f"<br><code>{_e(command)}</code>" if command else ""
    return f'<p class="note">{_e(text)}{cmd}</p>'


def metrics_table(metrics: dict, units: str = "") -> str:
    """An HTML table of the per-split metrics (n, MAE, RMSE, MRE, r, R²; ``± std`` where a
    k-fold summary has one), captioned with the ``units`` of MAE and RMSE."""
    head = "".join(f"<th>{_e(lab)}</th>" for _, lab in METRIC_COLUMNS)
    rows = []
    for split in ("train", "val", "test"):
        m = metrics.get(split)
        if not isinstance(m, dict):
            continue
        cells = "".join(f"<td>{_e(_fmt(m.get(k, float('nan'))))}"
                        + (f" ± {_e(_fmt(m[k + '_std']))}" if k + "_std" in m else "") + "</td>"
                        for k, _ in METRIC_COLUMNS)
        rows.append(f'<tr><td class="k">{_e(split)}</td>{cells}</tr>')
    cap = f"<caption>MAE and RMSE in {_e(units)}; MRE = mean |error| / |reference|</caption>" \
        if units else ""
    return f'<table>{cap}<tr><th class="k">split</th>{head}</tr>{"".join(rows)}</table>'


def settings_table(spec: dict, extra: dict | None = None) -> str:
    """An HTML table of settings (``spec``: a spec's mapping form) and ``extra`` entries."""
    rows = "".join(f'<tr><td class="k">{_e(k)}</td>'
                   f'<td class="k">{_e(json.dumps(v, default=str))}</td></tr>'
                   for k, v in {**spec, **(extra or {})}.items())
    return f'<table><tr><th class="k">setting</th><th class="k">value</th></tr>{rows}</table>'


def _explain_section(run_dir: Path, out: Path, run_explain: bool,
                     explain_kw: dict) -> tuple[str, list]:
    from .explain import explain_run
    ex_dir = run_dir / "explain"
    parts, problems = ["<h2>Relevance per feature type (LRP)</h2>"], []
    summary = None
    if not (ex_dir / "explain.json").exists() and run_explain:
        try:
            summary = explain_run(run_dir, **explain_kw)
        except Exception as exc:  # noqa: BLE001 - the rest of the report is still useful
            problems.append(f"explain failed: {exc}")
            parts.append(_note(f"hessflow explain failed: {type(exc).__name__}: {exc}",
                               f"hessflow explain {run_dir}"))
            return "".join(parts), problems
    if (ex_dir / "explain.json").exists():
        summary = summary or json.loads((ex_dir / "explain.json").read_text())
    if summary is None:
        parts.append(_note("Not explained yet. Run:", f"hessflow explain {run_dir}"))
        return "".join(parts), problems
    bars = ex_dir / "relevance_bars.png"
    if not bars.exists():
        from .plots import relevance_bars
        relevance_bars(summary, bars, _per_sample_types(ex_dir / "relevance.h5"))
    import shutil
    shutil.copyfile(bars, out / "relevance_bars.png")
    cons = summary.get("conservation", {})
    outl = summary.get("outliers", {})
    parts.append(_figure(
        out / "relevance_bars.png", "relevance per feature type",
        f"Rule {summary.get('rule')} on the {summary.get('split')} split "
        f"({summary.get('n_samples')} molecules), explaining "
        f"{summary.get('explained', 'the prediction')}. Relevance summed per feature type and "
        f"averaged over each molecule's atoms. Top: mean ± one standard deviation over the "
        f"molecules, in "
        f"standardised label units (the network predicts (y - mean) / std; x label_std = "
        f"{_fmt(summary.get('label_std'))} gives the target's units). Bottom: the paper's "
        f"normalisation (each type shifted to zero mean over the molecules, all divided by the "
        f"largest absolute value), as box plots. Outliers: {outl.get('rule', '?')} "
        f"({outl.get('n', 0)} molecules). Numbers: explain/explain.json."))
    parts.append(f"<p>Conservation (|sum of relevance + bias share - prediction|, standardised "
                 f"units): mean {_e(_fmt(cons.get('mean')))}, max {_e(_fmt(cons.get('max')))} "
                 f"(max {_e(_fmt(cons.get('max_relative')))} of the mean |prediction|)"
                 + (", not conserved by design: alpha-beta with beta > 0"
                    if summary.get("rule") == "alphabeta"
                    and summary.get("rule_parameters", {}).get("beta", 0) > 0 else "")
                 + ". All molecules; per-type means in explain/explain.json also without the "
                 "outliers.</p>")
    rel = summary.get("relevance", {}).get("all", {})
    names = summary.get("feature_types", [])
    if rel and names:
        head = ("<tr><th class='k'>feature type</th><th>signed (std. units)</th><th>± s.d.</th>"
                "<th>signed (target units)</th><th>absolute (std. units)</th><th>± s.d.</th>"
                "<th>s.d. signed, normalised</th><th>s.d. absolute, normalised</th></tr>")
        rows = []
        for n in names:
            def g(key, stat="mean"):
                return _e(_fmt(rel.get(key, {}).get(stat, {}).get(n, float("nan"))))
            rows.append(f"<tr><td class='k'>{_e(n)}</td><td>{g('signed')}</td>"
                        f"<td>{g('signed', 'std')}</td><td>{g('signed_target_units')}</td>"
                        f"<td>{g('absolute')}</td><td>{g('absolute', 'std')}</td>"
                        f"<td>{g('signed_normalised', 'std')}</td>"
                        f"<td>{g('absolute_normalised', 'std')}</td></tr>")
        parts.append(f"<table>{head}{''.join(rows)}</table>")
    return "".join(parts), problems


def _per_sample_types(h5) -> dict | None:
    """Per-sample per-type relevance from explain's relevance.h5 (for redrawing the bars)."""
    if not Path(h5).exists():
        return None
    import h5py
    import numpy as np
    with h5py.File(h5, "r") as f:
        if "types/signed" not in f:
            return None
        return {"signed": f["types/signed"][()], "absolute": f["types/absolute"][()],
                "outlier": f["outlier"][()].astype(bool) if "outlier" in f
                else np.zeros(len(f["types/signed"]), bool)}


def _few_with_hessian(path, n: int = 4) -> list[dict]:
    """The first ``n`` finished records of a store that have a Hessian (read one by one: a large
    store is not loaded for four molecules)."""
    from ..store import Store
    out = []
    with Store(path, "r") as st:
        t = st.table(["key", "status"])
        for k, status in zip(t["key"], t["status"]):
            if status != "done":
                continue
            r = st.get(k)
            if r["hessian_hartree_bohr2"] is None:
                continue
            coords = r["coords_opt_bohr"]
            if coords is None:
                coords = r["coords_input_bohr"]
            out.append({"name": r["name"], "smiles": r["smiles"], "numbers": r["numbers"],
                        "coords_bohr": coords, "masses_amu": r["masses_amu"],
                        "hessian": r["hessian_hartree_bohr2"]})
            if len(out) >= n:
                break
    return out


def _augment_section(spec, out: Path) -> tuple[str, list]:
    """The augmentation figure of a :class:`~hessflow.ml.property.experiment.TrainSpec`'s run:
    (HTML, problems)."""
    from ..ml.property.experiment import parse_augment
    aug = parse_augment(spec.augment)
    if not aug:
        return "", []
    parts = ["<h2>Vibration augmentation</h2>"]
    try:
        from .plots import displacement_histograms
        mols = _few_with_hessian(spec.data, 4)
        png = displacement_histograms(mols, aug, out / "augmentation.png", n_molecules=4,
                                      seed=spec.seed)
        parts.append(_figure(png, "augmentation displacements",
                             f"Per-atom displacement from the equilibrium geometry of "
                             f"geometries drawn as in training ({aug[0]}, {aug[1]:g} K; the run "
                             f"used {aug[2]} samples per molecule), for the first molecules with a "
                             f"Hessian in {spec.data}."))
        return "".join(parts), []
    except Exception as exc:  # noqa: BLE001
        parts.append(_note(f"augmentation figure not drawn: {type(exc).__name__}: {exc}"))
        return "".join(parts), [f"augmentation: {exc}"]


def write_report(run_dir, run_explain: bool = True, explain_kw: dict | None = None) -> Path:
    """Write ``RUN_DIR/report/index.html`` (and its PNGs) and return its path. ``run_explain``:
    run :func:`hessflow.analysis.explain.explain_run` first when ``RUN_DIR/explain`` is missing
    (with ``explain_kw``); otherwise the page says how to."""
    from ..ml.core.data import UNITS
    from .plots import frequency_spectra, learning_curve, parity_plot
    run_dir = Path(run_dir).resolve()
    run = load_property_run(run_dir)
    spec, metrics = run.spec, run.metrics
    if not metrics:
        raise HessflowError(f"{run_dir}: no metrics.json (the run has not finished)")
    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    target = spec.target
    units = UNITS.get(target, "")
    problems: list[str] = []
    n_mol = metrics.get("n_molecules") or (metrics.get("test", {}).get("n", "?")  # k-fold: summed
                                           if metrics.get("kfold") else "?")
    best = (f"; best epoch {_e(metrics['best_epoch'] + 1)} of {_e(metrics.get('epochs_run', '?'))}"
            if isinstance(metrics.get("best_epoch"), int) else "")
    body = [f"<h1>hessflow run: {_e(spec.model)} on {_e(target)}</h1>",
            f"<p>Run directory <code>{_e(run_dir)}</code>; data <code>{_e(spec.data)}"
            f"</code>; {_e(n_mol)} molecules{best}.</p>",
            "<h2>Metrics</h2>", metrics_table(metrics, units)]

    if metrics.get("kfold") and not (run_dir / "model.pt").exists():  # a k-fold summary
        folds = metrics.get("folds") or sorted(p.name for p in run_dir.glob("fold*") if p.is_dir())
        body.append(f"<p>{_e(metrics['kfold'])}-fold cross-validation: metrics are the mean ± "
                    f"s.d. over the folds (n: summed). Each fold is a complete run directory with "
                    f"its own report:</p><ul>"
                    + "".join(f"<li><code>{_e(f'hessflow report {run_dir / f}')}</code></li>"
                              for f in folds) + "</ul>")
        return _finish(run_dir, out, spec, metrics, body, problems)

    body.append("<h2>Parity</h2>")
    if (run_dir / "predictions.json").exists():
        png = parity_plot(run_dir, out / "parity.png")
        body.append(_figure(png, "parity plot", f"Predicted vs reference {target} per split."))
    else:
        body.append(_note("no predictions.json in the run directory"))
        problems.append("parity: no predictions.json")

    body.append("<h2>Learning curve</h2>")
    png = learning_curve(metrics, out / "learning_curve.png")
    if png:
        body.append(_figure(png, "learning curve",
                            "Mean squared error of the standardised labels per epoch: training "
                            "(mean over the epoch's batches) and validation (after the epoch); "
                            "the dotted line marks the selected epoch (early stopping)."))
    else:
        body.append(_note("the run has no training history"))

    section, p = _explain_section(run_dir, out, run_explain, explain_kw or {})
    body.append(section)
    problems += p

    section, p = _augment_section(spec, out)
    body.append(section)
    problems += p

    if target == "frequencies":  # a multi-output target: the spectra
        body.append("<h2>Vibrational spectra</h2>")
        try:
            preds = json.loads((run_dir / "predictions.json").read_text())
            png = frequency_spectra(preds, out / "spectra.png")
            body.append(_figure(png, "spectra", "Predicted (mirrored) vs reference (the data's "
                                "QM) harmonic frequencies of test molecules, unit-intensity "
                                "Lorentzians of 10 cm⁻¹ FWHM.")
                        if png else _note("no vector-valued test predictions to draw"))
        except Exception as exc:  # noqa: BLE001
            body.append(_note(f"spectra not drawn: {type(exc).__name__}: {exc}"))
            problems.append(f"spectra: {exc}")

    return _finish(run_dir, out, spec, metrics, body, problems)


def labels_provenance(data) -> dict:
    """Where the labels of a data file come from: for a hessflow store, its records' engines,
    levels (``method/basis``) and engine versions (counts of done records) and the hessflow
    version that created the store; for anything else, the file's kind."""
    path = Path(str(data))
    if path.suffix != ".h5" or not path.is_file():
        kind = ("QM9 (B3LYP/6-31G(2df,p), Ramakrishnan et al. 2014)"
                if path.suffix in (".csv", ".xyz") or path.is_dir() else "unknown")
        return {"labels": kind}
    import h5py

    from ..store import Store
    with Store(path, "r") as st:
        t = st.table(["status", "engine", "method", "basis", "provenance"])
    out: dict = {"engines": {}, "levels": {}, "engine versions": {}}
    for status, eng, m, b, prov in zip(t["status"], t["engine"], t["method"], t["basis"],
                                       t["provenance"]):
        if status != "done":
            continue
        level = f"{eng} {m}/{b}" if b else f"{eng} {m}"
        try:
            version = json.loads(str(prov) or "{}").get("engine_version", "?")
        except ValueError:
            version = "?"
        for key, v in (("engines", str(eng)), ("levels", level),
                       ("engine versions", f"{eng} {version}")):
            out[key][v] = out[key].get(v, 0) + 1
    with h5py.File(path, "r") as f:
        out["store written by hessflow"] = str(f.attrs.get("hessflow_version", "?"))
    return out


def provenance_table(run_dir: Path, spec) -> str:
    """An HTML table of the run's provenance: labels (:func:`labels_provenance` of its data),
    the hessflow version and command line that trained it (``command.json``), this version."""
    from .. import __version__
    rows = {}
    try:
        for k, v in labels_provenance(spec.data).items():
            rows[f"labels: {k}"] = (", ".join(f"{a} ({n} records)" for a, n in v.items())
                                    if isinstance(v, dict) else v)
    except Exception as exc:  # noqa: BLE001 - a moved or unreadable store: say so
        rows["labels"] = f"not read ({type(exc).__name__}: {exc})"
    cmd_file = Path(run_dir) / "command.json"
    if not cmd_file.exists() and Path(run_dir).name.startswith("fold"):  # a k-fold run's fold
        cmd_file = Path(run_dir).parent / "command.json"
    cmd = json.loads(cmd_file.read_text()) if cmd_file.exists() else {}
    rows["trained by hessflow"] = cmd.get("hessflow_version", "unknown (no command.json)")
    rows["command line"] = cmd.get("command_line", "unknown (no command.json)")
    if cmd.get("started_utc"):
        rows["started (UTC)"] = cmd["started_utc"]
    rows["this page by hessflow"] = __version__
    body = "".join(f'<tr><td class="k">{_e(k)}</td><td class="k"><code>{_e(v)}</code></td></tr>'
                   if k == "command line" else
                   f'<tr><td class="k">{_e(k)}</td><td class="k">{_e(v)}</td></tr>'
                   for k, v in rows.items())
    return f'<table id="provenance"><tr><th class="k">provenance</th><th class="k">value</th>' \
           f"</tr>{body}</table>"


def _finish(run_dir: Path, out: Path, spec, metrics: dict, body: list,
            problems: list) -> Path:
    body.append("<h2>Provenance</h2>")
    body.append(provenance_table(run_dir, spec))
    body.append("<h2>Settings</h2>")
    extra = {k: metrics[k] for k in ("label_mean", "label_std", "ranks", "device",
                                     "train_samples_per_s_per_rank") if k in metrics}
    body.append(settings_table(spec.to_mapping(), extra))
    if problems:
        body.append("<h2>Problems</h2><ul>" + "".join(f"<li>{_e(x)}</li>" for x in problems)
                    + "</ul>")
    path = out / "index.html"
    path.write_text(html_page(f"hessflow report: {run_dir.name}", body), encoding="utf-8")
    return path


def html_page(title: str, body: list[str]) -> str:
    """A whole HTML page: ``title`` (escaped here) and the ``body`` fragments (HTML already),
    with the report's style and the inline script that records images loaded and JS errors."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{_CSS}</style>"
            f"<script>{_SCRIPT}</script></head>\n<body>\n" + "\n".join(body)
            + "\n</body></html>\n")


__all__ = ["write_report", "metrics_table", "settings_table", "html_page", "labels_provenance",
           "provenance_table"]
