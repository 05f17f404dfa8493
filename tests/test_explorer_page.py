"""AppTest of the deep-linear explorer: controls, URL, live jobs, uploads, and the CLI's numbers."""

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from apptest_support import ROOT, metric, run_until_done, shown, status_caption
from apptest_support import open_page as open_explorer
from streamlit.testing.v1 import AppTest

from dualviz.config import Experiment

pytestmark = pytest.mark.server

PAGE = "1_Deep_linear_explorer.py"
SMALL = Experiment(iterations=300, restarts=2, seed=3)


def open_page(query: str = "") -> AppTest:
    return open_explorer(PAGE, query)


def cli(query: str, *extra: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "dualviz", "solve", "--query", query, "--json",
                          *extra], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_numbers_on_the_page_equal_the_cli_for_the_same_query_string():
    at = run_until_done(open_page(SMALL.to_query()))
    expected = cli(SMALL.to_query())
    assert f"experiment {SMALL.hash}" in status_caption(at)
    # seven significant digits on the page
    assert metric(at, "P (trained") == pytest.approx(expected["primal"]["value"], rel=1e-6)
    assert metric(at, "D (lower bound") == pytest.approx(expected["dual"]["value"], rel=1e-6)
    assert metric(at, "Gap P - D") == pytest.approx(expected["gap"], rel=1e-6)
    assert metric(at, "Relative gap") == pytest.approx(expected["relative_gap"], abs=1e-4)
    assert metric(at, "Theory P*") == pytest.approx(expected["closed_form"]["primal"],
                                                        rel=1e-6)
    # The comparison shows both architectures with a verdict each.
    assert any("positive duality gap" in i.value for i in at.info)
    assert any("zero duality gap" in s.value for s in at.success)
    assert len(at.get("latex")) == 2


def test_controls_write_the_url_and_start_the_changed_experiment():
    at = open_page(SMALL.to_query())
    at.slider(key="knob_depth").set_value(2).run()
    assert at.query_params["depth"] == "2"
    changed, _ = SMALL.replace(depth=2)
    assert f"experiment {changed.hash}" in status_caption(at)
    run_until_done(at)
    assert abs(metric(at, "Relative gap")) < 1e-4  # L = 2: no gap


def test_a_rerun_request_with_an_older_url_of_this_session_keeps_the_change():
    """A request the browser sent before it drew the latest URL (a job's end, a component's
    trigger) carries the older address: the controls keep the visitor's change."""
    at = open_page(SMALL.to_query())
    at.slider(key="knob_depth").set_value(4).run()
    assert at.query_params["depth"] == "4"
    at.query_params["depth"] = str(SMALL.depth)  # the address before the change
    at.run()
    assert not at.exception, at.exception
    assert (at.query_params["depth"], at.slider(key="knob_depth").value) == ("4", 4)
    # Seconds later the same address is not in flight any more: it is followed.
    at.session_state["_dualviz_applied_at"] = 0.0
    at.query_params["depth"] = str(SMALL.depth)
    at.run()
    assert (at.query_params["depth"], at.slider(key="knob_depth").value) == \
        (str(SMALL.depth), SMALL.depth)


def test_out_of_range_link_values_are_clamped_with_a_visible_note():
    at = open_page("depth=99&beta=nan&iterations=50&restarts=1&foo=bar")
    warnings = " ".join(shown(w.value) for w in at.warning)
    assert "depth: 99 is outside [2, 10]; using 10" in warnings
    assert "beta: 'nan' is not a number" in warnings
    assert at.query_params["depth"] == "10"
    assert "foo" not in at.query_params
    assert at.slider(key="knob_depth").value == 10


def test_clamped_combinations_reseed_the_controls():
    at = open_page(SMALL.to_query())
    at.slider(key="knob_k").set_value(1).run()  # target rank 2 > K = 1
    assert not at.exception
    assert at.query_params["target-rank"] == "1"
    assert at.slider(key="knob_target_rank").value == 1
    assert any("target-rank" in shown(w.value) for w in at.warning)


def ha_npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, X=np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1.0]]),
             Y=np.array([[2, 0], [0, 1], [1, 1.0]]))
    return buffer.getvalue()


def test_uploading_ha_reproduces_design_values():
    at = open_page("regularization=rescaled&t=1&beta=1&depth=3&width=4&branches=4"
                   "&iterations=1500&restarts=3")
    at.sidebar.file_uploader[0].set_value(("ha.npz", ha_npz(), "application/octet-stream"))
    at.run()
    assert not at.exception
    assert at.query_params["data"] != "synthetic"
    assert any("ha.npz" in shown(i.value) for i in at.info)
    run_until_done(at)
    assert metric(at, "P (trained") == pytest.approx(4.6465, abs=5e-5)
    assert metric(at, "D (lower bound") == pytest.approx(3.3315, abs=5e-5)
    assert metric(at, "Theory P*") == pytest.approx(4.6464895083, abs=1e-6)


def npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


X3 = np.eye(3)
BAD_UPLOADS = [  # (file name, bytes, words the one message must contain)
    ("bad.csv", b"x1,y\n1,oops\n", ["bad.csv", "oops", "not a number"]),
    ("nan.npz", npz(X=np.array([[1, np.nan], [0, 1.0]]), Y=np.ones((2, 1))), ["NaN"]),
    ("inf.csv", b"x1,y\n1,inf\n2,3\n", ["inf"]),
    ("rows.npz", npz(X=X3, Y=np.ones((2, 1))), ["rows"]),
    ("empty.csv", b"", ["empty"]),
    ("header.csv", b"x1,y\n", ["no data rows"]),
    ("object.npz", npz(X=np.array([{"a": 1}, None], dtype=object), Y=np.ones(2)), ["object"]),
    ("huge.npz", b"\0" * (20 * 1024 * 1024 + 1), ["larger than the limit"]),
    ("[x](http://evil.example).csv", b"x1,y\n1,oops\n", ["[x](http://evil.example).csv"]),
]


def test_each_bad_upload_gets_one_clear_message_and_the_page_keeps_working():
    at = open_page(SMALL.to_query())
    for name, raw, words in BAD_UPLOADS:
        at.sidebar.file_uploader[0].set_value((name, raw, "application/octet-stream"))
        at.run()
        assert not at.exception, name
        errors = [shown(e.value) for e in at.sidebar.error]
        assert len(errors) == 1 and all(w in errors[0] for w in words), (name, errors)
        assert "](" not in at.sidebar.error[0].value.split("`")[0]  # the name only in code
        assert at.query_params["data"] == "synthetic"
    run_until_done(at)  # nothing of the above stopped the run


def test_a_link_to_unknown_uploaded_data_explains_itself():
    at = open_page("data=00000000000000ff")
    assert any("does not have" in e.value for e in at.error)
    at.button[0].click().run()
    assert at.query_params["data"] == "synthetic"
    assert not at.error


def test_a_finished_run_exports_json_csv_and_a_python_snippet_that_reruns_it():
    exp = Experiment(iterations=60, restarts=1, seed=5, depth=2, objective="squared")
    at = run_until_done(open_page(exp.to_query() + "&present=1"))
    codes = [c.value for c in at.code]
    link = next(c for c in codes if exp.to_query() in c)
    assert link.endswith("present=1")  # the view keys travel with the link
    labels = [b.label for b in at.get("download_button")]
    assert labels == [f"{kind}: {name}" for name in ("objective", "spectrum", "layer")
                      for kind in ("PNG", "SVG")] + ["Result as JSON", "Result as CSV"]
    snippet = next(c for c in codes if "Experiment.from_query" in c)
    out = subprocess.run([sys.executable, "-c", snippet], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=120)
    rerun = dict(zip(out.stdout.split()[0::3], out.stdout.split()[2::3], strict=True))
    expected = cli(exp.to_query())
    assert float(rerun["P"]) == pytest.approx(expected["primal"]["value"], rel=1e-9)
    assert float(rerun["D"]) == pytest.approx(expected["dual"]["value"], rel=1e-9)


def test_result_csv_has_one_row_per_restart():
    from dualviz.exports import result_csv
    from dualviz.results import StoredRun

    result = cli(Experiment(iterations=30, restarts=3, depth=2).to_query())
    lines = result_csv(StoredRun.from_json(result)).strip().splitlines()
    assert lines[0] == ("hash,P,D,gap,relative_gap,restart,start,value,residual,iterations,"
                        "feasible")
    restarts = result["primal"]["restarts"]
    assert len(restarts) == 4  # three random ones, and one from the closed form (labelled)
    assert [r["start"] for r in restarts] == ["random"] * 3 + ["closed form"]
    assert len(lines) == 5 and all(line.startswith(result["experiment"]["hash"])
                                   for line in lines[1:])
