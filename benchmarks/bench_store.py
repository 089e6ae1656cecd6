"""Store throughput at QM9 scale (100,000 records): writes, checkpoint, label read, get, size.

Measured: write throughput with put_many batches and with one put (one fsync) per record,
checkpoint/close time, open + label-column read, random full-record reads, file size.

Synthetic records of QM9-like size: n_atoms = 3 + Binomial(26, 15/26) (range 3..29, mean 18),
every field a finished record has: Hessian (3n, 3n), 3n-6 frequencies / reduced masses / force
constants, Cartesian and mass-weighted modes (3n-6, n, 3), input and optimised coordinates,
numbers, masses, all scalar labels, dipole/alpha/beta tensors and a provenance JSON string.
Record generation is outside the timed regions. The store is used with its defaults
(:class:`hessflow.store.StoreSettings`: a checkpoint at 64 MiB of log, 1000 records waiting or
60 s, ``durable=True``), as the pipeline uses it.

    python -m benchmarks.bench_store                 # 100,000 records (needs ~7 GB in /tmp)
    python -m benchmarks.bench_store --n 5000 --no-save   # a quick look
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import hashlib
import io
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hessflow import __version__
from hessflow.qm.record import LABELS, empty_record
from hessflow.store import Store, StoreSettings

from . import common

NAME = "store"
# the code measured: the files of the store package (hessflow/store.py before it was a package)
STORE_CODE = tuple(sorted(f"hessflow/store/{f.name}"
                          for f in (common.ROOT / "hessflow" / "store").glob("*.py")))
LABEL_READ_TARGET_S = 1.0     # "well under a second" at 100,000 records
ELEMENTS = np.array([1, 6, 7, 8, 9], np.int16)
MASSES = {1: 1.008, 6: 12.011, 7: 14.007, 8: 15.999, 9: 18.998}


# -- synthetic records -----------------------------------------------------------------------
def n_atoms_sample(rng, size):
    return 3 + rng.binomial(26, 15 / 26, size=size)


def synth_record(i: int, n: int, rng) -> dict:
    m = 3 * n - 6
    heavy = max(1, min(9, n // 2))
    numbers = np.concatenate([rng.choice(ELEMENTS[1:], heavy), np.ones(n - heavy, np.int16)])
    numbers = numbers.astype(np.int16)
    masses = np.array([MASSES[int(z)] for z in numbers])
    coords = rng.random((n, 3)) * 10.0
    h = rng.random((3 * n, 3 * n))
    rec = empty_record()
    formula = "C%dH%d" % (heavy, n - heavy)
    rec.update(
        key=hashlib.sha256(f"bench-store-{i}".encode()).hexdigest(),
        name=f"gdb_{i + 1}", smiles="C" * heavy, formula=formula, status="done", reason="",
        engine="pyscf", method="b3lyp", basis="6-31g(2df,p)", tasks="opt,freq,polar,hyperpolar",
        flags="", charge=0, multiplicity=1, n_atoms=n, n_imag=0,
        provenance=json.dumps({
            "hessflow_version": __version__, "engine": "pyscf", "engine_version": "2.x",
            "level": {"method": "b3lyp", "basis": "6-31g(2df,p)", "grid": 4, "cartesian": False,
                      "conv_tol": 1e-10, "opt_convergence": "GAU", "field_step_au": 1e-3,
                      "imag_policy": "reoptimize", "imag_tol_cm1": 10.0},
            "methods": {"opt": "geomeTRIC + analytic gradients", "freq": "analytic Hessian",
                        "polar": "analytic (CPKS)", "hyperpolar": "finite field of analytic alpha"},
            "source": f"qm9.xyz:{i + 1}", "wall_s": {"opt": 100.0, "freq": 200.0, "polar": 20.0,
                                                   "hyperpolar": 120.0},
            "hosts": {"opt": "node01"}, "attempts": {"opt": 1}}),
        energy_hartree=-400.0 + rng.random(), zpve_hartree=0.1 * rng.random(),
        homo_hartree=-0.25, lumo_hartree=0.01, gap_hartree=0.26, dipole_debye=rng.random() * 5,
        alpha_iso_bohr3=70 + rng.random(), beta_par_au=rng.random(), beta_vec_au=rng.random(),
        wall_time_s=440.0, created_unix=time.time(),
        dipole_au=rng.random(3), alpha_bohr3=rng.random((3, 3)), beta_au=rng.random((3, 3, 3)),
        numbers=numbers, masses_amu=masses, coords_input_bohr=coords,
        coords_opt_bohr=coords + 0.01, hessian_hartree_bohr2=0.5 * (h + h.T),
        frequencies_cm1=np.sort(rng.random(m) * 3500), reduced_masses_amu=1 + rng.random(m),
        force_constants_hartree_bohr2=rng.random(m),
        modes_cartesian=rng.random((m, n, 3)), modes_mass_weighted=rng.random((m, n, 3)),
    )
    return rec


def synth_batch(start: int, sizes, rng) -> list[dict]:
    return [synth_record(start + j, int(n), rng) for j, n in enumerate(sizes)]


# -- instrumentation (wraps, never changes, Store.checkpoint) ---------------------------------
class CheckpointTimer:
    def __init__(self, store: Store):
        self.times: list[float] = []
        orig = store.checkpoint

        def timed_checkpoint():
            t0 = time.perf_counter()
            try:
                return orig()
            finally:
                self.times.append(time.perf_counter() - t0)
        store.checkpoint = timed_checkpoint


def drop_file_cache(path: Path):
    """Evict this file's pages from the page cache (only this file; it is clean after fsync)."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        return True
    except (AttributeError, OSError):
        return False


def _profile_top(prof: cProfile.Profile, n: int = 12) -> list[str]:
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(n)
    lines = [ln.rstrip() for ln in s.getvalue().splitlines()]
    start = next((i for i, ln in enumerate(lines) if "ncalls" in ln), 0)
    return [ln for ln in lines[start:] if ln.strip()]


# -- the benchmark ---------------------------------------------------------------------------
def run(n: int = 100_000, batch: int = 1000, n_single: int = 2000, n_get: int = 100,
        n_bulk: int = 2000, seed: int = 0, tmp_root: str = "/tmp", profile: bool = False, log=print) -> dict:
    rng = np.random.default_rng(seed)
    out: dict = {"benchmark": NAME, "date": common.now_iso(), "machine": common.machine_info(),
                 "hessflow_version": __version__, "code": common.code_version(*STORE_CODE),
                 "params": {"n_records": n, "batch": batch, "n_single_put": n_single,
                            "n_random_get": n_get, "n_bulk": n_bulk, "seed": seed,
                            **dataclasses.asdict(StoreSettings()),  # the store's defaults
                            "n_atoms": "3 + Binomial(26, 15/26)"},
                 "load1_start": common.load1()}
    tmpdir = Path(tempfile.mkdtemp(prefix="hessflow-bench-store-", dir=tmp_root))
    profs = {}
    try:
        path = tmpdir / "bench.h5"
        sizes = n_atoms_sample(rng, n)
        out["params"]["n_atoms_mean"] = float(sizes.mean())

        # (a) batched writes: put_many, one fsync per batch
        st = Store(path, "a")
        ck = CheckpointTimer(st)
        prof = cProfile.Profile() if profile else None
        put_s, loads = 0.0, []
        for b0 in range(0, n, batch):
            recs = synth_batch(b0, sizes[b0:b0 + batch], rng)
            l0 = common.load1()
            t0 = time.perf_counter()
            if prof:
                prof.enable()
            st.put_many(recs)
            if prof:
                prof.disable()
            put_s += time.perf_counter() - t0
            loads.append((l0, common.load1()))
            done = b0 + len(recs)
            if done % (10 * batch) == 0 or done == n:
                log(f"  put_many: {done}/{n} records, {put_s:.1f} s, {len(ck.times)} checkpoints "
                    f"({sum(ck.times):.1f} s), load {loads[-1][1]:.2f}")
            del recs
        # (c) final checkpoint + close
        with common.timed() as t_close:
            if prof:
                prof.enable()
            st.close()
            if prof:
                prof.disable()
        if prof:
            profs["write"] = _profile_top(prof)
        ck_times = ck.times[:-1] if ck.times else []   # the last one is close()'s
        out["write_batched"] = {
            "records": n, "batch": batch, "seconds": put_s,
            "records_per_s": n / put_s,
            "records_per_s_incl_close": n / (put_s + t_close["seconds"]),
            "checkpoints_during_writes": len(ck_times),
            "checkpoint_seconds_during_writes": sum(ck_times),
            "checkpoint_seconds_first_last": [ck_times[0], ck_times[-1]] if ck_times else None,
            "seconds_excluding_checkpoints": put_s - sum(ck_times),
            "load1_before": loads[0][0], "load1_after": loads[-1][1],
            "load1_max": max(max(a, b) for a, b in loads),
        }
        out["close"] = dict(t_close)
        size = path.stat().st_size
        out["file"] = {"bytes": size, "mb": size / 1e6, "bytes_per_record": size / n}
        log(f"  close: {t_close['seconds']:.1f} s; file {size / 1e6:.0f} MB")

        # (d) open + read all label columns; cold (file evicted from page cache) then warm
        cols = ("key",) + LABELS
        reads = []
        for trial in ("cold", "warm", "warm", "warm"):
            cold_ok = drop_file_cache(path) if trial == "cold" else None
            with common.timed() as t_open:
                rd = Store(path)
            with common.timed() as t_tab:
                tab = rd.table(cols)
            assert len(tab["key"]) == n, len(tab["key"])
            reads.append({"cache": trial if cold_ok is not False else "warm (evict failed)",
                          "open_s": t_open["seconds"], "table_s": t_tab["seconds"],
                          "seconds": t_open["seconds"] + t_tab["seconds"],
                          "load1_before": t_open["load1_before"],
                          "load1_after": t_tab["load1_after"]})
            log(f"  open+table ({trial}): {reads[-1]['seconds']:.3f} s "
                f"(open {t_open['seconds']:.3f}, table {t_tab['seconds']:.3f})")
        warm = [r["seconds"] for r in reads if r["cache"] == "warm"]
        out["read_labels"] = {"columns": list(cols), "trials": reads,
                              "cold_s": reads[0]["seconds"],
                              "warm_best_s": min(warm) if warm else None,
                              "target_s": LABEL_READ_TARGET_S}
        if profile:
            prof = cProfile.Profile()
            prof.enable()
            Store(path).table(cols)
            prof.disable()
            profs["read_labels"] = _profile_top(prof)

        # (e) 100 random full records with get()
        keys = rd.keys()
        pick = [keys[i] for i in rng.choice(len(keys), size=min(n_get, len(keys)), replace=False)]
        drop_file_cache(path)
        with common.timed() as t_get:
            got = [rd.get(k) for k in pick]
        assert all(g["hessian_hartree_bohr2"] is not None for g in got)
        out["random_get"] = {"records": len(pick), **dict(t_get),
                             "ms_per_record": 1e3 * t_get["seconds"] / len(pick),
                             "cache": "cold (file evicted first)"}
        log(f"  {len(pick)} random get: {t_get['seconds']:.3f} s")

        # (e) bulk reads: the first n_bulk records one get() at a time vs one get_many (warm),
        # then every record through records() (get_many in storage order) with a cold cache
        first = keys[:n_bulk]
        list(rd.get_many(first))  # warm the page cache and the column caches for both
        with common.timed() as t_one:
            for k in first:
                rd.get(k)
        with common.timed() as t_many:
            for _ in rd.get_many(first):
                pass
        drop_file_cache(path)
        rd = Store(path)
        with common.timed() as t_all:
            n_all = sum(1 for _ in rd.records())
        assert n_all == n
        out["bulk_read"] = {
            "records": len(first), "get_s": t_one["seconds"], "get_many_s": t_many["seconds"],
            "speedup": t_one["seconds"] / t_many["seconds"],
            "load1_before": t_one["load1_before"], "load1_after": t_many["load1_after"],
            "all_records": n_all, "all_s": t_all["seconds"],
            "all_records_per_s": n_all / t_all["seconds"],
            "all_mb_per_s": path.stat().st_size / 1e6 / t_all["seconds"],
            "all_load1_before": t_all["load1_before"], "all_load1_after": t_all["load1_after"]}
        log(f"  {len(first)} records: get() {t_one['seconds']:.2f} s, get_many "
            f"{t_many['seconds']:.2f} s; records() of all {n_all}: {t_all['seconds']:.1f} s")
        del rd, tab, got
        path.unlink()

        # (b) one put (one fsync) per record, fresh store
        path2 = tmpdir / "single.h5"
        st = Store(path2, "a")
        ck = CheckpointTimer(st)
        recs = synth_batch(0, n_atoms_sample(rng, n_single), rng)
        prof = cProfile.Profile() if profile else None
        with common.timed() as t_single:
            if prof:
                prof.enable()
            for r in recs:
                st.put(r)
            if prof:
                prof.disable()
        if prof:
            profs["write_single"] = _profile_top(prof)
        n_ck = len(ck.times)
        with common.timed() as t_close2:
            st.close()
        out["write_single"] = {
            "records": n_single, **dict(t_single), "records_per_s": n_single / t_single["seconds"],
            "checkpoints_during_writes": n_ck, "checkpoint_seconds_during_writes": sum(ck.times[:n_ck]),
            "close_s": t_close2["seconds"]}
        log(f"  put x{n_single}: {t_single['seconds']:.1f} s "
            f"({n_single / t_single['seconds']:.0f} records/s)")
        if profs:
            out["profiles"] = profs
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    out["load1_end"] = common.load1()
    return out


def summary(r: dict) -> dict:
    """The headline numbers of one run (kept when a later run on other code replaces it)."""
    wb, rl = r["write_batched"], r["read_labels"]
    return {"date": r["date"], "code": r.get("code"), "n_records": r["params"]["n_records"],
            "write_batched_records_per_s": wb["records_per_s"],
            "write_single_records_per_s": r["write_single"]["records_per_s"],
            "checkpoint_seconds_first_last": wb.get("checkpoint_seconds_first_last"),
            "read_labels_s": [t["seconds"] for t in rl["trials"]],
            "random_get_ms_per_record": r["random_get"]["ms_per_record"],
            "bytes_per_record": r["file"]["bytes_per_record"],
            "load1_range": [r.get("load1_start"), r.get("load1_end")]}


def previous_runs(old: dict | None, new: dict) -> list:
    """Summaries of the earlier runs (the last 5): run-to-run spread on a shared machine, and
    what other versions of the store's code measured."""
    if not old:
        return []
    prev = list(old.get("previous_runs", []))
    prev.append(summary(old))
    return prev[-5:]


def code_ref(code: dict) -> tuple[str, str | None, bool]:
    """(what, id, modified since HEAD) of the store code a run measured (``code`` from
    :func:`common.code_version`): the git blob of ``hessflow/store.py`` for runs from before the
    store became a package, else one sha1 over the blobs of ``hessflow/store/*.py``."""
    if "blob:hessflow/store.py" in code:
        return ("`hessflow/store.py` blob", code["blob:hessflow/store.py"],
                bool(code.get("modified_since_head:hessflow/store.py")))
    blobs = [(k, v) for k, v in sorted(code.items()) if k.startswith("blob:hessflow/store/")]
    digest = (hashlib.sha1(json.dumps(blobs).encode()).hexdigest()
              if blobs and all(v for _, v in blobs) else None)
    modified = any(v for k, v in code.items()
                   if k.startswith("modified_since_head:hessflow/store/"))
    return "`hessflow/store/` blobs digest", digest, modified


# -- docs ------------------------------------------------------------------------------------
def doc_section(r: dict) -> str:
    m = r["machine"]
    p = r["params"]
    wb, ws, rl, rg, f = (r["write_batched"], r["write_single"], r["read_labels"], r["random_get"],
                         r["file"])
    loads = [r.get("load1_start"), r.get("load1_end"), wb["load1_before"], wb["load1_after"],
             wb["load1_max"], ws["load1_before"], ws["load1_after"], r["close"]["load1_before"],
             r["close"]["load1_after"], rg["load1_before"], rg["load1_after"]]
    loads += [t["load1_before"] for t in rl["trials"]] + [t["load1_after"] for t in rl["trials"]]
    n = p["n_records"]
    n_ok = sum(t["seconds"] < rl["target_s"] for t in rl["trials"])
    rows = [
        [f"(a) write, `put_many` {p['batch']} records per fsync", f"{n:,} records",
         f"{wb['seconds']:.1f} s", f"**{wb['records_per_s']:,.0f} records/s** "
         f"({wb['records_per_s_incl_close']:,.0f}/s incl. final close); "
         f"{wb['checkpoints_during_writes']} automatic checkpoints took "
         f"{wb['checkpoint_seconds_during_writes']:.1f} s of it",
         f"{wb['load1_before']:.2f} / {wb['load1_after']:.2f} (max {wb['load1_max']:.2f})"],
        ["(b) write, one `put` (one fsync) per record", f"{ws['records']:,} records",
         f"{ws['seconds']:.1f} s", f"**{ws['records_per_s']:,.0f} records/s**; "
         f"{ws['checkpoints_during_writes']} automatic checkpoints took "
         f"{ws['checkpoint_seconds_during_writes']:.1f} s of it",
         f"{ws['load1_before']:.2f} / {ws['load1_after']:.2f}"],
        ["(c) final `close()` after (a)", f"{n:,} records",
         f"{common.fmt_s(r['close']['seconds'])} s",
         "checkpoints whatever is left in the log"
         + (" (nothing here: the last `put_many` had just triggered a checkpoint)"
            if r['close']['seconds'] < 0.1 else ""),
         f"{r['close']['load1_before']:.2f} / {r['close']['load1_after']:.2f}"],
    ]
    fl = wb.get("checkpoint_seconds_first_last")
    if fl:
        rows.append(["(c) one checkpoint: first / last automatic one during (a)",
                     f"{p['batch']:,} / {n:,} records in the file", f"{fl[0]:.1f} / {fl[1]:.1f} s",
                     ("grows with the number of records already in the file" if fl[1] > 2 * fl[0] + 0.5
                      else "about constant: a checkpoint costs what it adds, not the file size"), "-"])
    for t in rl["trials"]:
        rows.append([f"(d) `Store(path).table(('key',)+LABELS)`, {t['cache']} page cache",
                     f"{n:,} records", f"{t['seconds']:.3f} s",
                     f"open {t['open_s']:.3f} s + table {t['table_s']:.3f} s; "
                     f"target < {rl['target_s']:.0f} s",
                     f"{t['load1_before']:.2f} / {t['load1_after']:.2f}"])
    rows += [
        ["(e) `get()` of random full records, cold cache", f"{rg['records']} records",
         f"{rg['seconds']:.3f} s", f"{rg['ms_per_record']:.1f} ms per record",
         f"{rg['load1_before']:.2f} / {rg['load1_after']:.2f}"],
    ]
    bk = r.get("bulk_read")
    if bk:
        rows += [
            [f"(e) the first {bk['records']:,} records: `get()` each vs one `get_many()`, warm cache",
             f"{bk['records']:,} records", f"{bk['get_s']:.2f} / {bk['get_many_s']:.2f} s",
             f"**{bk['speedup']:.0f}x** faster in bulk "
             f"({bk['records'] / bk['get_s']:,.0f} vs {bk['records'] / bk['get_many_s']:,.0f} records/s)",
             f"{bk['load1_before']:.2f} / {bk['load1_after']:.2f}"],
            ["(e) every record through `records()` (= `get_many` in storage order), cold cache",
             f"{bk['all_records']:,} records", f"{bk['all_s']:.1f} s",
             f"{bk['all_records_per_s']:,.0f} records/s, {bk['all_mb_per_s']:,.0f} MB/s of file",
             f"{bk['all_load1_before']:.2f} / {bk['all_load1_after']:.2f}"],
        ]
    rows += [
        ["(f) file size", f"{n:,} records", "-",
         f"{f['mb']:,.0f} MB, {f['bytes_per_record']:,.0f} bytes per record", "-"],
    ]
    table = common.markdown_table(["measurement", "size", "time", "result", "load1 before / after"],
                                  rows)
    verdict = ("meets" if n_ok == len(rl["trials"]) else
               f"**misses** (in {len(rl['trials']) - n_ok} of {len(rl['trials'])} trials)")
    code = r.get("code") or {}
    what, blob, modified = code_ref(code)
    code_txt = (f" Code: git {code.get('git_head')}, {what} {(blob or '?')[:10]}"
                + (" (modified since HEAD)" if modified else "") + "." if code else "")
    notes = "".join(f"\n- {x}" for x in r.get("notes", []))
    for pr in r.get("previous_runs", []):
        c = pr.get("code") or {}
        what, blob, _ = code_ref(c)
        notes += (f"\n- Earlier run, {pr['date'][:16]} UTC, {what} "
                  f"{(blob or '?')[:10]} (git {c.get('git_head')}): "
                  f"(a) {pr['write_batched_records_per_s']:,.0f} records/s, "
                  f"(b) {pr['write_single_records_per_s']:,.0f} records/s, "
                  f"checkpoint first/last "
                  + "/".join(f"{x:.1f}" for x in pr.get("checkpoint_seconds_first_last") or [])
                  + " s, (d) label read "
                  + ", ".join(f"{x:.2f}" for x in pr["read_labels_s"])
                  + f" s, (e) {pr['random_get_ms_per_record']:.1f} ms per get; load1 at start/end "
                  + "/".join(f"{x:.2f}" for x in pr.get("load1_range") or [] if x is not None)
                  + ".")
    notes = f"\nNotes:{notes}\n" if notes else ""
    bulk_txt = (f" {bk['records']:,} records read one by one and in bulk, every record in bulk,"
                if bk else "")
    budget_txt = ""
    if p.get("checkpoint_records") or p.get("checkpoint_seconds"):
        budget_txt = (f", {p['checkpoint_records']} records waiting or "
                      f"{p['checkpoint_seconds']:g} s")
    return f"""## Store throughput (`benchmarks/bench_store.py`)

What: {n:,} synthetic records of QM9-like size (n_atoms = {p['n_atoms']}, mean
{p['n_atoms_mean']:.1f}; every field a finished record has, including the (3n)² Hessian,
frequencies and Cartesian + mass-weighted modes) written to a fresh store in /tmp with the store's
defaults (checkpoint every {p['checkpoint_bytes'] >> 20} MiB of log{budget_txt}, fsync on every `put`/`put_many`);
then the label read, {rg['records']} random `get()`s,{bulk_txt} and {ws['records']:,} records written one
`put` at a time into a second fresh store. Record generation is not timed. "Cold" means the store
file was evicted from the page cache (`posix_fadvise(DONTNEED)`) just before.

Machine: {common.machine_line(m)}; run {r['date']}; 1-minute load average {common.load_range(loads)}
over the run (the machine has {m['nproc']} cores: a load above that means other jobs competed for
them, so the numbers are upper bounds).
The label read {verdict} the "well under a second" target (< {rl['target_s']:.0f} s here).{code_txt}

{table}
{notes}"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="records for (a) (default 100000)")
    ap.add_argument("--batch", type=int, default=1000, help="records per put_many (default 1000)")
    ap.add_argument("--n-single", type=int, default=2000, help="records for (b) (default 2000)")
    ap.add_argument("--n-get", type=int, default=100)
    ap.add_argument("--n-bulk", type=int, default=2000,
                    help="records read one by one and in bulk for (e) (default 2000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tmp", default="/tmp", help="where the temporary store goes")
    ap.add_argument("--profile", action="store_true",
                    help="print cProfile summaries (profiling slows the timed regions, so a "
                         "profiled run is never saved: implies --no-save)")
    ap.add_argument("--no-save", action="store_true", help="print only; leave JSON and docs alone")
    ap.add_argument("--doc-only", action="store_true", help="regenerate the docs section only")
    a = ap.parse_args(argv)
    if a.doc_only:
        common.update_doc(NAME, doc_section(common.read_result(NAME)))
        return 0
    r = run(a.n, a.batch, a.n_single, a.n_get, a.n_bulk, a.seed, a.tmp, a.profile)
    print(json.dumps({k: v for k, v in r.items() if k != "profiles"}, indent=1, default=str))
    if r.get("profiles"):
        for k, lines in r["profiles"].items():
            print(f"-- profile: {k}")
            print("\n".join(lines))
    if not (a.no_save or a.profile):
        old = common.read_result(NAME)
        r["previous_runs"] = previous_runs(old, r)
        same_code = code_ref(old.get("code") or {})[1] == code_ref(r["code"])[1] if old else False
        if old and old.get("notes") and same_code:
            r["notes"] = old["notes"]  # analysis of the same code still applies
        common.write_result(NAME, r)
        common.update_doc(NAME, doc_section(r))
        print(f"wrote {common.result_path(NAME)} and {common.DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
