"""``hessflow run | submit | status``: run a workflow config here, submit its driver to Slurm,
and show how far a store has come."""

from __future__ import annotations

from .options import UsageError, add_json, add_no_progress, add_parser, existing_store, print_json
from .options import progress_wanted


def _cmd_run(a):
    from ..api import summary_table
    from ..workflows.graph import run
    s = run(a.workflow, progress=progress_wanted(a))
    if a.json:
        from ..workflows.config import load_config
        from .data import summary_json
        d = summary_json(s, "run", str(load_config(a.workflow).store))
        d.update(stages=list(s.stage_lines), stage_failed=bool(s.stage_failed),
                 wall_s=float(s.wall_s))
        print_json(d)
    else:
        print(summary_table(s))
    return 1 if s.failed or s.stage_failed else 0


def _cmd_submit(a):
    from ..slurm.submit import submit_chain
    from ..workflows.config import load_config
    cfg = load_config(a.workflow)
    if cfg.executor.kind != "slurm":
        raise UsageError(f"executor.kind: 'submit' needs a slurm profile, not "
                         f"{cfg.executor.kind!r} (use 'hessflow run' on this machine)")
    path, script = cfg.write_driver_script()
    if a.dry_run:
        print(script)
        return 0
    print("\n".join(submit_chain(path, a.resubmit)))
    return 0


def _cmd_status(a):
    existing_store(a.store)
    if a.json:
        from ..workflows.status import store_status
        print_json({"schema": "hessflow.status/1", **store_status(a.store)})
        return 0
    from ..workflows.status import status_text
    print(status_text(a.store))
    return 0


def register(sub):
    r = add_parser(_cmd_run, sub, "run",
                   "run a workflow config (resumes: computes only what is missing)",
                   "hessflow run workflow.yaml")
    r.add_argument("workflow", help="WORKFLOW.yaml (docs/workflows.md)")
    add_no_progress(r, "the progress bar (molecules done/failed, stage)")
    add_json(r, "the summary (one entry per molecule, the stages' results)")

    s = add_parser(_cmd_submit, sub, "submit", "write the driver's sbatch script and submit it",
                   "hessflow submit workflow.yaml --dry-run")
    s.add_argument("workflow", help="WORKFLOW.yaml with executor.kind: slurm")
    s.add_argument("--dry-run", action="store_true", help="print the script, do not submit")
    s.add_argument("--resubmit", type=int, default=0, metavar="N",
                   help="also submit N follow-up driver jobs, each started only when the one "
                        "before ended without success (its walltime, a node failure, failed "
                        "molecules) and cancelled once one succeeds; each resumes from the "
                        "store; prints every job id, one per line")

    st = add_parser(_cmd_status, sub, "status", "done/failed/pending and throughput of a store",
                    "hessflow status data.h5 --json")
    st.add_argument("store", help="HDF5 store (FILE.h5)")
    add_json(st, "the counts and the throughput (records/h, s/record)")
