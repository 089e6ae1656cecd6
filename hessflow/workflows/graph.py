"""The workflow graph: Parsl apps per molecule, one writer (this driver process) committing each
result to the store as it arrives.

Per molecule::

    conformer ─▶ opt ─┬─▶ freq        (Hessian, modes, frequencies, ZPVE; imaginary-mode policy)
                      ├─▶ sp          (energy, dipole, HOMO/LUMO)
                      ├─▶ polar       (alpha)
                      └─▶ hyperpolar  (beta)

Only what is missing from the store is submitted, so a run killed at any point (driver SIGKILL,
walltime, node loss) is resumed by running it again: finished results are never recomputed and
records are keyed, so nothing is duplicated. If the imaginary-frequency policy re-optimises a
geometry, the properties computed on the old geometry are discarded and recomputed.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import signal
import sys
import time
from pathlib import Path

from ..errors import HessflowError
from ..progress import Summary, progress_bar
from ..qm import assemble
from ..qm.engines import get_engine
from ..qm.molecules.inputs import InputFailure, read_molecules
from ..qm.molecules.molecule import Molecule
from ..slurm import profiles
from ..store import Store
from . import apps
from .config import WorkflowConfig

AFTER_OPT = ("freq", "sp", "polar", "hyperpolar")


@dataclasses.dataclass
class _Mol:
    key: str
    rec: dict
    failed: bool = False
    geometry: str = ""
    waiting: int = 0
    counted: bool = False


class _Terminated(Exception):
    pass


def _sigterm(signum, frame):  # Slurm's walltime warning / scancel: leave through `finally`
    raise _Terminated(f"signal {signum}")


def _attempts(fut) -> int:
    try:
        return int(fut.task_record.get("fail_count", 0)) + 1
    except Exception:  # noqa: BLE001 - plain futures (no task record)
        return 1


def load_molecules(cfg: WorkflowConfig):
    items = []
    for path in cfg.inputs:
        items.extend(read_molecules(path, embed=False, seed=cfg.conformer_seed))
        if cfg.limit is not None and len(items) >= cfg.limit:
            return items[:cfg.limit]
    return items


def run_workflow(cfg: WorkflowConfig, progress: bool = True, log=sys.stderr) -> Summary:
    """Run the QM part of a workflow. Returns the summary (done / skipped / failed)."""
    import parsl
    from parsl import python_app

    engine = get_engine(cfg.engine)
    level_dict = dataclasses.asdict(cfg.level)
    items = load_molecules(cfg)
    summary = Summary()
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    import threading
    main_thread = threading.current_thread() is threading.main_thread()
    old_handler = signal.signal(signal.SIGTERM, _sigterm) if main_thread else None
    store = Store(cfg.store, "a")
    states: dict[str, _Mol] = {}
    futures: dict = {}
    loaded = False
    bar = progress_bar(len(items), progress)
    try:
        todo_mols = []
        for item in items:
            if isinstance(item, InputFailure):
                store.put(assemble.failed_input_record(item.name, item.reason, item.raw, engine.name,
                                                       cfg.level))
                print(f"error: {item}", file=log)
                summary.failed += 1
                summary.rows.append((item.name, "failed", item.reason))
                bar.update()
                continue
            key = assemble.request_key(item, engine, cfg.level, cfg.tasks)
            if key in states:  # the same molecule twice in the inputs
                bar.update()
                continue
            existing = store.get(key) if key in store else None
            missing = assemble.missing_tasks(existing, cfg.tasks)
            if existing is not None and existing["status"] == "done" and not missing:
                summary.skipped += 1
                summary.rows.append((item.name, "skipped", existing))
                states[key] = _Mol(key, existing, counted=True)
                bar.update()
                continue
            if existing is not None:
                rec = existing
                if rec["coords_input_bohr"] is not None:
                    item = item.with_coords(rec["coords_input_bohr"])
                    item.extra.pop("needs_conformer", None)
                rec["status"], rec["reason"] = "pending", ""
            else:
                rec = assemble.new_record(item, engine, cfg.level, cfg.tasks)
                rec["status"], rec["reason"] = "pending", ""
                if item.needs_conformer:
                    rec["coords_input_bohr"] = None
            states[key] = _Mol(key, rec)
            todo_mols.append((item, key, missing))

        if todo_mols:
            parsl.load(profiles.parsl_config(cfg.executor, cfg.run_dir))
            loaded = True
            conf_app = python_app(apps.conformer_task, executors=[profiles.QM_LABEL])
            qm_app = python_app(apps.qm_task, executors=[profiles.QM_LABEL])

            def submit(task, mol_f, key, geometry_from=None):
                f = qm_app(task, mol_f, cfg.engine, level_dict, key, cfg.fallback,
                           geometry_from=geometry_from)
                futures[f] = (key, task)
                states[key].waiting += 1
                return f

            for item, key, missing in todo_mols:
                st = states[key]
                mol_f = item
                if item.needs_conformer:
                    mol_f = conf_app(item, key)
                    futures[mol_f] = (key, "conformer")
                    st.waiting += 1
                geom = None
                if "opt" in cfg.tasks:
                    if "opt" in missing:
                        geom = submit("opt", mol_f, key)
                    else:
                        geom = {"ok": True, "task": "opt",
                                "fields": {"coords_opt_bohr": st.rec["coords_opt_bohr"]}}
                        st.geometry = apps.geometry_id(st.rec["coords_opt_bohr"])
                elif not item.needs_conformer:
                    st.geometry = apps.geometry_id(item.coords_bohr)
                for task in AFTER_OPT:
                    if task in missing:
                        submit(task, mol_f, key, geometry_from=geom)
                if not st.waiting:  # nothing to run (cannot normally happen)
                    _finish(store, st, cfg, summary, bar)

            pending = set(futures)
            while pending:
                done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    key, task = futures.pop(fut)
                    st = states[key]
                    st.waiting -= 1
                    new = _handle(fut, key, task, st, cfg, store, log, submit)
                    pending |= set(new)
                    if st.waiting == 0 and not st.counted:
                        _finish(store, st, cfg, summary, bar)
        if cfg.stages:
            if not loaded:
                parsl.load(profiles.parsl_config(cfg.executor, cfg.run_dir))
                loaded = True
            _run_stages(cfg, store, items, summary, log)
    except (KeyboardInterrupt, _Terminated) as exc:
        print(f"hessflow: stopped ({exc or 'interrupted'}); every committed result is in "
              f"{cfg.store}; run again to resume", file=log)
        raise
    finally:
        bar.close()
        if main_thread:
            signal.signal(signal.SIGTERM, old_handler)
        store.close()
        if loaded:
            try:
                parsl.dfk().cleanup()
            finally:
                parsl.clear()
    return summary


def _run_stages(cfg: WorkflowConfig, store: Store, items, summary: Summary, log):
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
    if aug and aug["write"] and _ready("augment", aug, fraction, summary):
        target = train["target"] if train else "energy"
        out = str(cfg.run_dir / "augmented.h5")
        app = python_app(apps.augment_task, executors=[profiles.QM_LABEL])
        try:
            app(str(cfg.store), out, target, aug["distribution"], aug["temperature_k"],
                aug["samples"]).result()
            summary.stage_lines.append(f"augment: {out}")
        except Exception as exc:  # noqa: BLE001
            _failed(summary, "augment", " ".join(str(exc).split())[:300])
    train_failed = False
    if train and _ready("train", train, fraction, summary):
        spec = {k: v for k, v in train.items() if k != "after"}
        out = Path(spec["out"])
        out.mkdir(parents=True, exist_ok=True)
        (out / "spec.json").write_text(json.dumps(spec, indent=1))
        ranks = int(spec["ranks"])
        app = bash_app(apps.train_command, executors=[profiles.MPI_LABEL])
        try:
            app(str(out / "spec.json"), ranks, cfg.executor, stdout=str(out / "train.out"),
                stderr=str(out / "train.err"), **_mpi_resources(cfg, ranks)).result()
            from ..analysis.plots import parity_plot
            parity_plot(out)
            m = json.loads((out / "metrics.json").read_text())["test"]
            summary.stage_lines.append(
                f"train: {spec['model']} on {spec['target']}, {ranks} rank(s): test MAE="
                f"{m['mae']:.4g} R2={m['r2']:.3f} -> {out}")
        except Exception as exc:  # noqa: BLE001
            train_failed = True
            _failed(summary, "train", f"{type(exc).__name__} {_last_line(out / 'train.err')}")
    for name in ("bp", "vae"):
        st = cfg.stages.get(name)
        if not st or not _ready(name, st, fraction, summary):
            continue
        out = Path(st["out"])
        out.mkdir(parents=True, exist_ok=True)
        app = bash_app(apps.cli_command, executors=[profiles.MPI_LABEL])
        try:
            app(st["argv"], stdout=str(out / f"{name}.out"), stderr=str(out / f"{name}.err"),
                **_mpi_resources(cfg, st["ranks"])).result()
            m = json.loads((out / "metrics.json").read_text())
            summary.stage_lines.append(f"{name}: {_stage_metric(name, m)} -> {out}")
        except Exception as exc:  # noqa: BLE001
            _failed(summary, name, f"{type(exc).__name__} {_last_line(out / f'{name}.err')}")
    expl = cfg.stages.get("explain")
    if expl and train and not train_failed \
            and (out := Path(train["out"])).joinpath("model.pt").exists():
        try:
            from ..analysis.explain import explain_run
            explain_run(out, split=expl["split"], rule=expl["rule"])
            line = f"explain: {expl['rule']} LRP on the {expl['split']} split -> {out / 'explain'}"
            if expl["report"]:
                from ..analysis.report import write_report
                line += f"; report {write_report(out)}"
            summary.stage_lines.append(line)
        except Exception as exc:  # noqa: BLE001
            _failed(summary, "explain", f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
    for line in summary.stage_lines:
        print(line, file=log)


def _ready(name: str, settings: dict, fraction: float, summary: Summary) -> bool:
    """Whether a stage may run: at least its ``after`` fraction of the molecules is done (else a
    line says why it did not)."""
    if fraction < settings["after"]:
        summary.stage_lines.append(f"{name}: not run, {fraction:.0%} of molecules done "
                                   f"< after={settings['after']:.0%}")
        return False
    return True


def _failed(summary: Summary, name: str, detail: str):
    summary.stage_failed = True
    summary.stage_lines.append(f"{name}: failed: {detail}")


def _last_line(path: Path) -> str:
    """The last line of a stage's stderr file (what the command said before it failed)."""
    lines = path.read_text().strip().splitlines() if path.exists() else []
    return " ".join(lines[-1:])[:300]


def _mpi_resources(cfg: WorkflowConfig, ranks: int) -> dict:
    """Keyword arguments for an app on the MPI executor: on Slurm (Parsl's MPIExecutor) the
    ranks it needs as a resource specification, which that executor requires; none locally."""
    if cfg.executor["kind"] != "slurm":
        return {}
    ranks = int(ranks)
    return {"parsl_resource_specification": {"num_nodes": 1, "ranks_per_node": ranks,
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


def conformer_molecules(rec: dict, conf: dict):
    """The displaced geometries of one finished record: ``samples`` draws along the normal modes
    of its Hessian (seeded by the record's key and the stage's seed, so a re-run draws the same
    geometries and finds them in the store)."""
    import hashlib

    import numpy as np

    from ..ml.augment import sample_normal_modes
    coords = rec["coords_opt_bohr"] if rec["coords_opt_bohr"] is not None else rec["coords_input_bohr"]
    seed = int.from_bytes(hashlib.sha256(f"{rec['key']}:{conf['seed']}".encode()).digest()[:8], "little")
    xs = sample_normal_modes(coords, rec["masses_amu"], rec["hessian_hartree_bohr2"], conf["samples"],
                             conf["temperature_k"], conf["distribution"], np.random.default_rng(seed))
    return [Molecule(name=f"{rec['name']}~v{j:03d}", numbers=rec["numbers"], coords_bohr=x,
                     charge=int(rec["charge"]), multiplicity=int(rec["multiplicity"]),
                     smiles=rec["smiles"], source=f"{rec['name']} normal-mode sample {j}",
                     extra={"conformer": {"parent": rec["key"], "sample": j,
                                          "distribution": conf["distribution"],
                                          "temperature_k": conf["temperature_k"]}})
            for j, x in enumerate(xs)]


def _run_conformer_stage(cfg: WorkflowConfig, conf: dict, store: Store, summary: Summary, log):
    """Single-point energies of vibration-sampled geometries, one Parsl task each, committed by
    this driver (the only writer) into the stage's own store; resumable like the QM part."""
    from parsl import python_app
    engine = get_engine(conf["engine"])
    level_dict = dataclasses.asdict(conf["level"])
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
    app = python_app(apps.qm_task, executors=[profiles.QM_LABEL])
    counts = {"done": 0, "skipped": 0, "failed": 0}
    with Store(conf["store"], "a") as out:
        futures = {}
        for parent in parents:
            for mol in conformer_molecules(parent, conf):
                key = assemble.request_key(mol, engine, conf["level"], ())
                if out.status(key) == "done":
                    counts["skipped"] += 1
                    continue
                rec = assemble.new_record(mol, engine, conf["level"], ())
                futures[app("sp", mol, conf["engine"], level_dict, key, cfg.fallback)] = rec
        for fut in cf.as_completed(futures):
            rec = futures[fut]
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001 - retries exhausted
                res = {"ok": False, "reason": f"sp: {type(exc).__name__}: {exc}"}
            if res["ok"]:
                assemble.merge(rec, "sp", dict(res["fields"]), res["wall_s"], res["host"],
                               _attempts(fut), corrections=res.get("corrections"))
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
        f"conformers: {len(parents)} molecules x {conf['samples']} {conf['distribution']} samples at "
        f"{conf['temperature_k']:g} K, {conf['engine']} energies: {counts['done']} done, "
        f"{counts['skipped']} skipped, {counts['failed']} failed -> {conf['store']}")


def _handle(fut, key, task, st: _Mol, cfg, store, log, submit) -> list:
    """Fold one finished future into its record and commit it. Returns newly submitted futures."""
    rec = st.rec
    try:
        res = fut.result()
    except Exception as exc:  # noqa: BLE001 - retries exhausted (lost workers) or dependency
        if not st.failed:
            st.failed = True
            msg = " ".join(str(exc).split())[:300] or type(exc).__name__
            rec["status"], rec["reason"] = "failed", f"{task}: {type(exc).__name__}: {msg}"
            store.put(rec)
            print(f"error: {rec['name']}: {rec['reason']}", file=log)
        return []
    if task == "conformer":
        if not res["ok"]:
            _fail(st, res["reason"], store, log)
            return []
        rec["coords_input_bohr"] = res["molecule"].coords_bohr
        if "opt" not in cfg.tasks:
            st.geometry = apps.geometry_id(res["molecule"].coords_bohr)
        assemble.note_provenance(rec, "conformer", res["wall_s"], res["host"], _attempts(fut))
        store.put(rec)
        return []
    if not res["ok"]:
        if res["kind"] != "upstream":
            _fail(st, res["reason"], store, log, res.get("corrections"))
        return []
    if st.failed:
        return []
    if task != "opt" and st.geometry and res["geometry"] != st.geometry:
        return []  # computed on a geometry that the imaginary-mode policy has since replaced
    fields = dict(res["fields"])
    assemble.merge(rec, task, fields, res["wall_s"], res["host"], _attempts(fut),
                   corrections=res["corrections"])
    # re-optimised after an imaginary mode: properties must follow the new geometry
    redo = assemble.redo_after(rec, task, res["fields"], cfg.tasks)
    new = []
    if task == "opt" or redo:
        st.geometry = apps.geometry_id(rec["coords_opt_bohr"])
    if redo:
        geom = {"ok": True, "task": "opt", "fields": {"coords_opt_bohr": rec["coords_opt_bohr"]}}
        mol = _molecule_of(rec)
        new = [submit(t, mol, key, geometry_from=geom) for t in redo]
    store.put(rec)
    apps.log_call(task, key, res["geometry"], "commit")
    return new


def _molecule_of(rec):
    return Molecule(name=rec["name"], numbers=rec["numbers"], coords_bohr=rec["coords_input_bohr"],
                    charge=rec["charge"], multiplicity=rec["multiplicity"], smiles=rec["smiles"])


def _fail(st: _Mol, reason: str, store, log, corrections=None):
    if st.failed:
        return
    st.failed = True
    assemble.mark_failed(st.rec, reason, corrections)
    store.put(st.rec)
    print(f"error: {st.rec['name']}: {reason}", file=log)


def _finish(store, st: _Mol, cfg, summary: Summary, bar):
    rec = st.rec
    st.counted = True
    if not st.failed:
        if assemble.missing_tasks(rec, cfg.tasks):
            st.failed = True
            rec["status"], rec["reason"] = "failed", "incomplete: " + ",".join(
                assemble.missing_tasks(rec, cfg.tasks))
        else:
            rec["status"], rec["reason"] = "done", ""
        store.put(rec)
    if st.failed:
        summary.failed += 1
    else:
        summary.done += 1
    summary.rows.append((rec["name"], rec["status"], rec))
    bar.update()


def run(config_path, progress: bool = True) -> Summary:
    from .config import load_config
    cfg = load_config(config_path)
    t0 = time.time()
    s = run_workflow(cfg, progress=progress)
    s.wall_s = time.time() - t0
    return s


__all__ = ["run", "run_workflow", "HessflowError"]
