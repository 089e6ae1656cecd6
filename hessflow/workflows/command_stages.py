"""The stages that run a ``hessflow NAME train DATA --key value ...`` command (``vae``, ``bp``):
typed settings whose fields are the command's options, turned into its argv.

A field left unset (``None``) is not passed, so the command's own default applies
(``hessflow vae train --help``, ``hessflow bp train --help``); ``true`` gives a flag; a list is
joined with commas. ``data`` defaults to the workflow's store (``bp``: the conformers stage's
store when there is one), ``out`` to ``<run_dir>/<stage>``; ``after`` is the fraction of the
molecules that must be done first.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Mapping

from ..settings import from_mapping, meta, settings_error

__all__ = ["CommandStage", "VAEStage", "BPStage", "after_field", "fraction", "mapping_of"]


def _opt(help: str = "", **checks):
    """An option of the command: unset (None) by default."""
    return dataclasses.field(default=None, metadata=meta(help, **checks))


def fraction(where: str, v: float) -> float:
    """The check of an ``after`` setting: a fraction in (0, 1]."""
    if not 0 < v <= 1:
        raise settings_error(where, f"{v!r} is not a fraction in (0, 1]")
    return v


def after_field():
    """The ``after`` setting of a stage: run once this fraction of the molecules is done."""
    return dataclasses.field(default=1.0, metadata=meta(
        "run once this fraction of the molecules is done", check=fraction))


def mapping_of(d, where: str) -> Mapping:
    """``d`` itself when it is a mapping, ``{}`` for None; else a one-line error at ``where``."""
    if d is None:
        return {}
    if not isinstance(d, Mapping):
        raise settings_error(where, f"expected a mapping, got {type(d).__name__} {d!r}")
    return d


def _value(v) -> str:
    """An option's value on the command line: lists comma-joined, mappings as JSON."""
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v))
    if isinstance(v, Mapping):
        return json.dumps(v)
    return str(v)


@dataclasses.dataclass
class CommandStage:
    """The options every training command takes (:mod:`hessflow.cli.options`), and the stage's
    own ``data``, ``out`` and ``after``."""

    COMMAND = ""  # the sub-command: hessflow COMMAND train ...

    data: Path = dataclasses.field(default=Path(), metadata=meta("training data"))
    out: Path = dataclasses.field(default=Path(), metadata=meta("run directory"))
    after: float = after_field()
    ranks: int = dataclasses.field(default=1, metadata=meta("data-parallel ranks", minimum=1))
    epochs: int | None = _opt("training epochs", minimum=1)
    batch_size: int | None = _opt("global batch, split over the ranks", minimum=1)
    lr: float | None = _opt("Adam learning rate", minimum=0)
    patience: int | None = _opt("epochs without a better validation loss before stopping",
                                minimum=0)
    seed: int | None = _opt("split and initialisation seed")
    limit: int | None = _opt("only the first N molecules", minimum=1)
    device: str | None = _opt("auto (GPU if present), cpu, cuda")

    @classmethod
    def from_mapping(cls, mapping, where: str, default_data: Path, default_out: Path, rel):
        """The stage from its mapping; ``rel`` resolves a path relative to the config file."""
        d = dict(mapping_of(mapping, where))
        data, out = d.pop("data", None), d.pop("out", None)
        return from_mapping(cls, d, where, data=rel(data) if data else default_data,
                            out=rel(out) if out else default_out)

    @property
    def argv(self) -> list[str]:
        """``[COMMAND, "train", DATA, "--out-dir", OUT, --option value ...]`` (after ``hessflow``)."""
        argv = [self.COMMAND, "train", str(self.data), "--out-dir", str(self.out)]
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name in ("data", "out", "after") or v is None or v is False:
                continue
            flag = "--" + f.name.replace("_", "-")
            argv += [flag] if v is True else [flag, _value(v)]
        return argv


@dataclasses.dataclass
class VAEStage(CommandStage):
    """``stages.vae``: ``hessflow vae train``, the SMILES VAE and its property predictor."""

    COMMAND = "vae"

    properties: list[str] | str | None = _opt("alpha, zpve, gap, homo, lumo, dipole ([] for none)")
    embed: int | None = _opt("token embedding width", minimum=1)
    hidden: int | None = _opt("GRU width (encoder and decoder)", minimum=1)
    layers: int | None = _opt("GRU layers", minimum=1)
    latent: int | None = _opt("latent dimensions", minimum=1)
    predictor: list[int] | str | None = _opt("hidden widths of the property predictor")
    beta: float | None = _opt("final KL weight", minimum=0)
    anneal: str | None = _opt("KL weight schedule", choices=("sigmoid", "linear", "none"))
    warmup_epochs: float | None = _opt("epochs for the KL weight to reach beta", minimum=0)
    free_bits: float | None = _opt("nats per latent dimension", minimum=0)
    prop_weight: float | None = _opt("weight of the property loss", minimum=0)
    teacher_forcing: float | None = _opt("teacher-forcing ratio", minimum=0, maximum=1)
    n_prior: int | None = _opt("prior samples for the metrics", minimum=1)
    n_recon: int | None = _opt("test molecules for reconstruction (default all)", minimum=1)
    resume: bool = dataclasses.field(default=False, metadata=meta("continue from checkpoint.pt"))
    no_progress: bool = dataclasses.field(default=False, metadata=meta("no progress bar"))


@dataclasses.dataclass
class BPStage(CommandStage):
    """``stages.bp``: ``hessflow bp train``, the element-coupled Behler-Parrinello network."""

    COMMAND = "bp"

    features: str | None = _opt("element channels", choices=("modes", "onehot"))
    modes: int | None = _opt("number of elemental modes k", minimum=1)
    reference: str | None = _opt("per-element reference energies", choices=("fit", "atoms"))
    exclude_element: list[str] | str | None = _opt("keep molecules with these elements out of "
                                                   "train/val")
    few_shot: int | None = _opt("excluded molecules put back into training", minimum=0)
    hidden: list[int] | str | None = _opt("atomic network hidden widths")
    acsf: dict | str | None = _opt("symmetry-function parameters (hessflow.ml.bp.acsf.ACSFParams, "
                                   "Bohr)")
    force_weight: float | None = _opt("weight of the force loss (the conformers' gradients; 0: "
                                      "energies only)", minimum=0)
    val: float | None = _opt("fraction of molecules for validation", minimum=0, maximum=1)
    test: float | None = _opt("fraction of molecules for the test", minimum=0, maximum=1)
