"""``hessflow explain | report``: layer-wise relevance of a training run, and the HTML pages of a
training run or of a store."""

from __future__ import annotations

import argparse
import os

from .options import Deprecated, UsageError, add_no_progress, add_parser, progress_wanted


def _explain_kw(a) -> dict:
    return dict(split=a.split, rule=a.rule, batch_size=a.batch_size, device=a.device,
                epsilon=a.epsilon, gamma=a.gamma, alpha=a.alpha, beta=a.beta,
                output=a.target_index)


def _cmd_explain(a):
    from ..analysis.explain import explain_run
    s = explain_run(a.run_dir, progress=progress_wanted(a), per_input=not a.types_only,
                    **_explain_kw(a))
    c = s["conservation"]
    print(f"explained {s['n_samples']} {s['split']} molecules of {s['run_dir']} with the "
          f"{s['rule']} rule on {s['device']} in {s['seconds']:.1f} s; conservation error mean "
          f"{c['mean']:.3g} max {c['max']:.3g} (standardised units; max "
          f"{c['max_relative']:.3g} of the mean |prediction|); {s['outliers']['n']} outliers")
    a = s["relevance"]["all"]
    print(f"  {'feature type':22s} {'signed':>11s} {'± s.d.':>10s} {'absolute':>10s} "
          f"{'± s.d.':>10s}  (per atom, standardised label units; x {s['label_std']:.4g} for "
          f"target units)")
    for name in s["feature_types"]:
        print(f"  {name:22s} {a['signed']['mean'][name]:+11.4g} {a['signed']['std'][name]:10.3g} "
              f"{a['absolute']['mean'][name]:10.4g} {a['absolute']['std'][name]:10.3g}")
    print(f"wrote {s['run_dir']}/explain/ (explain.json, relevance.h5, relevance_bars.png)")
    return 0


def _cmd_report(a):
    path = a.path
    if a.output is not None and a.output.lstrip("-").isdigit():  # the old spelling of the index
        import sys
        print("hessflow: warning: --output N (an output index) is deprecated; use "
              "--target-index N (-o/--output is now the HTML file)", file=sys.stderr)
        a.target_index, a.output = int(a.output), None
    if os.path.isfile(path):
        from ..analysis.dataset_report import write_dataset_report
        out = write_dataset_report(path, a.output, n_spectra=a.spectra)
        print(f"wrote {out}")
        return 0
    if not os.path.isdir(path):
        raise UsageError(f"{path}: no such run directory or store")
    if a.output is not None:
        raise UsageError("-o/--output: a training run's report is RUN_DIR/report/index.html")
    from ..analysis.report import write_report
    out = write_report(path, run_explain=not a.no_explain, explain_kw=_explain_kw(a))
    print(f"wrote {out}")
    return 0


def _lrp_options(p):
    p.add_argument("--split", default="test", choices=["test", "val", "train", "all"],
                   help="the molecules to explain")
    p.add_argument("--rule", default="epsilon", choices=["epsilon", "zplus", "gamma", "alphabeta"],
                   help="LRP rule (docs/explain.md)")
    p.add_argument("--batch-size", type=int, default=64, help="molecules per batch")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda")
    p.add_argument("--epsilon", type=float, default=1e-6,
                   help="epsilon rule stabiliser (standardised units)")
    p.add_argument("--gamma", type=float, default=0.25, help="gamma rule: weight of positive parts")
    p.add_argument("--alpha", type=float, default=1.0, help="alpha-beta rule (alpha - beta = 1)")
    p.add_argument("--beta", type=float, default=0.0, help="alpha-beta rule (alpha - beta = 1)")
    p.add_argument("--target-index", type=int, metavar="I",
                   help="multi-output targets (frequencies): the output unit to explain "
                        "(default: the sum of each molecule's real outputs)")


def register(sub):
    e = add_parser(_cmd_explain, sub, "explain",
                   "layer-wise relevance propagation over a training run: "
                                   "relevance per feature type (RUN_DIR/explain/)",
                   "hessflow explain runs/alpha --split test --rule epsilon")
    e.add_argument("run_dir", help="run directory of hessflow train")
    _lrp_options(e)
    e.add_argument("--output", dest="target_index", type=int, action=Deprecated,
                   new="--target-index", store=int, help=argparse.SUPPRESS)
    e.add_argument("--types-only", action="store_true",
                   help="relevance.h5 without every input's relevance (per-type sums only)")
    add_no_progress(e, "the progress bar (batches)")

    r = add_parser(_cmd_report, sub, "report", "one self-contained HTML page for a training run "
                                  "(RUN_DIR/report/index.html) or for a store (FILE.h5)",
                   "hessflow report data.h5 -o data.html",
                   "One self-contained HTML page. For a training run directory: metrics, parity "
                   "and learning curves, relevance, provenance (RUN_DIR/report/index.html). For "
                   "a store (FILE.h5): what is in it: counts by status and failure reason, "
                   "engines and levels, label distributions, spectra, sizes, cost per stage, "
                   "hosts and attempts (default FILE.report.html).")
    r.add_argument("path", metavar="RUN_DIR|FILE.h5",
                   help="run directory of hessflow train, or a hessflow store")
    r.add_argument("-o", "--output", metavar="FILE.html",
                   help="a store's report: the HTML file (default: FILE.report.html beside the "
                        "store)")
    r.add_argument("--spectra", type=int, default=4, metavar="N",
                   help="a store's report: stick spectra of N molecules")
    r.add_argument("--no-explain", action="store_true",
                   help="do not run explain when RUN_DIR/explain is missing")
    _lrp_options(r)

