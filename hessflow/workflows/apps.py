"""What the workers run: one function per node of the per-molecule graph.

These are plain, importable functions; :mod:`hessflow.workflows.graph` wraps them as Parsl
``python_app``s. A QM task never raises for a *known* engine failure: it walks the fallback ladder
(:func:`hessflow.qm.fallback.run_with_fallback`, the same one ``hessflow compute`` uses) and
returns a result dict with ``ok=False`` and the reason when the ladder is exhausted, so Parsl's own
retries are kept for what they are for — a lost worker or node, after which the task is run again
elsewhere.

Result dict: ``{"task", "key", "ok", "fields", "reason", "kind", "host", "wall_s",
"corrections", "geometry"}``; ``geometry`` is the hash of the coordinates the task used, so the
driver can drop results computed on a geometry that has since changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time

import numpy as np

from ..errors import HessflowError
from ..qm.engines import get_engine
from ..qm.fallback import FAULTS_ENV, run_with_fallback
from ..qm.level import Level
from ..qm.molecules import conformers
from ..qm.molecules.molecule import Molecule

CALL_LOG_ENV = "HESSFLOW_CALL_LOG"      # audit log of engine calls (one line per task started)


def geometry_id(coords) -> str:
    """A short hash of coordinates (Bohr, rounded to 1e-8): which geometry a result belongs to."""
    return hashlib.sha1(np.round(np.asarray(coords, float), 8).tobytes()).hexdigest()[:16]


def log_call(task: str, key: str, geometry: str, event: str = "start"):
    """Append ``event key task geometry host pid time`` to the audit log named by
    $HESSFLOW_CALL_LOG (engine calls start on workers; the driver logs each commit)."""
    path = os.environ.get(CALL_LOG_ENV)
    if not path:
        return
    line = f"{event} {key} {task} {geometry} {platform.node()} {os.getpid()} {time.time():.3f}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def inject_delay(mol, task: str):
    """Sleep as ``$HESSFLOW_INJECT_FAULTS`` asks, for walltime tests (a task that outlives its
    block or the driver's job): ``{"delay": {"molecule": NAME, "task": TASK, "seconds": S,
    "marker_dir": DIR}}`` makes the first attempt of the task sleep ``S`` seconds before it
    runs; later attempts (the marker file ``DIR/NAME.TASK.delayed`` exists) run at once. Every
    attempt appends ``SLURM_JOB_ID host pid sleep|run`` to ``DIR/NAME.TASK.attempts``. A missing
    ``task`` means every task. (The other faults: :func:`hessflow.qm.fallback.inject_faults`.)"""
    spec = os.environ.get(FAULTS_ENV)
    delay = json.loads(spec).get("delay") if spec else None
    if not delay or delay.get("molecule") != mol.name or delay.get("task", task) != task:
        return
    base = os.path.join(delay["marker_dir"], f"{mol.name}.{task}")
    first = not os.path.exists(base + ".delayed")
    with open(base + ".attempts", "a") as fh:
        fh.write(f"{os.environ.get('SLURM_JOB_ID', '-')} {platform.node()} {os.getpid()} "
                 f"{'sleep' if first else 'run'}\n")
    if first:
        open(base + ".delayed", "w").close()
        time.sleep(float(delay["seconds"]))


def conformer_task(mol: Molecule, key: str) -> dict:
    """RDKit ETKDG + MMFF for a SMILES molecule whose embedding was deferred."""
    t0 = time.perf_counter()
    out = {"task": "conformer", "key": key, "ok": True, "molecule": None, "reason": "",
           "host": platform.node(), "wall_s": 0.0}
    try:
        out["molecule"] = conformers.embed_molecule(mol)
    except HessflowError as exc:
        out.update(ok=False, reason=f"conformer: {exc}")
    out["wall_s"] = time.perf_counter() - t0
    return out


def qm_task(task: str, mol, engine_name: str, level_dict: dict, key: str, fallback: bool = True,
            geometry_from=None, dipole_au=None) -> dict:
    """Run one QM task with the fallback ladder (``fallback=False``: without).

    ``mol`` may be a Molecule or a conformer result (possibly failed); ``geometry_from`` (an opt
    result) gives the optimised coordinates when this task runs after the optimisation;
    ``level_dict`` the :class:`Level` fields; ``key`` the record's key (for the result and the
    audit log); ``dipole_au`` the single point's dipole (e*Bohr) for beta_parallel."""
    t0 = time.perf_counter()
    result = {"task": task, "key": key, "ok": False, "fields": {}, "reason": "", "kind": "",
              "host": platform.node(), "wall_s": 0.0, "corrections": [], "geometry": ""}
    for upstream in (mol, geometry_from):
        if isinstance(upstream, dict) and not upstream.get("ok", True):
            result["reason"] = f"skipped: {upstream['task']} failed"
            result["kind"] = "upstream"
            return result
    if isinstance(mol, dict):  # a conformer result
        mol = mol["molecule"]
    if geometry_from is not None:
        mol = mol.with_coords(geometry_from["fields"]["coords_opt_bohr"])
    result["geometry"] = geometry_id(mol.coords_bohr)
    log_call(task, key, result["geometry"])
    inject_delay(mol, task)
    out = run_with_fallback(task, mol, get_engine(engine_name), Level(**level_dict),
                            fallback=fallback, optimized=geometry_from is not None,
                            dipole_au=dipole_au)
    result.update(ok=out.ok, fields=out.fields, reason=out.reason, kind=out.kind,
                  corrections=out.corrections, wall_s=time.perf_counter() - t0)
    return result


#: the tasks that follow the optimisation, in the order one molecule runs them
AFTER_OPT = ("freq", "sp", "polar", "hyperpolar")


def batch_task(jobs: list, engine_name: str, level_dict: dict, tasks, fallback: bool = True) -> dict:
    """Every missing task of several molecules in one app (``qm.batch_size``), one molecule
    after the other, each task exactly as its own app would run it (:func:`conformer_task`,
    :func:`qm_task`: the fallback ladder, the audit log).

    ``jobs``: ``[(mol, key, missing, opt_coords_bohr)]`` — the molecule (a conformer still to
    embed, or a Molecule), its record key, the tasks it misses (:func:`hessflow.qm.assemble.
    missing_tasks`) and the stored optimised geometry when "opt" is done (else None). Returns
    ``{key: [result, ...]}`` in run order, each result the dict its own app returns, for the
    driver to fold one by one as if each had come from its own app. A freq whose imaginary-mode
    policy re-optimised the geometry ends its molecule's list: the driver submits the tasks
    that depend on the geometry again, as it does for per-task apps. An unexpected exception
    ends only its own molecule's list, as ``{"task": task, "raised": exc}``."""
    out = {}
    for mol, key, missing, opt_coords in jobs:
        results, task = [], "conformer"
        out[key] = results
        try:
            if isinstance(mol, Molecule) and mol.needs_conformer:
                mol = conformer_task(mol, key)
                results.append(mol)
            geom = None
            if opt_coords is not None:
                geom = {"ok": True, "task": "opt", "fields": {"coords_opt_bohr": opt_coords}}
            if "opt" in tasks and "opt" in missing:
                task = "opt"
                geom = qm_task("opt", mol, engine_name, level_dict, key, fallback)
                results.append(geom)
            for task in (t for t in AFTER_OPT if t in missing):
                res = qm_task(task, mol, engine_name, level_dict, key, fallback,
                              geometry_from=geom)
                results.append(res)
                if task == "freq" and res["ok"] and "coords_opt_bohr" in res["fields"]:
                    break
        except Exception as exc:  # noqa: BLE001 - a bug hits one molecule, not the batch
            results.append({"task": task, "raised": _picklable(exc)})
    return out


def _picklable(exc: Exception) -> Exception:
    """``exc``, or a RuntimeError with its type and message when it cannot travel back."""
    import pickle
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(exc).__name__}: {exc}")


# -- downstream stages -------------------------------------------------------------------------
def augment_task(store_path: str, out_path: str, target: str, distribution: str,
                 temperature_k: float, samples: int, seed: int = 0) -> str:
    """Write the augmented geometries of every finished molecule with a Hessian to HDF5."""
    from ..ml.property.augment import VibrationalDataset, write_hdf5
    from ..ml.core.data import load_store
    mols = load_store(store_path, target, need_hessian=True)
    ds = VibrationalDataset(mols, samples, temperature_k, distribution, seed=seed)
    write_hdf5(ds, out_path, names=[f"{i:06d}_{m['name']}".replace("/", "_") for i, m in enumerate(mols)])
    return out_path


def train_command(spec_path: str, ranks: int, profile, nodes: int | None = None,
                  parsl_resource_specification=None, stdout=None, stderr=None) -> str:
    """The shell command of the training stage (a Parsl bash_app): the MPI launcher of the
    executor ``profile`` for this worker's environment (mpiexec locally, srun inside a Slurm
    block, its ranks spread over ``nodes`` nodes) and ``python -m
    hessflow.ml.property.experiment SPEC``."""
    import shlex
    import sys

    from ..slurm.executors import profile_launch_prefix
    prefix = profile_launch_prefix(profile, ranks, nodes) if ranks > 1 else []
    return shlex.join(prefix + [sys.executable, "-m", "hessflow.ml.property.experiment", spec_path])


def cli_command(argv: list, ranks_per_node: int | None = None, parsl_resource_specification=None,
                stdout=None, stderr=None) -> str:
    """A ``hessflow ...`` command as a Parsl bash_app (the vae / bp training stages; the command
    launches its own ranks: mpiexec locally, srun inside a Slurm allocation, which reads
    ``SLURM_NTASKS_PER_NODE``: set to ``ranks_per_node`` when given, so that the ranks spread
    over the block's nodes)."""
    import shlex
    import sys
    env = ["env", f"SLURM_NTASKS_PER_NODE={int(ranks_per_node)}"] if ranks_per_node else []
    return shlex.join(env + [sys.executable, "-m", "hessflow", *map(str, argv)])
