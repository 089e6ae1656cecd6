"""The fallback ladder: one QM task run until it succeeds or the ladder is exhausted.

A known engine failure (:class:`~hessflow.errors.EngineError`) is answered by the next rung of
:data:`LADDER` for its ``kind`` (QCEngine's error-correction idea): settings applied on top of the
level, one rung per retry, each correction noted so the record's provenance says how the result
was obtained. ``hessflow compute`` (:func:`hessflow.qm.assemble.compute_record`) and the
workflow's per-task app (:mod:`hessflow.workflows.apps`) both run every task through
:func:`run_with_fallback`.

For resilience tests, faults can be injected through ``$HESSFLOW_INJECT_FAULTS`` (JSON, see
:func:`inject_faults` and docs/workflows.md); both ``compute`` and ``run`` honour it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from pathlib import Path

from ..errors import EngineError, HessflowError
from ..units import ANGSTROM_BOHR
from .engine_log import captured
from .engines.base import Engine
from .level import Level
from .molecules.molecule import Molecule
from .tasks import run_task

FAULTS_ENV = "HESSFLOW_INJECT_FAULTS"   # JSON, for resilience tests (docs/workflows.md)

# The fallback ladder per failure kind: Level settings applied on top of the level, one rung per
# retry. Keys starting with "_" are instructions, not settings: "_restart" restarts a failed
# optimisation from the geometry where it stopped (with DFT's own route from there: no xTB
# pre-optimisation, which would pull it back to the xTB minimum).
LADDER = {
    "scf": ({"max_cycle": 300},
            {"max_cycle": 300, "damping": 0.5, "level_shift": 0.25},
            {"max_cycle": 300, "soscf": True}),
    "opt": ({"opt_trust_radius_bohr": 0.05 * ANGSTROM_BOHR},
            {"opt_trust_radius_bohr": 0.05 * ANGSTROM_BOHR, "_restart": True,
             "preopt": "none", "opt_initial_hessian": "guess"}),
}


@dataclasses.dataclass
class TaskOutcome:
    """What one task run with the ladder gives: ``fields`` (for the record) when ``ok``, else the
    ``reason`` (one line, ``"task: ..."``) and ``kind`` of the last failure; ``corrections`` are
    the rungs that were applied (``{"after": kind, "error": message, "apply": settings}``, oldest
    first); ``wall_s`` the seconds the task took, all rungs together."""

    task: str
    ok: bool = False
    fields: dict = dataclasses.field(default_factory=dict)
    reason: str = ""
    kind: str = ""
    corrections: list = dataclasses.field(default_factory=list)
    wall_s: float = 0.0


def inject_faults(mol: Molecule, task: str, attempt: int = 0):
    """Raise or crash as ``$HESSFLOW_INJECT_FAULTS`` asks, for resilience tests.

    ``{"fail": {"molecule": NAME, "task": TASK, "kind": "scf", "times": N}}`` raises an
    :class:`EngineError` of ``kind`` for the first ``N`` attempts of the task (``attempt`` counts
    the rungs from 0; without ``times``: every attempt, so the ladder is exhausted);
    ``{"crash": {"molecule": NAME, "task": TASK, "marker_dir": DIR}}`` kills this process once per
    (molecule, task), leaving a marker file in DIR. A missing ``task`` means every task."""
    spec = os.environ.get(FAULTS_ENV)
    if not spec:
        return
    faults = json.loads(spec)
    fail = faults.get("fail")
    if fail and fail.get("molecule") == mol.name and fail.get("task", task) == task \
            and attempt < int(fail.get("times", attempt + 1)):
        raise EngineError(f"{mol.name}: injected failure", kind=fail.get("kind", "scf"))
    crash = faults.get("crash")
    if crash and crash.get("molecule") == mol.name and crash.get("task", task) == task:
        marker = Path(crash["marker_dir"]) / f"{mol.name}.{task}.crashed"
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)


def run_with_fallback(task: str, mol: Molecule, engine: Engine, level: Level, *,
                      fallback: bool = True, optimized: bool = True, dipole_au=None) -> TaskOutcome:
    """Run ``task`` on ``mol``'s geometry, walking :data:`LADDER` on known engine failures.

    ``fallback=False`` stops at the first failure. ``optimized`` and ``dipole_au`` (e*Bohr) are
    passed to :func:`hessflow.qm.tasks.run_task`. Never raises for an engine or input failure:
    the outcome says what happened."""
    t0 = time.perf_counter()
    out = TaskOutcome(task)
    rungs = [{}]
    current = mol
    while True:
        overrides = rungs[-1]
        try:
            inject_faults(mol, task, len(rungs) - 1)
            lvl = level.replace(**{k: v for k, v in overrides.items() if not k.startswith("_")})
            with captured() as engine_log:
                fields = run_task(task, current, engine, lvl, optimized=optimized,
                                  dipole_au=dipole_au)
            fields.pop("_harmonic", None)
            if engine_log:
                fields["_engine_log"] = list(engine_log)
            out.ok, out.fields = True, fields
            break
        except EngineError as exc:
            ladder = LADDER.get(exc.kind, ()) if fallback else ()
            step = len(rungs) - 1
            if step >= len(ladder):
                out.reason, out.kind = f"{task}: {exc}", exc.kind
                break
            nxt = ladder[step]
            if nxt.get("_restart") and exc.last_coords_bohr is not None:
                current = current.with_coords(exc.last_coords_bohr)
            out.corrections.append({"after": exc.kind, "error": str(exc)[:200], "apply": dict(nxt)})
            rungs.append(nxt)
        except HessflowError as exc:
            out.reason, out.kind = f"{task}: {exc}", "input"
            break
    out.wall_s = time.perf_counter() - t0
    return out
