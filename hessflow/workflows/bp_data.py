"""Training data for the Behler–Parrinello network: GFN2-xTB single points on displaced conformers.

:func:`generate_xtb_store` makes a hessflow store that :func:`hessflow.ml.bp.load_energies` reads:
RDKit conformers, randomly displaced copies, GFN2-xTB single points (``benchmarks/study_elemental``
and the tests build their data with it).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from ..errors import HessflowError
from ..qm import assemble
from ..qm.molecules.conformers import from_smiles
from ..qm.engines import get_engine
from ..qm.level import Level
from ..qm.molecules.molecule import Molecule, content_key
from ..qm.tasks import run_single_point
from ..store import Store


def generate_xtb_store(molecules, store_path, n_geometries: int = 4, sigma_bohr: float = 0.05,
                       seed: int = 0, progress: bool = False) -> dict:
    """GFN2-xTB single points on displaced RDKit conformers, written to a hessflow store.

    ``molecules``: (name, SMILES) pairs. Geometry 0 is the ETKDG+MMFF94 conformer; geometries
    1..n-1 add independent Gaussian displacements of ``sigma_bohr`` to every Cartesian
    coordinate (generator seeded by ``seed`` and the molecule's position). Records are named
    ``NAME/gJ``, keyed by the geometry, and skipped when already done (re-running resumes).
    Returns counts and timings."""
    eng = get_engine("xtb")
    level = Level(method="gfn2-xtb", threads=1)
    lvl_key = dict(eng.level_for_key(level), geometry="input")
    counts = {"done": 0, "failed": 0, "skipped": 0, "molecules_failed": 0}
    t_embed = t_qm = 0.0
    bar = None
    if progress:
        from tqdm import tqdm
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
                rec = assemble.new_record(geom, eng, level, ())
                prov = json.loads(rec["provenance"])
                prov["displacement"] = {"index": j, "sigma_bohr": sigma_bohr if j else 0.0,
                                        "seed": [int(seed), idx]}
                rec.update(key=key, name=f"{name}/g{j}", provenance=json.dumps(prov, default=float))
                t1 = time.perf_counter()
                try:
                    assemble.merge(rec, "sp", run_single_point(geom, eng, level),
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
