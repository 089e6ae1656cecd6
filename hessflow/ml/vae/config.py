"""The SMILES VAE's settings (:class:`VAEConfig`) and its KL-weight schedule (:func:`kl_weight_at`).

A typed settings dataclass (:mod:`hessflow.settings`): built from user input with
:func:`config_from_mapping`, which checks every field once and raises one-line
:class:`~hessflow.errors.SettingsError`\\ s naming the field ("did you mean" for a misspelt key).
"""

from __future__ import annotations

import dataclasses
import math

from ...settings import from_mapping, meta, settings_error

ANNEALING = ("sigmoid", "linear", "none")


def _widths(where: str, value):
    if any(int(h) < 1 for h in value):
        raise settings_error(where, f"hidden widths must be >= 1, got {list(value)}")
    return tuple(int(h) for h in value)


def _fraction(where: str, value):
    if not 0.0 <= value <= 1.0:
        raise settings_error(where, f"{value} is not in [0, 1]")
    return value


@dataclasses.dataclass
class VAEConfig:
    """Model, training and evaluation settings of ``hessflow vae train`` (saved in config.json)."""

    # model
    embed: int = dataclasses.field(default=48, metadata=meta("token embedding width", minimum=1))
    hidden: int = dataclasses.field(default=512, metadata=meta("GRU width", minimum=1))
    layers: int = dataclasses.field(default=2, metadata=meta("GRU layers", minimum=1))
    latent: int = dataclasses.field(default=56, metadata=meta("latent dimensions", minimum=1))
    predictor: tuple[int, ...] = dataclasses.field(
        default=(28, 14), metadata=meta("hidden widths of the property predictor", check=_widths))
    # training
    epochs: int = dataclasses.field(default=50, metadata=meta("epochs", minimum=1))
    batch_size: int = dataclasses.field(
        default=128, metadata=meta("global batch (all ranks together)", minimum=1))
    lr: float = dataclasses.field(default=1e-3, metadata=meta("Adam learning rate", minimum=0))
    kl_weight: float = dataclasses.field(
        default=0.1, metadata=meta("final KL weight (1.0 collapsed the posterior in short runs); "
                                   "the CLI's --beta", minimum=0))
    anneal: str = dataclasses.field(
        default="sigmoid", metadata=meta("KL-weight schedule", choices=ANNEALING))
    warmup_epochs: float = dataclasses.field(
        default=10.0, metadata=meta("epochs over which the KL weight rises from 0 to kl_weight",
                                    minimum=0, unit="epochs"))
    free_bits: float = dataclasses.field(
        default=0.0, metadata=meta("KL per latent dimension not penalised", minimum=0,
                                   unit="nats"))
    prop_weight: float = dataclasses.field(
        default=5.0, metadata=meta("weight of the property MSE", minimum=0))
    teacher_forcing: float = dataclasses.field(
        default=1.0, metadata=meta("probability of feeding the true previous token",
                                   check=_fraction))
    grad_clip: float = dataclasses.field(default=5.0, metadata=meta("max gradient norm (0: none)"))
    patience: int = dataclasses.field(
        default=1000, metadata=meta("epochs without validation improvement before stopping"))
    seed: int = 0
    device: str = "auto"
    val: float = dataclasses.field(default=0.1, metadata=meta("validation fraction",
                                                              check=_fraction))
    test: float = dataclasses.field(default=0.1, metadata=meta("test fraction", check=_fraction))
    # evaluation
    n_prior: int = dataclasses.field(
        default=1000, metadata=meta("prior samples for validity / uniqueness / novelty"))
    n_recon: int | None = dataclasses.field(
        default=None, metadata=meta("test molecules decoded for reconstruction (None: all)"))
    progress: bool = False

    def check(self) -> "VAEConfig":
        """This configuration checked as user input would be (one-line errors); returns it."""
        return config_from_mapping(dataclasses.asdict(self))

    def model_kwargs(self) -> dict:
        """The keyword arguments of :class:`~hessflow.ml.vae.model.SmilesVAE` (sizes)."""
        return {"embed": int(self.embed), "hidden": int(self.hidden), "layers": int(self.layers),
                "latent": int(self.latent), "predictor": tuple(int(h) for h in self.predictor)}


def config_from_mapping(mapping, where: str = "") -> VAEConfig:
    """A checked :class:`VAEConfig` from a mapping of its fields (unknown keys are errors)."""
    return from_mapping(VAEConfig, mapping, where)


def kl_weight_at(cfg: VAEConfig, epoch: float) -> float:
    """The KL weight at (fractional) ``epoch``: ``cfg.kl_weight`` annealed over
    ``cfg.warmup_epochs`` (``sigmoid``: midpoint at warmup/2, 0.7 % of the final weight at 0 and
    99.3 % at warmup; ``linear``; ``none``: the final weight from the start)."""
    if cfg.anneal == "none" or cfg.warmup_epochs <= 0:
        return float(cfg.kl_weight)
    if cfg.anneal == "linear":
        return float(cfg.kl_weight) * min(1.0, epoch / cfg.warmup_epochs)
    k = 10.0 / cfg.warmup_epochs
    return float(cfg.kl_weight) / (1.0 + math.exp(-k * (epoch - cfg.warmup_epochs / 2)))
