"""The layers import downwards only (ARCHITECTURE.md); the backend imports no Streamlit."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "dualviz"
MODULES = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for p in PACKAGE.rglob("*.py"))
# Which part of the package may import which: the math never imports the service or the
# pages' code, the service never imports the pages' code (dualviz.ui).
FORBIDDEN = {
    "dualviz.linear": ("dualviz.relu", "dualviz.training", "dualviz.service", "dualviz.ui"),
    "dualviz.relu": ("dualviz.service", "dualviz.ui"),
    "dualviz.training": ("dualviz.linear", "dualviz.relu", "dualviz.service", "dualviz.ui"),
    "dualviz.service": ("dualviz.ui",),
    "dualviz.results": ("dualviz.linear", "dualviz.relu", "dualviz.training", "dualviz.service",
                        "dualviz.ui", "dualviz.runner"),
    "dualviz.solvers": ("dualviz.linear", "dualviz.relu", "dualviz.training", "dualviz.service",
                        "dualviz.ui"),
    "dualviz.regularizers": ("dualviz.",),
    "dualviz.config": ("dualviz.linear", "dualviz.relu", "dualviz.training", "dualviz.service",
                       "dualviz.ui", "dualviz.results"),
    "dualviz.plots": ("dualviz.service", "dualviz.ui"),
    "dualviz.explain": ("dualviz.service", "dualviz.ui"),
    "dualviz.gapcurves": ("dualviz.service", "dualviz.ui"),
    "dualviz.runner": ("dualviz.service", "dualviz.ui"),
    "dualviz.ui": (),  # the top: Streamlit code may use any layer below it
}


def _imports(module: str) -> set[str]:
    """Every dualviz module `module` imports, at any depth of its code."""
    path = ROOT / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names]
            found |= {target, *names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {name for name in found if name.startswith("dualviz")}


def test_every_module_is_covered_by_a_layer_rule_or_is_a_leaf_or_an_entry_point():
    ruled = tuple(FORBIDDEN)
    free = {"dualviz", "dualviz.__main__", "dualviz.testing", "dualviz.limits",
            "dualviz.footprint", "dualviz.data", "dualviz.presets", "dualviz.taxonomy",
            "dualviz.sweep", "dualviz.exports", "dualviz.views"}
    unruled = [m for m in MODULES if not m.startswith(ruled) and m not in free]
    assert unruled == []


@pytest.mark.parametrize("module", MODULES)
def test_imports_go_downwards(module):
    rules = [banned for layer, banned in FORBIDDEN.items()
             if module == layer or module.startswith(layer + ".")]
    bad = sorted(name for name in _imports(module) for banned in rules for prefix in banned
                 if name.startswith(prefix) and not name.startswith(module))
    assert bad == [], f"{module} imports {bad}"


def test_a_rule_can_fail():
    """The checker sees relative imports at any level (a rule that never matches proves
    nothing)."""
    assert any(name.startswith("dualviz.ui") for name in _imports("dualviz.ui.server"))
    assert "dualviz.service.store" in _imports("dualviz.ui.serve")


def test_backend_modules_do_not_import_streamlit():
    backend = [m for m in MODULES if not m.startswith("dualviz.ui") and m != "dualviz.testing"]
    assert {"dualviz.config", "dualviz.linear.programs", "dualviz.training.primal",
            "dualviz.service.jobs", "dualviz.service.stream", "dualviz.plots"} <= set(backend)
    imports = "; ".join(f"import {name}" for name in backend)
    code = f"import sys; {imports}; print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_pages_hold_no_solver_imports():
    for page in [ROOT / "app.py", *(ROOT / "pages").glob("*.py")]:
        text = page.read_text()
        for heavy in ("import torch", "import cvxpy", "import numpy", "dualviz.linear",
                      "dualviz.relu", "dualviz.training"):
            assert heavy not in text, (page.name, heavy)
