"""The app's pages as data: where each lives, what it offers, and the experiment a link opens.

One table (VIEWS) drives the navigation (app.py), each page's controls (dualviz.ui.state), the
presets' links and every test or benchmark that needs "the experiment this link shows": a
page's experiment is its starting values, then the link's values, then what the page fixes
(e.g. the activation). So a link copied from the home page reproduces exactly what the page
would compute.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urlencode

from .config import KNOBS, Experiment
from .sweep import SETTING_KEYS

VIEW_KEYS = ("present", "hide", "room", "follow")  # how a page looks, not what it computes
ROOM_KEYS = ("room", "follow")  # a presenter's room, the room a follower follows
# A room's name: short, lowercase, safe in a URL, a header and a log line as it is.
ROOM_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


def room_name(key: str, value: object) -> tuple[str | None, list[str]]:
    """The room a link names under `key` (room or follow), validated like every link value:
    (name, []) or (None, [note]) for a value that is not a room name (nothing is opened)."""
    text = str(value if value is not None else "").strip().lower()
    if not text:
        return None, []
    if ROOM_NAME.fullmatch(text):
        return text, []
    shown = text[:20].encode("ascii", "replace").decode()
    return None, [f"{key}: '{shown}' is not a room name (1 to 32 lowercase letters, digits "
                  "or -); ignored"]


def _frozen(values: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(values or {}))


@dataclass(frozen=True)
class View:
    """One page: its script, its title and URL path, and the knobs it offers.

    offers: the knob names with a control on this page (None: no experiment, e.g. Theory);
    fixed: values the page pins (not offered); defaults: its starting values where a link is
    silent; keep: the page's own URL keys besides the experiment's.
    """

    script: str
    title: str
    url_path: str  # "" for the home page, served at /
    icon: str
    help: str = ""
    offers: frozenset[str] | None = None
    fixed: Mapping[str, Any] = field(default_factory=_frozen)
    defaults: Mapping[str, Any] = field(default_factory=_frozen)
    keep: tuple[str, ...] = ()

    def experiment(self, params: Mapping[str, str]) -> tuple[Experiment, list[str]]:
        """The experiment this page computes for a link's query parameters (and the notes on
        what was clamped), exactly as the page's controls build it."""
        own = (*self.keep, *VIEW_KEYS)
        url = {k: v for k, v in params.items() if k not in own}
        return Experiment.from_values({**self.defaults, **url, **self.fixed})

    def url(self, base: str, params: Mapping[str, str] | None = None) -> str:
        """The page's address on the server at `base`, with `params` as its query."""
        return f"{base}/{self.url_path}" + (f"?{urlencode(params)}" if params else "")

    def link(self, params: Mapping[str, str]) -> str:
        """A relative link (``url_path?query``) carrying the page's full state: every knob of
        the experiment it opens, the seed included, plus the page's own keys."""
        exp, _ = self.experiment(params)
        own = {k: v for k, v in params.items() if k in (*self.keep, *VIEW_KEYS)}
        return f"{self.url_path}?{urlencode({**own, **exp.to_params()})}"


_ALL = frozenset(k.name for k in KNOBS)

HOME = View("pages/0_Home.py", "Home", "", ":material/home:")
LINEAR = View(
    "pages/1_Deep_linear_explorer.py", "Deep-linear explorer", "Deep_linear_explorer",
    ":material/show_chart:",
    "Choose depth, width, data rank and spectrum, regularization; watch training approach (or "
    "miss) the dual bound, with live spectra, standard vs parallel.",
    offers=_ALL - {"data", "regression_target", "rank_one_target", "relu_solver", "bias",
                   "activation", "dataset"},
    fixed=_frozen({"activation": "linear", "dataset": "low-rank"}))
RELU = View(
    "pages/2_ReLU_networks.py", "ReLU networks", "ReLU_networks", ":material/hub:",
    "The two-layer convex program (exact over all activation patterns), rank-one three-layer "
    "duality and its sign condition, deep parallel vs standard nets.",
    offers=_ALL - {"data", "activation", "whiten", "spectrum"},
    fixed=_frozen({"activation": "relu"}),
    # A first visit starts on the two-layer convex program with 1-D data.
    defaults=_frozen({"dataset": "regression", "d": 1, "n": 20, "depth": 2,
                      "objective": "squared", "beta": 0.1, "arch": "parallel", "branches": 50,
                      "width": 50, "iterations": 2000}))
GAP_CURVES = View(
    "pages/3_Gap_curves.py", "Gap curves", "Gap_curves", ":material/ssid_chart:",
    "Sweep depth, rank, beta, width or N: P/D and P - D for standard and parallel nets from real "
    "solves, against the theory; resumable, on a Dask cluster too.",
    # activation and data are offered so that L = 3 ReLU nets on regression data can be swept
    # over beta or N against the three-layer convex program (docs/math.md §6)
    offers=_ALL - {"data", "arch", "relu_solver", "bias", "rank_one_target"},
    defaults=_frozen({"activation": "linear", "dataset": "low-rank", "n": 12, "d": 6, "k": 4,
                      "x_rank": 4, "iterations": 300, "restarts": 2}),
    keep=SETTING_KEYS)
THEORY = View(
    "pages/4_Theory.py", "Theory", "Theory", ":material/table_chart:",
    "The paper's taxonomy (standard / parallel x linear / ReLU x depth), every cell computed "
    "live, and the main formulas.")

VIEWS: tuple[View, ...] = (HOME, LINEAR, RELU, GAP_CURVES, THEORY)
BY_SCRIPT = {v.script: v for v in VIEWS}
