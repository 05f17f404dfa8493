"""Every preset is a valid state of its page: no value clamped, no key ignored."""

from pathlib import Path

import pytest

from dualviz.presets import PRESETS
from dualviz.sweep import SETTING_KEYS, sweep_from_params
from dualviz.views import GAP_CURVES

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("preset", PRESETS, ids=[p.title for p in PRESETS])
def test_each_preset_is_a_clean_state_of_an_existing_page(preset):
    assert (ROOT / preset.view.script).is_file()
    exp, notes = preset.view.experiment(preset.query)
    assert notes == [], notes  # nothing clamped, nothing ignored
    if preset.view is GAP_CURVES:
        sweep, notes = sweep_from_params(exp, {k: v for k, v in preset.query.items()
                                              if k in SETTING_KEYS})
        assert notes == [] and len(sweep.points()) > 1
    assert preset.shows and preset.look_for


def _preset(title: str):
    return next(p for p in PRESETS if p.title.startswith(title))


def test_the_ratios_the_paragraphs_promise_are_the_closed_forms():
    """'sqrt(2) times D' (depth 3, rank 2), 'a factor 2' (depth 4, rank 2, standard twin) and
    'sqrt(2)' for rank-one ReLU data: computed, not assumed."""
    from dualviz.linear.programs import closed_form
    from dualviz.relu.bounds import relu_bounds
    from dualviz.runner import dataset_for

    cases = [("Depth opens", {}, 2 ** 0.5), ("A parallel net", {"arch": "standard"}, 2.0)]
    for title, change, ratio in cases:
        exp = _preset(title).experiment.replace(**change)[0]
        data = dataset_for(exp, None)
        closed = closed_form(exp, data.X, data.Y)
        assert closed.primal / closed.dual == pytest.approx(ratio, rel=1e-9)
    # the page features the parallel net (its default) and shows the standard one beside it
    exp = _preset("Rank-one").experiment.replace(arch="standard")[0]
    data = dataset_for(exp, None)
    bounds = relu_bounds(exp, data.X, data.Y)
    assert bounds.closed.primal / bounds.closed.dual == pytest.approx(2 ** 0.5, rel=1e-9)


@pytest.mark.parametrize("preset", PRESETS, ids=[p.title for p in PRESETS])
def test_a_preset_link_carries_the_full_state_and_reopens_the_same_run(preset):
    """The home page's link is every knob of the run (the seed included), not the few the
    preset sets: opened anywhere it is the same experiment, whatever the page's defaults."""
    from dualviz.config import KNOBS

    params = preset.params
    assert {k.key for k in KNOBS} <= set(params) and params["seed"] == str(preset.experiment.seed)
    assert preset.link.startswith(preset.view.url_path + "?")
    again, notes = preset.view.experiment(params)
    assert notes == [] and again.hash == preset.experiment.hash
    if preset.view is GAP_CURVES:
        assert {k: params[k] for k in SETTING_KEYS if k in preset.query} == {
            k: v for k, v in preset.query.items() if k in SETTING_KEYS}
