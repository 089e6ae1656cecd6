"""The downstream stages of a workflow, run by the driver once the QM part has finished.

conformers (single points of vibration-sampled geometries into a store of their own), augment
(an HDF5 of displaced geometries), train (DDP on the 'mpi' executor), bp and vae (their commands
on the 'mpi' executor) and explain (LRP + report), each as Parsl apps, each once the stated
fraction of the molecules is done (docs/workflows.md).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
from pathlib import Path

from ..progress import Summary
from ..qm import assemble
from ..qm.engines import get_engine
from ..qm.molecules.inputs import InputFailure
from ..qm.molecules.molecule import Molecule
from ..slurm.executors import MPI_LABEL, QM_LABEL, mpi_placement
from ..store import Store
from . import apps
from .config import WorkflowConfig


def attempts(fut) -> int:
    """How many times Parsl started the task of ``fut`` (1 + its failures: lost workers)."""
    try:
        return int(fut.task_record.get("fail_count", 0)) + 1
    except Exception:  # noqa: BLE001 - plain futures (no task record)
        return 1


def run_stages(cfg: WorkflowConfig, store: Store, items, summary: Summary, log):
    """conformers (sampled geometries + energies), augment (HDF5 of displaced geometries, when
    asked), train (DDP on the 'mpi' executor), bp and vae (their commands on the 'mpi' executor)
    and explain, each once the stated fraction of the molecules is done. The store is
    checkpointed first so the stages, which read it from other processes, see every record."""
    from parsl import bash_app, python_app
    store.checkpoint()
    n_mol = sum(1 for it in items if not isinstance(it, InputFailure)) or 1
    n_done = summary.done + summary.skipped
    fraction = n_done / max(n_mol, 1)
    summary.stage_lines = []
    aug = cfg.stages.get("augment")
    train = cfg.stages.get("train")
    conf = cfg.stages.get("conformers")
    if conf and _ready("conformers", conf, fraction, summary):
        _run_conformer_stage(cfg, conf, store, summary, log)
    if aug and aug.write and _ready("augment", aug, fraction, summary):
        target = train.spec.target if train else "energy"
        out = str(cfg.run_dir / "augmented.h5")
        app = python_app(apps.augment_task, executors=[QM_LABEL])
        try:
            app(str(cfg.store), out, target, aug.distribution, aug.temperature_k, aug.samples).result()
            summary.stage_lines.append(f"augment: {out}")
        except Exception as exc:  # noqa: BLE001
            _failed(summary, "augment", " ".join(str(exc).split())[:300])
    train_failed = False
    if train and _ready("train", train, fraction, summary):
        spec = train.spec.to_mapping()
        out = Path(train.spec.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "spec.json").write_text(json.dumps(spec, indent=1))
        ranks = int(train.spec.ranks)
        app = bash_app(apps.train_command, executors=[MPI_LABEL])
        try:
            nodes = mpi_placement(cfg.executor, ranks)[0] if cfg.executor.kind == "slurm" \
                else None
            # a bash_app passes every parameter with a default as a keyword: name them
            app(str(out / "spec.json"), ranks, cfg.executor, nodes=nodes,
                stdout=str(out / "train.out"), stderr=str(out / "train.err"),
                **mpi_resources(cfg, ranks)).result()
            from ..analysis.plots import parity_plot
            parity_plot(out)
            m = json.loads((out / "metrics.json").read_text())["test"]
            summary.stage_lines.append(
                f"train: {train.spec.model} on {train.spec.target}, {ranks} rank(s): test MAE="
                f"{m['mae']:.4g} R2={m['r2']:.3f} -> {out}")
        except Exception as exc:  # noqa: BLE001
            train_failed = True
            _failed(summary, "train", f"{type(exc).__name__} {_last_line(out / 'train.err')}")
    for name in ("bp", "vae"):
        st = cfg.stages.get(name)
        if not st or not _ready(name, st, fraction, summary):
            continue
        out = Path(st.out)
        out.mkdir(parents=True, exist_ok=True)
        app = bash_app(apps.cli_command, executors=[MPI_LABEL])
        try:
            rpn = mpi_placement(cfg.executor, st.ranks)[1] if cfg.executor.kind == "slurm" \
                else None
            app(st.argv, ranks_per_node=rpn, stdout=str(out / f"{name}.out"), stderr=str(out / f"{name}.err"),
                **mpi_resources(cfg, st.ranks)).result()
            m = json.loads((out / "metrics.json").read_text())
            summary.stage_lines.append(f"{name}: {_stage_metric(name, m)} -> {out}")
        except Exception as exc:  # noqa: BLE001
            _failed(summary, name, f"{type(exc).__name__} {_last_line(out / f'{name}.err')}")
    expl = cfg.stages.get("explain")
    if expl and train and not train_failed \
            and (out := Path(train.spec.out)).joinpath("model.pt").exists():
        try:
            from ..analysis.explain import explain_run
            explain_run(out, split=expl.split, rule=expl.rule)
            line = f"explain: {expl.rule} LRP on the {expl.split} split -> {out / 'explain'}"
            if expl.report:
                from ..analysis.report import write_report
                line += f"; report {write_report(out)}"
            summary.stage_lines.append(line)
        except Exception as exc:  # noqa: BLE001
            _failed(summary, "explain", f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
    for line in summary.stage_lines:
        print(line, file=log)


def _ready(name: str, settings, fraction: float, summary: Summary) -> bool:
    """Whether a stage may run: at least its ``after`` fraction of the molecules is done (else a
    line says why it did not)."""
    if fraction < settings.after:
        summary.stage_lines.append(f"{name}: not run, {fraction:.0%} of molecules done "
                                   f"< after={settings.after:.0%}")
        return False
    return True


def _failed(summary: Summary, name: str, detail: str):
    summary.stage_failed = True
    summary.stage_lines.append(f"{name}: failed: {detail}")


def _last_line(path: Path) -> str:
    """The last line of a stage's stderr file (what the command said before it failed)."""
    lines = path.read_text().strip().splitlines() if path.exists() else []
    return " ".join(lines[-1:])[:300]


def mpi_resources(cfg: WorkflowConfig, ranks: int) -> dict:
    """Keyword arguments for an app on the MPI executor: on Slurm (Parsl's MPIExecutor, which
    requires them) the resource specification of ``ranks`` ranks over the nodes of an MPI block
    (:func:`~hessflow.slurm.executors.mpi_placement`: ``mpi.nodes_per_block``, the ranks spread
    evenly); none locally."""
    if cfg.executor.kind != "slurm":
        return {}
    ranks = int(ranks)
    nodes, per_node = mpi_placement(cfg.executor, ranks)
    return {"parsl_resource_specification": {"num_nodes": nodes, "ranks_per_node": per_node,
                                             "num_ranks": ranks}}


def _stage_metric(name: str, m: dict) -> str:
    """One line of a vae / bp run's metrics.json."""
    if name == "bp":
        split = "test" if (m.get("test") or {}).get("n") else "train"
        mae = (m.get(split) or {}).get("mae")
        return (f"{m.get('features')} features, {split} MAE={mae:.3g} {m.get('unit', '')}"
                if isinstance(mae, (int, float)) else "trained")
    rec, prior = m.get("reconstruction") or {}, m.get("prior") or {}
    parts = [f"reconstruction={rec['accuracy']:.3g}" if "accuracy" in rec else "",
             f"validity={prior['validity']:.3g}" if "validity" in prior else ""]
    return ", ".join(p for p in parts if p) or "trained"


def conformer_molecules(rec: dict, conf):
    """The displaced geometries of one finished record: ``samples`` draws along the normal modes
    of its Hessian (seeded by the record's key and the stage's seed, so a re-run draws the same
    geometries and finds them in the store)."""
    import hashlib

    import numpy as np

    from ..ml.property.augment import sample_normal_modes
    coords = rec["coords_opt_bohr"] if rec["coords_opt_bohr"] is not None else rec["coords_input_bohr"]
    seed = int.from_bytes(hashlib.sha256(f"{rec['key']}:{conf.seed}".encode()).digest()[:8], "little")
    xs = sample_normal_modes(coords, rec["masses_amu"], rec["hessian_hartree_bohr2"], conf.samples,
                             conf.temperature_k, conf.distribution, np.random.default_rng(seed))
    return [Molecule(name=f"{rec['name']}~v{j:03d}", numbers=rec["numbers"], coords_bohr=x,
                     charge=int(rec["charge"]), multiplicity=int(rec["multiplicity"]),
                     smiles=rec["smiles"], source=f"{rec['name']} normal-mode sample {j}",
                     masses=rec["masses_amu"], extra={"conformer": {"parent": rec["key"], "sample": j,
                                          "distribution": conf.distribution,
                                          "temperature_k": conf.temperature_k}})
            for j, x in enumerate(xs)]


def _run_conformer_stage(cfg: WorkflowConfig, conf, store: Store, summary: Summary, log):
    """Single-point energies and gradients (``gradient_hartree_bohr``, the "sp" task) of
    vibration-sampled geometries, one Parsl task each, committed by this driver (the only
    writer) into the stage's own store; resumable like the QM part."""
    from parsl import python_app
    engine = get_engine(conf.engine)
    level_dict = dataclasses.asdict(conf.level)
    t = store.table(["key", "status"])
    done = [k for k, s in zip(t["key"], t["status"]) if s == "done"]
    fields = ("numbers", "masses_amu", "coords_input_bohr", "coords_opt_bohr",
              "hessian_hartree_bohr2")  # what conformer_molecules reads
    parents = [r for r in store.get_many(done, fields=fields)
               if r["hessian_hartree_bohr2"] is not None]
    if not parents:
        summary.stage_lines.append("conformers: not run, no finished molecule has a Hessian "
                                   "(qm.tasks needs freq)")
        return
    app = python_app(apps.qm_task, executors=[QM_LABEL])
    counts = {"done": 0, "skipped": 0, "failed": 0}
    with Store(conf.store, "a") as out:
        futures = {}
        for parent in parents:
            for mol in conformer_molecules(parent, conf):
                key = assemble.request_key(mol, engine, conf.level, ())
                if out.status(key) == "done":
                    counts["skipped"] += 1
                    continue
                rec = assemble.new_record(mol, engine, conf.level, ())
                futures[app("sp", mol, conf.engine, level_dict, key, cfg.fallback)] = rec
        for fut in cf.as_completed(futures):
            rec = futures[fut]
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001 - retries exhausted
                res = {"ok": False, "reason": f"sp: {type(exc).__name__}: {exc}"}
            if res["ok"]:
                assemble.merge(rec, "sp", dict(res["fields"]), res["wall_s"], res["host"],
                               attempts(fut), corrections=res.get("corrections"))
                rec["status"], rec["reason"] = "done", ""
                counts["done"] += 1
            else:
                assemble.mark_failed(rec, " ".join(str(res["reason"]).split())[:300],
                                     res.get("corrections"))
                counts["failed"] += 1
                print(f"error: {rec['name']}: {rec['reason']}", file=log)
            out.put(rec)
    if counts["failed"]:
        summary.stage_failed = True
    summary.stage_lines.append(
        f"conformers: {len(parents)} molecules x {conf.samples} {conf.distribution} samples at "
        f"{conf.temperature_k:g} K, {conf.engine} energies and gradients: {counts['done']} done, "
        f"{counts['skipped']} skipped, {counts['failed']} failed -> {conf.store}")
