"""The training spec of ``hessflow bp train``: what the command hands to every rank.

A spec is a JSON object: ``data``, ``out``, ``limit``, ``val``, ``test``, ``split_seed``,
``exclude_elements``, ``few_shot``, ``model`` (the fields of
:class:`~hessflow.ml.bp.config.BPConfig`) and ``train`` (those of
:class:`hessflow.ml.core.training.TrainConfig`). Run on every rank:
``mpiexec -n 2 python -m hessflow.ml.bp SPEC.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ...settings import from_mapping
from ..core.training import TrainConfig
from .config import config_from_mapping
from .data import load_energies
from .splits import molecule_splits
from .training import train_bp


def run_spec(spec_path) -> dict:
    """Train from a JSON spec (what ``hessflow bp train --ranks N`` hands to every MPI rank);
    returns the metrics."""
    spec = json.loads(Path(spec_path).read_text())
    mols, level = load_energies(spec["data"], spec.get("limit"))
    z_ex = spec.get("exclude_elements", [])
    splits = molecule_splits(mols, spec["val"], spec["test"], spec["split_seed"], z_ex,
                             spec.get("few_shot", 0))
    return train_bp(mols, config_from_mapping(spec["model"]),
                    from_mapping(TrainConfig, spec["train"], "train"),
                    spec["out"], splits, level, spec["data"])


def main(argv=None) -> int:
    """``python -m hessflow.ml.bp SPEC.json`` on every rank."""
    from ..core.launch import spec_main
    return spec_main(run_spec, "bp train", argv)
