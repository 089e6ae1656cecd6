"""LRP cost (issue 5): time per molecule of :func:`hessflow.analysis.relevance.lrp` against one
gradient pass of the same model (forward + backward to the inputs, i.e. gradient x input; the
target is LRP <= 2x that) and against zennit (the reference LRP, forward hooks) on the same model
and batch, for

- the padded-coordinates MLP, 444-100-20-1 with ReLU6, a batch of 256 samples;
- the weave model (2 weave layers, width 50, 128 dense), a batch of 64 graphs of up to 29 atoms
  with QM9-like atom counts and feature patterns (synthetic: one-hot atom types, bonds, graph
  distances, distances).

Each timing is the median of ``--repeats`` (MLP: ``--mlp-repeats``) rounds after a warm-up round,
on one torch thread, CPU, float32; within a round the forward pass, the gradient, hessflow's and
zennit's LRP for every rule run in turn, and the ratios are medians of the per-round ratios, so
that they compare runs under the same load. zennit on the weave model hooks its nn.Linear layers only: its sums, products with the
masks and the sum pooling then pass relevance as plain gradients, so its weave attributions are
not LRP (the JSON records how far they are from hessflow's); the timing is still the cost of its
hooks on the same computation.

    python -m benchmarks.bench_lrp [--repeats 9] [--mlp-repeats 101]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from .common import code_version, load_range, machine_info, machine_line, markdown_table, now_iso, \
    timed, update_doc, write_result

NAME = "lrp"
RULES = [("epsilon", {}), ("zplus", {}), ("gamma", {"gamma": 0.25}),
         ("alphabeta", {"alpha": 2.0, "beta": 1.0})]


def _interleaved(fns: dict, repeats: int) -> dict:
    """Median time of each function, run in turn within each of ``repeats`` rounds (after one
    warm-up round), so that all see the same load on a shared machine. A value of ``fns`` is a
    function, or a (context manager factory, function) pair: the function is timed inside the
    context, whose entry and exit are not."""
    ts = {k: [] for k in fns}
    with timed() as t:
        for r in range(repeats + 1):
            for k, f in fns.items():
                ctx, fn = f if isinstance(f, tuple) else (None, f)
                with ctx() if ctx else _null():
                    t0 = time.perf_counter()
                    fn()
                    dt = time.perf_counter() - t0
                if r:
                    ts[k].append(dt)
    return {k: {"median_s": statistics.median(v), "min_s": min(v), "repeats": repeats,
                "load1_before": t["load1_before"], "load1_after": t["load1_after"], "rounds_s": v}
            for k, v in ts.items()}


def _ratio(a: dict, b: dict) -> float:
    """Median over the rounds of a's time / b's time in the same round."""
    return statistics.median(x / y for x, y in zip(a["rounds_s"], b["rounds_s"]))


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _padded_batch(torch, n=256, max_atoms=55, seed=0):
    """Two molecules of 9-29 atoms per sample (H, C, N, O; coordinates in Bohr), padded to 55
    atoms each, and 4 conditions: the vibration paper's 444 inputs."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 2 * max_atoms * 4 + 4))
    for s in range(n):
        for m in range(2):
            k = rng.integers(9, 30)
            rows = np.zeros((max_atoms, 4))
            rows[:k, 0] = rng.choice([1, 6, 7, 8], size=k, p=[0.5, 0.35, 0.07, 0.08])
            rows[:k, 1:] = rng.normal(0, 3.0, (k, 3))
            x[s, m * max_atoms * 4:(m + 1) * max_atoms * 4] = rows.ravel()
        x[s, -4:] = rng.normal(0, 1, 4)
    return (torch.tensor(x, dtype=torch.float32),)


def _weave_batch(torch, n=64, n_atoms=29, seed=0):
    from hessflow.ml.property.features import ATOM_BLOCKS, PAIR_BLOCKS
    rng = np.random.default_rng(seed)
    atoms = np.zeros((n, n_atoms, ATOM_BLOCKS.size))
    pairs = np.zeros((n, n_atoms, n_atoms, PAIR_BLOCKS.size))
    mask = np.zeros((n, n_atoms))
    sa, sp = ATOM_BLOCKS.slices(), PAIR_BLOCKS.slices()
    for b in range(n):
        k = int(rng.integers(9, n_atoms + 1))
        mask[b, :k] = 1
        types = rng.choice(5, size=k, p=[0.5, 0.3, 0.08, 0.1, 0.02])
        atoms[b, np.arange(k), sa["atom_type"].start + types] = 1
        atoms[b, :k, sa["partial_charge"].start] = rng.normal(0, 0.2, k)
        atoms[b, np.arange(k), sa["hybridisation"].start + rng.integers(0, 3, k)] = 1
        atoms[b, :k, sa["hbond_donor_acceptor"]] = rng.random((k, 2)) < 0.1
        atoms[b, :k, sa["ring_sizes"].start + 3] = rng.random(k) < 0.2
        # a random spanning tree as the bond graph; graph distances from it
        parent = [-1] + [int(rng.integers(0, i)) for i in range(1, k)]
        adj = np.full((k, k), np.inf)
        np.fill_diagonal(adj, 0)
        for i in range(1, k):
            adj[i, parent[i]] = adj[parent[i], i] = 1
            pairs[b, i, parent[i], sp["bond_type"].start] = pairs[b, parent[i], i, sp["bond_type"].start] = 1
        for m in range(k):  # Floyd-Warshall on <= 29 nodes
            adj = np.minimum(adj, adj[:, m:m + 1] + adj[m:m + 1, :])
        for d in range(1, 8):
            pairs[b, :k, :k, sp["graph_distance"].start + d - 1] = (adj <= d) & (adj > 0)
        xyz = rng.normal(0, 1.5, (k, 3))
        pairs[b, :k, :k, sp["distance"].start] = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
    f = torch.float32
    return torch.tensor(atoms, dtype=f), torch.tensor(pairs, dtype=f), torch.tensor(mask, dtype=f)


def _zennit_fn(torch, model, inputs, rule, kw, epsilon=1e-6):
    """A function running zennit's LRP (composite registered once) and its attribution of the
    first input (and, for the weave model, the second)."""
    from torch import nn

    from tests.zennit_compat import import_zennit
    import_zennit()
    from zennit import rules as zr
    from zennit.composites import LayerMapComposite
    hook = {"epsilon": lambda: zr.Epsilon(epsilon=epsilon),
            "zplus": lambda: zr.ZPlus(stabilizer=epsilon),
            "gamma": lambda: zr.Gamma(gamma=kw.get("gamma"), stabilizer=epsilon),
            "alphabeta": lambda: zr.AlphaBeta(alpha=kw.get("alpha"), beta=kw.get("beta"),
                                              stabilizer=epsilon)}[rule]()
    composite = LayerMapComposite([(nn.Linear, hook),
                                   ((nn.ReLU, nn.ReLU6, nn.Tanh, nn.Softplus), zr.Pass())])
    n_rel = 2 if len(inputs) == 3 else 1

    def run():
        xs = [t.clone().requires_grad_(i < n_rel) for i, t in enumerate(inputs)]
        out = model(*xs)
        return torch.autograd.grad(out, xs[:n_rel], grad_outputs=out.detach())
    return composite, run


def bench_model(torch, label, model, inputs, repeats) -> dict:
    from hessflow.analysis.relevance import lrp
    model.eval()
    n = len(inputs[0])
    n_rel = 2 if len(inputs) == 3 else 1

    def forward():
        with torch.no_grad():
            model(*inputs)

    def gradient():
        xs = [t.clone().requires_grad_(i < n_rel) for i, t in enumerate(inputs)]
        torch.autograd.grad(model(*xs).sum(), xs[:n_rel])

    fns, zennit = {"forward": forward, "gradient": gradient}, {}
    for rule, kw in RULES:
        key = rule + ("" if rule != "alphabeta" else f"{kw['alpha']:g}-{kw['beta']:g}")
        fns[f"hessflow:{key}"] = (lambda rule=rule, kw=kw: lrp(model, inputs, rule=rule, **kw))
        composite, run = _zennit_fn(torch, model, inputs, rule, kw)
        fns[f"zennit:{key}"] = ((lambda c=composite: c.context(model)), run)
        zennit[key] = (composite, run, rule, kw)
    times = _interleaved(fns, repeats)
    out = {"model": label, "batch": n, "forward": times["forward"], "gradient": times["gradient"],
           "rules": {}}
    for key, (composite, run, rule, kw) in zennit.items():
        d = {"hessflow": times[f"hessflow:{key}"], "zennit": times[f"zennit:{key}"]}
        with composite.context(model):
            ref = run()
        ours = lrp(model, inputs, rule=rule, **kw)
        d["max_rel_diff_vs_zennit"] = max(
            float((o - r).abs().max() / r.abs().max().clamp_min(1e-30))
            for o, r in zip(ours.relevance, ref))
        d["conservation_error_max_rel"] = float(
            (ours.conservation_error / ours.prediction.abs().clamp_min(1e-12)).max())
        d["lrp_over_gradient"] = _ratio(d["hessflow"], out["gradient"])
        d["zennit_over_hessflow"] = _ratio(d["zennit"], d["hessflow"])
        # the fastest runs, the least disturbed by other jobs
        d["lrp_over_gradient_min"] = d["hessflow"]["min_s"] / out["gradient"]["min_s"]
        d["zennit_over_hessflow_min"] = d["zennit"]["min_s"] / d["hessflow"]["min_s"]
        out["rules"][key] = d
        print(label, key, f"lrp {d['hessflow']['median_s'] * 1e3:.2f} ms, gradient "
              f"{out['gradient']['median_s'] * 1e3:.2f} ms ({d['lrp_over_gradient']:.2f}x), zennit "
              f"{d['zennit']['median_s'] * 1e3:.2f} ms, diff {d['max_rel_diff_vs_zennit']:.1e}",
              flush=True)
    return out


def run(repeats: int = 9, mlp_repeats: int = 101) -> dict:
    import torch

    from hessflow.ml.property.models import MLP, Weave
    torch.set_num_threads(1)
    torch.manual_seed(0)
    d = {"machine": machine_info(), "date": now_iso(), "torch": torch.__version__,
         "torch_threads": torch.get_num_threads(),
         "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
         "code": code_version("hessflow/analysis/relevance.py", "hessflow/analysis/lrp_rules.py",
                             "hessflow/analysis/lrp_walks.py", "benchmarks/bench_lrp.py"),
         "models": {}}
    d["models"]["mlp"] = bench_model(torch, "padded MLP 444-100-20-1 (ReLU6)", MLP(),
                                     _padded_batch(torch), mlp_repeats)
    d["models"]["weave"] = bench_model(torch, "weave (2 layers, width 50, N = 29)", Weave(),
                                       _weave_batch(torch), repeats)
    return d


def render(d) -> str:
    rounds = ", ".join(f"{m['model'].split(' (')[0]}: {m['forward']['repeats']}"
                       for m in d["models"].values())
    lines = [f"Measured {d['date']} on {machine_line(d['machine'])}; CPU, float32, "
             f"{d['torch_threads']} torch thread(s), BLAS threads {d['openblas_threads']}, "
             f"torch {d['torch']}. Time per molecule: median of interleaved rounds after a warm-up "
             f"round ({rounds}); ratios: medians of the per-round ratios, in parentheses the ratio of the "
             "fastest runs (the least disturbed by other jobs). *gradient* is forward + "
             "backward to the inputs (gradient × input), the cost LRP is compared with (target: "
             "LRP ≤ 2× gradient).", ""]
    rows, loads = [], []
    for m in d["models"].values():
        per = 1e6 / m["batch"]  # seconds per batch -> microseconds per molecule
        g = m["gradient"]["median_s"] * per
        loads += [m["gradient"]["load1_before"], m["gradient"]["load1_after"]]
        for key, r in m["rules"].items():
            h, z = r["hessflow"]["median_s"] * per, r["zennit"]["median_s"] * per
            loads += [r["hessflow"]["load1_before"], r["zennit"]["load1_after"]]
            rows.append([f"{m['model']}, batch {m['batch']}", key, f"{h:.1f}", f"{g:.1f}",
                         f"{r['lrp_over_gradient']:.2f}× ({r['lrp_over_gradient_min']:.2f}×)", f"{z:.1f}",
                         f"{r['zennit_over_hessflow']:.2f}× ({r['zennit_over_hessflow_min']:.2f}×)",
                         f"{r['max_rel_diff_vs_zennit']:.0e}"])
    lines += [markdown_table(["model", "rule", "hessflow LRP (µs/mol)", "gradient (µs/mol)",
                              "LRP / gradient", "zennit (µs/mol)", "zennit / hessflow",
                              "max rel. diff. vs zennit"], rows), "",
              f"1-minute load during the timings: {load_range(loads)} (other jobs shared the "
              "machine when above the core count: then the numbers are upper bounds).",
              "", "zennit hooks only the `nn.Linear` layers; on the padded MLP its attributions equal "
              "hessflow's (last column). On the weave model zennit passes the sums over pairs and "
              "atoms, the symmetric pair sum and the mask products as plain gradients (and its hook "
              "keeps one input per module, while `ap` runs twice per weave layer), so its weave "
              "attributions are not LRP (hence the large difference); its weave time is the cost of "
              "its hooks on the same computation."]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9, help="rounds for the weave model")
    ap.add_argument("--mlp-repeats", type=int, default=101, help="rounds for the (fast) MLP")
    a = ap.parse_args(argv)
    d = run(a.repeats, a.mlp_repeats)
    write_result(NAME, d)
    update_doc(NAME, render(d))
    return 0


if __name__ == "__main__":
    main()
