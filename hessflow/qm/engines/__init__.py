"""QM engines, one module each, behind :class:`hessflow.qm.engines.base.Engine`.

``get_engine(name)`` returns an instance; engines are looked up lazily so a missing optional
program only matters when it is asked for.
"""

from __future__ import annotations

import importlib

from ...errors import EngineNotFound
from .base import Engine, OptResult, SinglePoint

_MODULES = {"pyscf": "pyscf_engine", "psi4": "psi4_engine", "xtb": "xtb_engine"}
ENGINE_NAMES = tuple(_MODULES)


def get_engine(name: str) -> Engine:
    name = name.lower()
    if name not in _MODULES:
        raise EngineNotFound(f"engine {name!r} is not one of {', '.join(_MODULES)}")
    mod = importlib.import_module(f".{_MODULES[name]}", __name__)
    eng = mod.ENGINE()
    why = eng.why_not_found()
    if why:
        raise EngineNotFound(f"engine {name!r} is not usable here: {why}")
    return eng


__all__ = ["Engine", "OptResult", "SinglePoint", "get_engine", "ENGINE_NAMES"]
