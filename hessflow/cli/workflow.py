"""``hessflow run | submit | status``: run a workflow config here, submit its driver to Slurm,
and show how far a store has come."""

from __future__ import annotations

from ..errors import HessflowError


def _cmd_run(a):
    from ..api import summary_table
    from ..workflows.graph import run
    s = run(a.workflow, progress=not a.no_progress)
    print(summary_table(s))
    return 1 if s.failed or s.stage_failed else 0


def _cmd_submit(a):
    from ..slurm.submit import submit
    from ..workflows.config import load_config
    cfg = load_config(a.workflow)
    if cfg.executor.kind != "slurm":
        raise HessflowError(f"executor.kind: 'submit' needs a slurm profile, not "
                            f"{cfg.executor.kind!r} (use 'hessflow run' on this machine)")
    path, script = cfg.write_driver_script()
    if a.dry_run:
        print(script)
        return 0
    print(submit(path))
    return 0


def _cmd_status(a):
    from ..workflows.status import status_text
    print(status_text(a.store))
    return 0


def register(sub):
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
