"""``hessflow run | submit | status`` (registered into :mod:`hessflow.cli`)."""

from __future__ import annotations

import sys
import time

from ..ml.cli_options import add_training_options


def _cmd_run(a):
    from ..api import summary_table
    from .graph import run
    s = run(a.workflow, progress=not a.no_progress)
    print(summary_table(s))
    return 1 if s.failed or s.stage_failed else 0


def _cmd_submit(a):
    from ..errors import HessflowError
    from ..slurm import profiles
    from .config import load_config
    cfg = load_config(a.workflow)
    if cfg.executor["kind"] != "slurm":
        raise HessflowError(f"executor.kind: 'submit' needs a slurm profile, not "
                            f"{cfg.executor['kind']!r} (use 'hessflow run' on this machine)")
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "hessflow", "run", str(cfg.path), "--no-progress"]
    script = profiles.sbatch_script(cfg.executor, command, job_name=f"hessflow-{cfg.name}",
                                    log_dir=cfg.run_dir / "slurm", workdir=cfg.path.parent)
    path = cfg.run_dir / "driver.sbatch"
    path.write_text(script)
    if a.dry_run:
        print(script)
        return 0
    job = profiles.submit(path)
    print(job)
    return 0


def status_text(store_path) -> str:
    import numpy as np

    from ..store import Store
    with Store(store_path, "r") as st:
        t = st.table(["status", "created_unix", "updated_unix", "wall_time_s"])
    n = len(t["status"])
    counts = {s: int((t["status"] == s).sum()) for s in ("done", "failed", "pending")}
    lines = [f"{store_path}: {n} records: done={counts['done']} failed={counts['failed']} "
             f"pending={counts['pending']}"]
    done = t["status"] == "done"
    if done.any():
        wall = t["wall_time_s"][done]
        first, last = np.nanmin(t["created_unix"]), np.nanmax(t["updated_unix"][done])
        span = max(float(last - first), 1.0)
        lines.append(f"throughput: {done.sum() / span * 3600:.1f} records/h between the first "
                     f"record ({time.strftime('%Y-%m-%d %H:%M', time.localtime(first))}) and the "
                     f"last result ({time.strftime('%Y-%m-%d %H:%M', time.localtime(last))}); "
                     f"mean compute time {np.nanmean(wall):.1f} s/record")
    return "\n".join(lines)


def _cmd_status(a):
    print(status_text(a.store))
    return 0


def _cmd_train(a):
    import json
    import os

    from ..analysis.plots import parity_plot
    from ..ml import run as ml_run
    from ..ml.distributed import launch
    out = a.out or f"runs/train-{a.model}-{a.target}"
    spec = ml_run.validate({"data": str(os.path.abspath(a.data)), "out": os.path.abspath(out),
                            "target": a.target, "model": a.model, "ranks": a.ranks,
                            "augment": a.augment, "epochs": a.epochs, "batch_size": a.batch_size,
                            "lr": a.lr, "patience": a.patience, "seed": a.seed, "limit": a.limit,
                            "device": a.device, "kfold": a.kfold or 0,
                            "dae": None if a.dae is None else {"code": a.dae,
                                                                "freeze": a.dae_freeze}})
    launch(spec, "hessflow.ml.run", a.ranks, lambda path: ml_run.run(spec), "train")
    with open(os.path.join(spec["out"], "metrics.json")) as fh:
        m = json.load(fh)
    if spec["kfold"]:
        pngs = [parity_plot(os.path.join(spec["out"], f)) for f in m["folds"]]
        print(f"{spec['kfold']}-fold cross-validation (mean ± standard deviation over the folds):")
        for split in ("train", "val", "test"):
            s = m[split]
            print(f"{split:5s} n={s['n']:6d} " + " ".join(
                f"{k.upper() if k not in ('pearson_r', 'r2') else {'pearson_r': 'r', 'r2': 'R2'}[k]}"
                f"={s[k]:.4g}±{s[k + '_std']:.2g}" for k in ("mae", "rmse", "mre", "pearson_r", "r2")))
        print(f"run directory: {spec['out']} (kfold.json; fold0..fold{spec['kfold'] - 1}: model.pt, "
              f"metrics.json, splits.json, {os.path.basename(pngs[0])})")
        return 0
    png = parity_plot(spec["out"])
    for split in ("train", "val", "test"):
        s = m[split]
        print(f"{split:5s} n={s['n']:5d} MAE={s['mae']:.4g} RMSE={s['rmse']:.4g} MRE={s['mre']:.3g} "
              f"r={s['pearson_r']:.3f} R2={s['r2']:.3f}")
    print(f"run directory: {spec['out']} (model.pt, metrics.json, splits.json, {os.path.basename(png)})")
    return 0


def register(sub):
    t = sub.add_parser("train", help="train a model on a store (or QM9 CSV / extended XYZ)")
    t.add_argument("data", help="FILE.h5, a MoleculeNet QM9 CSV, or QM9 .xyz file/folder")
    t.add_argument("--target", default="alpha",
                   help="alpha, zpve, gap, homo, lumo, dipole, energy, beta, or frequencies (the "
                        "3N-6 harmonic frequencies: a masked multi-output head)")
    t.add_argument("--model", default="weave", choices=["weave", "mlp"])
    t.add_argument("--augment", help="vibration augmentation DISTRIBUTION:TEMPERATURE_K:SAMPLES, "
                                     "e.g. quantum:300:100 (needs Hessians: a hessflow store)")
    add_training_options(t, epochs=100, batch_size=32, patience=20)
    t.add_argument("--kfold", type=int, help="K-fold cross-validation (e.g. 10): K runs, "
                                              "metrics as mean and standard deviation")
    t.add_argument("--dae", type=int, metavar="CODE",
                   help="pre-train a tied-weights denoising autoencoder (code size CODE) on the "
                        "inputs and put its encoder in front of the MLP")
    t.add_argument("--dae-freeze", action="store_true", help="keep the DAE encoder fixed")
    t.add_argument("--out", help="run directory (default runs/train-MODEL-TARGET)")
    t.set_defaults(func=_cmd_train)

    r = sub.add_parser("run", help="run a workflow config (resumes: computes only what is missing)")
    r.add_argument("workflow", help="WORKFLOW.yaml")
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(func=_cmd_run)

    s = sub.add_parser("submit", help="write the driver's sbatch script and submit it")
    s.add_argument("workflow")
    s.add_argument("--dry-run", action="store_true", help="print the script, do not submit")
    s.set_defaults(func=_cmd_submit)

    st = sub.add_parser("status", help="done/failed/pending and throughput of a store")
    st.add_argument("store")
    st.set_defaults(func=_cmd_status)
