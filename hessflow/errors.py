"""Exceptions with one-line, user-facing messages."""


class HessflowError(Exception):
    """Base class. ``str(err)`` is a single line naming the molecule/field and the reason."""


class InputError(HessflowError):
    """A molecule or an input file cannot be used (bad SMILES, element, charge/multiplicity...)."""

    def __init__(self, name: str, reason: str):
        self.name = name
        self.reason = reason
        super().__init__(f"{name}: {reason}")


class EngineError(HessflowError):
    """An engine failed on a molecule (SCF not converged, optimisation failed, ...).

    ``kind`` classifies the failure for the fallback ladder: ``"scf"``, ``"opt"``,
    ``"engine"`` (anything else)."""

    def __init__(self, message: str, kind: str = "engine", last_coords_bohr=None):
        self.kind = kind
        self.last_coords_bohr = last_coords_bohr  # where a failed optimisation stopped
        super().__init__(" ".join(str(message).split()))

    def __reduce__(self):  # picklable with its attributes (errors cross process boundaries)
        return (type(self), (str(self), self.kind, self.last_coords_bohr))


class EngineNotFound(HessflowError):
    """The requested engine is not installed on this machine."""


class StoreError(HessflowError):
    """The HDF5 store cannot be opened or written."""


class SettingsError(HessflowError):
    """A setting (workflow config, executor profile, stage or training option) is invalid.

    ``str(err)`` is ``dotted.field: reason``."""
