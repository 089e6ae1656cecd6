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
geometry, the properties computed on the old geometry are discarded and recomputed. Each result is
folded into its record by :mod:`hessflow.qm.assemble`, as ``hessflow compute`` does; the
downstream stages are :mod:`hessflow.workflows.downstream`.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections import Counter
import dataclasses
import queue
import signal
import sys
import threading
import time

from ..errors import HessflowError
from ..progress import Summary, progress_bar
from ..qm import assemble
from ..qm.engines import get_engine
from ..formats.sources import read_items
from ..qm.molecules.inputs import InputFailure
from ..qm.molecules.molecule import Molecule
from ..slurm.executors import QM_LABEL, parsl_config
from ..store import Store
from . import apps
from .config import WorkflowConfig
from .downstream import attempts, run_stages

AFTER_OPT = ("freq", "sp", "polar", "hyperpolar")


@dataclasses.dataclass
class _Mol:
    key: str
    rec: dict
    failed: bool = False
    geometry: str = ""
    waiting: int = 0
    counted: bool = False


class _Stopped(Exception):
    """A second signal, or one while no store write can be in flight: leave through ``finally``."""


class _Stop:
    """SIGINT (Ctrl-C) and SIGTERM (Slurm's walltime, scancel) handler. The first signal only sets
    ``signum``: the driver finishes the commit in hand, stops waiting, commits what has already
    arrived and shuts Parsl down in order. A second signal, or any signal while ``at_once`` is
    set (the downstream stages), raises :class:`_Stopped` at once."""

    def __init__(self):
        self.signum = None
        self.at_once = False
        self.old = {}

    def __call__(self, signum, frame):
        first = self.signum is None
        self.signum = self.signum or signum
        if self.at_once or not first:
            raise _Stopped(signal.Signals(signum).name)

    def install(self):
        if threading.current_thread() is threading.main_thread():
            self.old = {s: signal.signal(s, self) for s in (signal.SIGINT, signal.SIGTERM)}

    def rearm(self):
        """Install the handlers again. RDKit swaps in a SIGINT handler of its own while it
        searches substructures (conformer tasks of a ``threads`` profile run in this process)
        and, racing between threads, can leave it in place: the wait loop re-arms every 0.5 s."""
        for s in self.old:
            signal.signal(s, self)

    def restore(self):
        for s, h in self.old.items():
            signal.signal(s, h)

    @property
    def name(self) -> str:
        return {signal.SIGINT: "SIGINT (Ctrl-C)"}.get(self.signum, signal.Signals(self.signum).name)


def load_molecules(cfg: WorkflowConfig):
    """The molecules (or input failures) of the config's inputs, at most ``cfg.limit``; SMILES
    conformers are deferred to the workflow's conformer apps."""
    items = []
    for path in cfg.inputs:
        items.extend(read_items(path, embed=False, seed=cfg.conformer_seed))
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
    stop = _Stop()
    stop.install()
    store = Store(cfg.store, "a")
    states: dict[str, _Mol] = {}
    futures: dict = {}
    loaded = False
    bar = progress_bar(len(items), progress)
    log = bar.lines(log)  # error lines above the bar, never on it
    try:
        todo_mols = []
        for item in items:
            if stop.signum:
                break
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

        if todo_mols and not stop.signum:
            loaded = True
            parsl.load(parsl_config(cfg.executor, cfg.run_dir))
            conf_app = python_app(apps.conformer_task, executors=[QM_LABEL])
            qm_app = python_app(apps.qm_task, executors=[QM_LABEL])
            batch_app = python_app(apps.batch_task, executors=[QM_LABEL])
            batch_jobs: dict = {}

            # every finished future lands here (its done-callback): the wait loop takes them
            # one by one, O(1) each, instead of cf.wait walking every pending future per result
            arrived: queue.SimpleQueue = queue.SimpleQueue()

            def submit_batch(jobs):
                f = batch_app(jobs, cfg.engine, level_dict, cfg.tasks, cfg.fallback)
                futures[f] = (tuple(j[1] for j in jobs), "batch")
                batch_jobs[f] = jobs
                f.add_done_callback(arrived.put)
                for j in jobs:
                    states[j[1]].waiting += 1
                return f

            def submit(task, mol_f, key, geometry_from=None):
                f = qm_app(task, mol_f, cfg.engine, level_dict, key, cfg.fallback,
                           geometry_from=geometry_from)
                futures[f] = (key, task)
                states[key].waiting += 1
                f.add_done_callback(arrived.put)
                return f

            batch = cfg.batch_size
            jobs = []
            for item, key, missing in todo_mols if batch else ():
                if stop.signum:
                    break
                st = states[key]
                opt_coords = None
                if "opt" in cfg.tasks and "opt" not in missing:
                    opt_coords = st.rec["coords_opt_bohr"]
                    st.geometry = apps.geometry_id(opt_coords)
                elif "opt" not in cfg.tasks and not item.needs_conformer:
                    st.geometry = apps.geometry_id(item.coords_bohr)
                jobs.append((item, key, missing, opt_coords))
                if len(jobs) == batch:
                    submit_batch(jobs)
                    jobs = []
            if jobs and not stop.signum:
                submit_batch(jobs)
            for item, key, missing in () if batch else todo_mols:
                if stop.signum:
                    break
                st = states[key]
                mol_f = item
                if item.needs_conformer:
                    mol_f = conf_app(item, key)
                    futures[mol_f] = (key, "conformer")
                    mol_f.add_done_callback(arrived.put)
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
            shown = 0.0
            while pending and not stop.signum:
                stop.rearm()
                done = []
                try:
                    done.append(arrived.get(timeout=0.5))
                    while True:
                        done.append(arrived.get_nowait())
                except queue.Empty:
                    pass
                for fut in done:
                    if fut not in futures:  # settled already
                        continue
                    pending.discard(fut)
                    if futures[fut][1] == "batch":
                        pending |= set(_settle_batch(fut, futures, batch_jobs, states, cfg,
                                                     store, log, submit, submit_batch,
                                                     summary, bar))
                        continue
                    pending |= set(_settle(fut, futures, states, cfg, store, log, submit,
                                           summary, bar))
                if time.monotonic() - shown >= 1.0 or not pending:  # walks every pending one
                    shown = time.monotonic()
                    running = Counter(futures[f][1] for f in pending)
                    bar.counts(summary.done + summary.skipped, summary.failed, dict(running), "qm")
            # stopped: commit what has already arrived, submit nothing more (a molecule that
            # would need more is left unfinished, to be resumed)

            def hold(task, mol_f, key, geometry_from=None):
                states[key].waiting += 1

            for fut in [f for f in pending if f.done()]:
                if futures[fut][1] == "batch":
                    _settle_batch(fut, futures, batch_jobs, states, cfg, store, log, hold,
                                  lambda jobs: hold(None, None, jobs[0][1]), summary, bar)
                else:
                    _settle(fut, futures, states, cfg, store, log, hold, summary, bar)
        if cfg.stages and not stop.signum:
            if not loaded:
                loaded = True
                parsl.load(parsl_config(cfg.executor, cfg.run_dir))
            stop.at_once = True
            bar.counts(summary.done + summary.skipped, summary.failed, 0,
                       "stages " + ",".join(cfg.stages))
            run_stages(cfg, store, items, summary, log)
    except (KeyboardInterrupt, _Stopped):
        stop.signum = stop.signum or signal.SIGINT
    finally:
        stop.at_once = False
        bar.close()
        stop.restore()  # a second Ctrl-C from here on interrupts the shutdown itself
        try:
            store.close()
        finally:
            if loaded:
                stop_parsl(cancel_queued=bool(stop.signum))
    if stop.signum:
        _stopped(stop.name, cfg, states, summary, log)
    return summary


def _settle(fut, futures, states, cfg, store, log, submit, summary, bar) -> list:
    """Fold one finished future into its molecule, and count the molecule when it has nothing
    left in flight. Returns the futures newly submitted."""
    key, task = futures.pop(fut)
    st = states[key]
    st.waiting -= 1
    new = _handle(fut, key, task, st, cfg, store, log, submit) or []
    if st.waiting == 0 and not st.counted:
        _finish(store, st, cfg, summary, bar)
    return new


class _Folded:
    """One result of a batch app, seen by :func:`_handle` as the future of its own app (its
    attempts are the batch's)."""

    def __init__(self, res: dict, batch_future):
        self.res = res
        self.task_record = getattr(batch_future, "task_record", {})

    def result(self):
        if "raised" in self.res:
            raise self.res["raised"]
        return self.res


def _settle_batch(fut, futures, batch_jobs, states, cfg, store, log, submit, submit_batch,
                  summary, bar) -> list:
    """Fold a batch app's results molecule by molecule, each result as if from its own app
    (:func:`_handle`), and count each molecule that has nothing left in flight. A batch of
    several molecules that failed as a whole (retries exhausted: a lost worker every time) is
    submitted again one molecule per app, so that a molecule that kills its worker fails alone.
    Returns the futures newly submitted."""
    keys, _ = futures.pop(fut)
    jobs = batch_jobs.pop(fut)
    try:
        results = fut.result()
    except Exception:  # noqa: BLE001 - see _handle: lost workers, retries exhausted
        if len(jobs) > 1:
            for k in keys:
                states[k].waiting -= 1
            return [f for f in (submit_batch([j]) for j in jobs) if f is not None]
        results = None
    new = []
    for key in keys:
        st = states[key]
        st.waiting -= 1
        if results is None:  # the app of this molecule alone was lost: name its tasks
            mol, _, missing, _ = jobs[0]
            ran = (["conformer"] if getattr(mol, "needs_conformer", False) else []) + missing
            _handle(fut, key, ",".join(ran), st, cfg, store, log, submit)
        for one in (_Folded(r, fut) for r in (results or {}).get(key, [])):
            new += [f for f in _handle(one, key, one.res["task"], st, cfg, store, log, submit)
                    or [] if f is not None]
        if st.waiting == 0 and not st.counted:
            _finish(store, st, cfg, summary, bar)
    return new


def _stopped(signame: str, cfg, states, summary: Summary, log):
    """After a signal: one line, and a ``stopped`` row (counted as failed, so the run's exit status
    is not 0) for each molecule that did not finish."""
    left = [st for st in states.values() if not st.counted]
    for st in left:
        summary.failed += 1
        summary.rows.append((st.rec["name"], "stopped", "not finished; run again to resume"))
    summary.stopped = signame
    print(f"hessflow: stopped by {signame}: {summary.done + summary.skipped} molecules complete, "
          f"{len(left)} not finished; every committed result is in {cfg.store}; run again to "
          f"resume", file=log)


def stop_parsl(cancel_queued: bool = False):
    """Shut the loaded Parsl down without hanging: an HTEX whose interchange is already gone
    (killed with the job by Slurm) would block forever asking it for its managers, so such an
    executor is marked bad and its blocks are cancelled through the provider directly.
    ``cancel_queued`` (a stopped run): tasks queued in a thread pool (``threads`` profiles, the
    local ``mpi`` pool) are dropped rather than run; the ones running finish first, as threads
    cannot be interrupted."""
    import parsl
    try:
        dfk = parsl.dfk()
    except Exception:  # noqa: BLE001 - parsl.load itself was interrupted: nothing to clean
        parsl.clear()
        return
    try:
        for ex in dfk.executors.values():
            pool = getattr(ex, "executor", None)
            if cancel_queued and isinstance(pool, cf.ThreadPoolExecutor):
                pool.shutdown(wait=False, cancel_futures=True)
            proc = getattr(ex, "interchange_proc", None)
            if proc is not None and proc.poll() is not None and not ex.bad_state_is_set:
                ex.set_bad_state_and_fail_all(HessflowError("the Parsl interchange has exited"))
                jobs = list(ex.blocks_to_job_id.values())
                if jobs and ex.provider is not None:
                    ex.provider.cancel(jobs)
        dfk.cleanup()
    finally:
        parsl.clear()


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
        assemble.note_provenance(rec, "conformer", res["wall_s"], res["host"], attempts(fut))
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
    assemble.merge(rec, task, fields, res["wall_s"], res["host"], attempts(fut),
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
                    charge=rec["charge"], multiplicity=rec["multiplicity"], smiles=rec["smiles"],
                    masses=rec["masses_amu"])


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
    """Load the workflow config at ``config_path`` and run it (``hessflow run``); the summary's
    ``wall_s`` is the run's seconds."""
    from .config import load_config
    cfg = load_config(config_path)
    t0 = time.time()
    s = run_workflow(cfg, progress=progress)
    s.wall_s = time.time() - t0
    return s


__all__ = ["run", "run_workflow", "HessflowError"]
