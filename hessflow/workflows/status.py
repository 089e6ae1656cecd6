"""Progress of a store being filled: records per status and the throughput (``hessflow status``)."""

from __future__ import annotations

import time

from ..store import Store

__all__ = ["status_text"]


def status_text(store_path) -> str:
    """Counts of done / failed / pending records of the store at ``store_path`` and, once some are
    done, the throughput: finished records per hour between the first record's creation and the
    last result, and the mean compute time per record (s)."""
    import numpy as np

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
