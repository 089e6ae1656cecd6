"""What defines a Behler–Parrinello network: :class:`BPConfig` and its element channel table.

A typed settings dataclass (:mod:`hessflow.settings`): built from user input (a ``bp train``
spec) with :func:`config_from_mapping`, one-line errors naming the field.
"""

from __future__ import annotations

import dataclasses

from ...errors import HessflowError
from ...qm.molecules.elements import symbol
from ...settings import from_mapping, meta, settings_error
from .acsf import ACSFParams, onehot_table

#: the largest atomic number of a channel table (iodine is 53)
MAX_Z = 54
FEATURE_KINDS = ("modes", "onehot")
REFERENCES = ("fit", "atoms")


def elements_text(zs) -> str:
    """'H,C,O' for atomic numbers ``zs`` (sorted)."""
    return ",".join(symbol(z) for z in sorted(zs))


def _widths(where: str, value):
    if any(int(h) < 1 for h in value):
        raise settings_error(where, f"hidden widths must be >= 1, got {list(value)}")
    return value


@dataclasses.dataclass
class BPConfig:
    """What defines a network (saved as config.json in the run directory)."""

    features: str = dataclasses.field(
        default="modes", metadata=meta("element channels: elemental modes (element-coupled) or "
                                       "one-hot (baseline)", choices=FEATURE_KINDS))
    n_modes: int = dataclasses.field(default=4, metadata=meta("number of elemental modes k, for "
                                                              "features='modes'", minimum=1))
    modes_seed: int = dataclasses.field(default=0, metadata=meta("seed of the modes autoencoder"))
    elements: tuple[int, ...] = dataclasses.field(
        default=(), metadata=meta("one-hot element list (atomic numbers); () = from the data"))
    hidden: tuple[int, ...] = dataclasses.field(
        default=(64, 64), metadata=meta("atomic network hidden widths", check=_widths))
    activation: str = dataclasses.field(default="tanh", metadata=meta("atomic network activation"))
    reference: str = dataclasses.field(
        default="fit", metadata=meta("per-element reference energies: least squares on the "
                                     "training molecules, or free atoms", choices=REFERENCES))
    acsf: ACSFParams = dataclasses.field(default_factory=ACSFParams,
                                         metadata=meta("symmetry-function parameters"))
    force_weight: float = dataclasses.field(default=0.0, metadata=meta(
        "training: weight of the force term, loss = MSE(E) + force_weight * MSE(F) per "
        "component, both in units of the standardised energy (0: energies only; geometries "
        "without forces add no force term)", minimum=0))

    def __post_init__(self):  # tuples of ints however they were given
        self.elements = tuple(int(z) for z in self.elements)
        self.hidden = tuple(int(h) for h in self.hidden)
        if isinstance(self.acsf, dict):
            self.acsf = ACSFParams.from_dict(self.acsf)

    def to_dict(self) -> dict:
        """Plain data (lists), as saved in config.json and in a spec."""
        d = dataclasses.asdict(self)
        d["acsf"] = self.acsf.to_dict()
        d["elements"], d["hidden"] = list(self.elements), list(self.hidden)
        return d


def channel_table(cfg: BPConfig):
    """(table (MAX_Z+1, C), modes or None) for the configured feature kind."""
    if cfg.features == "modes":
        from .modes import fit_modes
        modes = fit_modes(cfg.n_modes, seed=cfg.modes_seed)
        return modes.table(MAX_Z), modes
    if not cfg.elements:
        raise HessflowError("elements: the one-hot baseline needs its element list")
    return onehot_table(cfg.elements, MAX_Z), None


def config_from_mapping(mapping, where: str = "model") -> BPConfig:
    """A checked :class:`BPConfig` from a mapping of its fields (``acsf`` a mapping of
    :class:`~hessflow.ml.bp.acsf.ACSFParams` fields; unknown keys are errors)."""
    mapping = dict(mapping)
    if isinstance(mapping.get("acsf"), dict):
        mapping["acsf"] = ACSFParams.from_dict(mapping["acsf"], f"{where}.acsf")
    return from_mapping(BPConfig, mapping, where)
