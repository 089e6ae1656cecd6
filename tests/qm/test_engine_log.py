"""Engine warnings and log records are kept in the record's provenance, never printed."""

import logging
import warnings

import pytest

from hessflow.qm import assemble, fallback
from hessflow.qm.engine_log import MAX_LINES, captured

from tests.stock import water


def test_captured_keeps_warnings_and_engine_logs_and_prints_nothing(capfd):
    lg = logging.getLogger("pyscf")
    before = (lg.level, lg.propagate)
    with captured() as lines:
        warnings.warn("basis has no f shells", UserWarning)
        lg.warning("SCF   not converged  in 50 cycles")
        logging.getLogger("geometric.optimize").warning("step rejected")
        lg.info("chatter that is not kept")
    assert lines == ["pyscf: WARNING: SCF not converged in 50 cycles",
                     "geometric.optimize: WARNING: step rejected",
                     "UserWarning: basis has no f shells"]
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert (lg.level, lg.propagate) == before  # restored


def test_a_long_log_is_cut_to_max_lines():
    with captured() as lines:
        for i in range(MAX_LINES + 10):
            logging.getLogger("tblite").warning("line %d", i)
    assert len(lines) == MAX_LINES and lines[-1] == "... 11 more lines"


def test_what_the_engine_warns_about_lands_in_the_provenance(monkeypatch, capfd):
    """The real xTB engine computes; a warning its library logs during the task (injected
    around the real call) is in provenance["engine_log"][task], and not on the terminal."""
    pytest.importorskip("tblite")
    import json
    from hessflow.qm.engines import engine_level, get_engine
    real = fallback.run_task

    def warning_engine(task, *a, **k):
        logging.getLogger("tblite").warning("%s: convergence is slow", task)
        return real(task, *a, **k)
    monkeypatch.setattr(fallback, "run_task", warning_engine)
    eng = get_engine("xtb")
    rec = assemble.compute_record(water(), eng, engine_level("xtb"), ("opt", "freq"))
    assert rec["status"] == "done", rec["reason"]
    log = json.loads(rec["provenance"])["engine_log"]
    assert log["opt"] == ["tblite: WARNING: opt: convergence is slow"]
    assert log["freq"] == ["tblite: WARNING: freq: convergence is slow"]
    assert "convergence is slow" not in capfd.readouterr().err
