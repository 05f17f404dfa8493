"""The backend imports no Streamlit; only dualviz.ui and the pages do."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
BACKEND = [p.stem for p in (ROOT / "dualviz").glob("*.py") if p.stem != "__init__"]


def test_backend_modules_do_not_import_streamlit():
    imports = "; ".join(f"import dualviz.{name}" for name in BACKEND)
    code = f"import sys; {imports}; print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
    assert {"config", "theory", "dual", "primal", "jobs", "plots"} <= set(BACKEND)


def test_pages_hold_no_solver_imports():
    for page in [ROOT / "app.py", *(ROOT / "pages").glob("*.py")]:
        text = page.read_text()
        for heavy in ("import torch", "import cvxpy", "import numpy"):
            assert heavy not in text, (page.name, heavy)
