"""Every preset is a valid state of its page: no value clamped, no key ignored."""

from pathlib import Path

import pytest

from dualviz.config import Experiment
from dualviz.presets import GAP_PAGE, PRESETS
from dualviz.sweep import DEFAULT_SETTINGS, sweep_from_params

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("preset", PRESETS, ids=[p.title for p in PRESETS])
def test_each_preset_is_a_clean_state_of_an_existing_page(preset):
    assert (ROOT / preset.page).is_file()
    sweep_keys = set(DEFAULT_SETTINGS)
    knobs = {k: v for k, v in preset.query.items() if k not in sweep_keys}
    activation = {"activation": "relu"} if "ReLU" in preset.page else {}
    exp, notes = Experiment.from_values({**knobs, **activation})
    assert notes == [], notes  # nothing clamped, nothing ignored
    if preset.page == GAP_PAGE:
        sweep, notes = sweep_from_params(exp, {k: v for k, v in preset.query.items()
                                              if k in sweep_keys})
        assert notes == [] and len(sweep.points()) > 1
    assert preset.shows and preset.look_for


def _preset(title: str):
    return next(p for p in PRESETS if p.title.startswith(title))


def test_the_ratios_the_paragraphs_promise_are_the_closed_forms():
    """'sqrt(2) times D' (depth 3, rank 2), 'a factor 2' (depth 4, rank 2, standard twin) and
    'sqrt(2)' for rank-one ReLU data: computed, not assumed."""
    from dualviz.relu import relu_bounds
    from dualviz.runner import dataset_for
    from dualviz.theory import closed_form

    cases = [("Depth opens", {}, 2 ** 0.5), ("A parallel net", {"arch": "standard"}, 2.0)]
    for title, change, ratio in cases:
        exp = Experiment.from_values({**_preset(title).query, **change})[0]
        data = dataset_for(exp, None)
        closed = closed_form(exp, data.X, data.Y)
        assert closed.primal / closed.dual == pytest.approx(ratio, rel=1e-9)
    exp = Experiment.from_values({**_preset("Rank-one").query, "activation": "relu"})[0]
    data = dataset_for(exp, None)
    bounds = relu_bounds(exp, data.X, data.Y)
    assert bounds.closed.primal / bounds.closed.dual == pytest.approx(2 ** 0.5, rel=1e-9)
