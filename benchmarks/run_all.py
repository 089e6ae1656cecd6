"""Run the benchmarks: the store at 100,000 records, the QM stages with --quick, the workflow
overhead (issue 3), the ML throughput (issue 4) and LRP's cost (issue 5). The studies (benchmarks/study_*.py: vibration,
faber, vae, elemental) run separately: they take long.

--quick is water at 6-31G* for every engine; an engine missing here (psi4, typically) is recorded
as 'not available: <reason>'.

    python -m benchmarks.run_all            # or: make bench
    python -m benchmarks.run_all --store-n 10000
"""

from __future__ import annotations

import argparse
import sys

from . import bench_lrp, bench_ml, bench_qm_stages, bench_store, bench_workflow


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store-n", type=int, default=100_000, help="records for the store benchmark")
    ap.add_argument("--skip-store", action="store_true")
    ap.add_argument("--skip-qm", action="store_true")
    a = ap.parse_args(argv)
    rc = 0
    if not a.skip_store:
        print("== bench_store", flush=True)
        rc |= bench_store.main(["--n", str(a.store_n)])
    if not a.skip_qm:
        print("== bench_qm_stages --quick", flush=True)
        rc |= bench_qm_stages.main(["--quick"])
    print("== bench_workflow", flush=True)
    bench_workflow.main([])
    print("== bench_ml", flush=True)
    bench_ml.main([])
    print("== bench_lrp", flush=True)
    rc |= bench_lrp.main([]) or 0
    return rc


if __name__ == "__main__":
    sys.exit(main())
