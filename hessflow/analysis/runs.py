"""Finished property-model training runs (``hessflow train --out RUN_DIR``), read back.

A run directory holds ``spec.json`` (the :class:`~hessflow.ml.property.experiment.TrainSpec`),
``metrics.json``, ``splits.json``, ``predictions.json`` and ``model.pt``; a k-fold run has
``fold0`` ... beside its summary ``metrics.json``. (The SMILES VAE's runs are read by
``hessflow.ml.vae``, the BP network's by ``hessflow.ml.bp``.)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..errors import HessflowError, SettingsError
from ..ml.property.experiment import TrainSpec

__all__ = ["PropertyRun", "load_property_run", "load_property_model"]


@dataclasses.dataclass
class PropertyRun:
    """A property-model run directory: its spec and metrics (``{}`` before the run finished)."""
    run_dir: Path
    spec: TrainSpec
    metrics: dict


def load_property_run(run_dir) -> PropertyRun:
    """The spec (from ``spec.json``, else the ``spec`` recorded in ``metrics.json``) and the
    metrics of a property-model run directory; HessflowError when it is not one."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise HessflowError(f"{run_dir}: no such run directory")
    metrics = {}
    if (run_dir / "metrics.json").exists():
        metrics = json.loads((run_dir / "metrics.json").read_text())
    if (run_dir / "spec.json").exists():
        raw, source = json.loads((run_dir / "spec.json").read_text()), "spec.json"
    elif "spec" in metrics:
        raw, source = metrics["spec"], "metrics.json"
    else:
        raise HessflowError(f"{run_dir}: neither spec.json nor a spec in metrics.json: not a "
                            f"training run directory (hessflow train --out DIR)")
    try:
        spec = TrainSpec.parse(raw)
    except SettingsError as exc:
        raise HessflowError(f"{run_dir / source}: {exc}") from None
    return PropertyRun(run_dir, spec, metrics)


def load_property_model(run_dir, model_fn, device):
    """The trained network of a run directory: ``model_fn()`` with the weights of ``model.pt``
    (a state dict, or a checkpoint holding one under ``model``), on ``device``, in eval mode."""
    import torch
    path = Path(run_dir) / "model.pt"
    if not path.exists():
        raise HessflowError(f"{run_dir}: no model.pt (the run has not finished)")
    model = model_fn()
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state \
            and not any(k.endswith("weight") for k in state):
        state = state["model"]  # a checkpoint rather than a state_dict
    model.load_state_dict(state)
    return model.to(device).eval()
