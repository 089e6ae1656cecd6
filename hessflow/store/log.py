"""The write-ahead log (``FILE.h5.wal``): framed entries, one record each.

A frame is ``magic (4 bytes), payload length (u64), CRC32 of the payload (u32)``, little-endian,
then the payload. The current payload (magic ``HFW2``) is a u32 length of a JSON header, the header
``{"s": scalar and string fields, "a": [[field, dtype, shape], ...]}``, then the arrays' bytes in
that order. HFW1 payloads (an .npz archive per record: the first log format, ~10x slower to
encode, ~6x to decode) are still read.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np

from ..qm.record import empty_record

MAGIC = b"HFW2"
MAGIC_NPZ = b"HFW1"
FRAME = struct.Struct("<4sQI")  # magic, payload length, crc32
_U32 = struct.Struct("<I")


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
    payload = b"".join([_U32.pack(len(head)), head, *blobs])
    return FRAME.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def decode(payload: bytes) -> dict:
    """The record of an HFW2 payload (the frame's bytes after its header)."""
    rec = empty_record()
    (n,) = _U32.unpack_from(payload, 0)
    head = json.loads(payload[_U32.size:_U32.size + n])
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


DECODERS = {MAGIC: decode, MAGIC_NPZ: decode_npz}


def read_log(path: Path) -> tuple[list[dict], int]:
    """The records of the valid entries of the log at ``path`` and the byte length of its valid
    prefix. Reading stops at the first torn or corrupt entry (a kill in the middle of a write)."""
    out = []
    if not path.exists():
        return out, 0
    data = path.read_bytes()
    pos = 0
    while pos + FRAME.size <= len(data):
        magic, length, crc = FRAME.unpack_from(data, pos)
        start, end = pos + FRAME.size, pos + FRAME.size + length
        if magic not in DECODERS or end > len(data):
            break
        payload = data[start:end]
        if zlib.crc32(payload) != crc:
            break
        try:
            out.append(DECODERS[magic](payload))
        except Exception:
            break
        pos = end
    return out, pos
