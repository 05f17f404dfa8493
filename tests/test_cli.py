"""Tests for the command line, ``python -m dualviz solve``.

Most runs call ``dualviz.__main__.main(argv)`` in-process (importing torch and CVXPY once); a few
run the real ``python -m dualviz`` in a subprocess to check exit codes and stderr end to end.
Experiments are tiny, so the whole file runs in a few tens of seconds.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dualviz.__main__ import build_parser, experiment_from_args, main
from dualviz.config import KNOBS, Experiment

pytestmark = pytest.mark.server

ROOT = Path(__file__).parents[1]
FAST = ["--iterations", "300", "--restarts", "1"]

# docs/math.md §9, instance HA.
HA_X = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]]
HA_Y = [[2, 0], [0, 1], [1, 1]]
HA_SIGMA = (2.14035951, 1.19115959)
HA_P_L3 = 4.6464895083  # standard net, rescaled, beta = 1, t = 1, L = 3
HA_D = 3.3315191000  # ||W*||_*: the dual, and the parallel net's primal
HA_OPTIONS = ["--regularization", "rescaled", "--beta", "1", "--t", "1", "--depth", "3",
              "--width", "4"]



def readme_json_table() -> dict[str, set[str]]:
    """The README's `--json` table: top-level key -> the sub-keys its row names in backticks."""
    text = (ROOT / "README.md").read_text()
    table = text[text.index("`--json` prints one object"):].split("\n\n")[1]
    rows = {}
    for line in table.splitlines()[2:]:
        cells = line.split("|")
        names = re.findall(r"`([a-z_]+)`", cells[1])
        subkeys = set(re.findall(r"`([a-z_]+)`", cells[2]))
        for name in names:
            rows[name] = subkeys
    return rows


README = readme_json_table()
README_TOP = set(README)
README_PRIMAL = README["primal"]
README_DUAL = README["dual"]


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()  # drop anything printed before
    code = main(["solve", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv: str, status: int = 0) -> tuple[dict, str]:
    """The JSON of a run; status 1 for a run whose solver failed (its numbers still print)."""
    code, out, err = run_main(capsys, "--json", *argv)
    assert code == status, err
    return json.loads(out), err


def cli(*argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dualviz", *argv], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def assert_one_error_line(code: int, out: str, err: str) -> None:
    assert code == 2, (code, err)
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("dualviz: error: ")
    assert err.endswith("\n")


# ---------------------------------------------------------------------------------------------
# Data files
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli-data")
    paths = {name: root / name for name in (
        "ha.npz", "ha.csv", "object.npz", "bad.csv", "nan.csv", "no_y.npz", "data.txt",
        "infeasible.npz", "not_a_zip.npz")}
    np.savez(paths["ha.npz"], X=np.array(HA_X, dtype=float), Y=np.array(HA_Y, dtype=float))
    rows = ["x1,x2,x3,x4,y1,y2"] + [",".join(map(str, x + y)) for x, y in zip(HA_X, HA_Y,
                                                                                strict=True)]
    paths["ha.csv"].write_text("\n".join(rows) + "\n")
    np.savez(paths["object.npz"], X=np.array([[1.0, {"a": 1}]], dtype=object),
             Y=np.array([[1.0]], dtype=object), allow_pickle=True)
    paths["bad.csv"].write_text("x1,x2,y1\n1,2,3\n4,five,6\n")
    paths["nan.csv"].write_text("x1,y\n1,nan\n2,3\n")
    np.savez(paths["no_y.npz"], X=np.eye(2))
    paths["data.txt"].write_text("1 2 3\n")
    # Y = e1 is not in range(X) (the range is spanned by (1,0,1) and (0,1,1)).
    np.savez(paths["infeasible.npz"], X=np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
             Y=np.array([[1.0], [0.0], [0.0]]))
    paths["not_a_zip.npz"].write_bytes(b"this is not an archive")
    return paths


BAD_INPUT = {
    "unknown option": ["--bogus", "1"],
    "bad choice": ["--arch", "foo"],
    "bad choice (objective)": ["--objective", "cubic"],
    "vector output, two-layer ReLU": ["--activation", "relu", "--depth", "2", "--k", "3"],
    "missing value": ["--depth"],
    "missing data file": ["--data", "{tmp}/does-not-exist.npz"],
    "data is a directory": ["--data", "{tmp}"],
    "object npz": ["--data", "@object.npz"],
    "npz without Y": ["--data", "@no_y.npz"],
    "not a zip": ["--data", "@not_a_zip.npz"],
    "non-numeric csv cell": ["--data", "@bad.csv"],
    "nan in csv": ["--data", "@nan.csv"],
    "unsupported extension": ["--data", "@data.txt"],
}


def fill(argv: list[str], files: dict[str, Path]) -> list[str]:
    """'@name' is the data file `name`; '{tmp}' is the folder holding them."""
    tmp = str(files["ha.npz"].parent)
    return [str(files[a[1:]]) if a.startswith("@") else a.replace("{tmp}", tmp) for a in argv]


# ---------------------------------------------------------------------------------------------
# --json schema (a real subprocess)
# ---------------------------------------------------------------------------------------------


# One case per exception the CLI turns into status 2 (UsageError, DataError); ConfigError and
# the other cases are covered in-process below.
REAL_ERRORS = ["unknown option", "object npz"]


@pytest.fixture(scope="module")
def real_runs(files) -> dict[str, tuple[int, str, str]]:
    """Real `python -m dualviz` processes, started together (each pays the torch import)."""
    procs = {"default": cli("solve", "--json", *FAST)}
    procs.update({case: cli("solve", *fill(BAD_INPUT[case], files)) for case in REAL_ERRORS})
    return {case: finish(proc) for case, proc in procs.items()}


@pytest.fixture(scope="module")
def default_run(real_runs) -> tuple[int, str, str]:
    return real_runs["default"]


def test_json_has_the_documented_schema(default_run) -> None:
    code, out, err = default_run
    assert code == 0, err
    assert err == ""  # nothing clamped, nothing to note
    result = json.loads(out)  # exactly one JSON object, nothing else on stdout
    assert isinstance(result, dict)
    assert set(result) == README_TOP

    expected = Experiment(iterations=300, restarts=1)
    assert set(result["experiment"]) == {k.name for k in KNOBS} | {"hash"}
    assert result["experiment"] == expected.to_record()
    assert result["experiment"]["hash"] == expected.hash

    assert set(result["data"]) == {"name", "digest", "n", "d", "k"}
    assert (result["data"]["n"], result["data"]["d"], result["data"]["k"]) == (20, 5, 3)

    primal = result["primal"]
    assert set(primal) >= README_PRIMAL
    # the one random restart asked for, then one from the closed form's factors
    assert [r["start"] for r in primal["restarts"]] == ["random", "closed form"]
    assert set(primal["restarts"][0]) >= {"value", "residual", "iterations", "feasible",
                                          "start", "stopped"}
    assert all(r["feasible"] is True for r in primal["restarts"])
    assert primal["status"] == "optimal" and primal["reference"] == pytest.approx(2 * 2**1.5)
    assert primal["seconds"] >= 0 and primal["residual"] <= 1e-6

    dual = result["dual"]
    assert set(dual) >= README_DUAL
    assert dual["status"] == "optimal" and dual["seconds"] >= 0
    assert isinstance(dual["method"], str) and dual["method"]

    assert set(result["closed_form"]) == {"primal", "dual", "dual_label", "notes"}
    assert set(result["spectrum"]) == {"target", "learned", "closed_form"}
    assert len(result["spectrum"]["target"]) == 2  # target-rank 2

    # Default instance: rank-2 W* with singular values (2, 2), L = 3, rescaled, beta = t = 1.
    closed = result["closed_form"]
    assert rel(closed["dual"], 4.0) < 1e-9
    assert rel(closed["primal"], 2 * 2**1.5) < 1e-9  # (2 * 2^(2/3))^(3/2)
    assert rel(dual["value"], closed["dual"]) < 1e-6
    assert rel(primal["value"], closed["primal"]) < 1e-4
    assert result["gap"] == pytest.approx(primal["value"] - dual["value"], rel=1e-12)
    assert result["relative_gap"] == pytest.approx(result["gap"] / abs(dual["value"]),
                                                   rel=1e-12)


def test_json_keys_match_the_readme(default_run) -> None:
    result = json.loads(default_run[1])
    assert set(result) == README_TOP
    assert set(result["primal"]) == README_PRIMAL
    assert set(result["dual"]) == README_DUAL


def test_text_summary(capsys) -> None:
    code, out, err = run_main(capsys, "--iterations", "5", "--restarts", "1")
    assert code == 0 and err == ""
    assert out.startswith("dualviz standard linear L=3 rescaled interpolation")
    assert Experiment(iterations=5, restarts=1).hash in out.splitlines()[0]


# ---------------------------------------------------------------------------------------------
# --query and explicit options
# ---------------------------------------------------------------------------------------------


def parse(*argv: str):
    return experiment_from_args(build_parser().parse_args(["solve", *argv]))


def test_query_equals_explicit_options(capsys) -> None:
    page = Experiment(depth=4, target_rank=3, iterations=300, restarts=1)
    by_query, err_q = run_json(capsys, "--query", page.to_query())
    by_options, err_o = run_json(capsys, "--depth", "4", "--target-rank", "3", *FAST)
    short_query, _ = run_json(capsys, "--query", "?depth=4&target-rank=3&iterations=300"
                              "&restarts=1")
    assert err_q == err_o == ""
    for result in (by_query, by_options, short_query):
        assert result["experiment"] == page.to_record()
        assert result["experiment"]["hash"] == page.hash
    assert by_query["primal"]["value"] is not None
    assert by_query["primal"]["value"] == by_options["primal"]["value"]
    assert by_query["dual"]["value"] == by_options["dual"]["value"]
    assert by_query["closed_form"] == by_options["closed_form"]


def test_explicit_options_override_the_query() -> None:
    exp, data, notes = parse("--query", "arch=parallel&depth=4&beta=2&whiten=1",
                             "--depth", "5", "--beta", "0.5", "--no-whiten")
    assert (exp.arch, exp.depth, exp.beta, exp.whiten) == ("parallel", 5, 0.5, False)
    assert data is None and notes == []
    exp, _, _ = parse("--query", "depth=4", "--arch", "parallel")
    assert exp == Experiment(depth=4, arch="parallel")


def test_query_notes_are_kept() -> None:
    exp, _, notes = parse("--query", "depth=4&colour=blue&beta=-1")
    assert (exp.depth, exp.beta) == (4, 1e-4)
    assert notes[0] == "ignored unknown setting 'colour'"
    assert notes[1].startswith("beta:")


def test_override_does_not_inherit_the_query_s_clamping() -> None:
    exp, _, _ = parse("--query", "x-rank=4&d=3", "--d", "5")
    assert exp == Experiment.from_values({"x-rank": "4", "d": "5"})[0]
    assert exp.x_rank == 4


# ---------------------------------------------------------------------------------------------
# docs/math.md §9, instance HA, from files
# ---------------------------------------------------------------------------------------------


def check_ha(result: dict) -> None:
    assert (result["data"]["n"], result["data"]["d"], result["data"]["k"]) == (3, 4, 2)
    assert result["experiment"]["data"] == result["data"]["digest"]
    assert result["spectrum"]["target"] == pytest.approx(HA_SIGMA, abs=1e-8)
    assert result["dual"]["status"] == "optimal"
    assert rel(result["dual"]["value"], HA_D) < 1e-6
    assert rel(result["closed_form"]["dual"], HA_D) < 1e-8


def test_ha_standard_from_npz(capsys, files) -> None:
    result, _ = run_json(capsys, "--data", str(files["ha.npz"]), *HA_OPTIONS)
    check_ha(result)
    assert result["experiment"]["arch"] == "standard"
    assert rel(result["closed_form"]["primal"], HA_P_L3) < 1e-8
    assert rel(result["primal"]["value"], HA_P_L3) < 1e-4
    assert result["gap"] > 1.3  # a real duality gap: P - D = 1.315


def test_ha_parallel_from_npz(capsys, files) -> None:
    result, _ = run_json(capsys, "--data", str(files["ha.npz"]), *HA_OPTIONS,
                         "--arch", "parallel", "--branches", "4")
    check_ha(result)
    assert rel(result["closed_form"]["primal"], HA_D) < 1e-8
    assert rel(result["primal"]["value"], HA_D) < 1e-4
    assert abs(result["relative_gap"]) < 1e-4  # no duality gap


def test_ha_standard_from_csv(capsys, files) -> None:
    result, _ = run_json(capsys, "--data", str(files["ha.csv"]), *HA_OPTIONS)
    check_ha(result)
    assert result["data"]["name"].endswith("ha.csv")
    assert rel(result["closed_form"]["primal"], HA_P_L3) < 1e-8
    assert rel(result["primal"]["value"], HA_P_L3) < 1e-4
    # the same numbers as the NPZ, so the same digest and the same experiment hash
    exp_npz, data_npz, _ = parse("--data", str(files["ha.npz"]), *HA_OPTIONS)
    assert result["data"]["digest"] == data_npz.digest
    assert result["experiment"]["hash"] == exp_npz.hash


def test_uploaded_digest_without_the_file_is_refused(capsys, files) -> None:
    _, data, _ = parse("--data", str(files["ha.npz"]))
    code, out, err = run_main(capsys, "--query", f"data={data.digest}")
    assert_one_error_line(code, out, err)
    assert data.digest in err


# ---------------------------------------------------------------------------------------------
# Unusable input: status 2, one line on stderr
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_exits_2_with_one_line(capsys, files, case) -> None:
    code, out, err = run_main(capsys, *fill(BAD_INPUT[case], files))
    assert_one_error_line(code, out, err)


def test_error_messages_say_what_is_wrong(capsys, files) -> None:
    for argv, words in [
        (["--arch", "foo"], ["--arch", "foo"]),
        (["--activation", "relu", "--depth", "2", "--k", "3"], ["scalar output", "K = 3"]),
        (["--data", str(files["object.npz"])], ["object"]),
        (["--data", str(files["bad.csv"])], ["five", "not a number"]),
        (["--data", "/nonexistent/x.npz"], ["/nonexistent/x.npz"]),
    ]:
        code, _, err = run_main(capsys, *argv)
        assert code == 2
        for word in words:
            assert word in err, (argv, err)


def test_no_command_exits_2(capsys) -> None:
    capsys.readouterr()
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert_one_error_line(2, out, err)


@pytest.mark.parametrize("case", REAL_ERRORS)
def test_bad_input_in_a_real_process(real_runs, case) -> None:
    assert_one_error_line(*real_runs[case])


def test_non_number_exits_2(capsys) -> None:
    code, out, err = run_main(capsys, "--depth", "abc", "--iterations", "1", "--restarts", "1")
    assert_one_error_line(code, out, err)


# ---------------------------------------------------------------------------------------------
# Infeasible interpolation and clamping
# ---------------------------------------------------------------------------------------------


def test_infeasible_interpolation_reports_unbounded(capsys, files) -> None:
    result, err = run_json(capsys, "--data", str(files["infeasible.npz"]),
                           "--iterations", "30", "--restarts", "1", status=1)
    assert err.strip().splitlines()[-1].startswith("dualviz: failed: ")
    assert "unbounded" in result["failure"]
    assert result["experiment"]["objective"] == "interpolation"
    assert result["dual"]["status"] == "unbounded"
    assert result["dual"]["value"] is None
    assert any("no solution" in n for n in result["dual"]["notes"])
    assert result["primal"]["value"] is None
    assert result["primal"]["restarts"][0]["feasible"] is False
    assert result["gap"] is None and result["relative_gap"] is None


def test_infeasible_interpolation_has_no_closed_form(capsys, files) -> None:
    result, _ = run_json(capsys, "--data", str(files["infeasible.npz"]),
                         "--iterations", "1", "--restarts", "1", status=1)
    closed = result["closed_form"]
    assert closed["primal"] is None or math.isinf(closed["primal"])
    assert closed["dual"] is None or math.isinf(closed["dual"])


@pytest.mark.parametrize("argv, allowed", [
    (["--depth", "99"], "depth: 99 is outside [2, 10]"),
    (["--beta", "-1"], "beta: -1 is outside [0.0001, 1000]"),
    (["--beta", "1e9"], "beta: 1e9 is outside [0.0001, 1000]"),
    (["--iterations", "0"], "iterations: 0 is outside [1, 20000]"),
    (["--target-rank", "5", "--x-rank", "3"], "target-rank: 5 exceeds min(rank X, K)"),
    (["--depth", "8", "--activation", "relu"], "depth: 8 exceeds 6 for ReLU networks"),
])
def test_a_typed_option_out_of_its_range_exits_2_naming_the_range(capsys, argv,
                                                                   allowed) -> None:
    """A typed option is an intent: it is refused, not clamped (a link's value is)."""
    code, out, err = run_main(capsys, *argv, "--iterations", "5", "--restarts", "1") \
        if "--iterations" not in argv else run_main(capsys, *argv)
    assert code == 2 and out == ""
    assert err.splitlines() == [f"dualviz: error: --{allowed}"]


def test_query_values_out_of_range_are_clamped_with_a_note(capsys) -> None:
    result, err = run_json(capsys, "--query", "depth=99&beta=1e9&colour=blue",
                           "--iterations", "5", "--restarts", "1")
    lines = err.splitlines()
    assert lines and all(line.startswith("note: ") for line in lines)
    assert any(line.startswith("note: depth:") for line in lines)
    assert any(line.startswith("note: beta:") for line in lines)
    assert any("colour" in line for line in lines)
    assert "Traceback" not in err
    assert result["experiment"]["depth"] == 10
    assert result["experiment"]["beta"] == 1000.0
    assert result["experiment"]["hash"] == Experiment(depth=10, beta=1000.0, iterations=5,
                                                      restarts=1).hash
    assert [f"note: {n}" for n in result["notes"]] == lines


def test_a_cap_below_a_default_clamps_the_default_with_a_note(capsys, monkeypatch) -> None:
    monkeypatch.setenv("DUALVIZ_MAX_N", "10")
    result, err = run_json(capsys, "--iterations", "5", "--restarts", "1")
    assert result["experiment"]["n"] == 10
    assert "note: n: the default 20 is above this server's cap ($DUALVIZ_MAX_N); using 10" \
        in err.splitlines()
    code, _, err = run_main(capsys, "--n", "20", "--iterations", "5")
    assert code == 2 and "outside [1, 10] (this server's cap, $DUALVIZ_MAX_N)" in err


def test_relu_solver_option_cross_checks_the_working_set_with_cvxpy(capsys) -> None:
    args = ["--activation", "relu", "--depth", "2", "--dataset", "regression",
            "--d", "2", "--n", "20", "--beta", "0.2", "--objective", "squared",
            "--iterations", "5", "--restarts", "1"]
    fast, _ = run_json(capsys, *args)
    cross, _ = run_json(capsys, *args, "--relu-solver", "cvxpy")
    assert fast["experiment"]["relu_solver"] == "working-set"
    assert "working set" in fast["dual"]["method"] and "CVXPY" in cross["dual"]["method"]
    for result in (fast, cross):
        dual = result["dual"]
        assert dual["certified"] is True and dual["lower"] <= dual["upper"]
        assert result["relu"]["certificate"]["relative_gap"] <= 1e-8
    assert fast["dual"]["value"] == pytest.approx(cross["dual"]["value"], rel=1e-8)
    assert fast["experiment"]["hash"] != cross["experiment"]["hash"]
    code, _, err = run_main(capsys, *args, "--relu-solver", "scs")
    assert code == 2 and len(err.strip().splitlines()) == 1


# A property: whatever else is on the line, one unusable argument means status 2, one line.
BAD_ARGUMENTS = [
    ["--no-such-option"], ["--depth", "abc"], ["--beta", "nan"], ["--arch", "<script>"],
    ["--activation", "tanh"], ["--data", "/nonexistent/file.npz"], ["--depth"],
    ["--seeds", "x"], ["--vary", "depth"], ["--vary", "nosuch=1,2"], ["--workers", "0"],
    ["--vary", "depth=a,b"], ["--scheduler", "http://evil:1"], ["--beta", "1e9"],
    ["--iterations", "-5"], ["--target-rank", "1e308"],
]
SWEEP_ONLY = ("--seeds", "--vary", "--workers", "--scheduler")
GOOD_OPTIONS = [["--depth", "3"], ["--beta", "1e3"], ["--arch", "parallel"], ["--json"],
                ["--query", "depth=99&x=<b>&iterations=-5&target-rank=1e308"],
                ["--whiten"], ["--no-whiten"], ["--iterations", "5"]]


@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(command=st.sampled_from(["solve", "sweep"]),
       good=st.lists(st.sampled_from(GOOD_OPTIONS), max_size=5),
       bad=st.sampled_from(BAD_ARGUMENTS), at=st.integers(0, 5))
def test_any_unusable_argument_exits_2_with_one_line(command, good, bad, at) -> None:
    if command == "solve" and bad[0] in SWEEP_ONLY:
        bad = ["--no-such-option"]  # sweep options are unknown options to solve
    options = list(good)
    # an option missing its value can only be last
    options.insert(len(options) if bad == ["--depth"] else min(at, len(options)), bad)
    argv = [command, *(a for option in options for a in option)]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    notes = [line for line in err.getvalue().splitlines() if line.startswith("note: ")]
    errors = [line for line in err.getvalue().splitlines() if not line.startswith("note: ")]
    assert code == 2, (argv, err.getvalue())
    assert out.getvalue() == "" and len(errors) == 1, (argv, err.getvalue())
    assert errors[0].startswith("dualviz: error: ") and "Traceback" not in err.getvalue()
    assert all(len(n) < 300 for n in notes)


def test_output_that_cannot_be_written_is_one_line_not_a_traceback() -> None:
    with open("/dev/full", "w") as full:
        out = subprocess.run([sys.executable, "-m", "dualviz", "solve", "--json",
                              "--iterations", "5", "--restarts", "1"], cwd=ROOT, stdout=full,
                             stderr=subprocess.PIPE, text=True, timeout=120)
    assert out.returncode == 1
    assert out.stderr.splitlines() == ["dualviz: error: cannot write the output: No space "
                                       "left on device"]
