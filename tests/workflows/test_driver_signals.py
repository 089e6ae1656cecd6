"""Process hygiene of ``hessflow run`` (issue #12, item 7), with the xtb engine on a local HTEX.

Each driver is started in a session of its own, so every process it starts — the interchange,
the worker pools that Parsl's LocalProvider puts in process groups of their own, their workers —
carries its session id: the test records them by PID (with their start time, against PID reuse)
while the run is under way and checks afterwards that none is left.

- Ctrl-C in a terminal (SIGINT to the driver's process group) and SIGTERM (to the driver, and to
  every process of the job as Slurm's scancel does) end the run within seconds with one line and
  the summary, no traceback, every committed record intact, and no process left (and Ctrl-C on a
  ``threads`` profile, whose tasks run inside the driver);
- after kill -9 of the driver alone, nothing it started outlives it by more than about a minute.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hessflow.store import Store

MOLS = "".join(f"{s} m{i}\n" for i, s in enumerate(
    ["CCO", "CC=O", "NC=O", "COC", "C1CC1", "CC#N", "OCC=O", "CC(C)=O", "NCC(=O)O", "c1ccoc1",
     "CCCO", "CCOC"]))


def _stat(pid):
    """(session id, state, start time) of a process, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[3]), fields[0], int(fields[19])


def _cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _session(sid) -> dict:
    """{pid: (start time, command line)} of the live processes of session ``sid``."""
    out = {}
    for d in Path("/proc").glob("[0-9]*"):
        st = _stat(d.name)
        if st and st[0] == sid and st[1] != "Z":
            out[int(d.name)] = (st[2], _cmdline(d.name))
    return out


def _alive(seen: dict) -> dict:
    """The processes of ``seen`` still alive (same PID and start time, not a zombie)."""
    left = {}
    for pid, (start, cmd) in seen.items():
        st = _stat(pid)
        if st and st[1] != "Z" and st[2] == start:
            left[pid] = cmd
    return left


def _config(tmp_path, kind="local"):
    (tmp_path / "mols.smi").write_text(MOLS)
    cfg = {"name": "sig", "inputs": ["mols.smi"], "store": "sig.h5",
           "qm": {"engine": "xtb", "tasks": ["opt", "freq"]},
           "executor": {"kind": kind, "workers": 2}}
    path = tmp_path / "sig.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def started(request):
    """The sessions started by a test, SIGKILLed at its end whatever its outcome (a failing test
    must not leave a driver or its workers behind)."""
    sessions = []
    yield sessions
    for sid in sessions:
        for pid in _session(sid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _start(tmp_path, sessions, kind="local"):
    """Start ``hessflow run`` in a new session; wait (recording its processes) until a worker pool
    runs (``local``) and a first result is committed. Returns (process, processes seen)."""
    path = _config(tmp_path, kind)
    log = tmp_path / "calls.log"
    env = dict(os.environ, HESSFLOW_CALL_LOG=str(log))
    proc = subprocess.Popen([sys.executable, "-m", "hessflow", "run", str(path), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    sessions.append(proc.pid)
    seen: dict = {}
    t_end = time.time() + 90
    while time.time() < t_end:
        seen.update(_session(proc.pid))
        committed = log.exists() and "commit " in log.read_text()
        pools = [c for _, c in seen.values() if "process_worker_pool" in c]
        if committed and (kind == "threads" or (pools and len(seen) >= 5)):
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("no result committed within 90 s")
    for _ in range(5):  # a few more looks, so that every worker is on the list
        seen.update(_session(proc.pid))
        time.sleep(0.05)
    assert kind == "threads" or any("interchange" in c for _, c in seen.values()), seen
    return proc, seen


def _committed(tmp_path):
    """Keys of the records reported committed in the call log (task, key)."""
    lines = (tmp_path / "calls.log").read_text().splitlines()
    return {(ev[1], ev[2]) for ev in (ln.split() for ln in lines) if ev and ev[0] == "commit"}


def _wait_gone(seen, within_s):
    t_end = time.time() + within_s
    while time.time() < t_end:
        left = _alive(seen)
        if not left:
            return {}
        time.sleep(0.25)
    return _alive(seen)


@pytest.mark.parametrize("sig, target, kind", [
    ("SIGINT", "group", "local"),      # Ctrl-C in a terminal
    ("SIGTERM", "driver", "local"),    # kill PID / Slurm's signal to the batch script
    ("SIGTERM", "session", "local"),   # scancel: every process of the job
    ("SIGINT", "group", "threads"),    # tasks (and RDKit's own SIGINT handler) in the driver
])
def test_signal_stops_run_in_seconds_with_one_line_and_leaves_nothing(tmp_path, started, sig,
                                                                      target, kind):
    proc, seen = _start(tmp_path, started, kind)
    signum = getattr(signal, sig)
    t0 = time.time()
    if target == "group":
        os.killpg(proc.pid, signum)
    elif target == "driver":
        os.kill(proc.pid, signum)
    else:
        for pid in _session(proc.pid):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hessflow run still running 30 s after {sig} to the {target}")
    took = time.time() - t0
    assert took < 10, (took, err[-2000:])
    assert proc.returncode not in (0, None) and proc.returncode > 0, (proc.returncode, err)
    assert "Traceback" not in err, err[-3000:]
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len([ln for ln in lines if "stopped by" in ln]) == 1, err
    assert f"stopped by {sig}" in err and "run again to resume" in err, err
    assert "done=" in out and "failed=" in out, out  # the summary
    left = _wait_gone(seen, 5)
    assert not left, f"processes left after {sig} to the {target}: {left}"
    # every result reported committed is in the store, and a rerun finishes the rest
    committed = _committed(tmp_path)
    st = Store(tmp_path / "sig.h5", "r")
    for key, task in committed:
        assert key in st, (key, task)
    st.close()
    if target == "group" and kind == "local":  # resumed (in threads: no pool to start again)
        _config(tmp_path, "threads")
        again = subprocess.run([sys.executable, "-m", "hessflow", "run", str(tmp_path / "sig.yaml"),
                                "--no-progress"], capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "failed=0" in again.stdout
        st = Store(tmp_path / "sig.h5", "r")
        assert len(st) == 12 and all(st.status(k) == "done" for k in st.keys())
        st.close()


def test_kill9_of_driver_leaves_no_process_after_a_minute(tmp_path, started):
    proc, seen = _start(tmp_path, started)
    proc.kill()  # SIGKILL, the driver alone: its children are not told
    proc.communicate()
    t0 = time.time()
    left = _wait_gone(seen, 60)
    took = time.time() - t0
    assert not left, f"left {took:.0f} s after kill -9 of the driver: {left}"
    assert took < 45, took
    print(f"kill -9: the last process it started was gone {took:.1f} s later")
