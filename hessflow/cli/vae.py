"""``hessflow vae train | sample | interpolate``: the SMILES VAE (model in :mod:`hessflow.ml.vae`).

::

    hessflow vae train qm9.csv --properties gap,homo,lumo,dipole --epochs 50 --ranks 2 --out RUN
    hessflow vae sample RUN --n 100                  # prior samples: validity, uniqueness, novelty
    hessflow vae sample RUN --n 20 --target gap=0.25 # molecules predicted near a property value
    hessflow vae interpolate RUN CCO c1ccccc1O --steps 10
"""

from __future__ import annotations

import json
import os

from ..analysis.tables import number, vae_metrics_table, write_rows_csv
from ..errors import HessflowError
from .options import add_group, add_training_options


def _cmd_train(a):
    from ..ml import vae
    from ..ml.core.data import UNITS
    from ..ml.core.launch import launch
    props = [p.strip() for p in (a.properties or "").split(",") if p.strip()]
    spec = {"data": os.path.abspath(a.data), "out": os.path.abspath(a.out), "properties": props,
            "limit": a.limit, "resume": a.resume, "epochs": a.epochs, "batch_size": a.batch_size,
            "lr": a.lr, "embed": a.embed, "hidden": a.hidden, "layers": a.layers,
            "latent": a.latent, "kl_weight": a.beta, "anneal": a.anneal,
            "warmup_epochs": a.warmup_epochs, "free_bits": a.free_bits,
            "prop_weight": a.prop_weight, "teacher_forcing": a.teacher_forcing,
            "patience": a.patience, "seed": a.seed, "device": a.device, "n_prior": a.n_prior,
            "n_recon": a.n_recon, "progress": not a.no_progress and a.ranks == 1}
    if a.predictor:
        try:
            spec["predictor"] = [int(h) for h in a.predictor.split(",")]
        except ValueError:
            raise HessflowError(f"--predictor: {a.predictor!r} is not comma-separated widths") from None
    vae.config_from_spec(spec)               # one-line errors before any rank starts
    vae.load_molecules(spec["data"], props, 1)
    if a.ranks < 1:
        raise HessflowError(f"--ranks: must be >= 1, got {a.ranks}")
    launch(spec, "hessflow.ml.vae", a.ranks, lambda path: vae.run_spec(spec), "vae train")
    from ..analysis.latent import write_latent_pca
    write_latent_pca(spec["out"])
    with open(os.path.join(spec["out"], "metrics.json")) as fh:
        m = json.load(fh)
    print(vae_metrics_table(m, UNITS))
    print(f"run directory: {spec['out']} (model.pt, vocab.json, config.json, metrics.json, "
          f"splits.json, history.json, latent_pca.png)")
    return 0


def _print_rows(rows, properties, extra=()):
    head = ["smiles", *extra, *[f"pred_{p}" for p in properties]]
    print("\t".join(head))
    for r in rows:
        cells = []
        for h in head:
            v = r.get(h)
            cells.append(number(v, ".4g") if isinstance(v, float) else str(v))
        print("\t".join(cells))


def _cmd_sample(a):
    from ..ml import vae
    run = vae.load_vae_run(a.run, a.device)
    if a.target:
        target = vae.parse_target(a.target, run.properties)
        rows = vae.sample_near_target(run, target, n=a.n, neighbours=a.neighbours,
                                      radius=a.radius, oversample=a.oversample, seed=a.seed)
        print(f"# {len(rows)} valid distinct molecules predicted nearest to "
              f"{', '.join(f'{k}={v}' for k, v in target.items())} (distance in standard "
              f"deviations; predictions from the re-encoded molecule)")
        _print_rows(rows, run.properties, ("novel", "distance"))
    else:
        rows = vae.sample_prior(run, a.n, greedy=a.temperature is None,
                                temperature=a.temperature or 1.0, seed=a.seed)
        m = vae.sample_metrics([r["smiles"] for r in rows], run.training_set)
        print(f"# {a.n} prior samples ({'greedy' if a.temperature is None else f'T={a.temperature}'}): "
              f"validity {number(m['validity'])}, uniqueness {number(m['uniqueness'])}, "
              f"novelty {number(m['novelty'])}; valid ones below (properties predicted at z)")
        _print_rows([{**r, "smiles": r["canonical"]} for r in rows if r["valid"]], run.properties,
                    ("novel",))
    if a.out:
        write_rows_csv(a.out, rows)
    return 0


def _cmd_interpolate(a):
    from ..ml import vae
    run = vae.load_vae_run(a.run, a.device)
    rows = vae.interpolate(run, a.smiles_a, a.smiles_b, a.steps)
    _print_rows(rows, run.properties, ("t", "valid"))
    if a.out:
        write_rows_csv(a.out, rows)
    return 0


def register(sub):
    vs = add_group(sub, "vae", "SMILES variational autoencoder: train, sample, interpolate")

    t = vs.add_parser("train", help="train the SMILES VAE and its property predictor")
    t.add_argument("data", help="MoleculeNet QM9 CSV, a hessflow store (.h5) or a .smi file")
    t.add_argument("--properties", default="gap,homo,lumo,dipole",
                   help="comma-separated: alpha, zpve, gap, homo, lumo, dipole ('' for none)")
    t.add_argument("--out", required=True, help="run directory")
    add_training_options(t, epochs=50, batch_size=128, patience=1000)
    t.add_argument("--embed", type=int, default=48)
    t.add_argument("--hidden", type=int, default=512, help="GRU width (encoder and decoder)")
    t.add_argument("--layers", type=int, default=2, help="GRU layers")
    t.add_argument("--latent", type=int, default=56)
    t.add_argument("--predictor", help="hidden widths of the property predictor (default 28,14)")
    t.add_argument("--beta", type=float, default=0.1, help="final KL weight")
    t.add_argument("--anneal", default="sigmoid", choices=["sigmoid", "linear", "none"])
    t.add_argument("--warmup-epochs", type=float, default=10.0, help="epochs for β to reach --beta")
    t.add_argument("--free-bits", type=float, default=0.0, help="nats per latent dimension")
    t.add_argument("--prop-weight", type=float, default=5.0)
    t.add_argument("--teacher-forcing", type=float, default=1.0, help="ratio in [0, 1]")
    t.add_argument("--n-prior", type=int, default=1000, help="prior samples for the metrics")
    t.add_argument("--n-recon", type=int, help="test molecules for reconstruction (default all)")
    t.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint.pt")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=_cmd_train)

    s = vs.add_parser("sample", help="decode prior samples, or molecules near a target property")
    s.add_argument("run", help="run directory of 'hessflow vae train'")
    s.add_argument("--n", type=int, default=100)
    s.add_argument("--target", help="PROPERTY=VALUE[,...] in the property's units, e.g. gap=0.25")
    s.add_argument("--neighbours", type=int, default=20,
                   help="--target: training molecules nearest the target to start from")
    s.add_argument("--radius", type=float, default=0.5, help="--target: latent noise per dimension")
    s.add_argument("--oversample", type=int, default=10, help="--target: candidates per result")
    s.add_argument("--temperature", type=float, help="prior: sampled decoding (default greedy)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu")
    s.add_argument("-o", "--out", help="also write the rows to this CSV")
    s.set_defaults(func=_cmd_sample)

    i = vs.add_parser("interpolate", help="decode the linear latent path between two molecules")
    i.add_argument("run")
    i.add_argument("smiles_a")
    i.add_argument("smiles_b")
    i.add_argument("--steps", type=int, default=10)
    i.add_argument("--device", default="cpu")
    i.add_argument("-o", "--out", help="also write the rows to this CSV")
    i.set_defaults(func=_cmd_interpolate)
