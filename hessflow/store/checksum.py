"""Checksums on the data: a CRC32 of every field of every record, kept in ``/records/checksum``.

Each record has one row of :data:`FIELDS` CRC32s (zlib's CRC32, as ``zlib.crc32`` computes it)
of the field's *canonical bytes*:

- strings: their UTF-8 bytes (``key`` and ``status`` are ASCII; fixed-width padding excluded);
- ``int32`` scalars: 4 bytes, little-endian; ``float64`` scalars and fixed tensors: 8 bytes each,
  little-endian, C order, every NaN as the one quiet NaN ``0x7ff8000000000000``;
- ragged arrays: their values in the field's dtype, little-endian, C order (floats' NaNs as
  above); a field that is not computed (None, an empty slice) is no bytes, CRC32 0.

Damage in a value, in the ragged index (``start``/``length`` pointing elsewhere) or in the
checksum itself makes a field fail its CRC, so it is flagged instead of read back as a value.
"""

from __future__ import annotations

import zlib

import numpy as np

from ..qm.record import empty_record
from .schema import FIXED, RAGGED, SCALARS, is_text

FIELDS: tuple[str, ...] = (*SCALARS, *FIXED, *RAGGED)   # the columns of /records/checksum
INDEX = {f: i for i, f in enumerate(FIELDS)}
ALGORITHM = ("crc32 (zlib) of each field's canonical bytes, columns in attrs['fields']; "
             "docs/store.md")

_TABLE = np.zeros(256, np.uint32)
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0xEDB88320 if _c & 1 else _c >> 1
    _TABLE[_i] = _c


_LE: dict = {}


def _canonical(values: np.ndarray, dtype) -> np.ndarray:
    """``values`` as a contiguous little-endian array of ``dtype``, floats' NaNs canonical."""
    le = _LE.get(dtype)
    if le is None:
        le = _LE[dtype] = np.dtype(dtype).newbyteorder("<")
    a = np.ascontiguousarray(np.asarray(values, dtype=le))
    if a.dtype.kind == "f":
        nan = np.isnan(a)
        if nan.any():
            a = a.copy()
            a[nan] = np.nan  # the one quiet NaN, whatever sign and payload the value had
    return a


def crc_rows(rows: np.ndarray) -> np.ndarray:
    """zlib's CRC32 of each row of the ``(n, width)`` uint8 array ``rows``, vectorised over rows
    (fast for narrow rows: a few bytes each)."""
    crc = np.full(rows.shape[0], 0xFFFFFFFF, np.uint32)
    for j in range(rows.shape[1]):
        crc = _TABLE[(crc ^ rows[:, j]) & 0xFF] ^ (crc >> np.uint32(8))
    return crc ^ np.uint32(0xFFFFFFFF)


def text_crc(value) -> int:
    """The CRC32 of a string field's value (its UTF-8 bytes)."""
    if isinstance(value, bytes):
        return zlib.crc32(value.rstrip(b"\0"))
    return zlib.crc32(str(value).encode("utf-8"))


def array_crc(field: str, value) -> int:
    """The CRC32 of a fixed or ragged field's value (None or empty: 0)."""
    if value is None:
        return 0
    dt = RAGGED[field][0] if field in RAGGED else np.float64
    a = _canonical(value, dt)
    return zlib.crc32(a.data) if a.size else 0


def array_matches(field: str, value, want: int) -> bool:
    """Whether a fixed or ragged field's value read back has the CRC32 ``want``: the CRC32 of
    its bytes as they are first (the usual case, no copy), the canonical one if that differs."""
    if value is None or not np.size(value):
        return int(want) == 0
    if isinstance(value, np.ndarray) and value.flags.c_contiguous and \
            zlib.crc32(value.data) == want:
        return True
    return array_crc(field, value) == want


def column_crcs(col: str, values) -> np.ndarray:
    """The CRC32 of every value of the scalar or fixed column ``col`` (one per row)."""
    if col in SCALARS and is_text(col):
        return np.fromiter((text_crc(v) for v in values), np.uint32, len(values))
    dt = SCALARS[col][0] if col in SCALARS else np.float64
    a = _canonical(values, dt)
    n = a.shape[0] if a.ndim else 0
    if n == 0:
        return np.zeros(0, np.uint32)
    rows = a.reshape(n, -1).view(np.uint8).reshape(n, -1)
    return crc_rows(rows)


def record_crcs(rec: dict) -> np.ndarray:
    """The :data:`FIELDS` CRC32s of a normalised record (see
    :func:`hessflow.store.schema.normalise`)."""
    out = np.zeros(len(FIELDS), np.uint32)
    for i, f in enumerate(FIELDS):
        if f in SCALARS:
            out[i] = text_crc(rec[f]) if is_text(f) else int(column_crcs(f, [rec[f]])[0])
        else:
            out[i] = array_crc(f, rec[f])
    return out


def records_crcs(records: list[dict]) -> np.ndarray:
    """``(len(records), len(FIELDS))`` CRC32s of normalised records (scalars vectorised)."""
    out = np.zeros((len(records), len(FIELDS)), np.uint32)
    if not records:
        return out
    for i, f in enumerate(FIELDS):
        vals = [r[f] for r in records]
        if f in SCALARS and is_text(f):
            out[:, i] = column_crcs(f, vals)
        elif f in SCALARS or f in FIXED:
            out[:, i] = column_crcs(f, np.asarray(vals))
        else:
            out[:, i] = [array_crc(f, v) for v in vals]
    return out


def empty_crcs() -> np.ndarray:
    """The :data:`FIELDS` CRC32s of a record with every field "not computed" (the value a field
    that a file has no column for reads as)."""
    return record_crcs(empty_record())


def in_field_order(crcs: np.ndarray, fields: list[str]) -> np.ndarray:
    """A checksum table whose columns are ``fields`` (a file's ``fields`` attribute, e.g. one
    written before a field was added) as a table in :data:`FIELDS` order: the columns matched by
    name, a field the file has no column for given the CRC32 of its "not computed" value."""
    if list(fields) == list(FIELDS):
        return crcs
    out = np.repeat(empty_crcs()[None, :], crcs.shape[0], axis=0)
    pos = {f: i for i, f in enumerate(fields)}
    for j, f in enumerate(FIELDS):
        if f in pos:
            out[:, j] = crcs[:, pos[f]]
    return out
