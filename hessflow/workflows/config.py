"""The workflow config (``hessflow run WORKFLOW.yaml``) as typed settings, validated up front.

Every problem is reported as one line naming the dotted field, e.g.
``qm.tasks: 'freqs' not among opt,freq,polar,hyperpolar``. Relative paths are relative to the
config file's folder. :func:`load_config` returns a :class:`WorkflowConfig`: the top-level
settings, :class:`QMSettings` (``qm:``), an :class:`~hessflow.slurm.profile.ExecutorProfile`
(``executor:``) and one dataclass per stage (:data:`STAGES`).

.. code-block:: yaml

    name: demo                       # default: the config file's stem
    inputs: [molecules.smi]          # SMILES/CSV/XYZ/SDF files or folders
    store: demo.h5
    run_dir: runs/demo               # Parsl logs, provenance; default runs/<name>
    limit: null                      # only the first N molecules of the inputs
    qm:
      engine: pyscf                  # pyscf | psi4 | xtb
      tasks: [opt, freq, polar, hyperpolar]
      level: {method: b3lyp, basis: 6-31g(2df,p)}   # any hessflow.qm.level.Level setting
      fallback: true                 # the per-failure-kind ladder (docs/workflows.md)
      conformer_seed: 61453
      batch_size: auto               # molecules per QM app (0: one app per task; auto: xtb 1)
    executor: {kind: local, workers: 2, threads_per_task: 1}  # docs/slurm.md
    stages:                          # optional, run after the QM part (docs/workflows.md)
      conformers: {samples: 10, temperature_k: 300, engine: xtb}  # displaced geometries + energies
      augment: {distribution: quantum, temperature_k: 300, samples: 100}
      train: {model: weave, target: alpha, ranks: 2}
      explain: {split: test, rule: epsilon}
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Mapping

import yaml

from ..ml.property.augment import DISTRIBUTIONS
from ..ml.property.experiment import TrainSpec
from ..qm.molecules.conformers import DEFAULT_SEED
from ..qm.engines import ENGINE_NAMES, engine_level
from ..qm.level import Level
from ..qm.tasks import TASKS
from ..settings import check_keys, did_you_mean, from_mapping, meta, settings_error
from ..slurm.profile import ExecutorProfile
from ..slurm.submit import sbatch_script
from .command_stages import BPStage, VAEStage, after_field, mapping_of

__all__ = ["WorkflowConfig", "QMSettings", "AugmentStage", "ConformersStage", "TrainStage",
           "ExplainStage", "VAEStage", "BPStage", "STAGES", "load_config", "parse_config"]

TOP_KEYS = ("name", "inputs", "store", "run_dir", "limit", "qm", "executor", "stages")


# --------------------------------------------------------------------------- shared checks
def _engine(where: str, v: str) -> str:
    """An engine name (any case) among the registered engines, lower-cased."""
    v = v.lower()
    if v not in ENGINE_NAMES:
        hint = did_you_mean(v, ENGINE_NAMES)
        raise settings_error(where, f"{v!r} is not one of {', '.join(ENGINE_NAMES)}"
                                    f"{hint if 'did you mean' in hint else ''}")
    return v


def _positive(where: str, v: int) -> int:
    if v < 1:
        raise settings_error(where, f"{v!r} is not a positive integer")
    return v


def _tasks(where: str, v) -> tuple[str, ...]:
    """A list (or a comma-separated string) among opt,freq,polar,hyperpolar, in that order."""
    tasks = v.split(",") if isinstance(v, str) else list(v)
    if not tasks:
        raise settings_error(where, "a list among opt,freq,polar,hyperpolar")
    for t in tasks:
        if t not in TASKS:
            raise settings_error(where, f"{t!r} not among {','.join(TASKS)}")
    return tuple(t for t in TASKS if t in tasks)


#: molecules per QM app of ``qm.batch_size: auto``, per engine (absent: 0, one app per task)
AUTO_BATCH = {"xtb": 1}


def _batch_size(where: str, v):
    """``auto`` or a whole number >= 0."""
    if isinstance(v, str):
        if v.strip().lower() != "auto":
            raise settings_error(where, f"{v!r} is not auto or a whole number >= 0")
        return "auto"
    if v < 0:
        raise settings_error(where, f"must be >= 0, got {v!r}")
    return v


def make_level(engine: str, settings, where: str) -> Level:
    """The :class:`Level` of ``settings`` (a mapping of Level fields) for ``engine`` (the engine's
    default method when none is given, e.g. xTB's gfn2-xtb); one line naming ``where.<field>`` on
    a bad setting."""
    if settings is not None and not isinstance(settings, Mapping):
        raise settings_error(where, "expected a mapping of Level settings")
    return engine_level(engine, settings, where)


# --------------------------------------------------------------------------- sections
@dataclasses.dataclass
class QMSettings:
    """The ``qm:`` section: engine, tasks and level of every molecule's QM part."""

    engine: str = dataclasses.field(default="pyscf", metadata=meta(
        "pyscf | psi4 | xtb", check=_engine))
    tasks: tuple[str, ...] | str = dataclasses.field(default=TASKS, metadata=meta(
        "among opt, freq, polar, hyperpolar", check=_tasks))
    level: Level = dataclasses.field(default_factory=Level, metadata=meta(
        "hessflow.qm.level.Level settings (xtb: method gfn2-xtb unless given)"))
    fallback: bool = dataclasses.field(default=True, metadata=meta(
        "the per-failure-kind fallback ladder (docs/workflows.md)"))
    conformer_seed: int = dataclasses.field(default=DEFAULT_SEED, metadata=meta(
        "RDKit embedding seed"))
    batch_size: int | str = dataclasses.field(default="auto", metadata=meta(
        "molecules per QM app: 0 one app per task, N all tasks of N molecules in one app, "
        "auto: 1 for xtb, 0 for the others", check=_batch_size))

    @property
    def molecules_per_app(self) -> int:
        """``batch_size`` resolved: "auto" is 1 for xtb (tasks of ~0.1 s: dispatch would
        dominate) and 0 for DFT engines (a molecule's Hessian, alpha and beta run in
        parallel)."""
        if self.batch_size == "auto":
            return AUTO_BATCH.get(self.engine, 0)
        return int(self.batch_size)

    @classmethod
    def from_mapping(cls, mapping, where: str = "qm") -> QMSettings:
        """The section of ``mapping`` (None: all defaults); the level follows the engine."""
        mapping = dict(mapping_of(mapping, where))
        level = mapping.pop("level", None)
        q = from_mapping(cls, mapping, where, level=Level())
        q.level = make_level(q.engine, level, f"{where}.level")
        return q


@dataclasses.dataclass
class _Sampling:
    """Normal-mode sampling shared by the augment and conformers stages."""

    distribution: str = dataclasses.field(default="quantum", metadata=meta(
        "normal-mode sampling distribution", choices=DISTRIBUTIONS))
    temperature_k: float = dataclasses.field(default=300.0, metadata=meta(
        "sampling temperature", minimum=0, unit="K"))
    after: float = after_field()


@dataclasses.dataclass
class AugmentStage(_Sampling):
    """``stages.augment``: vibration augmentation of the training set (written to HDF5 when
    ``write``; the train stage samples on the fly)."""

    samples: int = dataclasses.field(default=100, metadata=meta(
        "displaced geometries per molecule", check=_positive))
    write: bool = dataclasses.field(default=False, metadata=meta(
        "write <run_dir>/augmented.h5"))

    def text(self) -> str:
        """``DISTRIBUTION:TEMPERATURE_K:SAMPLES``, the train stage's ``augment`` setting."""
        return f"{self.distribution}:{self.temperature_k}:{self.samples}"


@dataclasses.dataclass
class ConformersStage(_Sampling):
    """``stages.conformers``: vibration-sampled geometries of every finished molecule (normal
    modes of its Hessian) with single-point energies, into a store of their own: the training
    set of energy models."""

    samples: int = dataclasses.field(default=10, metadata=meta(
        "geometries per molecule", check=_positive))
    engine: str = dataclasses.field(default="xtb", metadata=meta(
        "engine of the single points", check=_engine))
    level: Level = dataclasses.field(default_factory=Level, metadata=meta(
        "Level settings of the single points"))
    store: Path = dataclasses.field(default=Path(), metadata=meta(
        "the stage's own .h5 store; default <store>_conformers.h5"))
    seed: int = dataclasses.field(default=0, metadata=meta("sampling seed"))

    @classmethod
    def from_mapping(cls, mapping, where: str, main_store: Path, rel) -> ConformersStage:
        """The stage of ``mapping``; its store (``rel``: relative to the config file) must not
        be ``main_store``."""
        mapping = dict(mapping_of(mapping, where))
        level, store = mapping.pop("level", None), mapping.pop("store", None)
        c = from_mapping(cls, mapping, where, level=Level(), store=Path())
        c.level = make_level(c.engine, level, f"{where}.level")
        c.store = rel(store or main_store.with_name(main_store.stem + "_conformers.h5"))
        if c.store.suffix not in (".h5", ".hdf5") or c.store.resolve() == main_store.resolve():
            raise settings_error(f"{where}.store", f"{str(c.store)!r} must be another .h5 file "
                                                    "than the main store (one writer per file)")
        return c


@dataclasses.dataclass
class TrainStage:
    """``stages.train``: a property model trained on the store, on the ``mpi`` executor.
    ``spec`` is its :class:`~hessflow.ml.property.experiment.TrainSpec` (the settings of
    ``hessflow train``; data: the store, out: ``<run_dir>/train`` unless given), which
    ``python -m hessflow.ml.property.experiment`` reads."""

    spec: TrainSpec
    after: float = after_field()

    @classmethod
    def from_mapping(cls, mapping, where: str, augment: AugmentStage | None, run_dir: Path,
                     store: Path, rel) -> TrainStage:
        """The stage of ``mapping``: ``after`` and the TrainSpec of the rest, trained on
        ``store``; the augment stage's sampling is its augmentation unless it sets its own;
        ``out`` (``rel``: relative to the config file) defaults to ``<run_dir>/train``."""
        d = dict(mapping_of(mapping, where))
        after = d.pop("after", 1.0)
        if augment and "augment" not in d:
            d["augment"] = augment.text()
        d["data"], d["out"] = str(store), str(rel(d["out"]) if d.get("out") else run_dir / "train")
        return from_mapping(cls, {"after": after}, where, spec=TrainSpec.parse(d, where))


@dataclasses.dataclass
class ExplainStage:
    """``stages.explain``: layer-wise relevance of the train stage's model (and its report)."""

    split: str = dataclasses.field(default="test", metadata=meta(
        "molecules to explain", choices=("train", "val", "test", "all")))
    rule: str = dataclasses.field(default="epsilon", metadata=meta(
        "LRP rule", choices=("epsilon", "zplus", "gamma", "alphabeta")))
    report: bool = dataclasses.field(default=True, metadata=meta("also write the HTML report"))
    after: float = after_field()


# stage name -> its settings class, in the order the stages run
STAGES = {"conformers": ConformersStage, "augment": AugmentStage, "train": TrainStage,
          "bp": BPStage, "vae": VAEStage, "explain": ExplainStage}
KNOWN_STAGES = tuple(STAGES)
# the stages that run on the 'mpi' executor
MPI_STAGES = ("train", "bp", "vae")


# --------------------------------------------------------------------------- the config
@dataclasses.dataclass
class WorkflowConfig:
    """A loaded workflow: where the molecules come from and go, the QM part, the executor and
    the stages (stage name -> its settings object)."""

    path: Path
    name: str
    inputs: list[Path]
    store: Path
    run_dir: Path
    limit: int | None
    qm: QMSettings
    executor: ExecutorProfile
    stages: dict
    raw: dict

    # the qm section's fields, read by the workflow graph
    engine = property(lambda self: self.qm.engine)
    tasks = property(lambda self: self.qm.tasks)
    level = property(lambda self: self.qm.level)
    fallback = property(lambda self: self.qm.fallback)
    conformer_seed = property(lambda self: self.qm.conformer_seed)
    batch_size = property(lambda self: self.qm.molecules_per_app)

    def driver_script(self, python: str = sys.executable) -> str:
        """The sbatch script of the driver job (``hessflow run`` of this config, job name
        ``hessflow-<name>``, logs in ``<run_dir>/slurm``); needs a slurm executor."""
        command = [python, "-m", "hessflow", "run", str(self.path), "--no-progress"]
        return sbatch_script(self.executor, command, job_name=f"hessflow-{self.name}",
                             log_dir=self.run_dir / "slurm", workdir=self.path.parent)

    def write_driver_script(self) -> tuple[Path, str]:
        """Write :meth:`driver_script` to ``<run_dir>/driver.sbatch``; (path, script)."""
        script = self.driver_script()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / "driver.sbatch"
        path.write_text(script)
        return path, script


def load_config(path) -> WorkflowConfig:
    """Read and check the workflow YAML file at ``path``."""
    path = Path(path)
    if not path.is_file():
        raise settings_error(str(path), "no such workflow config")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise settings_error(str(path), f"not valid YAML{where}: "
                                        f"{getattr(exc, 'problem', exc)}") from None
    return parse_config(raw, path)


def parse_config(raw, path: Path) -> WorkflowConfig:
    """Check the mapping ``raw`` of the config file at ``path`` (relative paths are relative to
    its folder) and build the :class:`WorkflowConfig`."""
    if not isinstance(raw, dict):
        raise settings_error(str(path), "a workflow config is a YAML mapping")
    check_keys(raw, TOP_KEYS)
    base = path.resolve().parent

    def rel(p) -> Path:
        p = Path(str(p)).expanduser()
        return p if p.is_absolute() else base / p

    name = str(raw.get("name") or path.stem)
    inputs = raw.get("inputs")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not inputs or not isinstance(inputs, list):
        raise settings_error("inputs", "give one or more molecule files (a list of paths)")
    inputs = [rel(p) for p in inputs]
    for i, p in enumerate(inputs):
        if not p.exists():
            raise settings_error(f"inputs[{i}]", f"{p} does not exist")
    if not raw.get("store"):
        raise settings_error("store", "missing: the HDF5 file to write")
    store = rel(raw["store"])
    if store.suffix not in (".h5", ".hdf5"):
        raise settings_error("store", f"{raw['store']!r} should end in .h5")
    run_dir = rel(raw.get("run_dir") or f"runs/{name}")
    limit = raw.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise settings_error("limit", f"{limit!r} is not a positive integer")

    qm = QMSettings.from_mapping(raw.get("qm"), "qm")
    stages = _stages(raw.get("stages"), store, run_dir, rel)
    executor_d = dict(mapping_of(raw.get("executor") or {"kind": "local"}, "executor"))
    if any(s in stages for s in MPI_STAGES) and executor_d.get("mpi") in (None, False):
        executor_d["mpi"] = {}  # the training stages run on the 'mpi' executor
    executor = ExecutorProfile.from_mapping(executor_d)
    return WorkflowConfig(path=path.resolve(), name=name, inputs=inputs, store=store,
                          run_dir=run_dir, limit=limit, qm=qm, executor=executor, stages=stages,
                          raw=raw)


def _stages(raw, store: Path, run_dir: Path, rel) -> dict:
    """stage name -> settings object, for the ``stages:`` mapping."""
    raw = mapping_of(raw, "stages")
    for s in raw:
        if s not in STAGES:
            raise settings_error(f"stages.{s}", f"unknown stage{did_you_mean(s, KNOWN_STAGES)}")
    if "explain" in raw and "train" not in raw:
        raise settings_error("stages.explain",
                             "explains the model of the train stage: add stages.train")
    stages: dict = {}
    for stage in STAGES:  # in run order: the train stage reads augment, bp reads conformers
        if stage not in raw:
            continue
        d, where = raw[stage] or {}, f"stages.{stage}"
        if stage == "conformers":
            stages[stage] = ConformersStage.from_mapping(d, where, store, rel)
        elif stage == "train":
            stages[stage] = TrainStage.from_mapping(d, where, stages.get("augment"), run_dir,
                                                    store, rel)
        elif stage in ("bp", "vae"):
            data = stages["conformers"].store if stage == "bp" and "conformers" in stages \
                else store
            stages[stage] = STAGES[stage].from_mapping(d, where, data, run_dir / stage, rel)
        else:
            stages[stage] = from_mapping(STAGES[stage], mapping_of(d, where), where)
    return stages
