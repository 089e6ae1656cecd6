"""Progress of a store being filled: records per status and the throughput (``hessflow status``)."""

from __future__ import annotations

import time

import numpy as np

from ..store import Store

__all__ = ["store_status", "status_text"]


def store_status(path) -> dict:
    """Counts of done / failed / pending records of the store at ``path`` and the throughput:
    finished records per hour between the first record's creation and the last result
    (``throughput_records_per_h``), the mean compute seconds per done record
    (``mean_compute_s``), and those two instants (Unix seconds); None where nothing is done."""
    with Store(path, "r") as st:
        t = st.table(["status", "created_unix", "updated_unix", "wall_time_s"])
    status = np.asarray(t["status"]).astype(str)
    by = {s: int(np.count_nonzero(status == s)) for s in ("done", "failed", "pending")}
    out = {"store": str(path), "records": int(len(status)), "by_status": by,
           "throughput_records_per_h": None, "mean_compute_s": None,
           "first_created_unix": None, "last_result_unix": None}
    ok = status == "done"
    if ok.any():
        first = float(np.nanmin(t["created_unix"]))
        last = float(np.nanmax(t["updated_unix"][ok]))
        out.update(throughput_records_per_h=by["done"] / max(last - first, 1.0) * 3600.0,
                   mean_compute_s=float(np.nanmean(t["wall_time_s"][ok])),
                   first_created_unix=first, last_result_unix=last)
    return out


def status_text(store_path) -> str:
    """:func:`store_status` as text: the counts and, once some records are done, the throughput
    between the first record's creation and the last result and the mean compute time."""
    s = store_status(store_path)
    by = s["by_status"]
    lines = [f"{store_path}: {s['records']} records: done={by['done']} failed={by['failed']} "
             f"pending={by['pending']}"]
    if s["throughput_records_per_h"] is not None:
        first, last = s["first_created_unix"], s["last_result_unix"]
        lines.append(f"throughput: {s['throughput_records_per_h']:.1f} records/h between the first "
                     f"record ({time.strftime('%Y-%m-%d %H:%M', time.localtime(first))}) and the "
                     f"last result ({time.strftime('%Y-%m-%d %H:%M', time.localtime(last))}); "
                     f"mean compute time {s['mean_compute_s']:.1f} s/record")
    return "\n".join(lines)
