"""The store under the faults of a real cluster: a corpus of injected faults, and what survived.

Each case puts records into a store, injects one fault, then reopens the store and counts:

- **records reported stored**: the puts that returned (the store's promise is about those);
- **records lost**: reported stored but missing or different after the fault (must be 0);
- **wrong values read**: values that read back different from what was stored, without an
  error (damage must be flagged, never returned: must be 0);
- **tracebacks**: failures that were not one-line :class:`~hessflow.errors.StoreError` s (an
  exception of another type, a multi-line message, a crash of the process: must be 0).

Faults: short writes and ENOSPC / EDQUOT / EIO injected into the log, the journal and the
checkpoint's HDF5 writes and into the first ``.h5``; a real full tmpfs (root only); byte damage
at random offsets of the ``.h5``, in the middle of log entries, in the journal of an interrupted
checkpoint; the lock file removed or replaced mid-run; kill -9 at random moments of a writer and
of checkpoints; a log beside a moved or recreated ``.h5``; a read-only file system and a store
owned by someone else (root only: bind mount, ``runuser -u nobody``).

    python -m benchmarks.bench_faults            # the full corpus: JSON + docs/reliability.md
    python -m benchmarks.bench_faults --quick --no-save
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from unittest import mock

import numpy as np

from hessflow.errors import StoreError
from hessflow.qm.record import empty_record
from hessflow.store import Store, verify

from . import common

NAME = "faults"
DOC = common.ROOT / "docs" / "reliability.md"
CODE = tuple(sorted(f"hessflow/store/{f.name}"
                    for f in (common.ROOT / "hessflow" / "store").glob("*.py")))
COMPARED = ("name", "status", "n_atoms", "energy_hartree", "zpve_hartree", "alpha_bohr3",
            "hessian_hartree_bohr2", "frequencies_cm1", "modes_cartesian", "coords_opt_bohr")


# -- records -------------------------------------------------------------------------------------
def record(i: int, version: int = 0) -> dict:
    """A finished record of a small molecule (3..8 atoms), different for each ``version``."""
    rng = np.random.default_rng(i * 7919 + version)
    n = 3 + i % 6
    m = 3 * n - 6
    rec = empty_record()
    rec.update(key=f"key{i:06d}", name=f"mol{i}", smiles="C" * n, status="done", n_atoms=n,
               numbers=np.full(n, 6), masses_amu=np.full(n, 12.0),
               coords_input_bohr=rng.normal(size=(n, 3)), coords_opt_bohr=rng.normal(size=(n, 3)),
               hessian_hartree_bohr2=rng.normal(size=(3 * n, 3 * n)),
               frequencies_cm1=np.sort(rng.uniform(100, 4000, m)),
               modes_cartesian=rng.normal(size=(m, n, 3)), energy_hartree=-float(i) - version,
               zpve_hartree=0.01 * i + version, n_imag=0, alpha_bohr3=np.eye(3) * i,
               provenance=json.dumps({"v": version}), tasks="opt,freq")
    return rec


def same(a: dict, b: dict) -> bool:
    """Whether two records hold the same values in the fields compared."""
    for f in COMPARED:
        x, y = a[f], b[f]
        if isinstance(x, str) or isinstance(y, str) or x is None or y is None:
            if x != y:
                return False
        elif not np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True):
            return False
    return True


# -- outcome bookkeeping -------------------------------------------------------------------------
class Tally:
    """Counts of one case: faults tried, records reported, lost, wrong values, tracebacks."""

    def __init__(self, case: str, fault: str):
        self.row = {"case": case, "fault": fault, "tried": 0, "reported": 0, "lost": 0,
                    "wrong_values": 0, "tracebacks": 0, "store_errors": 0, "examples": []}

    def error(self, exc: BaseException):
        """Count a failure: a one-line StoreError is the expected outcome of a fault."""
        msg = str(exc)
        if isinstance(exc, StoreError) and "\n" not in msg:
            self.row["store_errors"] += 1
            if len(self.row["examples"]) < 2 and msg not in self.row["examples"]:
                self.row["examples"].append(msg)
        else:
            self.row["tracebacks"] += 1
            self.row["examples"].append(f"TRACEBACK {type(exc).__name__}: {msg[:200]}")

    @contextlib.contextmanager
    def guard(self):
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - every failure is counted and classified
            self.error(exc)

    def check(self, path: Path, reported: dict):
        """Reopen ``path`` and count ``reported`` records (key -> record) lost or changed."""
        self.row["reported"] += len(reported)
        try:
            st = Store(path)
            got = {r["key"]: r for r in st.get_many([k for k in reported if k in st])}
        except Exception as exc:  # noqa: BLE001
            self.error(exc)
            self.row["lost"] += len(reported)
            return
        self.row["lost"] += sum(1 for k, r in reported.items()
                                if k not in got or not same(got[k], r))


def _fresh(root: Path, name: str) -> Path:
    d = root / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    return d / "s.h5"


def _fail_after(nbytes: int, err: int, fd_of, real=os.write):
    """An ``os.write`` that writes up to ``nbytes`` more bytes to the store's log, then fails
    with ``err`` (a short write first when the budget runs out mid-buffer)."""
    left = [nbytes]

    def write(fd, data):
        if fd != fd_of():
            return real(fd, data)
        if left[0] <= 0:
            raise OSError(err, os.strerror(err))
        n = min(len(data), left[0])
        left[0] -= n
        return real(fd, bytes(data[:n]))
    return write


def disk_full_after(nbytes: int):
    """A patch of the store's ``pwrite_all`` (writes into the .h5 and its journal): the first
    writes within ``nbytes`` go through, the first one beyond fails with ENOSPC."""
    import hessflow.store.update as update
    real, left = update.pwrite_all, [nbytes]

    def pw(fd, data, off):
        if left[0] < len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        left[0] -= len(data)
        return real(fd, data, off)
    return mock.patch("hessflow.store.update.pwrite_all", pw)


# -- the cases -----------------------------------------------------------------------------------
def case_short_writes(root: Path, trials: int, rng: random.Random) -> dict:
    """os.write writes at most a few bytes per call: every put still stores every byte."""
    t = Tally("short writes", "os.write returns after 1-97 bytes (log)")
    p = _fresh(root, "short")
    reported = {}
    real = os.write
    with Store(p, "a", checkpoint_records=7) as st:
        def short(fd, data):
            if fd == st._wal_fd:
                data = bytes(data[:rng.randint(1, 97)])
            return real(fd, data)
        with mock.patch("os.write", short):
            for i in range(trials):
                t.row["tried"] += 1
                with t.guard():
                    st.put(record(i))
                    reported[f"key{i:06d}"] = record(i)
    t.check(p, reported)
    return t.row


def case_log_write_errors(root: Path, trials: int, rng: random.Random) -> dict:
    """ENOSPC / EDQUOT / EIO part-way through a log write or at its fsync."""
    t = Tally("log write errors", "ENOSPC, EDQUOT, EIO in os.write or fsync of the log")
    p = _fresh(root, "logerr")
    reported = {}
    i = 0
    for trial in range(trials):
        err = rng.choice([errno.ENOSPC, errno.EDQUOT, errno.EIO])
        with t.guard(), Store(p, "a", checkpoint_records=0, checkpoint_seconds=0) as st:
            for _ in range(rng.randint(0, 3)):
                st.put(record(i, trial))
                reported[f"key{i:06d}"] = record(i, trial)
                i += 1
            t.row["tried"] += 1
            if rng.random() < 0.7:
                patch = mock.patch("os.write", _fail_after(rng.randint(0, 3000), err,
                                                           lambda: st._wal_fd))
            else:
                real_fsync = os.fsync

                def fsync(fd, _st=st, _err=err):
                    if fd == _st._wal_fd:
                        raise OSError(_err, os.strerror(_err))
                    return real_fsync(fd)
                patch = mock.patch("os.fsync", fsync)
            with patch:
                try:
                    st.put_many([record(i + j, trial) for j in range(3)])
                    for j in range(3):
                        reported[f"key{i + j:06d}"] = record(i + j, trial)
                except StoreError as exc:
                    t.error(exc)
            i += 3
            st.put(record(i, trial))  # space is back: the writer goes on
            reported[f"key{i:06d}"] = record(i, trial)
            i += 1
    t.check(p, reported)
    return t.row


def case_checkpoint_errors(root: Path, trials: int, rng: random.Random) -> dict:
    """ENOSPC / EIO in a checkpoint: the HDF5 appends, the journal, the in-place overwrites."""
    import hessflow.store.update as update
    t = Tally("checkpoint write errors", "ENOSPC, EIO in the .h5 appends, the journal or the "
                                         "overwrites of a checkpoint")
    p = _fresh(root, "ckerr")
    reported = {}
    for trial in range(trials):
        where = rng.choice(["pwrite_all", "write_all", "overwrite", "fsync"])
        err = rng.choice([errno.ENOSPC, errno.EIO])
        with t.guard():
            st = Store(p, "a", checkpoint_records=0, checkpoint_seconds=0)
            keys = rng.sample(range(40), 4)
            for k in keys:
                st.put(record(k, trial))
                reported[f"key{k:06d}"] = record(k, trial)
            t.row["tried"] += 1
            calls = [0]
            real = {"pwrite_all": update.pwrite_all, "write_all": update.write_all}

            def failing_write(*a, _w=where, _e=err):
                calls[0] += 1
                if _w == "overwrite" and calls[0] <= 1:
                    return real["pwrite_all"](*a)
                raise OSError(_e, os.strerror(_e))
            real_fsync = os.fsync

            def failing_fsync(fd, _st=st, _e=err):  # the .h5's and the journal's, not the log's
                if fd != _st._wal_fd:
                    raise OSError(_e, os.strerror(_e))
                return real_fsync(fd)
            name = {"overwrite": "pwrite_all"}.get(where, where)
            patch = (mock.patch("os.fsync", failing_fsync) if where == "fsync" else
                     mock.patch(f"hessflow.store.update.{name}", failing_write))
            with patch:
                try:
                    st.checkpoint()
                except StoreError as exc:
                    t.error(exc)
            st.close()
    t.check(p, reported)
    return t.row


def case_create_errors(root: Path, trials: int, rng: random.Random) -> dict:
    """ENOSPC while the first .h5 is written: a StoreError, no .h5 half made, no .tmp left."""
    t = Tally("store creation errors", "ENOSPC after 0-40 kB of the first .h5")
    for trial in range(trials):
        p = _fresh(root, f"create{trial}")
        t.row["tried"] += 1
        with disk_full_after(rng.randint(0, 40_000)):
            with t.guard():
                Store(p, "a").close()
        leftovers = [f.name for f in p.parent.iterdir() if f.name.endswith(".tmp")]
        if leftovers or (p.exists() and not verify(p).ok):
            t.row["tracebacks"] += 1
            t.row["examples"].append(f"left behind: {leftovers or p.name}")
        with t.guard(), Store(p, "a") as st:  # space is back
            st.put(record(trial))
        t.check(p, {f"key{trial:06d}": record(trial)})
    return t.row


def _mount(args: list[str]) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def case_tmpfs_full(root: Path, trials: int, rng: random.Random) -> dict | None:
    """A real full file system (a small tmpfs): the log, a checkpoint and the first .h5 hit it;
    after it is made larger, reopening loses nothing. Root only."""
    mnt = root / "tmpfs"
    mnt.mkdir(exist_ok=True)
    if os.geteuid() != 0 or not _mount(["-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)]):
        return None
    t = Tally("full tmpfs (real)", "a 1 MiB tmpfs fills up; then grown to 64 MiB")
    try:
        for trial in range(trials):
            for f in mnt.iterdir():
                f.unlink()
            _mount(["-o", "remount,size=1m", str(mnt)])
            p = mnt / "s.h5"
            filler = mnt / "filler"
            filler.write_bytes(b"\0" * rng.choice([0, 400_000, 1_000_000]))
            reported, i = {}, 0
            t.row["tried"] += 1
            try:
                with Store(p, "a", checkpoint_records=rng.choice([0, 5]),
                           checkpoint_seconds=0) as st:
                    while i < 2000:
                        st.put(record(i, trial))
                        reported[f"key{i:06d}"] = record(i, trial)
                        i += 1
            except Exception as exc:  # noqa: BLE001
                t.error(exc)
            if list(mnt.glob("*.tmp")):
                t.row["tracebacks"] += 1
                t.row["examples"].append("a .tmp left behind")
            _mount(["-o", "remount,size=64m", str(mnt)])
            if reported:
                with t.guard(), Store(p, "a") as st:
                    st.put(record(99_999, trial))
                    reported["key099999"] = record(99_999, trial)
            t.check(p, reported)
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
    return t.row


_READ_DAMAGED = r"""
import json, sys
import numpy as np
sys.path[:0] = [{root!r}]
from benchmarks.bench_faults import record, same
from hessflow.errors import StoreError
from hessflow.store import Store, verify
wants = {{}}
for line in sys.stdin:
    path, n = json.loads(line)
    out = {{"wrong": 0, "errors": [], "tracebacks": [], "flagged": 0}}
    want = wants.setdefault(n, {{f"key{{i:06d}}": record(i) for i in range(n)}})
    try:
        rep = verify(path)
        out["flagged"] = len(rep.problems)
    except StoreError as e:
        out["errors"].append(str(e))
    except Exception as e:
        out["tracebacks"].append(f"verify: {{type(e).__name__}}: {{e}}")
    try:
        st = Store(path)
        got = []
        keys = st.keys()
        for lo in range(0, len(keys), 8):  # 8 at a time; one by one where one is damaged
            try:
                got += list(st.get_many(keys[lo:lo + 8]))
            except StoreError:
                for k in keys[lo:lo + 8]:
                    try:
                        got.append(st.get(k))
                    except StoreError as e:
                        out["errors"].append(str(e))
        for r in got:
            if r["key"] not in want or not same(r, want[r["key"]]):
                out["wrong"] += 1
        try:
            t = st.table()
            for k, e in zip(t["key"], t["energy_hartree"]):
                if k in want and e != want[k]["energy_hartree"]:
                    out["wrong"] += 1
        except StoreError as e:
            out["errors"].append(str(e))
    except StoreError as e:
        out["errors"].append(str(e))
    except Exception as e:
        out["tracebacks"].append(f"{{type(e).__name__}}: {{e}}")
    print(json.dumps(out), flush=True)
"""


def _live_ranges(path: Path) -> list[tuple[int, int]]:
    """``(offset, length)`` of the bytes of ``path`` that hold stored values: the used part of
    every chunk of every dataset."""
    import h5py
    out = []

    def visit(name, obj):
        if not isinstance(obj, h5py.Dataset) or obj.shape[0] == 0:
            return
        row = obj.dtype.itemsize * int(np.prod(obj.shape[1:], dtype=np.int64))
        per_chunk = obj.chunks[0]
        for i in range(obj.id.get_num_chunks()):
            info = obj.id.get_chunk_info(i)
            rows = min(per_chunk, obj.shape[0] - info.chunk_offset[0])
            if rows > 0:
                out.append((info.byte_offset, min(info.size, rows * row)))
    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return out


def case_h5_damage(root: Path, trials: int, rng: random.Random) -> dict:
    """Bytes of the .h5 overwritten at random offsets (metadata, index, labels, arrays): every
    value read back is right or flagged; no crash, no traceback."""
    t = Tally(".h5 byte damage", "1-8 bytes overwritten at a random offset of the .h5 (70 %: in "
                                 "the bytes holding values)")
    n = 40
    p = _fresh(root, "h5dmg")
    with Store(p, "a") as st:
        st.put_many([record(i) for i in range(n)])
    clean = p.read_bytes()
    live = _live_ranges(p)
    cases = []
    for trial in range(trials):
        q = p.with_name(f"d{trial}.h5")
        b = bytearray(clean)
        if rng.random() < 0.3:  # anywhere: metadata, free chunk space, ...
            off = rng.randrange(len(b))
        else:  # in the bytes that hold values: labels, keys, the ragged index, arrays
            lo, n = rng.choice(live)
            off = lo + rng.randrange(n)
        for j in range(rng.randint(1, 8)):
            if off + j < len(b):
                b[off + j] = rng.randrange(256) if rng.random() < 0.5 else b[off + j] ^ 0xFF
        q.write_bytes(bytes(b))
        cases.append(q)
    todo = list(cases)
    script = _READ_DAMAGED.format(root=str(common.ROOT))
    while todo:
        proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate("".join(json.dumps([str(q), n]) + "\n" for q in todo))
        done = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        for res in done:
            t.row["tried"] += 1
            t.row["wrong_values"] += res["wrong"]
            t.row["store_errors"] += len(res["errors"])
            t.row["tracebacks"] += len(res["tracebacks"])
            t.row["examples"] += res["tracebacks"][:2]
            if res["errors"] and len(t.row["examples"]) < 2:
                t.row["examples"].append(res["errors"][0])
        todo = todo[len(done):]
        if todo:  # the reader crashed on todo[0]
            t.row["tried"] += 1
            t.row["tracebacks"] += 1
            t.row["examples"].append(f"reader died (rc {proc.returncode}) on {todo[0].name}: "
                                     f"{err.strip()[-200:]}")
            todo = todo[1:]
    return t.row


def case_log_damage(root: Path, trials: int, rng: random.Random) -> dict:
    """A byte of a log entry in the middle of the log damaged: only that entry is lost, and it
    is reported (Store.problems, verify); every later intact entry is replayed."""
    t = Tally("log damage mid-entry", "1-4 bytes of one entry (not the last) of the log damaged")
    for trial in range(trials):
        p = _fresh(root, "logdmg")
        w = Store(p, "a", checkpoint_records=0, checkpoint_seconds=0)
        n = rng.randint(3, 12)
        offsets = []
        for i in range(n):
            offsets.append(os.fstat(w._wal_fd).st_size)
            w.put(record(i, trial))
        offsets.append(os.fstat(w._wal_fd).st_size)
        w._release()  # a killed writer: the log is not merged
        victim = rng.randrange(n - 1)
        lo, hi = offsets[victim], offsets[victim + 1]
        data = bytearray((p.with_name("s.h5.wal")).read_bytes())
        at = rng.randrange(lo, hi)
        for j in range(rng.randint(1, 4)):
            if at + j < hi:
                data[at + j] ^= 0x5A
        p.with_name("s.h5.wal").write_bytes(bytes(data))
        t.row["tried"] += 1
        reported = {f"key{i:06d}": record(i, trial) for i in range(n) if i != victim}
        with t.guard():
            rep = verify(p)
            st = Store(p)
            named = [q for q in rep.problems if q.key in ("", f"key{victim:06d}")]
            if not named or not st.problems or f"key{victim:06d}" in st:
                t.row["tracebacks"] += 1
                t.row["examples"].append("damaged entry not reported")
        t.check(p, reported)
        with t.guard(), Store(p, "a"):
            pass  # a writer merges the intact entries
        t.check(p, reported)
    return t.row


def _interrupted_checkpoint(p: Path, trial: int, rng: random.Random) -> dict:
    """A store whose last checkpoint stopped after its overwrites, before the commit point."""
    import hessflow.store.journal as journal
    reported = {}
    with Store(p, "a") as st:
        for i in range(10):
            st.put(record(i, trial))
            reported[f"key{i:06d}"] = record(i, trial)
    st = Store(p, "a", checkpoint_records=0, checkpoint_seconds=0)
    for i in rng.sample(range(16), 5):
        st.put(record(i, trial + 1))
        reported[f"key{i:06d}"] = record(i, trial + 1)
    real_unlink = Path.unlink

    def crash(self, *a, **k):
        if self.name.endswith(".journal"):
            raise KeyboardInterrupt("killed at the commit point")
        return real_unlink(self, *a, **k)
    with mock.patch.object(Path, "unlink", crash):
        try:
            st.checkpoint()
        except KeyboardInterrupt:
            pass
    st._release()
    assert journal.MAGIC == p.with_name("s.h5.journal").read_bytes()[:4]
    return reported


def case_journal_damage(root: Path, trials: int, rng: random.Random) -> dict:
    """Bytes of the journal of an interrupted checkpoint damaged: the store is recovered (undone
    or finished) with nothing lost, or refused with one line; never a wrong value."""
    t = Tally("journal damage", "1-8 bytes of the journal of an interrupted checkpoint damaged")
    for trial in range(trials):
        p = _fresh(root, "jdmg")
        reported = _interrupted_checkpoint(p, trial, rng)
        j = p.with_name("s.h5.journal")
        data = bytearray(j.read_bytes())
        at = rng.randrange(len(data))
        for k in range(rng.randint(1, 8)):
            if at + k < len(data):
                data[at + k] ^= 0xA5
        j.write_bytes(bytes(data))
        t.row["tried"] += 1
        try:
            Store(p).close()   # a reader: recovered in memory
            Store(p, "a").close()
        except Exception as exc:  # noqa: BLE001
            t.error(exc)       # refused: one line, nothing touched
            continue
        t.check(p, reported)
    return t.row


def case_lock_removed(root: Path, trials: int, rng: random.Random) -> dict:
    """The lock file removed or replaced while a writer runs: a second writer is refused, the
    first stops at its next commit; no record is stored twice or lost."""
    t = Tally("lock file removed", "FILE.h5.lock deleted or replaced mid-run, second writer")
    for trial in range(trials):
        p = _fresh(root, "lock")
        lock = p.with_name("s.h5.lock")
        a = Store(p, "a", checkpoint_records=rng.choice([0, 2]), checkpoint_seconds=0)
        reported = {}
        for i in range(4):
            a.put(record(i))
            reported[f"key{i:06d}"] = record(i)
        t.row["tried"] += 1
        if rng.random() < 0.5:
            lock.unlink()
        else:
            other = p.with_name("other")
            other.write_text("x")
            os.replace(other, lock)
        admitted = False
        try:
            b = Store(p, "a")
            admitted = True
            b.put(record(100))
            b.close()
        except StoreError as exc:
            t.error(exc)
        try:
            a.put(record(4))
            admitted = True  # the first writer went on after its lock was swapped
        except StoreError as exc:
            t.error(exc)
        a._release()
        if admitted:
            t.row["tracebacks"] += 1
            t.row["examples"].append("a second writer was admitted")
        with t.guard():
            keys = Store(p).table(["key"])["key"]
            if len(keys) != len(set(keys)):
                t.row["wrong_values"] += len(keys) - len(set(keys))
        t.check(p, reported)
    return t.row


_KILLED_WRITER = r"""
import sys
sys.path[:0] = [{root!r}]
from benchmarks.bench_faults import record
from hessflow.store import Store
start, budget = int(sys.argv[1]), int(sys.argv[2])
with Store({path!r}, "a", checkpoint_records=budget, checkpoint_seconds=0.2) as st:
    for i in range(start, start + 100000):
        st.put(record(i % 60, i))
        print(i, flush=True)
"""


def case_kill9(root: Path, trials: int, rng: random.Random, budget: int, label: str) -> dict:
    """kill -9 of a writer at a random moment (with checkpoints every ``budget`` records)."""
    t = Tally(label, f"SIGKILL at a random moment, checkpoint every {budget} record(s)")
    p = _fresh(root, f"kill{budget}")
    script = _KILLED_WRITER.format(root=str(common.ROOT), path=str(p))
    reported: dict[str, dict] = {}
    start = 0
    for trial in range(trials):
        proc = subprocess.Popen([sys.executable, "-c", script, str(start), str(budget)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = proc.stdout.readline()
        time.sleep(rng.uniform(0.0, 0.6))
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate()
        t.row["tried"] += 1
        if "Traceback" in err:
            t.row["tracebacks"] += 1
            t.row["examples"].append(err.strip().splitlines()[-1])
        for line in (first + out).split():
            i = int(line)
            reported[f"key{i % 60:06d}"] = i  # the last put of a key wins
            start = i + 1
        start += 1  # the put in flight may have been stored without being reported
        with t.guard():
            keys = Store(p).table(["key"])["key"]
            t.row["wrong_values"] += len(keys) - len(set(keys))
    t.row["reported"] += len(reported)
    with t.guard():
        st = Store(p)
        for k, i in reported.items():
            # stored is the reported version, or the one put after it (stored, killed before
            # it was reported)
            got = st.get(k) if k in st else None
            v = json.loads(got["provenance"])["v"] if got else -1
            if v < i or not same(got, record(int(k[3:]), v)):
                t.row["lost"] += 1
    return t.row


def case_foreign_log(root: Path, trials: int, rng: random.Random) -> dict:
    """A log found beside a .h5 that is not its own (the store moved, or recreated), or beside
    no .h5 at all: refused with what to do, never merged."""
    t = Tally("foreign or stale log", "a store's log left beside a recreated / another .h5, "
                                      "or its .h5 moved away")
    for trial in range(trials):
        a, b = _fresh(root, "fa"), _fresh(root, "fb")
        with Store(b, "a") as st:
            st.put(record(1))
        w = Store(a, "a", checkpoint_records=0, checkpoint_seconds=0)
        w.put(record(2))
        w._release()  # killed: record 2 is only in a's log
        how = rng.choice(["recreated", "moved"])
        if how == "recreated":
            shutil.copy(b, a)  # a's .h5 replaced by another store's
        else:
            a.unlink()
        t.row["tried"] += 1
        merged = False
        for mode in ("r", "a"):
            try:
                st = Store(a, mode)
                merged = merged or "key000002" in st
                st.close()
            except StoreError as exc:
                t.error(exc)
        if merged:
            t.row["wrong_values"] += 1
            t.row["examples"].append(f"a foreign log was merged ({how})")
    return t.row


_READER = r"""
import sys
sys.path[:0] = [{root!r}]
from hessflow.store import Store, verify
st = Store(sys.argv[1])
t = st.table()
recs = list(st.records())
rep = verify(sys.argv[1])
print(len(st), len(recs), len(t["key"]), int(rep.ok), flush=True)
"""


def _unmerged_store(d: Path, n: int) -> tuple[Path, dict]:
    p = d / "s.h5"
    with Store(p, "a") as st:
        st.put_many([record(i) for i in range(n)])
    w = Store(p, "a", checkpoint_records=0, checkpoint_seconds=0)
    w.put_many([record(i) for i in range(n, n + 5)])
    w._release()  # the writer died: five records only in the log
    return p, {f"key{i:06d}": record(i) for i in range(n + 5)}


def case_readers(root: Path, trials: int, rng: random.Random) -> list[dict]:
    """Readers without write access: a read-only bind mount, and a store owned by root with
    mode 0644 read by ``nobody`` — both with an unmerged log. Root only (else skipped)."""
    rows = []
    if os.geteuid() != 0:
        return rows
    src = root / "ro_src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir()
    p, want = _unmerged_store(src, 10)
    view = root / "ro_view"
    view.mkdir(exist_ok=True)
    script = _READER.format(root=str(common.ROOT))
    if _mount(["--bind", str(src), str(view)]) and _mount(["-o", "remount,bind,ro", str(view)]):
        t = Tally("read-only file system", "store on a read-only bind mount, log not merged")
        try:
            for _ in range(trials):
                t.row["tried"] += 1
                r = subprocess.run([sys.executable, "-c", script, str(view / "s.h5")],
                                   capture_output=True, text=True)
                _reader_outcome(t, r, len(want))
        finally:
            subprocess.run(["umount", str(view)], capture_output=True)
        rows.append(t.row)
    shared = Path(tempfile.mkdtemp(prefix="hessflow-shared-"))
    try:
        os.chmod(shared, 0o755)
        for f in src.iterdir():
            shutil.copy(f, shared / f.name)
            os.chmod(shared / f.name, 0o644)
        t = Tally("foreign-owned store", "root's 0644 store in a 0755 folder read by nobody")
        for _ in range(trials):
            r = read_as_nobody(shared / "s.h5")
            if r.returncode == CANNOT_DROP_ROOT:
                return rows  # the container forbids setuid: skipped (listed)
            t.row["tried"] += 1
            _reader_outcome(t, r, len(want))
        if set(os.listdir(shared)) - {f.name for f in src.iterdir()}:
            t.row["tracebacks"] += 1
            t.row["examples"].append("the reader created files")
        rows.append(t.row)
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    return rows


CANNOT_DROP_ROOT = 77  # read_as_nobody's exit code where the container forbids setuid


def read_as_nobody(path: Path) -> subprocess.CompletedProcess:
    """Read the store at ``path`` as user ``nobody`` (a forked child that drops root: no exec,
    so no interpreter path has to be readable by nobody). Returns what :data:`_READER` would:
    ``returncode``, ``stdout`` (records, records read, table rows, verify ok), ``stderr``."""
    import pwd
    nobody = pwd.getpwnam("nobody")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop root, read, report through the pipe
        os.close(r)
        code, out = 0, ""
        try:
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
        except OSError as exc:
            os.write(w, f"cannot become nobody: {exc}".encode())
            os._exit(CANNOT_DROP_ROOT)
        try:
            st = Store(path)
            t = st.table()
            recs = list(st.records())
            out = f"{len(st)} {len(recs)} {len(t['key'])} {int(verify(path).ok)}"
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            code, out = 1, f"ERR {type(exc).__name__}: {exc}"
        os.write(w, out.encode())
        os._exit(code)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    text = b"".join(chunks).decode()
    rc = os.waitstatus_to_exitcode(status)
    return subprocess.CompletedProcess([], rc, "" if rc else text, text if rc else "")


def _reader_outcome(t: Tally, r: subprocess.CompletedProcess, n: int):
    t.row["reported"] += n
    if r.returncode != 0:
        t.row["tracebacks"] += 1
        t.row["lost"] += n
        t.row["examples"].append(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else
                                 f"rc {r.returncode}")
        return
    got = [int(x) for x in r.stdout.split()]
    t.row["lost"] += n - min(got[:3])
    if not got[3]:
        t.row["examples"].append("verify reported damage")


# -- the corpus ----------------------------------------------------------------------------------
def _run_cases(rows: list, root: Path, rng: random.Random, quick: bool, k: int):
    cases = [
        lambda: case_short_writes(root, 10 * k, rng),
        lambda: case_log_write_errors(root, 6 * k, rng),
        lambda: case_checkpoint_errors(root, 6 * k, rng),
        lambda: case_create_errors(root, 3 * k, rng),
        lambda: case_tmpfs_full(root, 1 if quick else 6, rng),
        lambda: case_h5_damage(root, 20 * k, rng),
        lambda: case_log_damage(root, 5 * k, rng),
        lambda: case_journal_damage(root, 6 * k, rng),
        lambda: case_lock_removed(root, 3 * k, rng),
        lambda: case_kill9(root, 2 * k, rng, 1000, "kill -9 of a writer"),
        lambda: case_kill9(root, 2 * k, rng, 1, "kill -9 in checkpoints"),
        lambda: case_foreign_log(root, 2 * k, rng),
        lambda: case_readers(root, 1 if quick else 2, rng),
    ]
    try:
        for case in cases:
            t0 = time.perf_counter()
            got = case()
            for row in (got if isinstance(got, list) else [got] if got else []):
                row["seconds"] = round(time.perf_counter() - t0, 2)
                rows.append(row)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(quick: bool = False, seed: int = 0, tmp: str | None = None) -> dict:
    """Run the corpus (``quick``: fewer trials, for the test suite) and return the results."""
    rng = random.Random(seed)
    root = Path(tempfile.mkdtemp(prefix="hessflow-faults-", dir=tmp))
    k = 1 if quick else 4
    t0 = time.perf_counter()
    rows = []
    with warnings.catch_warnings():  # a failed automatic checkpoint warns: expected here
        warnings.simplefilter("ignore", RuntimeWarning)
        _run_cases(rows, root, rng, quick, k)
    skipped = []
    if not any(r["case"].startswith("full tmpfs") for r in rows):
        skipped.append("full tmpfs (needs root and mount)")
    if not any(r["case"] == "read-only file system" for r in rows):
        skipped.append("read-only file system (needs root and a bind mount)")
    if not any(r["case"] == "foreign-owned store" for r in rows):
        skipped.append("foreign-owned store (needs root, to read as nobody)")
    totals = {key: sum(r[key] for r in rows) for key in
              ("tried", "reported", "lost", "wrong_values", "tracebacks", "store_errors")}
    return {"benchmark": NAME, "date": common.now_iso(), "machine": common.machine_info(),
            "code": common.code_version(*CODE), "quick": quick, "seed": seed,
            "seconds": time.perf_counter() - t0, "cases": rows, "totals": totals,
            "skipped": skipped}


def table(r: dict) -> str:
    """The figures as a markdown table."""
    head = ["case", "fault", "faults tried", "records reported stored", "records lost",
            "wrong values read", "tracebacks", "one-line StoreErrors"]
    rows = [[c["case"], c["fault"], c["tried"], c["reported"], c["lost"], c["wrong_values"],
             c["tracebacks"], c["store_errors"]] for c in r["cases"]]
    t = r["totals"]
    rows.append(["**total**", "", t["tried"], t["reported"], t["lost"], t["wrong_values"],
                 t["tracebacks"], t["store_errors"]])
    return common.markdown_table(head, rows)


def doc_section(r: dict) -> str:
    m = r["machine"]
    examples = "\n".join(f"- {c['case']}: `{e}`" for c in r["cases"] for e in c["examples"][:1])
    skipped = ("\n\nSkipped on this machine: " + "; ".join(r["skipped"]) + ".") \
        if r["skipped"] else ""
    return f"""Measured by `python -m benchmarks.bench_faults` on {r['date'][:10]}
({common.machine_line(m)}; seed {r['seed']}{', quick corpus' if r['quick'] else ''};
{r['seconds']:.0f} s). Raw numbers: `benchmarks/results/faults.json`.

{table(r)}{skipped}

One message of each case, as the user sees it:

{examples}
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer trials (what the tests run)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tmp", default=None, help="where the temporary stores go")
    ap.add_argument("--no-save", action="store_true", help="print only; leave JSON and docs alone")
    a = ap.parse_args(argv)
    r = run(a.quick, a.seed, a.tmp)
    print(table(r))
    print(json.dumps(r["totals"]))
    if not a.no_save:
        common.write_result(NAME, r)
        common.update_doc(NAME, doc_section(r), DOC)
        print(f"wrote {common.result_path(NAME)} and {DOC}")
    bad = r["totals"]["lost"] + r["totals"]["wrong_values"] + r["totals"]["tracebacks"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
