"""The workflow config (``hessflow run WORKFLOW.yaml``), validated up front.

Every problem is reported as one line naming the field, e.g.
``qm.tasks: 'freqs' not among opt,freq,polar,hyperpolar``. Relative paths are relative to the
config file's folder.

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
    executor: {kind: local, workers: 2, threads_per_task: 1}  # docs/slurm.md
    stages:                          # optional, run after the QM part (docs/workflows.md)
      conformers: {samples: 10, temperature_k: 300, engine: xtb}  # displaced geometries + energies
      augment: {distribution: quantum, temperature_k: 300, samples: 100}
      train: {model: weave, target: alpha, ranks: 2}
      explain: {split: test, rule: epsilon}
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from ..errors import HessflowError
from ..qm.conformers import DEFAULT_SEED
from ..qm.engines import ENGINE_NAMES
from ..qm.level import Level
from ..qm.pipeline import TASKS
from ..slurm.profiles import validate_profile

TOP_KEYS = ("name", "inputs", "store", "run_dir", "limit", "qm", "executor", "stages")
QM_KEYS = ("engine", "tasks", "level", "fallback", "conformer_seed")
# Downstream stages arrive with later versions; asking for one fails up front.
KNOWN_STAGES = ("conformers", "augment", "train", "explain", "vae", "bp")
AVAILABLE_STAGES: tuple[str, ...] = KNOWN_STAGES
# stages that run a `hessflow <stage> train` command; settings are its options (docs/workflows.md)
COMMAND_STAGES = ("vae", "bp")
AUGMENT_KEYS = ("distribution", "temperature_k", "samples", "write", "after")
CONFORMER_KEYS = ("distribution", "temperature_k", "samples", "engine", "level", "store", "seed",
                  "after")
EXPLAIN_KEYS = ("split", "rule", "report", "after")


def _err(field, msg):
    return HessflowError(f"{field}: {msg}")


@dataclasses.dataclass
class WorkflowConfig:
    path: Path
    name: str
    inputs: list
    store: Path
    run_dir: Path
    limit: int | None
    engine: str
    tasks: tuple
    level: Level
    fallback: bool
    conformer_seed: int
    executor: dict
    stages: dict
    raw: dict


def _unknown(d: dict, allowed, where: str):
    for k in d:
        if k not in allowed:
            import difflib
            close = difflib.get_close_matches(str(k), allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(allowed)})"
            raise _err(f"{where}{k}", f"unknown key{hint}")


def load_config(path) -> WorkflowConfig:
    path = Path(path)
    if not path.is_file():
        raise _err(str(path), "no such workflow config")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise _err(str(path), f"not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return parse_config(raw, path)


def parse_config(raw, path: Path) -> WorkflowConfig:
    if not isinstance(raw, dict):
        raise _err(str(path), "a workflow config is a YAML mapping")
    _unknown(raw, TOP_KEYS, "")
    base = path.resolve().parent

    def rel(p):
        p = Path(str(p)).expanduser()
        return p if p.is_absolute() else base / p

    name = str(raw.get("name") or path.stem)
    inputs = raw.get("inputs")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not inputs or not isinstance(inputs, list):
        raise _err("inputs", "give one or more molecule files (a list of paths)")
    inputs = [rel(p) for p in inputs]
    for i, p in enumerate(inputs):
        if not p.exists():
            raise _err(f"inputs[{i}]", f"{p} does not exist")
    if not raw.get("store"):
        raise _err("store", "missing: the HDF5 file to write")
    store = rel(raw["store"])
    if store.suffix not in (".h5", ".hdf5"):
        raise _err("store", f"{raw['store']!r} should end in .h5")
    run_dir = rel(raw.get("run_dir") or f"runs/{name}")
    limit = raw.get("limit")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise _err("limit", f"{limit!r} is not a positive integer")

    qm = raw.get("qm") or {}
    if not isinstance(qm, dict):
        raise _err("qm", "expected a mapping")
    _unknown(qm, QM_KEYS, "qm.")
    engine = str(qm.get("engine", "pyscf")).lower()
    if engine not in ENGINE_NAMES:
        raise _err("qm.engine", f"{engine!r} is not one of {', '.join(ENGINE_NAMES)}")
    tasks = qm.get("tasks", list(TASKS))
    if isinstance(tasks, str):
        tasks = tasks.split(",")
    if not isinstance(tasks, list) or not tasks:
        raise _err("qm.tasks", "a list among opt,freq,polar,hyperpolar")
    for t in tasks:
        if t not in TASKS:
            raise _err("qm.tasks", f"{t!r} not among {','.join(TASKS)}")
    tasks = tuple(t for t in TASKS if t in tasks)
    level_d = qm.get("level") or {}
    if not isinstance(level_d, dict):
        raise _err("qm.level", "expected a mapping of Level settings")
    if engine == "xtb" and "method" not in level_d:
        level_d = {**level_d, "method": "gfn2-xtb"}
    known = {f.name for f in dataclasses.fields(Level)}
    for k in level_d:
        if k not in known:
            raise _err(f"qm.level.{k}", f"unknown setting (known: {', '.join(sorted(known))})")
    try:
        level = Level(**level_d)
    except (TypeError, ValueError) as exc:
        raise _err("qm.level", str(exc)) from None
    fallback = qm.get("fallback", True)
    if not isinstance(fallback, bool):
        raise _err("qm.fallback", f"{fallback!r} is not true/false")
    seed = qm.get("conformer_seed", DEFAULT_SEED)
    if not isinstance(seed, int):
        raise _err("qm.conformer_seed", f"{seed!r} is not an integer")

    executor = validate_profile(raw.get("executor") or {"kind": "local"})

    stages = raw.get("stages") or {}
    if not isinstance(stages, dict):
        raise _err("stages", "expected a mapping of stage name -> settings")
    for s in stages:
        if s not in KNOWN_STAGES:
            raise _err(f"stages.{s}", f"unknown stage (known: {', '.join(KNOWN_STAGES)})")
        if s not in AVAILABLE_STAGES:
            raise _err(f"stages.{s}", "this stage is not available in this hessflow version yet; "
                                      "remove it to run the QM part")
    stages = {k: dict(v or {}) for k, v in stages.items()}
    if "conformers" in stages:
        stages["conformers"] = _conformer_stage(stages["conformers"], store, rel)
    if "explain" in stages:
        if "train" not in stages:
            raise _err("stages.explain", "explains the model of the train stage: add stages.train")
        stages["explain"] = _explain_stage(stages["explain"])
    if "augment" in stages:
        stages["augment"] = _augment_stage(stages["augment"])
    if "train" in stages:
        stages["train"] = _train_stage(stages["train"], stages.get("augment"), run_dir, store)
    for name in COMMAND_STAGES:
        if name in stages:
            default = (stages["conformers"]["store"] if name == "bp" and "conformers" in stages
                       else store)
            stages[name] = _command_stage(name, stages[name], default, run_dir / name, rel)
    if any(k in stages for k in ("train",) + COMMAND_STAGES) and executor.get("mpi") is None:
        # the training stages run on the 'mpi' executor
        executor = validate_profile({**_raw_profile(raw), "mpi": {}})
    return WorkflowConfig(path=path.resolve(), name=name, inputs=inputs, store=store, run_dir=run_dir,
                          limit=limit, engine=engine, tasks=tasks, level=level, fallback=fallback,
                          conformer_seed=seed, executor=executor, stages=stages, raw=raw)


def _raw_profile(raw):
    return dict(raw.get("executor") or {"kind": "local"})


def _fraction(v, field):
    if not isinstance(v, (int, float)) or not 0 < v <= 1:
        raise _err(field, f"{v!r} is not a fraction in (0, 1]")
    return float(v)


def _sampling(d: dict, stage: str, samples: int) -> dict:
    """The normal-mode sampling settings shared by the augment and conformers stages
    (distribution, temperature_k, samples; ``samples`` is the default count) and ``after``."""
    from ..ml.augment import DISTRIBUTIONS
    where = f"stages.{stage}."
    out = {"distribution": d.get("distribution", "quantum"),
           "temperature_k": d.get("temperature_k", 300.0), "samples": d.get("samples", samples),
           "after": _fraction(d.get("after", 1.0), where + "after")}
    if out["distribution"] not in DISTRIBUTIONS:
        raise _err(where + "distribution",
                   f"{out['distribution']!r} is not one of {', '.join(DISTRIBUTIONS)}")
    if not isinstance(out["samples"], int) or out["samples"] < 1:
        raise _err(where + "samples", f"{out['samples']!r} is not a positive integer")
    if not isinstance(out["temperature_k"], (int, float)) or out["temperature_k"] < 0:
        raise _err(where + "temperature_k", f"{out['temperature_k']!r} is not >= 0")
    return out


def _augment_stage(d: dict) -> dict:
    _unknown(d, AUGMENT_KEYS, "stages.augment.")
    out = {**_sampling(d, "augment", 100), "write": d.get("write", False)}
    if not isinstance(out["write"], bool):
        raise _err("stages.augment.write", f"{out['write']!r} is not true/false")
    return out


def _train_stage(d: dict, augment: dict | None, run_dir: Path, store: Path) -> dict:
    from ..ml import run as ml_run
    after = _fraction(d.pop("after", 1.0), "stages.train.after")
    if augment and "augment" not in d:
        d["augment"] = f"{augment['distribution']}:{augment['temperature_k']}:{augment['samples']}"
    out = d.pop("out", None)
    spec = {**d, "data": str(store), "out": str(out or run_dir / "train")}
    try:
        spec = ml_run.validate(spec)
    except HessflowError as exc:
        msg = str(exc)
        field = msg.split(":", 1)[0].lstrip("-").replace("train", "").strip(" .") or "?"
        raise _err(f"stages.train.{field}", msg.split(":", 1)[1].strip()) from None
    spec["after"] = after
    return spec


def _conformer_stage(d: dict, store: Path, rel) -> dict:
    """Vibration-sampled geometries of every finished molecule (normal modes of its Hessian) with
    single-point energies, into a store of their own: the training set of energy models."""
    _unknown(d, CONFORMER_KEYS, "stages.conformers.")
    out = {**_sampling(d, "conformers", 10), "engine": str(d.get("engine", "xtb")).lower(),
           "seed": d.get("seed", 0),
           "store": rel(d.get("store") or store.with_name(store.stem + "_conformers.h5"))}
    if out["engine"] not in ENGINE_NAMES:
        raise _err("stages.conformers.engine", f"{out['engine']!r} is not one of {', '.join(ENGINE_NAMES)}")
    if not isinstance(out["seed"], int):
        raise _err("stages.conformers.seed", f"{out['seed']!r} is not an integer")
    if out["store"].suffix not in (".h5", ".hdf5") or out["store"].resolve() == store.resolve():
        raise _err("stages.conformers.store", f"{str(out['store'])!r} must be another .h5 file "
                                               "than the main store (one writer per file)")
    level_d = d.get("level") or {}
    if not isinstance(level_d, dict):
        raise _err("stages.conformers.level", "expected a mapping of Level settings")
    if out["engine"] == "xtb" and "method" not in level_d:
        level_d = {**level_d, "method": "gfn2-xtb"}
    try:
        out["level"] = Level(**level_d)
    except (TypeError, ValueError) as exc:
        raise _err("stages.conformers.level", str(exc)) from None
    return out


def _explain_stage(d: dict) -> dict:
    _unknown(d, EXPLAIN_KEYS, "stages.explain.")
    out = {"split": d.get("split", "test"), "rule": d.get("rule", "epsilon"),
           "report": d.get("report", True),
           "after": _fraction(d.get("after", 1.0), "stages.explain.after")}
    if out["split"] not in ("train", "val", "test", "all"):
        raise _err("stages.explain.split", f"{out['split']!r} is not train, val, test or all")
    if out["rule"] not in ("epsilon", "zplus", "gamma", "alphabeta"):
        raise _err("stages.explain.rule", f"{out['rule']!r} is not epsilon, zplus, gamma or alphabeta")
    if not isinstance(out["report"], bool):
        raise _err("stages.explain.report", f"{out['report']!r} is not true/false")
    return out


def _command_stage(name: str, d: dict, default_data: Path, default_out: Path, rel) -> dict:
    """A stage that runs ``hessflow NAME train DATA --key value ...``: its settings are the
    command's options (``key: value``; ``true`` for a flag; a list joins with commas), checked
    here by the command's own parser so a bad setting fails before any QM runs."""
    import contextlib
    import io

    from ..cli import build_parser
    d = dict(d)
    after = _fraction(d.pop("after", 1.0), f"stages.{name}.after")
    data = rel(d.pop("data")) if d.get("data") else default_data
    out = rel(d.pop("out")) if d.get("out") else default_out
    argv = [name, "train", str(data), "--out", str(out)]
    for k, v in d.items():
        flag = "--" + str(k).replace("_", "-")
        if v is True:
            argv.append(flag)
        elif v is False or v is None:
            continue
        else:
            argv += [flag, ",".join(map(str, v)) if isinstance(v, list) else str(v)]
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = build_parser().parse_args(argv)
    except SystemExit:
        msg = (err.getvalue().strip().splitlines() or ["invalid settings"])[-1]
        msg = msg.split("error:", 1)[-1].strip()
        raise _err(f"stages.{name}", msg) from None
    return {"argv": argv, "data": data, "out": out, "ranks": int(getattr(args, "ranks", 1) or 1),
            "after": after}
