"""The shapes of what ``--json`` prints, and a checker for them (no dependency: plain dicts).

A shape is one of:

- a type name: ``"string"``, ``"integer"``, ``"number"``, ``"boolean"``, ``"null"``, ``"any"``,
  or several joined by ``|`` (``"number|null"``: a float, or null where it is not known);
- a dict ``{key: shape}``: a JSON object with these keys (a key ending in ``?`` may be absent;
  other keys may be present); ``{"*": shape}``: an object whose every value has that shape;
- a one-item list ``[shape]``: an array of that shape.

Every object printed by ``--json`` carries ``"schema": "hessflow.COMMAND/1"``; the number
changes when a key changes meaning or goes away (new keys may appear without it).
"""

from __future__ import annotations

__all__ = ["SCHEMAS", "check", "render"]

METRICS = {"n": "integer", "mae": "number|null", "rmse": "number|null", "mre?": "number|null",
           "pearson_r?": "number|null", "r2?": "number|null"}
MOLECULE = {"name": "string", "status": "string", "key": "string|null", "reason": "string|null",
            "energy_hartree": "number|null", "zpve_hartree": "number|null",
            "alpha_iso_bohr3": "number|null", "beta_par_au": "number|null",
            "gap_hartree": "number|null", "n_imag": "integer|null", "wall_time_s": "number|null"}
COMPUTE = {"schema": "string", "store": "string", "done": "integer", "skipped": "integer",
           "failed": "integer", "molecules": [MOLECULE]}
BP_SPLIT = {"n": "integer", "mae": "number", "rmse": "number", "n_molecules?": "integer",
            "per_element?": {"*": {"mae_kcalmol": "number"}},
            "force_mae_hartree_bohr?": "number", "force_rmse_hartree_bohr?": "number",
            "force_mae_ev_angstrom?": "number", "force_rmse_ev_angstrom?": "number",
            "n_force_geometries?": "integer"}

SCHEMAS = {
    "compute": COMPUTE,
    "run": {**COMPUTE, "stages": ["string"], "stage_failed": "boolean", "wall_s": "number"},
    "status": {"schema": "string", "store": "string", "records": "integer",
               "by_status": {"done": "integer", "failed": "integer", "pending": "integer"},
               "throughput_records_per_h": "number|null", "mean_compute_s": "number|null",
               "first_created_unix": "number|null", "last_result_unix": "number|null"},
    "info": {"schema": "string", "store": "string", "records": "integer",
             "by_status": {"*": "integer"}, "engines": {"*": "integer"},
             "methods": {"*": "integer"}},
    "train": {"schema": "string", "run_dir": "string", "target": "string", "unit": "string",
              "model": "string", "kfold": "integer", "train": METRICS, "val": METRICS,
              "test": METRICS, "best_epoch": "integer|null", "epochs_run": "integer|null"},
    "bp evaluate": {"schema": "string", "data": "string", "run": "string", "unit": "string",
                    "held_out?": BP_SPLIT, "seen?": BP_SPLIT},
}

_TYPES = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
          "null": (type(None),)}


def check(value, shape, where: str = "$") -> list[str]:
    """Where ``value`` departs from ``shape``: one ``path: problem`` line each (empty: it fits)."""
    if isinstance(shape, str):
        names = shape.split("|")
        if "any" in names:
            return []
        for n in names:
            types = _TYPES[n]
            if isinstance(value, types) and not (n in ("integer", "number")
                                                 and isinstance(value, bool)):
                return []
        return [f"{where}: expected {shape}, got {type(value).__name__} {value!r:.40}"]
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{where}: expected an array, got {type(value).__name__}"]
        return [p for i, v in enumerate(value) for p in check(v, shape[0], f"{where}[{i}]")]
    if not isinstance(value, dict):
        return [f"{where}: expected an object, got {type(value).__name__}"]
    if list(shape) == ["*"]:
        return [p for k, v in value.items() for p in check(v, shape["*"], f"{where}.{k}")]
    out = []
    for key, sub in shape.items():
        name = key.rstrip("?")
        if name not in value:
            if not key.endswith("?"):
                out.append(f"{where}: missing key {name!r}")
            continue
        out += check(value[name], sub, f"{where}.{name}")
    return out


def render(shape, indent: int = 0) -> str:
    """``shape`` as indented text for docs/cli.md (``key: type``; ``?``: may be absent)."""
    pad = "  " * indent
    if isinstance(shape, str):
        return shape
    if isinstance(shape, list):
        inner = render(shape[0], indent)
        return f"[{inner}]" if isinstance(shape[0], str) else f"array of\n{inner}"
    lines = []
    for key, sub in shape.items():
        key = "(any key)" if key == "*" else key
        if isinstance(sub, str):
            lines.append(f"{pad}{key}: {sub}")
        elif isinstance(sub, list) and isinstance(sub[0], str):
            lines.append(f"{pad}{key}: [{sub[0]}]")
        elif isinstance(sub, list):
            lines.append(f"{pad}{key}: array of")
            lines.append(render(sub[0], indent + 1))
        else:
            lines.append(f"{pad}{key}:")
            lines.append(render(sub, indent + 1))
    return "\n".join(lines)
