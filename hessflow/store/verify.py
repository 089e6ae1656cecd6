"""Check a whole store without writing anything: every value against its checksum, the ragged
index, the log's frames and identity, an interrupted checkpoint's journal.

``verify(path)`` returns a :class:`VerifyReport`; ``str(report)`` is one line per problem and a
last summary line (what ``hessflow verify FILE.h5`` prints, exiting non-zero unless
``report.ok``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from ..errors import StoreError
from .checksum import FIELDS
from .fileio import cause
from .journal import recovery_plan
from .lock import StoreLocks
from .log import read_log
from .reader import bad_rows, open_h5, read_column, read_index, read_ragged_index, read_rows
from .schema import RAGGED, SCALARS


@dataclasses.dataclass
class Problem:
    """One damaged thing: the ``file`` it is in, a one-line ``message``; for a damaged value
    also the record's ``key``, ``name`` and ``field``."""
    file: str
    message: str
    key: str = ""
    name: str = ""
    field: str = ""

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


@dataclasses.dataclass
class VerifyReport:
    """What :func:`verify` found. ``problems``: damage (the store is not ``ok``); ``notes``:
    things that are not damage but worth a line (a torn log tail, an interrupted checkpoint
    recovered in memory, a version 1 file without checksums); ``records``: rows checked in the
    HDF5 file; ``log_records``: intact records in the log."""
    path: str
    records: int = 0
    log_records: int = 0
    problems: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def damaged_records(self) -> list[str]:
        """Keys of the records with a damaged value (in the HDF5 file or the log)."""
        return sorted({p.key for p in self.problems if p.key})

    def lines(self) -> list[str]:
        """One line per problem, then per note, then the summary."""
        out = [str(p) for p in self.problems] + [f"note: {n}" for n in self.notes]
        state = "OK" if self.ok else f"{len(self.problems)} problem(s)"
        out.append(f"{self.path}: {self.records} record(s) in the file and {self.log_records} in "
                   f"the log checked: {state}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def verify(path) -> VerifyReport:
    """Check the store at ``path`` (see the module docstring); writes nothing, needs only read
    access. :class:`StoreError` if there is no store there."""
    path = Path(path)
    wal = path.with_name(path.name + ".wal")
    journal = path.with_name(path.name + ".journal")
    if not path.exists() and not wal.exists():
        raise StoreError(f"{path}: no such store")
    rep = VerifyReport(str(path))
    store_id = None
    locks = StoreLocks(path)
    with locks.shared():
        if path.exists():
            store_id = _check_file(path, journal, rep)
        scan = _check_log(path, wal, store_id, rep)
    rep.log_records = len(scan.records) if scan is not None else 0
    return rep


def _check_file(path: Path, journal: Path, rep: VerifyReport):
    if journal.exists():
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                plan = recovery_plan(journal.read_bytes(), lambda o, n: os.pread(fd, n, o),
                                     str(journal))
            finally:
                os.close(fd)
            rep.notes.append(f"{journal}: an interrupted checkpoint, checked as recovered "
                             f"({plan.how}); the next writer recovers it on disk")
        except (StoreError, OSError) as exc:
            rep.problems.append(Problem(str(journal), cause(exc)))
            return None
    try:
        f = open_h5(path, journal)
    except StoreError as exc:
        rep.problems.append(Problem(str(path), str(exc).removeprefix(f"{path}: ")))
        return None
    with f:
        try:
            idx = read_index(f, path)
        except StoreError as exc:
            rep.problems.append(Problem(str(path), str(exc).removeprefix(f"{path}: ")))
            return None
        rep.records = n = len(idx.keys)
        if idx.crcs is None:
            rep.notes.append(f"{path}: schema version {idx.version}: no checksums to check "
                             f"(a writer opening it adds them)")
        elif idx.crcs.shape != (n, len(FIELDS)):
            rep.problems.append(Problem(str(path), f"checksum table has shape {idx.crcs.shape}, "
                                                   f"expected {(n, len(FIELDS))}"))
        seen: dict[str, int] = {}
        for r, k in enumerate(idx.keys):
            if k in seen and r not in idx.bad_keys:
                rep.problems.append(Problem(str(path), f"row {r}: key {k} also in row {seen[k]} "
                                                       f"(two records for one key)", key=k))
            seen.setdefault(k, r)
        names = None
        columns = {}
        for col in SCALARS:
            try:
                v = read_column(f, col)
                if len(v) != n:
                    raise ValueError(f"{len(v)} rows, expected {n}")
            except Exception as exc:
                rep.problems.append(Problem(str(path), f"column {col} unreadable: {cause(exc)}"))
                v = np.zeros(n, object if col in ("name",) else np.float64)
                columns[col] = (v, set(range(n)))
                continue
            bad = set(bad_rows(col, v, idx.crcs).tolist())
            columns[col] = (v, bad)
            if col == "name":
                names = v
        try:
            ragged_index = read_ragged_index(f)
        except Exception as exc:
            rep.problems.append(Problem(str(path), f"ragged index unreadable: {cause(exc)}"))
            return idx.store_id
        damage = [(r, c) for c, (_, bad) in columns.items() for r in bad]
        for lo in range(0, n, 2048):
            rows = list(range(lo, min(n, lo + 2048)))
            try:
                _, dmg = read_rows(f, rows, list(RAGGED), columns.__getitem__, ragged_index,
                                   idx.crcs)
            except Exception as exc:
                rep.problems.append(Problem(str(path), f"rows {rows[0]}-{rows[-1]} unreadable: "
                                                       f"{cause(exc)}"))
                continue
            damage += [d for d in dmg if d[1] not in SCALARS]
        by_row: dict[int, list] = {}
        for r, c in damage:
            by_row.setdefault(r, []).append(c)
        for r in sorted(by_row):
            key = idx.keys[r] if r < len(idx.keys) else "?"
            name = ""
            if names is not None and r not in columns["name"][1]:
                name = str(names[r])
            fields = sorted(set(by_row[r]), key=FIELDS.index)
            who = f"record {key}" + (f" ({name})" if name else "")
            rep.problems.append(Problem(str(path), f"row {r}: {who}: {', '.join(fields)} "
                                                   f"fail(s) the checksum", key=key, name=name,
                                        field=",".join(fields)))
        return idx.store_id


def _check_log(path: Path, wal: Path, store_id, rep: VerifyReport):
    try:
        scan = read_log(wal)
    except OSError as exc:
        rep.problems.append(Problem(str(wal), f"unreadable: {cause(exc)}"))
        return None
    for d in scan.damage:
        rep.problems.append(Problem(str(wal), d.describe(), key=d.key, name=d.name))
    if scan.id_damaged:
        rep.problems.append(Problem(str(wal), "its identity frame is damaged"))
    if scan.store_id is not None and store_id is not None and scan.store_id != store_id \
            and scan.records:
        rep.problems.append(Problem(str(wal), f"belongs to another store (id "
                                              f"{scan.store_id[:8]}, not {store_id[:8]}): "
                                              f"the store was moved or recreated"))
    if scan.store_id is not None and not path.exists() and scan.records:
        rep.problems.append(Problem(str(wal), f"its store {path.name} is missing"))
    if scan.torn_tail:
        rep.notes.append(f"{wal}: a torn last entry ({scan.torn_tail} bytes: a write that never "
                         f"returned, so never reported stored) is ignored")
    if scan.size and scan.store_id is None and scan.records:
        rep.notes.append(f"{wal}: a legacy log (no identity frame), replayed as it is")
    return scan


__all__ = ["Problem", "VerifyReport", "verify"]
