"""A Behler–Parrinello network on element-channel ACSF: energies, forces, training, evaluation,
and "alchemical" interpolation between element assignments.

Model (:class:`BPNetwork`)
    Every atom i gets the feature vector I_i = [ACSF_i, e(Z_i)]: the symmetry functions of
    :mod:`hessflow.ml.acsf` with neighbour channels e(Z_j), followed by the centre atom's own
    channel vector e(Z_i). ``features="modes"`` (element-coupled) uses the elemental modes β(Z)
    of :mod:`hessflow.ml.elemental`; ``features="onehot"`` (baseline) a one-hot vector over the
    elements of the data set. **One atomic network, shared by all elements** (the element enters
    only through e(Z_i) and the neighbour channels) maps the standardised I_i to a number ε_i;
    the energy is

        E = Σ_i e_ref(Z_i) + n_atoms · shift + scale · Σ_i ε_i           (Hartree)

    with per-element reference energies e_ref, and shift/scale the mean per-atom residual and the
    standard deviation of the molecular residual over the training geometries. Forces are
    −∂E/∂R by autograd (:meth:`BPNetwork.energy_and_forces`).

Reference energies (``reference=``)
    ``"fit"`` (default): least squares of the training energies on the element counts
        (E ≈ Σ_Z n_Z e_ref(Z)). An element that no training molecule contains has no fitted value;
        predicting a molecule with it is refused (a one-line error naming the element).
    ``"atoms"``: the free-atom energies at the level of the data (same engine and method, ground
        state multiplicity from :data:`element_data.GROUND_STATE_MULTIPLICITY`); the network then
        learns atomisation energies, and an element unseen in training still has a reference —
        what the transfer experiment needs.

Training is energies only, through :func:`hessflow.ml.train.train` (the DDP loop: seeded,
early stopping on the validation molecules, checkpoint/resume, works under ``mpiexec``/``srun``/
``torchrun``). The symmetry functions do not depend on trainable weights, so they are computed
once per geometry. Force training is not implemented: the hessflow store has no gradient field.

Splits are by molecule (all geometries of one molecule — same SMILES, or same name when there
is no SMILES — are in one split), so "test" means molecules never seen in training.
``exclude_elements`` moves every molecule that contains one of them out of train/val into an
"excluded" split (``few_shot`` of them are put back into training).

Data (:func:`load_energies`): a hessflow store (records with status ``done``, ``numbers``,
``energy_hartree`` and ``coords_opt_bohr`` if optimised else ``coords_input_bohr``) or an XYZ file
with ``energy_hartree=...`` on each comment line (what ``hessflow export --format extxyz`` writes).
:func:`generate_xtb_store` makes such a store: RDKit conformers, randomly displaced copies, GFN2-xTB
single points.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import HessflowError
from ..qm.elements import symbol
from ..units import HARTREE_KCALMOL
from .acsf import ACSF, ACSFParams, onehot_table
from .metrics import regression_metrics

MAX_Z = 54
FEATURE_KINDS = ("modes", "onehot")
REFERENCES = ("fit", "atoms")
BUNDLE_FORMAT = "hessflow-bp-1"


def _elements_text(zs) -> str:
    return ",".join(symbol(z) for z in sorted(zs))


# -- configuration ---------------------------------------------------------------------------
@dataclasses.dataclass
class BPConfig:
    """What defines a network (saved as config.json in the run directory)."""

    features: str = "modes"           # modes | onehot
    n_modes: int = 4                  # k, for features="modes"
    modes_seed: int = 0
    elements: tuple = ()              # one-hot element list (atomic numbers); () = from the data
    hidden: tuple = (64, 64)
    activation: str = "tanh"
    reference: str = "fit"            # fit | atoms
    acsf: ACSFParams = dataclasses.field(default_factory=ACSFParams)

    def __post_init__(self):
        if self.features not in FEATURE_KINDS:
            raise HessflowError(f"--features: {self.features!r} is not one of {', '.join(FEATURE_KINDS)}")
        if self.reference not in REFERENCES:
            raise HessflowError(f"--reference: {self.reference!r} is not one of {', '.join(REFERENCES)}")
        self.elements = tuple(int(z) for z in self.elements)
        self.hidden = tuple(int(h) for h in self.hidden)
        if isinstance(self.acsf, dict):
            self.acsf = ACSFParams.from_dict(self.acsf)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["acsf"] = self.acsf.to_dict()
        d["elements"], d["hidden"] = list(self.elements), list(self.hidden)
        return d


def channel_table(cfg: BPConfig):
    """(table (MAX_Z+1, C), modes or None) for the configured feature kind."""
    if cfg.features == "modes":
        from .elemental import fit_modes
        modes = fit_modes(cfg.n_modes, seed=cfg.modes_seed)
        return modes.table(MAX_Z), modes
    if not cfg.elements:
        raise HessflowError("elements: the one-hot baseline needs its element list")
    return onehot_table(cfg.elements, MAX_Z), None


# -- the network -----------------------------------------------------------------------------
def _atom_features(acsf: ACSF, numbers, coords, mask):
    g = acsf(numbers, coords, mask)
    return torch.cat([g, acsf.channels(numbers, mask).to(g.dtype)], dim=-1)


class BPNetwork(nn.Module):
    """Shared atomic network over [ACSF, e(Z_i)]; see the module docstring for the energy."""

    def __init__(self, cfg: BPConfig, table):
        super().__init__()
        from .models import MLP
        self.cfg = cfg
        self.acsf = ACSF(cfg.acsf, table)
        self.n_in = self.acsf.n_features + self.acsf.n_channels
        self.register_buffer("feat_mean", torch.zeros(self.n_in))
        self.register_buffer("feat_std", torch.ones(self.n_in))
        self.atomic = MLP(self.n_in, cfg.hidden, 1, act=cfg.activation)
        # float64 bookkeeping, kept out of the state dict so .float() never rounds it
        self.ref_energy_hartree = torch.full((MAX_Z + 1,), float("nan"), dtype=torch.float64)
        self.shift_hartree = 0.0
        self.scale_hartree = 1.0

    # features
    def features(self, numbers, coords, mask=None):
        """Raw per-atom features I_i = [ACSF, e(Z_i)] (unstandardised), (B, N, n_in)."""
        numbers = torch.as_tensor(numbers)
        return _atom_features(self.acsf, numbers, coords, numbers > 0 if mask is None else mask)

    def forward(self, features, mask):
        """Σ_i ε_i over the real atoms: the standardised molecular residual, (B,)."""
        x = (features - self.feat_mean) / self.feat_std
        eps = self.atomic(x) * mask.to(x.dtype)
        return eps.sum(-1)

    # energies
    def reference_energy(self, numbers, mask=None) -> torch.Tensor:
        """Σ_i e_ref(Z_i) + n_atoms · shift (float64), (B,); error for an element without one."""
        numbers = torch.as_tensor(numbers).long()
        if mask is None:
            mask = numbers > 0
        ref = self.ref_energy_hartree.to(numbers.device)[numbers]
        missing = sorted({int(z) for z in numbers[mask & torch.isnan(ref)].tolist()})
        if missing:
            raise HessflowError(
                f"element {_elements_text(missing)}: no reference energy (no training molecule "
                f"contains it); train with --reference atoms to predict elements unseen in training")
        ref = torch.where(mask, ref, torch.zeros_like(ref))
        return ref.sum(-1) + self.shift_hartree * mask.sum(-1).to(torch.float64)

    def energy_from_features(self, features, mask, reference):
        """E (Hartree) from raw features and a reference part (from :meth:`reference_energy`)."""
        dt = self.feat_mean.dtype
        return reference + self.scale_hartree * self(features.to(dt), mask).to(torch.float64)

    def energy_hartree(self, numbers, coords, mask=None):
        numbers = torch.as_tensor(numbers)
        if mask is None:
            mask = numbers > 0
        f = self.features(numbers, coords, mask)
        return self.energy_from_features(f, mask, self.reference_energy(numbers, mask))

    def energy_and_forces(self, numbers, coords, mask=None):
        """(E in Hartree, forces −∂E/∂R in Hartree/Bohr) by autograd."""
        coords = torch.as_tensor(coords).detach().clone().requires_grad_(True)
        e = self.energy_hartree(numbers, coords, mask)
        (grad,) = torch.autograd.grad(e.sum(), coords)
        return e.detach(), -grad

    # persistence
    def bundle(self, modes=None) -> dict:
        return {"format": BUNDLE_FORMAT, "config": self.cfg.to_dict(),
                "modes": None if modes is None else modes.to_dict(),
                "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
                "ref_energy_hartree": self.ref_energy_hartree.tolist(),
                "shift_hartree": float(self.shift_hartree),
                "scale_hartree": float(self.scale_hartree)}


def load_model(run_dir_or_file) -> BPNetwork:
    """The network saved in a run directory's model.pt (float64, eval mode)."""
    p = Path(run_dir_or_file)
    f = p / "model.pt" if p.is_dir() else p
    if not f.exists():
        raise HessflowError(f"{p}: no model.pt (not a 'hessflow bp train' run directory)")
    b = torch.load(f, map_location="cpu", weights_only=False)
    if not isinstance(b, dict) or b.get("format") != BUNDLE_FORMAT:
        raise HessflowError(f"{f}: not a Behler-Parrinello model ({BUNDLE_FORMAT})")
    cfg = BPConfig(**b["config"])
    if b["modes"] is not None:
        from .elemental import ElementalModes
        table = ElementalModes.from_dict(b["modes"]).table(MAX_Z)
    else:
        table = onehot_table(cfg.elements, MAX_Z)
    net = BPNetwork(cfg, table)
    net.load_state_dict(b["state_dict"])
    net.ref_energy_hartree = torch.tensor(b["ref_energy_hartree"], dtype=torch.float64)
    net.shift_hartree, net.scale_hartree = b["shift_hartree"], b["scale_hartree"]
    return net.double().eval()


# -- alchemical interpolation ----------------------------------------------------------------
def interpolate_features(features_a, features_b, lam: float):
    """(1 − λ) I_a + λ I_b: the feature vector of an "alchemical" intermediate state."""
    if tuple(features_a.shape) != tuple(features_b.shape):
        raise HessflowError(f"interpolate: feature shapes differ ({tuple(features_a.shape)} vs "
                            f"{tuple(features_b.shape)}); the two states need the same atoms")
    return (1.0 - lam) * features_a + lam * features_b


@torch.no_grad()
def alchemical_energies(net: BPNetwork, numbers_a, numbers_b, coords_bohr, lambdas) -> np.ndarray:
    """Energies (Hartree) along (1 − λ) I_a + λ I_b for two element assignments of the same
    geometry (e.g. an O → S substitution), with the reference part interpolated the same way. At
    λ = 0 and 1 these are the network's energies of the two molecules."""
    za, zb = torch.as_tensor(numbers_a)[None], torch.as_tensor(numbers_b)[None]
    if za.shape != zb.shape:
        raise HessflowError("alchemical_energies: the two states need the same number of atoms")
    x = torch.as_tensor(np.asarray(coords_bohr, float)).to(net.feat_mean.dtype)[None]
    ma, mb = za > 0, zb > 0
    fa, fb = net.features(za, x, ma), net.features(zb, x, mb)
    ra, rb = net.reference_energy(za, ma), net.reference_energy(zb, mb)
    out = []
    for lam in lambdas:
        f = interpolate_features(fa, fb, float(lam))
        out.append(float(net.energy_from_features(f, ma | mb, (1 - lam) * ra + lam * rb)[0]))
    return np.array(out)


# -- data ------------------------------------------------------------------------------------
def _group(name: str, smiles: str) -> str:
    return smiles or name


def load_energies(path, limit: int | None = None) -> tuple[list[dict], dict | None]:
    """Geometries with energies, and the level of theory ({engine, method, basis}, or None when
    the data do not say or mix levels). Each item: name, group (molecule id), smiles, numbers,
    coords_bohr, energy_hartree."""
    p = Path(path)
    if not p.exists():
        raise HessflowError(f"{p}: no such file")
    if p.suffix.lower() in (".h5", ".hdf5"):
        return _load_store(p, limit)
    if p.suffix.lower() in (".xyz", ".extxyz"):
        return _load_xyz(p, limit), None
    raise HessflowError(f"{p}: expected a hessflow store (.h5) or an XYZ file with energy_hartree= "
                        f"on each comment line")


def _load_store(p: Path, limit):
    from ..store import Store
    out = []
    with Store(p) as st:
        t = st.table(["key", "status", "energy_hartree", "engine", "method", "basis"])
        ok = [i for i, (s, e) in enumerate(zip(t["status"], t["energy_hartree"]))
              if s == "done" and np.isfinite(e)]
        if limit:
            ok = ok[:limit]
        keys = [t["key"][i] for i in ok]
        for r in st.get_many(keys, fields=["numbers", "coords_input_bohr", "coords_opt_bohr"]):
            coords = r["coords_opt_bohr"] if r["coords_opt_bohr"] is not None else r["coords_input_bohr"]
            if r["numbers"] is None or coords is None:
                continue
            out.append({"name": r["name"], "group": _group(r["name"], r["smiles"]),
                        "smiles": r["smiles"], "numbers": np.asarray(r["numbers"], dtype=np.int64),
                        "coords_bohr": np.asarray(coords, dtype=float),
                        "energy_hartree": float(r["energy_hartree"])})
    if not out:
        raise HessflowError(f"{p}: no finished records with energy_hartree, numbers and coordinates")
    levels = {(t["engine"][i], t["method"][i], t["basis"][i]) for i in ok}
    level = None
    if len(levels) == 1:
        e, m, b = levels.pop()
        level = {"engine": e, "method": m, "basis": b}
    return out, level


def _load_xyz(p: Path, limit):
    """Frames of an extended XYZ whose comment lines carry ``energy_hartree=`` (and optionally
    ``name=``, ``smiles=``), as ``hessflow export --format extxyz`` writes them."""
    from ..qm.inputs import _parse_atoms, _xyz_frames
    out = []
    for frame, start, block, err in _xyz_frames(p):
        if err:
            raise HessflowError(f"{p}: {err}")
        try:
            kv = dict(t.split("=", 1) for t in shlex.split(block[1]) if "=" in t)
        except ValueError as exc:
            raise HessflowError(f"{p}:{start + 1}: cannot parse the comment line ({exc})") from None
        name = kv.get("name") or f"{p.stem}#{frame}"
        if "energy_hartree" not in kv:
            raise HessflowError(f"{p}:{start + 1}: frame {name} has no energy_hartree= on its comment line")
        try:  # (an unknown element is already a one-line InputError)
            energy = float(kv["energy_hartree"])
            numbers, coords_bohr, _ = _parse_atoms(block[2:2 + int(block[0].split()[0])],
                                                   f"{p}: frame {name}")
        except ValueError as exc:  # an energy or a coordinate that is not a number
            raise HessflowError(f"{p}: frame {name}: {exc}") from None
        if np.isfinite(energy):
            smiles = kv.get("smiles", "")
            out.append({"name": name, "group": _group(name, smiles), "smiles": smiles,
                        "numbers": np.asarray(numbers, dtype=np.int64),
                        "coords_bohr": coords_bohr, "energy_hartree": energy})
        if limit and len(out) >= limit:
            break
    if not out:
        raise HessflowError(f"{p}: no frames with a finite energy_hartree")
    return out


def generate_xtb_store(molecules, store_path, n_geometries: int = 4, sigma_bohr: float = 0.05,
                       seed: int = 0, progress: bool = False) -> dict:
    """GFN2-xTB single points on displaced RDKit conformers, written to a hessflow store.

    ``molecules``: (name, SMILES) pairs. Geometry 0 is the ETKDG+MMFF94 conformer; geometries
    1..n-1 add independent Gaussian displacements of ``sigma_bohr`` to every Cartesian
    coordinate (generator seeded by ``seed`` and the molecule's position). Records are named
    ``NAME/gJ``, keyed by the geometry, and skipped when already done (re-running resumes).
    Returns counts and timings."""
    from ..qm import pipeline
    from ..qm.conformers import from_smiles
    from ..qm.engines import get_engine
    from ..qm.level import Level
    from ..qm.molecule import Molecule, content_key
    from ..store import Store
    eng = get_engine("xtb")
    level = Level(method="gfn2-xtb", threads=1)
    lvl_key = dict(eng.level_for_key(level), geometry="input")
    counts = {"done": 0, "failed": 0, "skipped": 0, "molecules_failed": 0}
    t_embed = t_qm = 0.0
    bar = None
    if progress:
        from tqdm import tqdm
        import sys
        bar = tqdm(total=len(molecules), desc="xtb", unit="mol", file=sys.stderr)
    with Store(store_path, "a") as st:
        for idx, (name, smi) in enumerate(molecules):
            t0 = time.perf_counter()
            try:
                mol = from_smiles(smi, name)
            except HessflowError:
                counts["molecules_failed"] += 1
                if bar:
                    bar.update()
                continue
            t_embed += time.perf_counter() - t0
            rng = np.random.default_rng([int(seed), idx])
            for j in range(n_geometries):
                coords = mol.coords_bohr + (rng.normal(0.0, sigma_bohr, mol.coords_bohr.shape)
                                            if j else 0.0)
                geom = mol.with_coords(coords)
                bare = Molecule(name, geom.numbers, coords, geom.charge, geom.multiplicity)
                key = content_key(bare.structure_id(), geom.charge, geom.multiplicity, eng.name,
                                  lvl_key)
                if st.status(key) == "done":
                    counts["skipped"] += 1
                    continue
                rec = pipeline.new_record(geom, eng, level, ())
                prov = json.loads(rec["provenance"])
                prov["displacement"] = {"index": j, "sigma_bohr": sigma_bohr if j else 0.0,
                                        "seed": [int(seed), idx]}
                rec.update(key=key, name=f"{name}/g{j}", provenance=json.dumps(prov, default=float))
                t1 = time.perf_counter()
                try:
                    pipeline.merge(rec, "sp", pipeline.run_single_point(geom, eng, level),
                                   time.perf_counter() - t1)
                    rec["status"], rec["reason"] = "done", ""
                    counts["done"] += 1
                except HessflowError as exc:
                    rec["status"], rec["reason"] = "failed", f"sp: {exc}"
                    counts["failed"] += 1
                t_qm += time.perf_counter() - t1
                st.put(rec)
            if bar:
                bar.update()
    if bar:
        bar.close()
    counts.update(embed_s=round(t_embed, 2), xtb_s=round(t_qm, 2))
    return counts


def free_atom_energies(elements, level: dict | None) -> dict:
    """Free-atom energies (Hartree) at ``level`` ({engine, method, basis}) for ``elements``,
    each atom in its ground-state multiplicity."""
    from ..qm.engines import get_engine
    from ..qm.level import Level
    from ..qm.molecule import Molecule
    from .element_data import GROUND_STATE_MULTIPLICITY
    if not level or not level.get("engine"):
        raise HessflowError("--reference atoms: the data do not name one level of theory "
                            "(engine/method), so free-atom energies cannot be computed")
    eng = get_engine(level["engine"])
    kw = {"method": level.get("method") or "b3lyp", "threads": 1}
    if level.get("basis"):
        kw["basis"] = level["basis"]
    lvl = Level(**kw)
    out = {}
    for z in sorted({int(z) for z in elements}):
        if z not in GROUND_STATE_MULTIPLICITY:
            raise HessflowError(f"element {symbol(z)}: no ground-state multiplicity tabulated")
        atom = Molecule(f"{symbol(z)} atom", [z], np.zeros((1, 3)),
                        multiplicity=GROUND_STATE_MULTIPLICITY[z]).validate()
        out[z] = float(eng.single_point(atom, lvl).energy_hartree)
    return out


# -- splits ----------------------------------------------------------------------------------
def molecule_splits(mols, val: float = 0.1, test: float = 0.1, seed: int = 0,
                    exclude_elements=(), few_shot: int = 0) -> dict:
    """Geometry indices of train/val/test (and "excluded") with whole molecules per split, plus
    the molecule ids of each split under "molecules"."""
    groups: dict[str, list[int]] = {}
    for i, m in enumerate(mols):
        groups.setdefault(m["group"], []).append(i)
    names = list(groups)
    excl = {int(z) for z in exclude_elements}
    has = [bool(excl & {int(z) for z in mols[groups[g][0]]["numbers"]}) for g in names]
    rng = np.random.default_rng(seed)
    pool = [g for g, h in zip(names, has) if not h]
    ex = [g for g, h in zip(names, has) if h]
    pool = [pool[i] for i in rng.permutation(len(pool))]
    ex = [ex[i] for i in rng.permutation(len(ex))]
    if few_shot and not excl:
        raise HessflowError("--few-shot: needs --exclude-element (which element to hold back)")
    if few_shot > len(ex):
        raise HessflowError(f"--few-shot: {few_shot} molecules asked for, only {len(ex)} contain "
                            f"{_elements_text(excl)}")
    n_test, n_val = int(round(test * len(pool))), int(round(val * len(pool)))
    mol_split = {"test": pool[:n_test], "val": pool[n_test:n_test + n_val],
                 "train": pool[n_test + n_val:] + ex[:few_shot], "excluded": ex[few_shot:]}
    if not mol_split["train"]:
        raise HessflowError("split: no training molecules left (too few molecules for the "
                            "val/test fractions, or every molecule has an excluded element)")
    out = {k: sorted(i for g in v for i in groups[g]) for k, v in mol_split.items()}
    out["molecules"] = mol_split
    return out


# -- datasets --------------------------------------------------------------------------------
class FeatureDataset(torch.utils.data.Dataset):
    """Precomputed per-atom features and standardised targets, one geometry per item."""

    def __init__(self, features, targets):
        self.features = features
        self.targets = torch.as_tensor(np.asarray(targets), dtype=torch.float32)

    def __len__(self):
        return len(self.features)

    def __getitem__(self, i):
        return (self.features[i],), self.targets[i]


def pad_collate(batch):
    n = max(b[0][0].shape[0] for b in batch)
    f = torch.zeros(len(batch), n, batch[0][0][0].shape[1], dtype=batch[0][0][0].dtype)
    mask = torch.zeros(len(batch), n, dtype=torch.bool)
    for j, ((x,), _) in enumerate(batch):
        f[j, :x.shape[0]] = x
        mask[j, :x.shape[0]] = True
    return (f, mask), torch.stack([b[1] for b in batch])


def _padded(mols, idx, dtype=torch.float64):
    n = max(len(mols[i]["numbers"]) for i in idx)
    z = torch.zeros(len(idx), n, dtype=torch.long)
    x = torch.zeros(len(idx), n, 3, dtype=dtype)
    for j, i in enumerate(idx):
        k = len(mols[i]["numbers"])
        z[j, :k] = torch.as_tensor(mols[i]["numbers"])
        x[j, :k] = torch.as_tensor(mols[i]["coords_bohr"], dtype=dtype)
    return z, x


@torch.no_grad()
def compute_features(net: BPNetwork, mols, batch_size: int = 16) -> list[torch.Tensor]:
    """Raw per-atom features of every geometry (float64 computation, float32 result), batched
    by atom count to keep padding small."""
    order = sorted(range(len(mols)), key=lambda i: len(mols[i]["numbers"]))
    out: list = [None] * len(mols)
    acsf64 = copy.deepcopy(net.acsf).double()
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        z, x = _padded(mols, idx)
        f = _atom_features(acsf64, z, x, z > 0)
        for j, i in enumerate(idx):
            out[i] = f[j, :len(mols[i]["numbers"])].float()
    return out


def _composition(mols, elements) -> np.ndarray:
    col = {z: c for c, z in enumerate(elements)}
    a = np.zeros((len(mols), len(elements)))
    for r, m in enumerate(mols):
        for z in m["numbers"]:
            a[r, col[int(z)]] += 1
    return a


def fit_reference(mols, idx) -> dict:
    """Least-squares per-element energies (Hartree) on the geometries ``idx``: E ≈ Σ_Z n_Z e(Z)."""
    sub = [mols[i] for i in idx]
    present = sorted({int(z) for m in sub for z in m["numbers"]})
    a = _composition(sub, present)
    y = np.array([m["energy_hartree"] for m in sub])
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    return {z: float(c) for z, c in zip(present, coef)}


# -- training and evaluation -----------------------------------------------------------------
def _is_main() -> bool:
    from .distributed import rank_world
    return rank_world()[0] == 0


@torch.no_grad()
def predict_energies(net: BPNetwork, mols, idx=None, batch_size: int = 32) -> np.ndarray:
    """Network energies (Hartree) of the geometries ``idx`` (all by default)."""
    idx = list(range(len(mols))) if idx is None else list(idx)
    out = np.zeros(len(idx))
    order = sorted(range(len(idx)), key=lambda j: len(mols[idx[j]]["numbers"]))
    dt = net.feat_mean.dtype
    for s in range(0, len(order), batch_size):
        sel = order[s:s + batch_size]
        z, x = _padded(mols, [idx[j] for j in sel], dtype=dt)
        e = net.energy_hartree(z, x).cpu().numpy()
        out[sel] = e
    return out


@torch.no_grad()
def _energies_from_features(net: BPNetwork, feats, mols, idx, batch_size: int = 256) -> np.ndarray:
    """As :func:`predict_energies`, from features already computed (:func:`compute_features`,
    float32: what the network was trained and validated on)."""
    idx = list(idx)
    out = np.zeros(len(idx))
    for s in range(0, len(idx), batch_size):
        sel = idx[s:s + batch_size]
        (f, mask), _ = pad_collate([((feats[i],), torch.zeros(())) for i in sel])
        z, _ = _padded(mols, sel)
        out[s:s + len(sel)] = net.energy_from_features(f, mask, net.reference_energy(z, mask)).numpy()
    return out


def energy_metrics(e_true, e_pred, e_ref=None) -> dict:
    """Metrics in kcal/mol. MAE and RMSE are those of the total energy; Pearson r and R² are on
    the energy relative to the reference part (the total energy's variance is mostly
    composition)."""
    t = np.asarray(e_true, float) - (0.0 if e_ref is None else np.asarray(e_ref, float))
    p = np.asarray(e_pred, float) - (0.0 if e_ref is None else np.asarray(e_ref, float))
    m = regression_metrics(t * HARTREE_KCALMOL, p * HARTREE_KCALMOL)
    m["unit"] = "kcal/mol"
    return m


def _per_element(mols, idx, err_kcal) -> dict:
    out = {}
    zs = sorted({int(z) for i in idx for z in mols[i]["numbers"]})
    for z in zs:
        sel = [j for j, i in enumerate(idx) if z in set(int(v) for v in mols[i]["numbers"])]
        out[symbol(z)] = {"n": len(sel), "mae_kcalmol": float(np.abs(err_kcal[sel]).mean())}
    return out


def prepare(mols, cfg: BPConfig) -> dict:
    """The configuration completed for ``mols`` (one-hot element list), its channel table, the
    modes, and every geometry's raw features. Pass it to :func:`train_bp` as ``prepared`` to
    train several networks of one feature kind on the same data without recomputing the ACSF."""
    all_z = sorted({int(z) for m in mols for z in m["numbers"]})
    if cfg.features == "onehot" and not cfg.elements:
        cfg = dataclasses.replace(cfg, elements=tuple(all_z))
    if cfg.features == "onehot":
        extra = sorted(set(all_z) - set(cfg.elements))
        if extra:
            raise HessflowError(f"elements: {_elements_text(extra)} in the data but not in the "
                                f"one-hot element list {_elements_text(cfg.elements)}")
    table, modes = channel_table(cfg)
    if modes is not None:
        untab = sorted(set(all_z) - set(modes.elements))
        if untab:
            raise HessflowError(f"element {_elements_text(untab)}: no elemental modes")
    t0 = time.perf_counter()
    feats = compute_features(BPNetwork(cfg, table), mols)
    return {"cfg": cfg, "table": table, "modes": modes, "features": feats, "elements": all_z,
            "feature_seconds": time.perf_counter() - t0, "n_geometries": len(mols)}


def train_bp(mols, cfg: BPConfig, train_cfg, run_dir, splits: dict, level: dict | None = None,
             data_path: str = "", prepared: dict | None = None) -> dict:
    """Train a network on ``mols`` (see :func:`load_energies`) with ``splits`` (see
    :func:`molecule_splits`); write the run directory; return the metrics (kcal/mol).
    ``prepared``: :func:`prepare` of the same ``mols`` and feature settings (reused features)."""
    from .train import train as ddp_train
    run_dir = Path(run_dir)
    if prepared is None:
        prepared = prepare(mols, cfg)
    elif prepared["n_geometries"] != len(mols):
        raise HessflowError("prepared: computed for other data")
    pc = prepared["cfg"]
    if ((cfg.features, cfg.n_modes, cfg.modes_seed, cfg.acsf)
            != (pc.features, pc.n_modes, pc.modes_seed, pc.acsf)
            or (cfg.elements and cfg.elements != pc.elements)):
        raise HessflowError("prepared: computed with other feature settings")
    cfg = dataclasses.replace(cfg, elements=pc.elements)
    table, modes, feats = prepared["table"], prepared["modes"], prepared["features"]
    all_z, t_feat = prepared["elements"], prepared["feature_seconds"]
    tr = list(splits["train"])

    # references
    if cfg.reference == "fit":
        ref = fit_reference(mols, tr)
    else:
        ref = free_atom_energies(all_z, level)
    ref_vec = torch.full((MAX_Z + 1,), float("nan"), dtype=torch.float64)
    for z, v in ref.items():
        ref_vec[z] = v
    e = np.array([m["energy_hartree"] for m in mols])
    n_at = np.array([len(m["numbers"]) for m in mols])
    known = ~np.isnan(ref_vec.numpy())
    e_ref = np.array([sum(ref[int(z)] for z in m["numbers"]) if all(known[int(z)] for z in m["numbers"])
                      else np.nan for m in mols])
    resid = e[tr] - e_ref[tr]
    shift = float(np.mean(resid / n_at[tr]))
    scale = float(np.std(resid - shift * n_at[tr]))
    scale = scale if scale > 1e-6 else 1e-3
    # NaN where a geometry has an element without a reference (one no training molecule has):
    # the masked losses leave it out instead of fitting its whole total energy
    target = (e - e_ref - shift * n_at) / scale

    # feature standardisation over the training atoms
    f_tr = torch.cat([feats[i] for i in tr]).double()
    mean, std = f_tr.mean(0), f_tr.std(0)
    std = torch.where(std > 1e-6, std, torch.ones_like(std))

    holder = {}

    def make():
        net = BPNetwork(cfg, table)
        net.feat_mean.copy_(mean.float())
        net.feat_std.copy_(std.float())
        net.ref_energy_hartree = ref_vec.clone()
        net.shift_hartree, net.scale_hartree = shift, scale
        holder["net"] = net
        return net

    ds = FeatureDataset(feats, target)
    tsplits = {k: list(splits[k]) for k in ("train", "val", "test")}
    t1 = time.perf_counter()
    hist = ddp_train(make, ds, tsplits, train_cfg, run_dir, collate=pad_collate, finish=False)
    t_train = time.perf_counter() - t1
    net = holder["net"].double().eval().cpu()

    metrics = {"features": cfg.features, "reference": cfg.reference, "unit": "kcal/mol",
               "n_geometries": len(mols), "n_molecules": len({m["group"] for m in mols}),
               "best_epoch": hist["best_epoch"], "epochs_run": hist["epochs_run"],
               "ranks": hist["ranks"], "feature_seconds": round(t_feat, 2),
               "train_seconds": round(t_train, 2), "history": hist["history"]}
    preds = {}
    for split in ("train", "val", "test", "excluded"):
        idx = list(splits.get(split, []))
        if not idx:
            continue
        ok = [i for i in idx if not np.isnan(e_ref[i])]
        if len(ok) < len(idx):  # elements without a reference energy ("fit" and unseen element)
            missing = sorted({int(z) for i in idx for z in mols[i]["numbers"] if not known[int(z)]})
            metrics[f"{split}_not_predicted"] = {"n": len(idx) - len(ok),
                                                 "reason": f"no reference energy for "
                                                           f"{_elements_text(missing)}"}
        if not ok:
            continue
        p = _energies_from_features(net, feats, mols, ok)
        metrics[split] = energy_metrics(e[ok], p, e_ref[ok] + shift * n_at[ok])
        metrics[split]["per_element"] = _per_element(mols, ok, (p - e[ok]) * HARTREE_KCALMOL)
        preds[split] = {"name": [mols[i]["name"] for i in ok], "energy_hartree": e[ok].tolist(),
                        "pred_hartree": p.tolist()}
    if _is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
        torch.save(net.bundle(modes), run_dir / "model.pt")
        (run_dir / "config.json").write_text(json.dumps({
            "model": cfg.to_dict(), "train": dataclasses.asdict(train_cfg), "data": str(data_path),
            "level": level, "reference_energy_hartree": {symbol(z): v for z, v in ref.items()},
            "shift_hartree": shift, "scale_hartree": scale,
            "modes": None if modes is None else {
                "reconstruction_rmse": modes.reconstruction_rmse,
                "beta": {symbol(z): b.tolist() for z, b in zip(modes.elements, modes.modes)}},
        }, indent=1))
        (run_dir / "splits.json").write_text(json.dumps(splits))
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
        (run_dir / "predictions.json").write_text(json.dumps(preds))
        ck = run_dir / "checkpoint.pt"
        if ck.exists():
            ck.unlink()  # the selected weights are in model.pt
    return metrics


def evaluate_bp(run_dir, data_path, limit: int | None = None) -> dict:
    """Energies of every geometry in ``data_path`` against the run's network: metrics (kcal/mol)
    for molecules held out of its training ("held_out") and those it trained on ("seen")."""
    net = load_model(run_dir)
    mols, _ = load_energies(data_path, limit)
    sp = Path(run_dir) / "splits.json"
    trained = set()
    if sp.exists():
        mol_splits = json.loads(sp.read_text()).get("molecules", {})
        trained = set(mol_splits.get("train", [])) | set(mol_splits.get("val", []))
    e = np.array([m["energy_hartree"] for m in mols])
    p = predict_energies(net, mols)
    with torch.no_grad():
        ref = np.array([float(net.reference_energy(torch.as_tensor(m["numbers"])[None])[0])
                        for m in mols])
    out = {"data": str(data_path), "run": str(run_dir), "unit": "kcal/mol"}
    for name, sel in (("held_out", [i for i, m in enumerate(mols) if m["group"] not in trained]),
                      ("seen", [i for i, m in enumerate(mols) if m["group"] in trained])):
        if sel:
            out[name] = energy_metrics(e[sel], p[sel], ref[sel])
            out[name]["n_molecules"] = len({mols[i]["group"] for i in sel})
            out[name]["per_element"] = _per_element(mols, sel, (p[sel] - e[sel]) * HARTREE_KCALMOL)
    return out


def run_spec(spec_path) -> dict:
    """Train from a JSON spec (what ``hessflow bp train --ranks N`` hands to every MPI rank)."""
    from .train import TrainConfig
    spec = json.loads(Path(spec_path).read_text())
    mols, level = load_energies(spec["data"], spec.get("limit"))
    z_ex = spec.get("exclude_elements", [])
    splits = molecule_splits(mols, spec["val"], spec["test"], spec["split_seed"], z_ex,
                             spec.get("few_shot", 0))
    return train_bp(mols, BPConfig(**spec["model"]), TrainConfig(**spec["train"]), spec["out"],
                    splits, level, spec["data"])


if __name__ == "__main__":  # python -m hessflow.ml.bpnn SPEC.json (one MPI rank)
    from .distributed import spec_main
    sys.exit(spec_main(run_spec, "bp train"))
