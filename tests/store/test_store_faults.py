"""The store under faults: short writes, full disks, damaged bytes, swapped lock files, readers
without write access, foreign logs; and the whole fault corpus of benchmarks/bench_faults.py.

Records reported stored are never lost; every failure is one line of StoreError; damage is
flagged, never read back as a value. The cases needing root (a tmpfs, a bind mount, reading as
``nobody``) skip with the reason elsewhere.
"""

import errno
import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from unittest import mock

import h5py
import numpy as np
import pytest

from benchmarks import bench_faults
from benchmarks.bench_faults import disk_full_after, read_as_nobody, record, same
from hessflow.errors import StoreError
from hessflow.store import SCHEMA_VERSION, Store, verify
from hessflow.store.log import encode, read_log


def keys(*idx):
    return [f"key{i:06d}" for i in idx]


def one_line(exc) -> str:
    msg = str(exc.value if hasattr(exc, "value") else exc)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


def all_there(path, want: dict):
    st = Store(path)
    for k, rec in want.items():
        assert k in st, k
        assert same(st.get(k), rec), k


def writer(path, **kw):
    kw.setdefault("checkpoint_records", 0)
    kw.setdefault("checkpoint_seconds", 0)
    return Store(path, "a", **kw)


def failing_write(st, after: int, err=errno.ENOSPC):
    """os.write that fails with ``err`` once ``after`` more bytes reached the store's log."""
    return bench_faults._fail_after(after, err, lambda: st._wal_fd)


def mount(*args) -> bool:
    return os.geteuid() == 0 and subprocess.run(["mount", *args],
                                                capture_output=True).returncode == 0


# -- 2: every write checked ----------------------------------------------------------------------
def test_short_writes_are_completed(tmp_path):
    p = tmp_path / "s.h5"
    real = os.write
    with writer(p) as st:
        with mock.patch("os.write", lambda fd, d: real(fd, bytes(d[:13]) if fd == st._wal_fd
                                                        else d)):
            st.put_many([record(i) for i in range(5)])
    all_there(p, {k: record(i) for i, k in enumerate(keys(0, 1, 2, 3, 4))})


@pytest.mark.parametrize("err,name", [(errno.ENOSPC, "ENOSPC"), (errno.EDQUOT, "EDQUOT")])
def test_a_full_disk_in_the_log_is_one_line_and_loses_nothing(tmp_path, err, name):
    p = tmp_path / "s.h5"
    st = writer(p)
    st.put_many([record(0), record(1)])
    with mock.patch("os.write", failing_write(st, 1500, err)):
        with pytest.raises(StoreError) as exc:
            st.put_many([record(2), record(3)])
    msg = one_line(exc)
    assert str(p) in msg and f"({name})" in msg and "not stored" in msg
    assert os.fstat(st._wal_fd).st_size == read_log(st.wal_path).end  # partial entry cut off
    assert "key000002" not in st
    st.put(record(4))  # space is back: the writer goes on
    st.close()
    all_there(p, {k: record(i) for i, k in zip((0, 1, 4), keys(0, 1, 4))})
    assert "key000002" not in Store(p)


def test_a_failed_fsync_of_the_log_reports_the_put_not_stored(tmp_path):
    p = tmp_path / "s.h5"
    st = writer(p)
    st.put(record(0))
    real = os.fsync

    def fsync(fd):
        if fd == st._wal_fd:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(fd)
    with mock.patch("os.fsync", fsync), pytest.raises(StoreError, match=r"\(EIO\)"):
        st.put(record(1))
    st.close()
    assert Store(p).keys() == keys(0)


@pytest.mark.parametrize("where", ["pwrite_all", "write_all"])
def test_a_full_disk_in_a_checkpoint_leaves_the_file_as_it_was(tmp_path, where, capfd):
    """ENOSPC in the checkpoint's HDF5 appends or in its journal: one line, the file unchanged,
    the records safe in the log; no h5py traceback storm."""
    p = tmp_path / "s.h5"
    with writer(p) as st:
        st.put_many([record(i) for i in range(5)])
    before = p.read_bytes()
    st = writer(p)
    st.put_many([record(i, 1) for i in (1, 7)])  # a replacement and a new record
    with mock.patch(f"hessflow.store.update.{where}",
                    mock.Mock(side_effect=OSError(errno.ENOSPC, "No space left on device"))):
        with pytest.raises(StoreError) as exc:
            st.checkpoint()
    msg = one_line(exc)
    assert "checkpoint failed" in msg and "(ENOSPC)" in msg and "safe in its log" in msg
    assert p.read_bytes() == before and not st.journal_path.exists()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception ignored" not in err
    st.close()  # space is back
    want = {k: record(i) for i, k in zip(range(5), keys(*range(5)))}
    want.update({"key000001": record(1, 1), "key000007": record(7, 1)})
    all_there(p, want)
    assert verify(p).ok


def test_a_full_disk_while_the_first_h5_is_written(tmp_path, capfd):
    p = tmp_path / "new" / "s.h5"
    with disk_full_after(5000):
        with pytest.raises(StoreError, match=r"cannot create the store: .*\(ENOSPC\)") as exc:
            Store(p, "a")
    one_line(exc)
    assert not p.exists() and not list(p.parent.glob("*.tmp"))
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception ignored" not in err
    with Store(p, "a") as st:  # space is back
        st.put(record(0))
    assert Store(p).keys() == keys(0)


def test_a_real_full_tmpfs_then_space_back(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if not mount("-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)):
        pytest.skip("needs root and permission to mount a tmpfs")
    try:
        p = mnt / "s.h5"
        reported = {}
        with pytest.warns(RuntimeWarning, match="checkpoint failed"):
            with pytest.raises(StoreError) as exc:
                with Store(p, "a", checkpoint_records=5, checkpoint_seconds=0) as st:
                    for i in range(5000):
                        st.put(record(i))
                        reported[keys(i)[0]] = record(i)
        assert "No space left on device (ENOSPC)" in one_line(exc) and len(reported) > 5
        assert not list(mnt.glob("*.tmp")) and not (mnt / "s.h5.journal").exists()
        assert mount("-o", "remount,size=32m", str(mnt))
        with Store(p, "a") as st:
            assert len(st) == len(reported)
            st.put(record(9999))
        all_there(p, reported)
        assert verify(p).ok
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


# -- 8: one line for every bad store ------------------------------------------------------------
def bad_stores(d: Path):
    (d / "folder.h5").mkdir()
    (d / "table.csv").write_text("smiles,name\nO,water\n")
    (d / "empty.h5").touch()
    with Store(d / "good.h5", "a") as st:
        st.put_many([record(i) for i in range(3)])
    b = (d / "good.h5").read_bytes()
    (d / "truncated.h5").write_bytes(b[:len(b) // 2])
    with h5py.File(d / "other.h5", "w") as f:
        f["x"] = [1, 2, 3]


@pytest.mark.parametrize("name,mode,settings,message", [
    ("folder.h5", "r", {}, "is a folder, not a store file"),
    ("folder.h5", "a", {}, "is a folder, not a store file"),
    ("table.csv", "r", {}, r"not a hessflow store \(not an HDF5 file\)"),
    ("table.csv", "a", {}, r"not a hessflow store \(not an HDF5 file\)"),
    ("empty.h5", "a", {}, r"not a hessflow store \(an empty file\)"),
    ("truncated.h5", "r", {}, "cannot read the HDF5 file: .*truncated file"),
    ("truncated.h5", "a", {}, "cannot read the HDF5 file: .*truncated file"),
    ("other.h5", "r", {}, "not a hessflow store"),
    ("missing.h5", "r", {}, "no such store"),
    ("good.h5", "w", {}, "store mode 'w' is not 'r' or 'a'"),
    ("good.h5", "a", {"checkpoint_seconds": -1}, "store.checkpoint_seconds: must be >= 0"),
    ("good.h5", "a", {"checkpoin_records": 3}, "did you mean 'checkpoint_records'"),
])
def test_a_bad_store_is_one_line_and_leaves_nothing_behind(tmp_path, name, mode, settings,
                                                          message):
    from hessflow.errors import HessflowError
    bad_stores(tmp_path)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(HessflowError, match=message) as exc:
        Store(tmp_path / name, mode, **settings)
    one_line(exc)
    left = set(os.listdir(tmp_path)) - set(before)
    # a damaged store keeps the lock files its writer made (harmless), nothing else
    assert left <= ({f"{name}.lock", f"{name}.readers"} if name == "truncated.h5" else set())


def test_a_writer_on_a_read_only_file_system_is_one_line(tmp_path):
    src, view = tmp_path / "src", tmp_path / "view"
    src.mkdir()
    view.mkdir()
    if not (mount("--bind", str(src), str(view)) and
            mount("-o", "remount,bind,ro", str(view))):
        pytest.skip("needs root and permission for a read-only bind mount")
    try:
        for p in (view / "new.h5", view / "sub" / "new.h5"):
            with pytest.raises(StoreError, match=r"Read-only file system \(EROFS\)") as exc:
                Store(p, "a")
            one_line(exc)
    finally:
        subprocess.run(["umount", str(view)], capture_output=True)


# -- 1: readers need no write access -------------------------------------------------------------
def unmerged_store(d: Path, interrupted: bool = False) -> dict:
    """A store whose writer died: 10 records checkpointed, 5 only in the log; ``interrupted``:
    and a checkpoint stopped at its commit point (a journal left)."""
    if interrupted:
        return bench_faults._interrupted_checkpoint(d / "s.h5", 3, random.Random(0))
    return bench_faults._unmerged_store(d, 10)[1]


def read_everything(path: Path, want: dict):
    st = Store(path)
    assert sorted(st.keys()) == sorted(want)
    got = {r["key"]: r for r in st.records()}
    assert all(same(got[k], r) for k, r in want.items())
    assert len(st.table()["key"]) == len(want)
    assert verify(path).ok


@pytest.mark.parametrize("interrupted", [False, True])
def test_readers_on_a_read_only_file_system(tmp_path, interrupted):
    src, view = tmp_path / "src", tmp_path / "view"
    src.mkdir()
    view.mkdir()
    want = unmerged_store(src, interrupted)
    if not (mount("--bind", str(src), str(view)) and
            mount("-o", "remount,bind,ro", str(view))):
        pytest.skip("needs root and permission for a read-only bind mount")
    try:
        before = sorted(os.listdir(src))
        read_everything(view / "s.h5", want)
        assert sorted(os.listdir(src)) == before
    finally:
        subprocess.run(["umount", str(view)], capture_output=True)


@pytest.mark.parametrize("interrupted", [False, True])
def test_a_store_owned_by_someone_else(tmp_path, interrupted):
    if os.geteuid() != 0:
        pytest.skip("needs root, to read as the user nobody")
    src = tmp_path / "src"
    src.mkdir()
    want = unmerged_store(src, interrupted)
    shared = Path(tempfile.mkdtemp(prefix="hessflow-shared-"))
    try:
        os.chmod(shared, 0o755)
        for f in src.iterdir():
            shutil.copy(f, shared / f.name)
            os.chmod(shared / f.name, 0o644)
        before = sorted(os.listdir(shared))
        r = read_as_nobody(shared / "s.h5")
        if r.returncode == bench_faults.CANNOT_DROP_ROOT:
            pytest.skip(f"the container forbids setuid ({r.stderr})")
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == [str(len(want))] * 3 + ["1"]
        assert sorted(os.listdir(shared)) == before
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_a_reader_never_sees_a_half_merged_file(tmp_path):
    """A checkpoint interrupted after its overwrites: a reader that may not write sees the
    file as it was before, in memory; the writer's open restores it on disk, byte for byte."""
    p = tmp_path / "s.h5"
    with Store(p, "a") as st:
        st.put_many([record(i) for i in range(3)])
    before = p.read_bytes()
    want = bench_faults._interrupted_checkpoint(p, 0, random.Random(1))
    assert p.read_bytes() != before or p.stat().st_size != len(before)
    with mock.patch.object(Store, "_recover_if_alone", lambda self: None):  # as if read-only
        read_everything(p, want)
    assert p.with_name("s.h5.journal").exists()  # the reader wrote nothing
    Store(p, "a").close()
    all_there(p, want)


def test_a_journal_of_the_first_format_is_still_rolled_back(tmp_path):
    """A checkpoint of the previous version (journal HFJ1: old images only) interrupted after
    its overwrites: the next open restores the file."""
    import struct
    import zlib
    p = tmp_path / "s.h5"
    with Store(p, "a") as st:
        st.put_many([record(i) for i in range(3)])
    before = p.read_bytes()
    off, n = 0, 4096  # the superblock and the root group's header: what a checkpoint rewrites
    old = before[off:off + n]
    p.with_name("s.h5.journal").write_bytes(struct.pack("<4sQ", b"HFJ1", len(before))
                                            + struct.pack("<QQI", off, n, zlib.crc32(old)) + old)
    with open(p, "r+b") as fh:  # the overwrite, and bytes appended, that were never committed
        fh.write(b"\xff" * n)
        fh.seek(0, 2)
        fh.write(b"\0" * 10000)
    with Store(p, "a") as st:
        assert st.keys() == keys(0, 1, 2) and "interrupted checkpoint" in st.problems[0]
    assert not p.with_name("s.h5.journal").exists()
    all_there(p, {k: record(i) for i, k in enumerate(keys(0, 1, 2))})


# -- 3: a log bound to its .h5 -------------------------------------------------------------------
def test_a_damaged_entry_mid_log_is_skipped_counted_and_reported(tmp_path):
    p = tmp_path / "s.h5"
    w = writer(p)
    ends = []
    for i in range(6):
        w.put(record(i))
        ends.append(os.fstat(w._wal_fd).st_size)
    w._release()  # killed: nothing merged
    data = bytearray(p.with_name("s.h5.wal").read_bytes())
    data[(ends[1] + ends[2]) // 2] ^= 0xFF  # inside the entry of record 2
    p.with_name("s.h5.wal").write_bytes(bytes(data))
    st = Store(p)
    assert st.keys() == keys(0, 1, 3, 4, 5)
    assert len(st.problems) == 1 and "key000002 (mol2) lost" in st.problems[0]
    rep = verify(p)
    assert not rep.ok and rep.damaged_records == ["key000002"]
    lines = str(rep).splitlines()
    assert "damaged log frame" in lines[0] and lines[-1].endswith("1 problem(s)")
    with pytest.warns(RuntimeWarning, match="damaged log frame"):
        Store(p, "a").close()
    all_there(p, {k: record(i) for i, k in zip((0, 1, 3, 4, 5), keys(0, 1, 3, 4, 5))})


def test_a_log_beside_another_store_is_refused(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    with Store(b, "a") as st:
        st.put(record(1))
    w = writer(a)
    w.put(record(2))
    w._release()
    saved = a.read_bytes()
    shutil.copy(b, a)  # a recreated: its log is now beside another store's .h5
    for mode in ("r", "a"):
        with pytest.raises(StoreError, match="belongs to another store.*move the .wal") as exc:
            Store(a, mode)
        one_line(exc)
    assert not verify(a).ok
    a.unlink()  # moved away
    for mode in ("r", "a"):
        with pytest.raises(StoreError, match="missing, but its log .* moved or deleted"):
            Store(a, mode)
    a.write_bytes(saved)  # put back: all is well
    assert Store(a).keys() == keys(2)


def test_logs_without_identity_are_replayed_as_legacy(tmp_path):
    p = tmp_path / "s.h5"
    with Store(p, "a") as st:
        st.put(record(0))
    from hessflow.store.schema import normalise
    with open(p.with_name("s.h5.wal"), "wb") as fh:  # an HFW2 log of the previous version
        fh.write(encode(normalise(record(1))))
    assert Store(p).keys() == keys(0, 1)
    assert any("legacy log" in n for n in verify(p).notes)
    with Store(p, "a") as st:
        st.put(record(2))
    assert Store(p).keys() == keys(0, 1, 2)


# -- 4: the .h5 always current and valid ---------------------------------------------------------
def test_the_h5_exists_from_creation_and_follows_the_budget(tmp_path):
    p = tmp_path / "s.h5"

    def rows():
        with h5py.File(p, "r") as f:
            return f["records/key"].shape[0]
    st = Store(p, "a", checkpoint_records=3, checkpoint_seconds=0.3)
    with h5py.File(p, "r") as f:  # created with the store, valid for plain h5py
        assert f.attrs["schema_version"] == SCHEMA_VERSION and len(f.attrs["store_id"]) == 32
        assert "docs/store.md" in f.attrs["schema_doc"]
    st.put_many([record(0), record(1)])
    assert rows() == 0
    st.put(record(2))  # the record budget
    assert rows() == 3
    st.put(record(3))
    deadline = time.monotonic() + 10
    while rows() < 4 and time.monotonic() < deadline:  # the time budget, with no more puts
        time.sleep(0.1)
    assert rows() == 4
    st.put(record(4))
    st.checkpoint()  # explicit
    assert rows() == 5
    st.close()


# -- 5: checksums on the data --------------------------------------------------------------------
def damage(p: Path, dataset: str, row: int, itemsize: int):
    with h5py.File(p, "r") as f:
        off = f[dataset].id.get_chunk_info(0).byte_offset
    b = bytearray(p.read_bytes())
    b[off + row * itemsize] ^= 0x40
    p.write_bytes(bytes(b))


@pytest.mark.parametrize("dataset,itemsize,field", [
    ("records/energy_hartree", 8, "energy_hartree"),
    ("records/status", 8, "status"),
    ("ragged/hessian_hartree_bohr2/length", 8, "hessian_hartree_bohr2"),
    ("ragged/hessian_hartree_bohr2/start", 8, "hessian_hartree_bohr2"),
    ("records/alpha_bohr3", 72, "alpha_bohr3"),
])
def test_damage_in_a_label_or_the_index_never_reads_back_as_a_value(tmp_path, dataset,
                                                                   itemsize, field):
    p = tmp_path / "s.h5"
    with Store(p, "a") as st:
        st.put_many([record(i) for i in range(6)])
    damage(p, dataset, 4, itemsize)
    st = Store(p)
    with pytest.raises(StoreError, match=f"record key000004 .*{field} fails its checksum") as exc:
        st.get("key000004")
    one_line(exc)
    assert same(st.get("key000003"), record(3))
    if field in ("energy_hartree", "status", "alpha_bohr3"):
        with pytest.raises(StoreError, match=field):
            st.table(["key", field])
    if field == "status":
        with pytest.raises(StoreError, match="status fails"):
            st.status("key000004")
    rep = verify(p)
    assert [(q.key, q.name) for q in rep.problems] == [("key000004", "mol4")]
    assert field in rep.problems[0].field


def test_a_damaged_key_leaves_its_record_out_and_says_so(tmp_path):
    p = tmp_path / "s.h5"
    with Store(p, "a") as st:
        st.put_many([record(i) for i in range(4)])
    damage(p, "records/key", 2, 64)
    st = Store(p)
    assert st.keys() == keys(0, 1, 3) and "key fails its checksum" in st.problems[0]
    assert not verify(p).ok


def test_a_schema_version_1_store_opens_and_its_writer_upgrades_it(tmp_path):
    p = tmp_path / "s.h5"
    with Store(p, "a") as st:
        st.put_many([record(i) for i in range(3)])
    with h5py.File(p, "r+") as f:  # the previous version's file
        del f["records/checksum"]
        for a in ("store_id", "schema_doc", "generation"):
            if a in f.attrs:
                del f.attrs[a]
        f.attrs["schema_version"] = 1
    assert Store(p).keys() == keys(0, 1, 2)
    assert any("no checksums" in n for n in verify(p).notes)
    with Store(p, "a") as st:
        assert any("upgraded" in m for m in st.problems)
    with h5py.File(p, "r") as f:
        assert f.attrs["schema_version"] == SCHEMA_VERSION and "store_id" in f.attrs
    assert verify(p).ok and not verify(p).notes
    all_there(p, {k: record(i) for i, k in enumerate(keys(0, 1, 2))})


# -- 6: one writer, truly ------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["removed", "replaced"])
def test_a_swapped_lock_file_admits_no_second_writer(tmp_path, how):
    p = tmp_path / "s.h5"
    a = writer(p)
    a.put(record(0))
    lock = p.with_name("s.h5.lock")
    if how == "removed":
        lock.unlink()
    else:
        (tmp_path / "x").write_text("1")
        os.replace(tmp_path / "x", lock)
    with pytest.raises(StoreError, match="locked by another writer") as exc:
        Store(p, "a")
    one_line(exc)
    with pytest.raises(StoreError, match="lock file s.h5.lock was removed or replaced"):
        a.put(record(1))
    a._release()
    with Store(p, "a") as b:
        b.put(record(2))
    t = Store(p).table(["key"])["key"]
    assert sorted(t) == keys(0, 2)


# -- 7: the corpus -------------------------------------------------------------------------------
def test_the_fault_corpus_loses_nothing_and_prints_no_traceback():
    r = bench_faults.run(quick=True, seed=3)
    totals = r["totals"]
    bad = [c for c in r["cases"] if c["lost"] or c["wrong_values"] or c["tracebacks"]]
    assert not bad, bad
    assert totals["tried"] > 60 and totals["reported"] > 100
    assert totals["lost"] == totals["wrong_values"] == totals["tracebacks"] == 0
    assert bench_faults.table(r).count("\n") == len(r["cases"]) + 2
    assert np.isfinite(r["seconds"])


def test_hessflow_verify_names_the_damaged_record_and_exits_1(tmp_path):
    """The command line: a clean store verifies (exit 0), a damaged label names its record in
    one line and exits 1, --json gives the same as data; nothing needs write access."""
    import json
    import sys
    p = tmp_path / "s.h5"
    with Store(p, "a") as st:
        st.put_many([record(i) for i in range(6)])

    def run(*args):
        return subprocess.run([sys.executable, "-m", "hessflow", "verify", str(p), *args],
                              capture_output=True, text=True, timeout=120)
    ok = run()
    assert ok.returncode == 0 and "OK" in ok.stdout, ok.stdout + ok.stderr
    damage(p, "records/energy_hartree", 4, 8)
    bad = run()
    assert bad.returncode == 1 and "key000004" in bad.stdout and "Traceback" not in bad.stderr
    js = json.loads(run("--json").stdout)
    assert js["ok"] is False and js["damaged_records"] == ["key000004"]
