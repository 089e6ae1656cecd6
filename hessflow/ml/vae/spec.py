"""The training spec of ``hessflow vae train``: what the command hands to every rank.

A spec is a JSON object: ``data`` (the molecules: QM9 CSV, store or ``.smi``), ``out`` (the run
directory), ``properties``, ``limit``, ``resume``, and the fields of
:class:`~hessflow.ml.vae.config.VAEConfig`. Run on every rank:
``mpiexec -n 2 python -m hessflow.ml.vae SPEC.json`` (``hessflow vae train`` writes the spec and
launches it).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ...settings import check_keys
from .config import VAEConfig, config_from_mapping
from .data import load_molecules
from .training import train_vae

#: the keys of a spec that are not VAEConfig fields
RUN_KEYS = ("data", "out", "properties", "limit", "resume")
CONFIG_KEYS = tuple(f.name for f in dataclasses.fields(VAEConfig))


def config_from_spec(spec: dict) -> VAEConfig:
    """The checked :class:`VAEConfig` of a spec (one-line errors naming the setting)."""
    check_keys(spec, RUN_KEYS + CONFIG_KEYS)
    return config_from_mapping({k: spec[k] for k in spec if k in CONFIG_KEYS})


def run_spec(spec: dict) -> dict:
    """Load the data named by ``spec`` and train (called on every rank); returns the metrics."""
    cfg = config_from_spec(spec)
    props = list(spec.get("properties") or [])
    names, smiles, y = load_molecules(spec["data"], props, spec.get("limit"))
    return train_vae(smiles, y, props, cfg, spec["out"], resume=bool(spec.get("resume")),
                     names=names, source=spec["data"])


def main(argv=None) -> int:
    """``python -m hessflow.ml.vae SPEC.json`` on every rank."""
    from ..core.launch import spec_main
    return spec_main(lambda path: run_spec(json.loads(Path(path).read_text())), "vae train", argv)
