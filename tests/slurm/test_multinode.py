"""The multi-node test cluster (hessflow/slurm/multinode.sh): nodes with their own hostnames and
addresses, QM fan-out over blocks of two nodes equal to a local run, and data-parallel training
over two nodes whose rendezvous comes from Slurm's environment."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from hessflow.store import Store

pytestmark = pytest.mark.xdist_group("multinode")

from tests.stock import REPO  # noqa: E402
from tests.stock import DDP_JOB  # noqa: E402
MULTINODE_SH = REPO / "hessflow" / "slurm" / "multinode.sh"
MOLS = ("O water\nN ammonia\nC=O formaldehyde\nC#N hcn\nCO methanol\nC methane\nC=C ethylene\n"
        "C#C acetylene\nCC ethane\nOO hydrogen_peroxide\n")
COMPARE = ("energy_hartree", "zpve_hartree", "homo_hartree", "lumo_hartree")


def _job_env(cluster, **extra):
    """The environment of a job: the venv first on PATH, this tree on PYTHONPATH, one thread."""
    env = cluster.env(PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
                      PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", **extra)
    for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "PMI_RANK", "PMI_SIZE",
              "SLURM_JOB_ID", "SLURM_JOBID"):
        env.pop(k, None)
    return env


def _sbatch(cluster, tmp_path, name, body, *opts, timeout=240):
    """Run ``body`` (bash lines) as a batch job; return (state, stdout+stderr of the job)."""
    script = tmp_path / f"{name}.sh"
    script.write_text("#!/bin/bash\nset -e\n" + body + "\n")
    out = tmp_path / f"{name}.out"
    r = subprocess.run(["sbatch", "--parsable", f"--output={out}", f"--chdir={tmp_path}",
                        "--time=00:10:00", *opts, str(script)], capture_output=True, text=True,
                       env=_job_env(cluster), timeout=60)
    assert r.returncode == 0, r.stderr
    state = cluster.wait_job(r.stdout.strip().split(";")[0], timeout=timeout)
    return state, out.read_text() if out.exists() else ""


def hessflow(*args, env, timeout=600, **kw):
    return subprocess.run([sys.executable, "-m", "hessflow", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env, **kw)


# -- the rendezvous, without a cluster -------------------------------------------------------
@pytest.mark.parametrize("nodelist, hosts", [
    ("hf-node[1-3]", ["hf-node1", "hf-node2", "hf-node3"]),
    ("a01,b[08-11],c", ["a01", "b08", "b09", "b10", "b11", "c"]),
    ("gpu[1,3-4]x", ["gpu1x", "gpu3x", "gpu4x"]),
    ("n1", ["n1"]),
])
def test_hostlists_expand_like_scontrol_show_hostnames(nodelist, hosts, monkeypatch):
    from hessflow.ml.core.distributed import expand_hostlist
    monkeypatch.setenv("PATH", "/nonexistent")  # the built-in parser, not scontrol
    assert expand_hostlist(nodelist) == hosts


def test_slurm_rendezvous_is_the_first_node_and_a_port_from_the_job():
    from hessflow.ml.core.distributed import PORT_BASE, PORT_SPAN, slurm_rendezvous
    step = {"SLURM_STEP_NODELIST": "hf-node[2-3]", "SLURM_STEP_NUM_TASKS": "4",
            "SLURM_JOB_ID": "417", "SLURM_STEP_ID": "1", "PATH": "/nonexistent"}
    addr, port = slurm_rendezvous(4, step)
    assert addr == "hf-node2" and port == PORT_BASE + (417 * 16 + 1) % PORT_SPAN
    assert slurm_rendezvous(4, {**step, "SLURM_STEP_ID": "2"})[1] == port + 1
    assert slurm_rendezvous(4, {**step, "HESSFLOW_MASTER_PORT": "23456"}) == ("hf-node2", 23456)
    assert slurm_rendezvous(4, {**step, "SLURM_STEP_NODELIST": "hf-node2"})[0] == "127.0.0.1"
    assert slurm_rendezvous(2, step) is None            # not the step's tasks (e.g. mpiexec inside)
    assert slurm_rendezvous(4, {"PATH": "/nonexistent"}) is None  # not under Slurm
    batch = {"SLURM_JOB_NODELIST": "hf-node[1-2]", "SLURM_NTASKS": "4", "SLURM_JOB_ID": "9"}
    assert slurm_rendezvous(4, batch)[0] == "hf-node1"  # no step list: the job's


# -- the cluster ------------------------------------------------------------------------------
def test_nodes_have_their_own_hostnames_and_addresses(multinode_cluster, tmp_path):
    c = multinode_cluster
    assert len(c.nodes) >= 3
    n = len(c.nodes)
    state, out = _sbatch(c, tmp_path, "hosts", (
        "srun -l bash -c 'echo HOST $(hostname) $(hostname -I) "
        "$(getent hosts $(hostname) | cut -d\" \" -f1) "
        "$(getent hosts $(hostname -I) | tr -s \" \" | cut -d\" \" -f2)'"), f"--nodes={n}",
        f"--ntasks={n}")
    assert state == "COMPLETED", out
    rows = [ln.split()[2:] for ln in out.splitlines() if " HOST " in ln]
    assert sorted(r[0] for r in rows) == c.nodes  # one task per node, each its own hostname
    for host, addr, forward, back in rows:
        assert addr.startswith("10.213.7.") and addr != c.login_addr
        assert forward == addr and back == host  # names resolve both ways on every node
    assert len({r[1] for r in rows}) == n


# -- QM fan-out over nodes --------------------------------------------------------------------
def _workflow(tmp_path, executor):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "mols.smi").write_text(MOLS)
    cfg = {"name": "wf", "inputs": ["mols.smi"], "store": "wf.h5",
           "qm": {"engine": "xtb", "tasks": ["opt", "freq"]}, "executor": executor}
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def fan_out(multinode_cluster, tmp_path_factory):
    """The same 10 molecules (GFN2-xTB opt + freq) on local cores and on the multi-node cluster:
    two blocks of two nodes each, one worker per node; the driver on the login address."""
    c = multinode_cluster
    base = tmp_path_factory.mktemp("fanout")
    stores = {}
    for kind, executor in (
            ("local", {"kind": "local", "workers": 2}),
            ("multinode", {"kind": "slurm", "partition": "debug", "walltime": "00:10:00",
                           "nodes_per_block": 2, "init_blocks": 2, "min_blocks": 0,
                           "max_blocks": 2, "cores_per_node": 1, "workers": 1,
                           "max_idletime": 5, "address": c.login_addr})):
        out = hessflow("run", _workflow(base / kind, executor), "--no-progress",
                       env=_job_env(c))
        assert out.returncode == 0, out.stderr[-3000:]
        assert "done=10 skipped=0 failed=0" in out.stdout, out.stdout[-2000:]
        stores[kind] = base / kind / "wf.h5"
    return stores


def _records(path):
    return {r["name"]: r for r in Store(path).records()}


def test_qm_fan_out_over_two_node_blocks_equals_a_local_run(fan_out):
    local, multi = _records(fan_out["local"]), _records(fan_out["multinode"])
    assert set(local) == set(multi) and len(multi) == 10
    for name, a in local.items():
        b = multi[name]
        assert a["key"] == b["key"] and a["status"] == b["status"] == "done", name
        for f in COMPARE:  # one thread per task in both runs: the same numbers
            assert b[f] == pytest.approx(a[f], rel=1e-10, abs=1e-12), (name, f)
        assert np.allclose(a["hessian_hartree_bohr2"], b["hessian_hartree_bohr2"], atol=1e-9)
        assert np.allclose(a["frequencies_cm1"], b["frequencies_cm1"], atol=1e-5)
    hosts = {h for r in multi.values() for h in json.loads(r["provenance"])["hosts"].values()}
    assert len(hosts) >= 2 and all(h.startswith("hf-node") for h in hosts), hosts


# -- training across nodes --------------------------------------------------------------------
RECORD_WHERE = (
    "import os, runpy, socket, sys\n"
    "job, out = sys.argv[1], sys.argv[2]\n"
    "sys.argv = [job, out, sys.argv[3]]\n"
    "runpy.run_path(job, run_name='__main__')\n"
    "rank = os.environ['SLURM_PROCID']\n"
    "open(os.path.join(out, 'where' + rank), 'w').write(' '.join([socket.gethostname(), "
    "os.environ['MASTER_ADDR'], os.environ['MASTER_PORT']]))\n")


def test_ddp_over_two_nodes_matches_one_rank_with_the_same_global_batch(multinode_cluster, tmp_path):
    """tests/ml/core/_ddp_job.py on 4 ranks (2 per node) started by srun without MPI: the rendezvous is
    the first node of the step and a port from the job id, and the result equals one rank's."""
    c = multinode_cluster
    one = tmp_path / "one"
    r = subprocess.run([sys.executable, str(DDP_JOB), str(one), "6"], capture_output=True,
                       text=True, env=_job_env(c), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    ref = json.loads((one / "rank0.json").read_text())
    (tmp_path / "where.py").write_text(RECORD_WHERE)
    four = tmp_path / "four"
    state, out = _sbatch(c, tmp_path, "ddp", (
        f"srun --mpi=none -n 4 python where.py {DDP_JOB} {four} 6"), "--nodes=2", "--ntasks=4",
        "--ntasks-per-node=2")
    assert state == "COMPLETED", out[-3000:]
    ranks = [json.loads((four / f"rank{i}.json").read_text()) for i in range(4)]
    where = [(four / f"where{i}").read_text().split() for i in range(4)]
    assert len({w[0] for w in where}) == 2             # the ranks ran on two nodes
    addr, port = where[0][1], where[0][2]
    assert addr == where[0][0] != "127.0.0.1"          # rank 0's node, by name
    assert all(w[1:] == [addr, port] for w in where)   # one rendezvous for every rank
    assert {r["world"] for r in ranks} == {4}
    assert len({r["digest"] for r in ranks}) == 1      # identical weights on every rank
    l1 = [h["train_loss"] for h in ref["history"]]
    l4 = [h["train_loss"] for h in ranks[0]["history"]]
    assert np.allclose(l1, l4, rtol=1e-4) and l4[-1] < 0.5 * l4[0]
    w1 = np.concatenate([np.asarray(w) for w in ref["weights"]])
    w4 = np.concatenate([np.asarray(w) for w in ranks[0]["weights"]])
    assert np.allclose(w1, w4, atol=1e-4)


TRAIN = ("--target", "zpve", "--model", "mlp", "--epochs", "5", "--batch-size", "8",
         "--augment", "quantum:300:4")  # 8 training molecules x 4 samples: 8 per rank and batch


def test_hessflow_train_four_ranks_on_two_nodes_equals_one_rank(multinode_cluster, fan_out, tmp_path):
    """``hessflow train --ranks 4`` inside a 2-node job: srun starts the ranks over both nodes;
    the loss curve and the saved weights equal a 1-rank run's with the same global batch."""
    import torch
    c = multinode_cluster
    store = fan_out["multinode"]
    one = hessflow("train", store, *TRAIN, "--out", tmp_path / "one", env=_job_env(c))
    assert one.returncode == 0, one.stderr[-3000:]
    state, out = _sbatch(c, tmp_path, "train4", (
        f"srun -l hostname\n{sys.executable} -m hessflow train {store} {' '.join(TRAIN)} "
        f"--ranks 4 --out {tmp_path / 'four'}"), "--nodes=2", "--ntasks=4", "--ntasks-per-node=2")
    assert state == "COMPLETED", out[-3000:]
    assert len({ln.split()[-1] for ln in out.splitlines() if ln[:2] in ("0:", "1:", "2:", "3:")}) == 2
    m1, m4 = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("one", "four"))
    assert m4["ranks"] == 4 and m1["ranks"] == 1
    l1, l4 = ([h["train_loss"] for h in m["history"]] for m in (m1, m4))
    assert np.allclose(l1, l4, rtol=1e-5) and l4[-1] < l4[0]
    w1, w4 = (torch.load(tmp_path / d / "model.pt") for d in ("one", "four"))
    assert w1.keys() == w4.keys()
    for k in w1:
        assert torch.allclose(w1[k], w4[k], atol=1e-5), k


# -- a node that dies -------------------------------------------------------------------------
DIE_MOLS = MOLS + ("c1ccccc1 benzene\nCc1ccccc1 toluene\nOc1ccccc1 phenol\nc1ccncc1 pyridine\n"
                   "CCCC butane\nCC(C)=O acetone\nc1ccoc1 furan\nNc1ccccc1 aniline\n"
                   "c1ccsc1 thiophene\nCCOC(C)=O ethyl_acetate\n")
# Parsl notices a lost worker pool only by missed heartbeats (slurm profiles: 60 s); the test driver
# lowers the threshold so that a dead node's tasks are retried within seconds. (On a cluster,
# the 60 s default only delays the retry.)
# (hessflow passes its own HEARTBEATS to every HTEX, so the driver replaces those: wrapping
# HighThroughputExecutor.__init__ with setdefault left the 60 s of slurm profiles in place.)
FAST_HEARTBEAT_DRIVER = (
    "import sys\n"
    "from hessflow.slurm import executors\n"
    "executors.HEARTBEATS['slurm'] = {'heartbeat_period': 2, 'heartbeat_threshold': 10}\n"
    "from hessflow.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n")


def _registered(run_root, node):
    """Has a worker pool on ``node`` registered with the interchange (its log says so)?"""
    return any(f"'hostname': '{node}'" in p.read_text(errors="replace")
               for p in run_root.glob("runs/*/parsl/*/qm/interchange.log"))


def test_a_node_that_dies_mid_run_loses_nothing(multinode_cluster, tmp_path):
    """Two exclusive blocks of two nodes; when one block has tasks running, hf-node4 dies (its
    slurmd and every process on it are SIGKILLed). Slurm fails that block (NODE_FAIL), Parsl
    retries its tasks on the surviving block, and the run completes: every molecule stored once."""
    import time
    c = multinode_cluster
    victim = c.nodes[-1]
    path = _workflow(tmp_path, {
        "kind": "slurm", "partition": "debug", "walltime": "00:10:00", "nodes_per_block": 2,
        "init_blocks": 2, "min_blocks": 0, "max_blocks": 2, "cores_per_node": 1, "workers": 1,
        "exclusive": True, "retries": 2, "max_idletime": 5, "address": c.login_addr})
    (tmp_path / "mols.smi").write_text(DIE_MOLS)
    n_mols = len(DIE_MOLS.splitlines())
    (tmp_path / "driver.py").write_text(FAST_HEARTBEAT_DRIVER)
    env = _job_env(c)
    log = open(tmp_path / "driver.log", "w")
    driver = subprocess.Popen([sys.executable, str(tmp_path / "driver.py"), "run", "--no-progress",
                               str(path)], stdout=log, stderr=subprocess.STDOUT, env=env,
                              cwd=tmp_path)
    try:
        t0, dead_block = time.monotonic(), None
        while time.monotonic() - t0 < 120 and driver.poll() is None:
            if _registered(tmp_path, victim):
                time.sleep(1.5)  # its worker is busy with a task now (more tasks than workers)
                dead_block = next((ln.split()[1] for ln in c.run(
                    "squeue", "-h", "-t", "R", "-o", "%i %N").stdout.splitlines()
                    if victim in c.run("scontrol", "show", "hostnames", ln.split()[1]).stdout.split()),
                    None)
                r = subprocess.run([str(MULTINODE_SH), "kill-node", victim],
                                   capture_output=True, text=True, env=c.env())
                assert r.returncode == 0, r.stderr
                break
            time.sleep(0.3)
        assert dead_block, "the victim node never ran a worker pool"
        rc = driver.wait(timeout=240)
    finally:
        if driver.poll() is None:
            driver.kill()
        log.close()
        subprocess.run([str(MULTINODE_SH), "revive-node", victim],
                       capture_output=True, text=True, env=c.env())
    text = (tmp_path / "driver.log").read_text()
    assert rc == 0, text[-3000:]
    assert f"done={n_mols} skipped=0 failed=0" in text, text[-3000:]
    dead_nodes = set(c.run("scontrol", "show", "hostnames", dead_block).stdout.split())
    st = Store(tmp_path / "wf.h5")
    recs = list(st.records())
    names = [r["name"] for r in recs]
    assert len(names) == len(set(names)) == n_mols == len(list(st.keys()))  # none lost, none twice
    assert all(r["status"] == "done" for r in recs)
    retried = [(r["name"], t, prov["hosts"][t]) for r in recs
               for prov in [json.loads(r["provenance"])] for t, n in prov["attempts"].items() if n > 1]
    assert retried, "no task was in flight on the dead node"
    # a retried task ran again on a live node: the surviving block, or the dead block's other
    # node while Slurm had not yet failed that job (SlurmdTimeout)
    assert all(h != victim for _, _, h in retried), (retried, dead_nodes)


MPI_DRIVER = '''
import json, sys
import parsl
from parsl import bash_app
from hessflow.slurm.executors import MPI_LABEL, parsl_config

profile, run_dir, cmd = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3:]

@bash_app(executors=[MPI_LABEL])
def ddp(profile, cmd, parsl_resource_specification=None, stdout=None, stderr=None):
    import shlex
    from hessflow.slurm.executors import profile_launch_prefix  # on the worker: srun in the block
    return shlex.join(profile_launch_prefix(profile) + cmd)

with parsl.load(parsl_config(profile, run_dir)):
    fut = ddp(profile, cmd, stdout=run_dir + "/ddp.out", stderr=run_dir + "/ddp.err",
              parsl_resource_specification={"num_nodes": 2, "ranks_per_node": 1, "num_ranks": 2})
    print("exit", fut.result())
'''


def test_ddp_on_the_mpi_executor_spans_a_two_node_block(multinode_cluster, tmp_path):
    """The profile's ``mpi`` executor (Parsl's MPIExecutor, an exclusive 2-node block): the task
    runs ``profile_launch_prefix`` = ``srun -n 2 --mpi=pmi2`` in its block, the ranks spread over
    both nodes and meet at the block's first node."""
    c = multinode_cluster
    profile = {"kind": "slurm", "partition": "debug", "walltime": "00:10:00", "init_blocks": 0,
               "min_blocks": 0, "max_blocks": 1, "max_idletime": 5, "address": c.login_addr,
               "mpi": {"ranks": 2, "nodes_per_block": 2, "max_blocks": 1}}
    (tmp_path / "where.py").write_text(RECORD_WHERE)
    (tmp_path / "driver.py").write_text(MPI_DRIVER)
    out = tmp_path / "four"
    r = subprocess.run([sys.executable, str(tmp_path / "driver.py"), json.dumps(profile),
                        str(tmp_path), sys.executable, str(tmp_path / "where.py"), str(DDP_JOB),
                        str(out), "2"], capture_output=True, text=True, env=_job_env(c),
                       timeout=300, cwd=tmp_path)
    logs = "".join(p.read_text() for p in tmp_path.glob("ddp.*"))
    assert r.returncode == 0 and "exit 0" in r.stdout, (r.stderr[-3000:], logs[-3000:])
    where = [(out / f"where{i}").read_text().split() for i in range(2)]
    ranks = [json.loads((out / f"rank{i}.json").read_text()) for i in range(2)]
    assert len({w[0] for w in where}) == 2 and where[0][1] == where[0][0] != "127.0.0.1"
    assert where[1][1:] == where[0][1:]
    assert len({r["digest"] for r in ranks}) == 1 and {r["world"] for r in ranks} == {2}


def _vae_spec(data, out):
    return {"data": str(data), "out": str(out), "properties": ["zpve"], "embed": 8, "hidden": 16,
            "layers": 1, "latent": 4, "batch_size": 8, "epochs": 3, "n_prior": 4, "n_recon": 4,
            "device": "cpu"}


def _sorted_xyz(store, path):
    """The store's finished molecules as extended XYZ (energy_hartree= name= on each comment line),
    by name: the store's record order follows task completion, and BP splits by position."""
    from hessflow.units import ANGSTROM_BOHR
    from hessflow.qm.molecules.elements import symbol
    lines = []
    for r in sorted(Store(store).records(), key=lambda r: r["name"]):
        lines += [str(len(r["numbers"])), f"energy_hartree={r['energy_hartree']!r} name={r['name']}"]
        lines += [f"{symbol(int(z))} {x:.10f} {y:.10f} {w:.10f}"
                  for z, (x, y, w) in zip(r["numbers"], r["coords_opt_bohr"] / ANGSTROM_BOHR)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _bp_spec(data, out):
    return {"data": str(data), "out": str(out), "limit": None, "val": 0.1, "test": 0.1,
            "split_seed": 0, "exclude_elements": [], "few_shot": 0, "model": {"hidden": [8]},
            "train": {"epochs": 5, "batch_size": 8, "seed": 3, "device": "cpu", "patience": 1000}}


def test_vae_and_bp_train_across_two_nodes(multinode_cluster, fan_out, tmp_path):
    """The SMILES VAE and the Behler-Parrinello network, each on 2 ranks (one per node) started by
    srun (``python -m hessflow.ml.vae|bp SPEC.json``, what their commands launch), against one
    rank with the same global batch. BP: the same loss curve and weights. VAE: the same weights
    on both ranks, and the first epoch's KL and property terms of one rank; the reconstruction
    term is not compared: every rank draws its own reparameterisation noise, so 2 ranks follow a
    different (equally valid) sample path than 1 rank."""
    import torch
    c = multinode_cluster
    data = {"vae": fan_out["multinode"],
            "bp": _sorted_xyz(fan_out["multinode"], tmp_path / "molecules.xyz")}
    specs = {}
    for model, make in (("vae", _vae_spec), ("bp", _bp_spec)):
        for ranks in (1, 2):
            specs[model, ranks] = tmp_path / f"{model}{ranks}.json"
            specs[model, ranks].write_text(json.dumps(make(data[model], tmp_path / f"{model}{ranks}")))
    # the one-rank references in one process (one torch import)
    r = subprocess.run([sys.executable, "-c", (
        "import sys\nfrom hessflow.ml.vae.spec import main as vae\n"
        "from hessflow.ml.bp.spec import main as bp\n"
        "sys.exit(vae([sys.argv[1]]) or bp([sys.argv[2]]))"), str(specs["vae", 1]),
        str(specs["bp", 1])], capture_output=True, text=True, env=_job_env(c), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    state, out = _sbatch(c, tmp_path, "vaebp", "\n".join(
        f"srun -n 2 {sys.executable} -m hessflow.ml.{m} {specs[m, 2]}" for m in ("vae", "bp")),
        "--nodes=2", "--ntasks=2", "--ntasks-per-node=1")
    assert state == "COMPLETED", out[-3000:]
    m = {(k, n): json.loads((tmp_path / f"{k}{n}" / "metrics.json").read_text())
         for k in ("vae", "bp") for n in (1, 2)}
    assert m["vae", 2]["ranks"] == m["bp", 2]["ranks"] == 2
    # BP: one rank's loss curve and weights
    l1, l2 = ([h["train_loss"] for h in m["bp", n]["history"]] for n in (1, 2))
    assert np.allclose(l1, l2, rtol=1e-5)
    w1, w2 = (torch.load(tmp_path / f"bp{n}" / "model.pt")["state_dict"] for n in (1, 2))
    for k in w1:
        assert torch.allclose(w1[k], w2[k], atol=1e-5), k
    # VAE: identical weights on both ranks; in the first epoch (one global batch, the same
    # starting weights) the KL and property terms of one rank
    assert len(m["vae", 2]["rank_digests"]) == 2 and len(set(m["vae", 2]["rank_digests"])) == 1
    h1, h2 = m["vae", 1]["history"], m["vae", 2]["history"]
    for term in ("train_kl", "train_prop"):
        assert h2[0][term] == pytest.approx(h1[0][term], rel=1e-6), term
    assert all(np.isfinite(h["train_loss"]) for h in h2) and len(h2) == len(h1) == 3


def test_workflow_train_stage_spans_a_two_node_mpi_block(multinode_cluster, fan_out, tmp_path):
    """``stages.train`` with ``ranks: 4`` on ``mpi.nodes_per_block: 2`` (workflow -> Parsl
    MPIExecutor, resource spec 2 nodes x 2 ranks -> ``srun -n 4 --nodes=2
    --ntasks-per-node=2`` in the block): the QM part is all skipped (a copy of the fan-out's
    store), the stage trains on 4 ranks, and its loss curve and weights equal one rank's."""
    import shutil

    import torch
    c = multinode_cluster
    store = tmp_path / "wf.h5"
    shutil.copy(fan_out["multinode"], store)
    (tmp_path / "mols.smi").write_text(MOLS)
    stage = {"target": "zpve", "model": "mlp", "epochs": 5, "batch_size": 8,
             "augment": "quantum:300:4", "ranks": 4, "out": "four"}
    (tmp_path / "wf.yaml").write_text(yaml.safe_dump({
        "name": "wf", "inputs": ["mols.smi"], "store": "wf.h5",
        "qm": {"engine": "xtb", "tasks": ["opt", "freq"]},
        "executor": {"kind": "slurm", "partition": "debug", "walltime": "00:10:00",
                     "init_blocks": 0, "max_blocks": 1, "max_idletime": 5,
                     "address": c.login_addr,
                     "mpi": {"nodes_per_block": 2, "max_blocks": 1, "walltime": "00:10:00"}},
        "stages": {"train": stage}}))
    run = hessflow("run", tmp_path / "wf.yaml", "--no-progress", env=_job_env(c), cwd=tmp_path)
    err = "".join(p.read_text() for p in (tmp_path / "four").glob("train.*"))
    assert run.returncode == 0, (run.stdout[-2000:], run.stderr[-2000:], err[-2000:])
    assert "done=0 skipped=10 failed=0" in run.stdout
    assert "train: mlp on zpve, 4 rank(s)" in run.stderr, run.stderr[-2000:]
    scripts = [p.read_text() for p in (tmp_path / "runs").rglob("submit_scripts/*")
               if p.suffix not in (".stdout", ".stderr")]
    assert any("#SBATCH --nodes=2" in s and "--exclusive" in s for s in scripts)  # the MPI block
    one = hessflow("train", store, *TRAIN, "--out", tmp_path / "one", env=_job_env(c))
    assert one.returncode == 0, one.stderr[-3000:]
    m1, m4 = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("one", "four"))
    assert m4["ranks"] == 4 and m1["ranks"] == 1
    l1, l4 = ([h["train_loss"] for h in m["history"]] for m in (m1, m4))
    assert np.allclose(l1, l4, rtol=1e-5) and l4[-1] < l4[0]
    w1, w4 = (torch.load(tmp_path / d / "model.pt") for d in ("one", "four"))
    for k in w1:
        assert torch.allclose(w1[k], w4[k], atol=1e-5), k
