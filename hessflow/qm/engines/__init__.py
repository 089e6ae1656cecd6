"""QM engines, one module each, behind :class:`hessflow.qm.engines.base.Engine`.

The registry :data:`BUILTIN` maps an engine's name to ``"module:Class"``; engines of other
packages join it through the entry-point group ``hessflow.engines`` (docs/engines.md), e.g. in
their ``pyproject.toml``::

    [project.entry-points."hessflow.engines"]
    orca = "my_package.orca_engine:OrcaEngine"

Modules are imported only when their engine is asked for, so a missing optional program (or a
broken plugin) only matters then. :func:`get_engine` returns a usable instance;
:func:`engine_level` builds the :class:`~hessflow.qm.level.Level` for an engine from user
settings, with the engine's default method.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Mapping

from ...errors import EngineNotFound
from ...settings import settings_error
from ..level import Level
from .base import Engine, OptResult, SinglePoint

ENTRY_POINT_GROUP = "hessflow.engines"

#: the engines shipped with hessflow: name -> "module:Class"
BUILTIN = {"pyscf": "hessflow.qm.engines.pyscf_engine:PyscfEngine",
           "psi4": "hessflow.qm.engines.psi4_engine:Psi4Engine",
           "xtb": "hessflow.qm.engines.xtb_engine:XtbEngine",
           "gpu4pyscf": "hessflow.qm.engines.gpu4pyscf_engine:Gpu4pyscfEngine"}


def discover_engines() -> dict[str, str]:
    """The built-in engines plus those of installed packages (entry points; a built-in name
    cannot be taken over)."""
    found = dict(BUILTIN)
    try:
        eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # noqa: BLE001 - broken package metadata must not break hessflow
        eps = ()
    for ep in eps:
        found.setdefault(ep.name.lower(), ep.value)
    return found


REGISTRY = discover_engines()
#: every engine name known here (built-in first)
ENGINE_NAMES = tuple(REGISTRY)


def engine_class(name: str) -> type[Engine]:
    """The :class:`Engine` subclass registered as ``name`` (case-insensitive); raises
    :class:`EngineNotFound` for an unknown name or a module that cannot be imported."""
    key = str(name).lower()
    if key not in REGISTRY:
        raise EngineNotFound(f"engine {key!r} is not one of {', '.join(REGISTRY)}")
    module, _, attr = REGISTRY[key].partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise EngineNotFound(f"engine {key!r} ({REGISTRY[key]}) cannot be loaded: "
                             f"{type(exc).__name__}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Engine)):
        raise EngineNotFound(f"engine {key!r}: {REGISTRY[key]} is not a hessflow Engine")
    return cls


def get_engine(name: str) -> Engine:
    """A new instance of the engine ``name``; raises :class:`EngineNotFound` when it is unknown
    or its program is not usable on this machine (the reason in one line)."""
    eng = engine_class(name)()
    why = eng.why_not_found()
    if why:
        raise EngineNotFound(f"engine {str(name).lower()!r} is not usable here: {why}")
    return eng


def engine_level(name: str, settings: Mapping | None = None, where: str = "level") -> Level:
    """The :class:`Level` for engine ``name`` from user ``settings`` (a mapping of Level fields),
    checked field by field (errors name ``where.field``); the engine's default method
    (:attr:`Engine.default_method`, e.g. xTB's ``gfn2-xtb``) applies when none is given; a method
    that is named must be one the engine runs (:meth:`Engine.method_error`: ``--method nonsense``
    with xTB is refused rather than run as GFN2-xTB)."""
    cls = engine_class(name)
    method = (settings or {}).get("method")
    if method:
        why = cls.method_error(str(method))
        if why:
            raise settings_error(f"{where}.method", why)
    return Level.from_mapping(settings, where, default_method=cls.default_method)


__all__ = ["Engine", "OptResult", "SinglePoint", "get_engine", "engine_class", "engine_level",
           "discover_engines", "ENGINE_NAMES", "BUILTIN", "REGISTRY", "ENTRY_POINT_GROUP"]
