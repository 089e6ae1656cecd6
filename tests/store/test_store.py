"""The HDF5 store: round trip, schema, one writer, and crash safety under SIGKILL."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from hessflow.errors import StoreError
from hessflow.qm.record import LABELS, empty_record
from hessflow.store import SCHEMA_VERSION, Store


def make_record(i, n_atoms=3, status="done"):
    rng = np.random.default_rng(i)
    m = 3 * n_atoms - 6
    rec = empty_record()
    rec.update(key=f"key{i:06d}", name=f"mol{i}", smiles="O", status=status, n_atoms=n_atoms,
               numbers=np.full(n_atoms, 6), masses_amu=np.full(n_atoms, 12.0),
               coords_input_bohr=rng.normal(size=(n_atoms, 3)),
               coords_opt_bohr=rng.normal(size=(n_atoms, 3)),
               hessian_hartree_bohr2=rng.normal(size=(3 * n_atoms, 3 * n_atoms)),
               frequencies_cm1=np.sort(rng.uniform(100, 4000, m)),
               modes_cartesian=rng.normal(size=(m, n_atoms, 3)),
               energy_hartree=-float(i), zpve_hartree=0.01 * i, n_imag=0,
               alpha_bohr3=np.eye(3) * i, dipole_au=np.array([0, 0, 0.1 * i]),
               provenance='{"host": "test"}', tasks="opt,freq")
    return rec


def test_round_trip_ragged_and_fixed_fields(tmp_path):
    p = tmp_path / "s.h5"
    with Store(p, "a") as st:
        for i in range(5):
            st.put(make_record(i, n_atoms=3 + i))
    st = Store(p)
    assert len(st) == 5
    for i in range(5):
        want, got = make_record(i, 3 + i), st.get(f"key{i:06d}")
        for f in ("coords_opt_bohr", "hessian_hartree_bohr2", "frequencies_cm1", "modes_cartesian",
                  "alpha_bohr3", "dipole_au"):
            assert np.array_equal(got[f], want[f]), f
        assert got["name"] == f"mol{i}" and got["energy_hartree"] == -i
        assert got["coords_input_bohr"].shape == (3 + i, 3)
        assert got["beta_au"].shape == (3, 3, 3) and np.isnan(got["beta_au"]).all()
    t = st.table(["key", "zpve_hartree", "alpha_bohr3"])
    assert list(t["key"]) == [f"key{i:06d}" for i in range(5)]
    assert t["alpha_bohr3"].shape == (5, 3, 3)
    with h5py.File(p, "r") as f:  # readable by plain h5py, units in attributes
        assert f.attrs["schema_version"] == SCHEMA_VERSION
        assert f["records/zpve_hartree"].attrs["unit"] == "Hartree"
        assert f["ragged/hessian_hartree_bohr2/start"].shape == (5,)
        assert f["ragged/hessian_hartree_bohr2/length"][4] == (3 * 7) ** 2


def test_get_many_matches_get_in_any_order_across_file_and_log(tmp_path):
    p = tmp_path / "s.h5"
    with Store(p, "a") as st:  # closed: these 200 are checkpointed into the HDF5 file
        st.put_many([make_record(i, n_atoms=3 + i % 4) for i in range(200)])
    with Store(p, "a") as st:
        st.put(make_record(500, n_atoms=5))  # still in the log when read below
        st.put(make_record(7, n_atoms=6))    # replaces a checkpointed record
        dense = [f"key{i:06d}" for i in range(40, 90)]
        sparse = ["key000199", "key000500", "key000000", "key000007"]  # spans of the whole file
        for keys in (dense, sparse, st.keys()):
            got = list(st.get_many(keys, chunk=16))
            assert [r["key"] for r in got] == keys
            for r in got:
                one = st.get(r["key"])
                for f in ("hessian_hartree_bohr2", "modes_cartesian", "alpha_bohr3", "numbers"):
                    assert np.array_equal(r[f], one[f]), (r["key"], f)
                assert r["name"] == one["name"] and r["zpve_hartree"] == one["zpve_hartree"]
        assert st.get("key000007")["hessian_hartree_bohr2"].shape == (18, 18)
        assert [r["key"] for r in st.records()] == st.keys()
        slim = next(st.get_many(["key000003"], fields=(f for f in ["hessian_hartree_bohr2"])))
        assert slim["modes_cartesian"] is None
        assert np.array_equal(slim["hessian_hartree_bohr2"], make_record(3, 6)["hessian_hartree_bohr2"])
        with pytest.raises(KeyError):
            list(st.get_many(["key000001", "nope"]))
        with pytest.raises(StoreError, match="unknown field"):
            list(st.get_many(["key000001"], fields=["hessian"]))


def test_log_entries_of_the_first_format_are_still_read(tmp_path):
    """A log left by the first log format (one .npz archive per entry) replays on open."""
    import io
    import struct
    import zlib
    p = tmp_path / "s.h5"
    with Store(p, "a") as st:
        st.put(make_record(0))
    rec = make_record(1)
    arrays = {k: (np.array(v, dtype=np.str_) if isinstance(v, str) else np.asarray(v))
              for k, v in rec.items() if v is not None}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    payload = buf.getvalue()
    with open(p.with_name("s.h5.wal"), "ab") as fh:
        fh.write(struct.pack("<4sQI", b"HFW1", len(payload), zlib.crc32(payload)) + payload)
    st = Store(p)
    assert st.keys() == ["key000000", "key000001"]
    got = st.get("key000001")
    assert np.array_equal(got["hessian_hartree_bohr2"], rec["hessian_hartree_bohr2"])
    assert got["name"] == "mol1" and got["n_atoms"] == 3 and np.isnan(got["alpha_iso_bohr3"])
    with Store(p, "a") as st:  # the writer merges it and goes on in the current format
        st.put(make_record(2))
    assert Store(p).keys() == ["key000000", "key000001", "key000002"]


def test_replacing_a_record_keeps_one_copy(tmp_path):
    p = tmp_path / "s.h5"
    with Store(p, "a") as st:
        st.put(make_record(1, status="failed"))
        st.put(make_record(2))
    with Store(p, "a") as st:
        rec = make_record(1)
        rec["energy_hartree"] = -42.0
        st.put(rec)
        assert st.get("key000001")["energy_hartree"] == -42.0  # before checkpoint
    st = Store(p)
    keys = list(st.table(["key"])["key"])
    assert sorted(keys) == ["key000001", "key000002"]
    assert st.get("key000001")["energy_hartree"] == -42.0 and st.status("key000001") == "done"


def test_one_writer_at_a_time_but_readers_welcome(tmp_path):
    p = tmp_path / "s.h5"
    w = Store(p, "a")
    w.put(make_record(0))
    with pytest.raises(StoreError, match="already open for writing"):
        Store(p, "a")
    assert Store(p).get("key000000")["name"] == "mol0"  # a reader sees the logged record
    w.close()
    Store(p, "a").close()


def test_bad_record_is_rejected_with_field_name(tmp_path):
    with Store(tmp_path / "s.h5", "a") as st:
        rec = make_record(0)
        rec["hessian_hartree_bohr2"] = np.zeros((4, 4))
        with pytest.raises(StoreError, match="hessian_hartree_bohr2 has shape"):
            st.put(rec)
        with pytest.raises(StoreError, match="unknown field"):
            st.put({**make_record(1), "zpve": 1.0})


WRITER = r"""
import sys, numpy as np
sys.path.insert(0, {tests!r})
from test_store import make_record
from hessflow.store import Store
start = int(sys.argv[1])
with Store({path!r}, "a", checkpoint_bytes=int(sys.argv[2])) as st:
    for i in range(start, start + 100000):
        st.put(make_record(i % 400, n_atoms=3 + i % 7))   # keys repeat: replacements too
        print(i % 400, flush=True)
"""


def test_sigkill_at_random_moments_never_corrupts_or_loses_records(tmp_path):
    path = str(tmp_path / "crash.h5")
    script = WRITER.format(tests=os.path.dirname(__file__), path=path)
    reported = set()
    rng = random.Random(1234)
    start = 0
    for trial in range(25):
        # small checkpoint threshold: kills also land inside checkpoints (copy + replace)
        proc = subprocess.Popen([sys.executable, "-c", script, str(start),
                                 str(rng.choice([10_000, 30_000, 100_000]))],
                                stdout=subprocess.PIPE, text=True)
        first = proc.stdout.readline()  # the writer is up and has stored a record ...
        time.sleep(rng.uniform(0.0, 1.5))  # ... then the kill lands at a random moment
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        lines = (first + out).split()
        reported |= {int(x) for x in lines}
        start += len(lines)
        st = Store(path)  # always reopens
        keys = st.table(["key"])["key"]
        assert len(keys) == len(set(keys)), "duplicate records"
        missing = {f"key{i:06d}" for i in reported} - set(keys)
        assert not missing, f"trial {trial}: reported as stored but lost: {sorted(missing)[:5]}"
        for i in list(reported)[:20]:
            rec = st.get(f"key{i:06d}")
            assert rec["n_atoms"] in range(3, 10) and rec["hessian_hartree_bohr2"].shape[0] == 3 * rec["n_atoms"]
    assert len(reported) > 50
    with Store(path, "a"):
        pass  # a writer can take over and checkpoint
    with h5py.File(path, "r") as f:
        assert len(set(f["records/key"].asstr()[...])) == f["records/key"].shape[0]
    assert not os.path.exists(path + ".wal")


def test_labels_are_columnar(tmp_path):
    p = tmp_path / "s.h5"
    with Store(p, "a", durable=False) as st:
        st.put_many(make_record(i) for i in range(2000))
    t = Store(p).table(("key",) + LABELS)
    assert t["energy_hartree"].shape == (2000,) and t["n_imag"].dtype.kind == "i"


def test_interrupted_checkpoint_is_rolled_back_from_the_journal(tmp_path):
    """Crash after the in-place overwrites hit the file but before the journal was deleted:
    the next open restores the pre-images, and the log brings the records back."""
    p = tmp_path / "j.h5"
    with Store(p, "a") as st:
        for i in range(3):
            st.put(make_record(i))
    before = p.read_bytes()
    st = Store(p, "a")
    st.put(make_record(7))
    st.put(make_record(1))  # a replacement: overwritten in place
    real_unlink = Path.unlink

    def crash(self, *a, **k):
        if self.name.endswith(".journal"):
            raise KeyboardInterrupt("killed at the commit point")
        return real_unlink(self, *a, **k)
    Path.unlink = crash
    try:
        with pytest.raises(KeyboardInterrupt):
            st.checkpoint()
    finally:
        Path.unlink = real_unlink
    assert (tmp_path / "j.h5.journal").exists() and p.read_bytes() != before
    st._release()  # the writer is gone (its log and locks closed), as after a kill
    r = Store(p)  # a reader rolls the file back (no writer is alive) ...
    assert not (tmp_path / "j.h5.journal").exists()
    assert sorted(r.keys()) == ["key000000", "key000001", "key000002", "key000007"]
    assert p.read_bytes() == before  # ... byte for byte to the state before the checkpoint
    with h5py.File(p, "r") as f:
        assert sorted(f["records/key"].asstr()[...]) == ["key000000", "key000001", "key000002"]
    with Store(p, "a") as w:
        assert len(w) == 4
    assert len(Store(p)) == 4 and not os.path.exists(str(p) + ".wal")


def _as_older_file(p, drop=("gradient_hartree_bohr", "beta_vec_au", "beta_au"), version=2):
    """Make ``p`` a file written before the fields ``drop`` were in the schema: their columns
    gone, the checksum table without their columns (matched by its ``fields`` attribute)."""
    import json
    with h5py.File(p, "r+") as f:
        for c in drop:
            del f[("ragged/" if c in ("gradient_hartree_bohr",) else "records/") + c]
        d = f["records/checksum"]
        fields = json.loads(d.attrs["fields"])
        keep = [i for i, c in enumerate(fields) if c not in drop]
        table, attrs = d[...][:, keep], dict(d.attrs)
        del f["records/checksum"]
        n = f["records"].create_dataset("checksum", data=table, maxshape=(None, len(keep)),
                                        chunks=(1024, len(keep)))
        for k, v in attrs.items():
            n.attrs[k] = v
        n.attrs["fields"] = json.dumps([fields[i] for i in keep])
        f.attrs["schema_version"] = version


def test_a_file_written_before_fields_were_added_reads_them_as_not_computed(tmp_path):
    """A version 2 file has no gradient column (and here no beta_vec_au / beta_au either):
    its records read with those fields "not computed", every other value checked against its
    checksum (columns matched by name); its first writer adds the columns, once, and new
    records carry gradients."""
    from hessflow.store.verify import verify
    p = tmp_path / "s.h5"
    with Store(p, "a") as st:
        st.put_many([make_record(i) for i in range(3)])
    _as_older_file(p)
    st = Store(p)
    for i in range(3):
        got, want = st.get(f"key{i:06d}"), make_record(i)
        assert got["gradient_hartree_bohr"] is None and np.isnan(got["beta_vec_au"])
        assert np.array_equal(got["hessian_hartree_bohr2"], want["hessian_hartree_bohr2"])
    assert np.isnan(st.table(["beta_au"])["beta_au"]).all()
    assert verify(p).ok
    with h5py.File(p, "r+") as f:  # damage in an old column is still caught by its checksum
        f["records/energy_hartree"][1] = 7.0
    with pytest.raises(StoreError, match="energy_hartree fails its checksum"):
        Store(p).get("key000001")
    with h5py.File(p, "r+") as f:
        f["records/energy_hartree"][1] = -1.0
    new = make_record(3)
    new["gradient_hartree_bohr"] = np.arange(9.0).reshape(3, 3)
    with Store(p, "a") as st:
        assert any("upgraded from schema version 2" in m and "gradient_hartree_bohr" in m
                   for m in st.problems)
        st.put(new)
    with h5py.File(p, "r") as f:
        assert f.attrs["schema_version"] == SCHEMA_VERSION
        assert f["ragged/gradient_hartree_bohr/data"].attrs["unit"] == "Hartree/Bohr"
    st = Store(p)
    assert np.array_equal(st.get("key000003")["gradient_hartree_bohr"], new["gradient_hartree_bohr"])
    assert st.get("key000001")["gradient_hartree_bohr"] is None
    assert np.isnan(st.get("key000002")["beta_vec_au"]) and not st.problems
    assert verify(p).ok
    with Store(p, "a") as st:  # upgraded once
        assert not any("upgraded" in m for m in st.problems)
