"""The write-ahead log (``FILE.h5.wal``): an identity frame, then framed entries, one record each.

A frame is ``magic (4 bytes), payload length (u64), CRC32 of the payload (u32)``, little-endian,
then the payload.

- ``HFWI``, the log's first frame: its identity, JSON ``{"store_id": "<uuid>", "log": 3}``, the
  ``store_id`` attribute of the ``.h5`` it belongs to. A log without one (written before
  identities, or whose first frame is a record) is a *legacy* log and is accepted as such.
- ``HFW2``, a record: a u32 length of a JSON header, the header ``{"s": scalar and string
  fields, "a": [[field, dtype, shape], ...]}``, then the arrays' bytes in that order.
- ``HFW1``, a record of the first log format (an .npz archive per record: ~10x slower to encode,
  ~6x to decode), still read.

A frame that fails its checks (unknown magic, a length past the end, a CRC mismatch, a payload
that does not decode) is skipped by resynchronising: the reader looks for the next magic whose
frame checks out. Skipped bytes followed by an intact frame are *damage* (counted, reported,
never taking the later records with them); skipped bytes at the end are the *torn tail* of a
write that never returned (a kill or a full disk in the middle of ``put``).
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import struct
import zlib
from pathlib import Path

import numpy as np

from ..qm.record import empty_record

MAGIC = b"HFW2"
MAGIC_NPZ = b"HFW1"
MAGIC_ID = b"HFWI"
LOG_VERSION = 3
FRAME = struct.Struct("<4sQI")  # magic, payload length, crc32
_U32 = struct.Struct("<I")
_KEY_IN_PAYLOAD = re.compile(rb'"key": "([\x21-\x7e]{1,64}?)"')
_NAME_IN_PAYLOAD = re.compile(rb'"name": "([^"\\]{0,200})"')


def frame(magic: bytes, payload: bytes) -> bytes:
    """One log frame: header (magic, length, CRC32) and ``payload``."""
    return FRAME.pack(magic, len(payload), zlib.crc32(payload)) + payload


def identity_frame(store_id: str) -> bytes:
    """The log's first frame: the ``store_id`` of the .h5 it belongs to."""
    return frame(MAGIC_ID, json.dumps({"store_id": store_id, "log": LOG_VERSION}).encode())


def encode(rec: dict) -> bytes:
    """One log frame (HFW2) holding record ``rec``; fields that are None are left out."""
    scalars, meta, blobs = {}, [], []
    for k, v in rec.items():
        if v is None:
            continue
        if isinstance(v, str):
            scalars[k] = v
        elif isinstance(v, (int, float, np.generic)) or np.ndim(v) == 0:
            scalars[k] = v.item() if hasattr(v, "item") else v
        else:
            a = np.ascontiguousarray(v)
            meta.append([k, a.dtype.str, list(a.shape)])
            blobs.append(a.tobytes())
    head = json.dumps({"s": scalars, "a": meta}).encode()
    return frame(MAGIC, b"".join([_U32.pack(len(head)), head, *blobs]))


def decode(payload: bytes) -> dict:
    """The record of an HFW2 payload (the frame's bytes after its header)."""
    rec = empty_record()
    (n,) = _U32.unpack_from(payload, 0)
    head = json.loads(payload[_U32.size:_U32.size + n])
    unknown = set(head["s"]) - set(rec)
    if unknown:
        raise ValueError(f"log entry: unknown fields {sorted(unknown)}")
    rec.update(head["s"])
    pos = _U32.size + n
    for k, dtype, shape in head["a"]:
        dt = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        rec[k] = np.frombuffer(payload, dt, count, pos).reshape(shape).copy()
        pos += count * dt.itemsize
    if pos != len(payload):
        raise ValueError("log entry: trailing bytes")
    return rec


def decode_npz(payload: bytes) -> dict:
    """The record of an HFW1 payload (an .npz archive, one array per field)."""
    rec = empty_record()
    with np.load(io.BytesIO(payload), allow_pickle=False) as z:
        for k in z.files:
            v = z[k]
            if v.dtype.kind == "U":
                rec[k] = str(v)
            elif v.ndim == 0:
                rec[k] = v.item()
            else:
                rec[k] = v
    return rec


def decode_identity(payload: bytes) -> str:
    """The ``store_id`` of an identity frame's payload."""
    return str(json.loads(payload)["store_id"])


DECODERS = {MAGIC: decode, MAGIC_NPZ: decode_npz, MAGIC_ID: decode_identity}
_MAGICS = re.compile(b"|".join(re.escape(m) for m in DECODERS))


@dataclasses.dataclass
class Damage:
    """Bytes of the log skipped between two intact frames: ``offset``, ``length`` (bytes) and,
    when the damaged bytes still show them, the record's key and name (else '')."""
    offset: int
    length: int
    key: str = ""
    name: str = ""

    def describe(self) -> str:
        who = f"record {self.key}" + (f" ({self.name})" if self.name else "") if self.key \
            else "an unidentified record"
        return f"damaged log frame at byte {self.offset} ({self.length} bytes skipped): {who} lost"


@dataclasses.dataclass
class LogScan:
    """What :func:`read_log` found in a log.

    ``records``: the intact entries' records, in log order; ``end``: the byte just after the last
    intact frame (a writer appends there); ``store_id``: the identity frame's store id (None: a
    legacy log, or none yet); ``id_damaged``: the log starts with a damaged identity frame;
    ``damage``: skipped regions followed by intact frames; ``torn_tail``: bytes after ``end``;
    ``size``: the log's size in bytes; ``frames``: intact frames read."""
    records: list
    end: int = 0
    store_id: str | None = None
    id_damaged: bool = False
    damage: list = dataclasses.field(default_factory=list)
    torn_tail: int = 0
    size: int = 0
    frames: int = 0


def _frame_at(data: bytes, pos: int):
    """``(magic, decoded, end)`` of an intact frame at ``pos``, or None."""
    if pos + FRAME.size > len(data):
        return None
    magic, length, crc = FRAME.unpack_from(data, pos)
    end = pos + FRAME.size + length
    if magic not in DECODERS or end > len(data):
        return None
    payload = data[pos + FRAME.size:end]
    if zlib.crc32(payload) != crc:
        return None
    try:
        return magic, DECODERS[magic](payload), end
    except Exception:
        return None


def _who(chunk: bytes) -> tuple[str, str]:
    key = _KEY_IN_PAYLOAD.search(chunk)
    name = _NAME_IN_PAYLOAD.search(chunk)
    return (key.group(1).decode("ascii") if key else "",
            name.group(1).decode("utf-8", "replace") if name and key else "")


def scan(data: bytes) -> LogScan:
    """Read a log's bytes: every intact frame, resynchronising past damaged ones."""
    out = LogScan(records=[], size=len(data))
    pos = 0
    bad_from = None
    while pos < len(data):
        got = _frame_at(data, pos)
        if got is None:
            if bad_from is None:
                bad_from = pos
            m = _MAGICS.search(data, pos + 1)
            if m is None:
                break
            pos = m.start()
            continue
        magic, value, end = got
        if bad_from is not None:
            if bad_from == 0 and data[:4] == MAGIC_ID:
                out.id_damaged = True
            out.damage.append(Damage(bad_from, pos - bad_from, *_who(data[bad_from:pos])))
            bad_from = None
        if magic == MAGIC_ID:
            if pos == 0:
                out.store_id = value
        else:
            out.records.append(value)
        out.frames += 1
        out.end = pos = end
    if bad_from is not None:
        if bad_from == 0 and data[:4] == MAGIC_ID:
            out.id_damaged = True
        out.torn_tail = len(data) - out.end
    return out


def read_log(path: Path) -> LogScan:
    """:func:`scan` of the log at ``path`` (an empty scan if there is none)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return LogScan(records=[])
    return scan(data)

