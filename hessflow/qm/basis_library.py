"""Basis sets hessflow ships, read alike by every engine that takes basis files.

``6-31g(2df,p)`` is QM9's basis as Gaussian defines it (the two d shells at 2x and 0.5x the
6-31G* exponent); ``6-31g(2df,p)-bse`` is the Basis Set Exchange's (and PySCF's library) version,
which hessflow used before and which differs in the d exponents of Be-Ne. The files' headers say
how each was made; docs/benchmarks.md measures both against QM9. A shipped basis is part of the
content key by its digest (:func:`digest`), so editing a file recomputes what it changed; any
other basis name goes to the engine's own library.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

BASIS_DIR = Path(__file__).resolve().parent / "data" / "basis"

#: lower-case basis name -> file in :data:`BASIS_DIR` (psi4's file naming: ( ) , -> _)
SHIPPED = {"6-31g(2df,p)": "6-31g_2df_p_.gbs", "6-31g(2df,p)-bse": "6-31g_2df_p_-bse.gbs"}


def shipped_file(name: str) -> Path | None:
    """The shipped file of basis ``name`` (any case), or None for a name hessflow does not ship."""
    f = SHIPPED.get(str(name).lower())
    return BASIS_DIR / f if f else None


@functools.lru_cache(maxsize=None)
def digest(name: str) -> str | None:
    """The first 16 hex digits of the SHA-256 of the shipped file of ``name`` (None: not
    shipped): the basis's identity in content keys."""
    path = shipped_file(name)
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path else None


def pyscf_basis(name: str, symbols):
    """The ``basis`` argument of ``pyscf.gto.M`` for the element ``symbols``: a dict of parsed
    shells from the shipped file, or ``name`` itself (PySCF's library) when it is not shipped."""
    path = shipped_file(name)
    if path is None:
        return name
    from pyscf.gto.basis import parse_gaussian
    return {s: _load(str(path), s, parse_gaussian) for s in set(symbols)}


def _load(path: str, symbol: str, parser):
    try:
        return parser.load(path, symbol)
    except Exception as exc:  # PySCF's parser raises a bare error for a missing element
        raise KeyError(f"basis file {Path(path).name} has no element {symbol}") from exc
