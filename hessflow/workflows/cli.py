"""``hessflow run | submit | status`` (registered into :mod:`hessflow.cli`)."""

from __future__ import annotations

import sys
import time


def _cmd_run(a):
    from ..api import summary_table
    from .graph import run
    s = run(a.workflow, progress=not a.no_progress)
    print(summary_table(s))
    return 1 if s.failed else 0


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
