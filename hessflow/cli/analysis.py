"""``hessflow explain | report``: layer-wise relevance of a training run, and its HTML page."""

from __future__ import annotations


def _explain_kw(a) -> dict:
    return dict(split=a.split, rule=a.rule, batch_size=a.batch_size, device=a.device,
                epsilon=a.epsilon, gamma=a.gamma, alpha=a.alpha, beta=a.beta, output=a.output)


def _cmd_explain(a):
    from ..analysis.explain import explain_run
    s = explain_run(a.run_dir, progress=not a.no_progress, per_input=not a.types_only,
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
    from ..analysis.report import write_report
    path = write_report(a.run_dir, run_explain=not a.no_explain, explain_kw=_explain_kw(a))
    print(f"wrote {path}")
    return 0


def _lrp_options(p):
    p.add_argument("--split", default="test", choices=["test", "val", "train", "all"])
    p.add_argument("--rule", default="epsilon", choices=["epsilon", "zplus", "gamma", "alphabeta"])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda")
    p.add_argument("--epsilon", type=float, default=1e-6, help="epsilon rule stabiliser")
    p.add_argument("--gamma", type=float, default=0.25, help="gamma rule: weight of positive parts")
    p.add_argument("--alpha", type=float, default=1.0, help="alpha-beta rule (alpha - beta = 1)")
    p.add_argument("--beta", type=float, default=0.0)
    p.add_argument("--output", type=int, help="multi-output targets (frequencies): the output "
                   "unit to explain (default: the sum of each molecule's real outputs)")


def register(sub):
    e = sub.add_parser("explain", help="layer-wise relevance propagation over a training run: "
                                       "relevance per feature type (RUN_DIR/explain/)")
    e.add_argument("run_dir", help="run directory of hessflow train")
    _lrp_options(e)
    e.add_argument("--types-only", action="store_true",
                   help="relevance.h5 without every input's relevance (per-type sums only)")
    e.add_argument("--no-progress", action="store_true")
    e.set_defaults(func=_cmd_explain)

    r = sub.add_parser("report", help="one self-contained HTML page for a training run "
                                      "(RUN_DIR/report/index.html)")
    r.add_argument("run_dir", help="run directory of hessflow train")
    r.add_argument("--no-explain", action="store_true",
                   help="do not run explain when RUN_DIR/explain is missing")
    _lrp_options(r)
    r.set_defaults(func=_cmd_report)
