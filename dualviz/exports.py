"""A finished run as files: CSV rows, and the Python that reruns it."""

from __future__ import annotations

import csv
import io
from typing import Any

from .config import Experiment
from .results import StoredRun


def csv_text(rows: list[dict[str, Any]]) -> str:
    """Rows of one shape as CSV text (None as an empty cell)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else [],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    return buffer.getvalue()


RESTART_COLUMNS = ("restart", "start", "value", "residual", "iterations", "feasible")


def result_csv(run: StoredRun) -> str:
    """A finished run as CSV: one row per restart, with the run's P, D and gap repeated."""
    shared = {"hash": run.experiment.get("hash"), "P": run.primal.value, "D": run.dual.value,
              "gap": run.gap, "relative_gap": run.relative_gap}
    return csv_text([{**shared, **{k: _cell(getattr(r, k)) for k in RESTART_COLUMNS}}
                     for r in run.primal.restarts])


def _cell(value: Any) -> Any:
    """A CSV cell: None for NaN (as the JSON keeps it), enums as their text."""
    if isinstance(value, float) and value != value:
        return None
    return str(value) if isinstance(value, str) else value


def rerun_snippet(exp: Experiment) -> str:
    """Python that reruns this experiment with the package (an uploaded file must be given)."""
    data = ("" if exp.uses_synthetic_data else
            "from dualviz.data import load_file\n"
            "with open('YOUR_DATA_FILE.npz', 'rb') as f:  # the file uploaded as "
            f"{exp.data}\n    uploaded = load_file(f, 'YOUR_DATA_FILE.npz')\n")
    return ("from dualviz.config import Experiment\n"
            "from dualviz.runner import run\n\n"
            f"{data}"
            f"exp, notes = Experiment.from_query({exp.to_query()!r})\n"
            f"result = run(exp{'' if exp.uses_synthetic_data else ', uploaded'})\n"
            "print('P =', result.primal.value, 'D =', result.dual.value, "
            "'gap =', result.gap)\n")
