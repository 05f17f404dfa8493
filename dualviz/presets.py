"""Classroom presets: links that open a page on a run that shows one result of the paper.

Each preset is a page (dualviz.views) and the values its link sets (keys of the knob table,
plus the gap page's sweep keys), with one paragraph on what it shows and what to look for. The
home page lists them as links carrying the page's full state; tests check that every preset is
a valid state.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from .config import Experiment, Knob
from .data import SPECTRA
from .views import GAP_CURVES, LINEAR, RELU, View


@dataclass(frozen=True)
class Preset:
    title: str
    view: View
    query: dict[str, str]  # what the preset sets; the page's defaults fill in the rest
    shows: str
    look_for: str

    @property
    def experiment(self) -> Experiment:
        """The experiment the preset's page computes (the page's values filled in)."""
        return self.view.experiment(self.query)[0]

    @property
    def link(self) -> str:
        """``url_path?query`` with every setting of the run, the seed included."""
        return self.view.link(self.query)

    @property
    def params(self) -> dict[str, str]:
        """The link's query as a dict."""
        return dict(parse_qsl(self.link.partition("?")[2]))


PRESETS: tuple[Preset, ...] = (
    Preset(
        "Depth opens a duality gap", LINEAR,
        {"arch": "standard", "depth": "3", "target-rank": "2", "objective": "interpolation",
         "regularization": "rescaled", "spectrum": "equal"},
        "A standard three-layer linear net fitting a rank-2 target with equal singular values.",
        "P stays at sqrt(2) times D however long it trains: the gap is real, not a training "
        "failure. Set depth to 2 and it closes; set target rank to 1 and it closes too."),
    Preset(
        "A parallel net closes it", LINEAR,
        {"arch": "parallel", "depth": "4", "branches": "8", "target-rank": "2",
         "objective": "interpolation", "regularization": "rescaled", "spectrum": "equal"},
        "The same kind of data with a parallel net (branches of depth 4) and the rescaled "
        "regularization.",
        "P meets D: zero duality gap at depth 4, where the standard net (shown alongside) "
        "stays a factor 2 above."),
    Preset(
        "Plain weight decay does not", LINEAR,
        {"arch": "parallel", "depth": "3", "branches": "8", "target-rank": "2",
         "objective": "interpolation", "regularization": "weight-decay", "spectrum": "equal"},
        "A parallel net again, but regularized by plain weight decay on every layer.",
        "The parallel net now has the standard net's value: the architecture alone does not "
        "close the gap, the rescaled regularization does."),
    Preset(
        "Weight decay makes the solution low-rank", LINEAR,
        {"arch": "standard", "depth": "4", "objective": "squared",
         "regularization": "weight-decay", "beta": "0.5", "whiten": "1", "n": "20", "d": "6",
         "k": "6", "x-rank": "6", "target-rank": "6", "spectrum": "linear"},
        "Squared loss with weight decay on whitened data: the closed form is a thresholded "
        "spectrum.",
        "In the spectra, singular values below the threshold are cut to exactly zero, and the "
        "threshold grows with depth (0.5, 1.19, 1.5 for L = 2, 3, 4 at beta = 0.5)."),
    Preset(
        "Two-layer ReLU is a convex program", RELU,
        {"depth": "2", "dataset": "regression", "d": "1", "n": "20", "objective": "squared",
         "beta": "0.1", "iterations": "2000"},
        "A two-layer ReLU net on 20 points: the convex program over all 39 activation patterns, "
        "certified by its dual.",
        "Trained from random starts, the net ends within a fraction of a percent of the "
        "certified optimum (the legend's restart started from the convex solution stays on it), "
        "and the network rebuilt from the convex solution draws the same function."),
    Preset(
        "Rank-one data, three ReLU layers", RELU,
        {"depth": "3", "dataset": "rank-one", "n": "8", "d": "3", "k": "1",
         "objective": "interpolation", "regularization": "rescaled",
         "rank-one-target": "sign-changing", "width": "8", "branches": "8",
         "iterations": "2000", "bias": "0"},
        "X = c a^T with a target that changes sign with c: closed forms for both architectures.",
        "The standard net stops at sqrt(2) times the dual, the parallel net reaches it; the "
        "paragraph next to the numbers says when the gap vanishes (the sign condition)."),
    Preset(
        "Three ReLU layers, general data", RELU,
        {"depth": "3", "dataset": "regression", "d": "1", "n": "8", "objective": "squared",
         "regularization": "rescaled", "beta": "0.1", "branches": "20", "width": "8",
         "optimizer": "adam", "lr": "0.01", "iterations": "3000", "restarts": "3"},
        "Eight points, three ReLU layers: the three-layer convex program over every first- and "
        "second-layer pattern, certified, as D for both architectures.",
        "The parallel net trains down to D (a lower bound of both nets); the standard net "
        "stays above it, and P_standard - D is an upper bound of its duality gap."),
    Preset(
        "The gap against depth, curve by curve", GAP_CURVES,
        {"x": "depth", "x-values": "2,3,4,5", "series": "target-rank", "series-values": "1,2,3",
         "objective": "interpolation", "regularization": "rescaled", "spectrum": "equal",
         "iterations": "400"},
        "A sweep over depth and target rank, both architectures, against the theory "
        "r^((L-2)/2).",
        "Rank 1 and depth 2 stay at P/D = 1; for rank r >= 2 the standard curves climb with "
        "depth while the parallel ones stay flat."),
)

# The ReLU page's modes: its presets, linked at the top of the page.
RELU_PRESETS: tuple[Preset, ...] = tuple(p for p in PRESETS if p.view is RELU)


# The home page's instant preview: its own small knob table, kept in the URL like the
# explorers' (a link sets it, bad values are clamped with a note).
PREVIEW_KNOBS = (
    Knob("preview_depth", "int", 3, "preview", "Depth L", "Number of weight layers.",
         low=2, high=10, restarts=False),
    Knob("preview_rank", "int", 2, "preview", "rank(W*)", "Rank of the target map.",
         low=1, high=10, restarts=False),
    Knob("preview_spectrum", "choice", "equal", "preview", "Singular values of W*",
         "equal: all 2; linear: 2, 2(r-1)/r, ...; geometric: 2, 1, 0.5, ...",
         choices=SPECTRA, restarts=False),
)
