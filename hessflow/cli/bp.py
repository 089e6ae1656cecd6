"""``hessflow bp train | evaluate``: the element-coupled Behler–Parrinello network
(the model is in :mod:`hessflow.ml.bp`).

    hessflow bp train data.h5 --features modes --modes 4 --exclude-element F --out-dir runs/bp
    hessflow bp evaluate runs/bp other.h5
"""

from __future__ import annotations

import json
import os

from ..errors import HessflowError
from .options import add_group, add_json, add_out_dir, add_parser, add_training_options
from .options import print_json, progress_wanted
from .progress_env import progress_env


def _elements(values) -> list[int]:
    from ..qm.molecules.elements import atomic_number
    out = []
    for v in values or []:
        for s in str(v).split(","):
            if not s.strip():
                continue
            try:
                out.append(atomic_number(s))
            except KeyError:
                raise HessflowError(f"--exclude-element: unknown element {s.strip()!r}") from None
    return sorted(set(out))


def _acsf(text):
    """ACSFParams from a JSON object or a JSON file (keys of ACSFParams; others default)."""
    from ..ml.bp.acsf import ACSFParams
    if not text:
        return ACSFParams()
    src = text
    if os.path.exists(text):
        with open(text) as fh:
            src = fh.read()
    try:
        d = json.loads(src)
        return ACSFParams.from_dict(d)
    except (ValueError, TypeError) as exc:
        raise HessflowError(f"--acsf: {' '.join(str(exc).split())}") from None


def _cmd_train(a):
    from ..analysis.tables import bp_line
    from ..ml import bp
    from ..ml.core.launch import launch
    from ..qm.molecules.elements import symbol
    out = os.path.abspath(a.out_dir or f"runs/bp-{a.features}")
    excl = _elements(a.exclude_element)
    spec = {"data": os.path.abspath(a.data), "out": out, "limit": a.limit,
            "val": a.val, "test": a.test, "split_seed": a.seed, "exclude_elements": excl,
            "few_shot": a.few_shot,
            "model": bp.BPConfig(features=a.features, n_modes=a.modes, reference=a.reference,
                                 hidden=tuple(int(h) for h in a.hidden.split(",")),
                                 acsf=_acsf(a.acsf), force_weight=a.force_weight).to_dict(),
            "train": {"epochs": a.epochs, "batch_size": a.batch_size, "lr": a.lr,
                      "patience": a.patience, "seed": a.seed, "device": a.device}}
    with progress_env(progress_wanted(a), "bp train"):
        launch(spec, "hessflow.ml.bp", a.ranks, bp.run_spec, "bp train")
    with open(os.path.join(out, "metrics.json")) as fh:
        m = json.load(fh)
    print(f"{m['features']} features, reference {m['reference']}: {m['n_geometries']} geometries "
          f"of {m['n_molecules']} molecules; best epoch {m['best_epoch']} of {m['epochs_run']}")
    for split in ("train", "val", "test", "excluded"):
        if split in m:
            label = split if split != "excluded" else f"excl.({','.join(symbol(z) for z in excl)})"
            print(bp_line(label, m[split]))
        if f"{split}_not_predicted" in m:
            s = m[f"{split}_not_predicted"]
            print(f"{split:9s} {s['n']} geometries not predicted: {s['reason']}")
    print(f"run directory: {out} (model.pt, metrics.json, splits.json, config.json)")
    return 0


def _cmd_evaluate(a):
    from ..analysis.tables import bp_line
    from ..ml import bp
    r = bp.evaluate_bp(a.run, a.data, a.limit)
    if a.json:
        print_json({"schema": "hessflow.bp evaluate/1", **r})
        return 0
    print(f"{a.data} against {a.run} (energies kcal/mol, forces eV/Angstrom)")
    for name in ("held_out", "seen"):
        if name in r:
            print(bp_line(name, r[name]))
    return 0


def register(sub):
    bsub = add_group(sub, "bp", "element-coupled Behler-Parrinello network: train | evaluate")

    t = add_parser(_cmd_train, bsub, "train",
                   "train on energies (and forces) from a store or an XYZ file",
                   "hessflow bp train data.h5 --features modes --exclude-element F "
                   "--force-weight 10 --out-dir runs/bp",
                   "Train the element-coupled Behler-Parrinello network on energies, and on "
                   "forces with --force-weight; one line per epoch on stderr (loss, validation "
                   "MAE, s/epoch, ETA).")
    t.add_argument("data", help="hessflow store (.h5), extended XYZ in ASE's conventions "
                                "(energy eV, forces eV/Angstrom) or XYZ with energy_hartree= "
                                "comment lines")
    t.add_argument("--features", default="modes", choices=["modes", "onehot"],
                   help="element channels: elemental modes (element-coupled) or one-hot (baseline)")
    t.add_argument("--modes", type=int, default=4, help="number of elemental modes k (default 4)")
    t.add_argument("--reference", default="fit", choices=["fit", "atoms"],
                   help="per-element reference energies: least-squares fit on the training "
                        "molecules, or free-atom energies at the data's level (default fit)")
    t.add_argument("--exclude-element", action="append", metavar="EL",
                   help="keep molecules containing EL out of train/val (repeatable, or F,Cl)")
    t.add_argument("--few-shot", type=int, default=0, metavar="N",
                   help="with --exclude-element: put N of those molecules back into training")
    t.add_argument("--hidden", default="64,64",
                   help="atomic network hidden widths (comma-separated)")
    t.add_argument("--acsf", metavar="JSON",
                   help="symmetry-function parameters as JSON (or a JSON file), keys of "
                        "hessflow.ml.bp.acsf.ACSFParams in Bohr, e.g. "
                        "'{\"radial_cutoff_bohr\": 10, \"zetas\": [1, 8]}'")
    t.add_argument("--force-weight", type=float, default=0.0, metavar="W",
                   help="train on forces too: loss = MSE(E) + W * MSE(F) per component, in "
                        "units of the standardised energy (default 0: energies only; needs "
                        "data with forces)")
    add_training_options(t, epochs=300, batch_size=32, patience=50,
                         limit_help="only the first N geometries")
    t.add_argument("--val", type=float, default=0.1, help="fraction of molecules for validation")
    t.add_argument("--test", type=float, default=0.1, help="fraction of molecules for the test")
    add_out_dir(t, "default: runs/bp-FEATURES")

    e = add_parser(_cmd_evaluate, bsub, "evaluate",
                   "MAE (kcal/mol) of a trained network on a data set",
                   "hessflow bp evaluate runs/bp other.h5 --json")
    e.add_argument("run", help="run directory of 'hessflow bp train'")
    e.add_argument("data", help="hessflow store (.h5), extended XYZ (ASE's conventions) or XYZ "
                                "with energy_hartree= comment lines")
    e.add_argument("--limit", type=int, metavar="N", help="only the first N geometries "
                                                          "(default: all)")
    add_json(e, "the metrics (kcal/mol) of the held-out and seen molecules")
