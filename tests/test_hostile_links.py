"""Any query string, on any page, renders a working page (AppTest, 1,000 generated links).

Each generated link mixes the page's own keys (the knob table, the view keys, the sweep and
preview keys) with unknown keys, repeated keys and hostile values (script tags, markdown links
and images, 1e308, nan, huge sizes, control characters). For each one: the page runs without an
exception; every value it cannot use is named in a visible note; the notes show the visitor's
text verbatim (no link, image or HTML can form); no HTML-enabled markdown carries visitor text.
Most links are opened in a tab already showing the page (the visitor edits the URL), some in a
fresh session: a fresh AppTest costs ~0.5 s (Streamlit scans every installed package for
components), a rerun ~15 ms. Jobs the page starts are released when the tab closes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from apptest_support import shown
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shared import NASTY_TEXT
from streamlit.testing.v1 import AppTest

from dualviz.config import KNOBS, KNOBS_BY_KEY, parse_knob
from dualviz.presets import PREVIEW_KNOBS
from dualviz.ui import live, state
from dualviz.ui.state import VIEW_KEYS
from dualviz.ui.sweeps import SETTING_KEYS

pytestmark = pytest.mark.server

ROOT = Path(__file__).parents[1]
HOSTILE = [*NASTY_TEXT, "![x](http://evil.example/x.png)", "[click](javascript:alert(1))",
           "<img src=x onerror=alert(1)>", "http://evil.example", "**bold**", "$x^2$",
           ":red[x]", "`code`", "1e308", "-1e308", "99999999999", "3,4", "a&b=c"]
KNOB_KEYS = [k.key for k in KNOBS]
PREVIEW_KEYS = [k.key for k in PREVIEW_KNOBS]


# page file, keys it reads, knobs it pins (URL values ignored), examples
PAGES = [
    ("app.py", PREVIEW_KEYS, (), 200),
    ("pages/1_Deep_linear_explorer.py", [*KNOB_KEYS, *VIEW_KEYS], ("activation", "dataset"), 250),
    ("pages/2_ReLU_networks.py", [*KNOB_KEYS, *VIEW_KEYS], ("activation",), 200),
    ("pages/3_Gap_curves.py", [*KNOB_KEYS, *VIEW_KEYS, *SETTING_KEYS], ("activation", "dataset"),
     200),
    ("pages/4_Theory.py", [*KNOB_KEYS, *VIEW_KEYS], (), 150),
]
assert sum(p[3] for p in PAGES) >= 1000


def values() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(HOSTILE), st.text(max_size=30),
                     st.integers(-10**6, 10**6).map(str),
                     st.floats(allow_nan=True, allow_infinity=True).map(repr))


def queries(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """A query as AppTest takes it: key -> value, or a list of values for a repeated key."""
    key = st.one_of(st.sampled_from(keys), st.sampled_from(keys), st.text(min_size=1, max_size=12))
    value = st.one_of(values(), st.lists(values(), min_size=2, max_size=3))
    return st.dictionaries(key, value, max_size=8)


def last(value: Any) -> str:
    return value[-1] if isinstance(value, list) else value


def expected_note_keys(query: dict[str, Any], fixed: tuple[str, ...],
                       knobs: dict[str, Any]) -> set[str]:
    """Keys whose (last) value the page cannot use as given: each must be named in a note."""
    keys = set()
    for key, value in query.items():
        knob = knobs.get(key)
        if knob is not None and knob.name not in fixed and parse_knob(knob, last(value))[1]:
            keys.add(key)
    return keys


VERBATIM = re.compile(r"Adjusted: (`+) (.*) \1", re.DOTALL)


FRESH_SESSION_EVERY = 50  # most links arrive in an open tab (cheap); some in a new session


class Tab:
    """One browser tab of a page, reused for many links (cheap), and replaced by a fresh
    session every FRESH_SESSION_EVERY links. A browser reloads a page whose URL was edited (a
    new session); the reused one forgets the URLs it showed, which the app would otherwise take
    for a rerun request still in flight (dualviz.ui.state). Its jobs are released when it is
    replaced or closed, as when a tab closes."""

    def __init__(self, page: str):
        self.page, self.at, self.opened = page, None, 0

    def open(self, query: dict[str, Any]) -> AppTest:
        if self.at is None or self.opened % FRESH_SESSION_EVERY == 0:
            self.close()
            self.at = AppTest.from_file(str(ROOT / self.page), default_timeout=60)
        self.opened += 1
        self.at.session_state[state._EARLIER] = []
        self.at.query_params = query
        self.at.run()
        return self.at

    def close(self) -> None:
        if self.at is not None and "_dualviz_watcher" in self.at.session_state:
            live.manager().release(self.at.session_state["_dualviz_watcher"])


def check_link(at: AppTest, page: str, query: dict[str, Any], fixed: tuple[str, ...]) -> None:
    assert not at.exception, (query, at.exception)
    assert at.title, query  # the page rendered
    notes = [w.value for w in at.warning if w.value.startswith("Adjusted: ")]
    for note in notes:  # the visitor's text is verbatim in a code span: no markup can form
        span = VERBATIM.fullmatch(note)
        assert span and span[1] not in span[2], note
    knobs = {k.key: k for k in PREVIEW_KNOBS} if page == "app.py" else \
        (KNOBS_BY_KEY if page != "pages/4_Theory.py" else {})
    named = {shown(n)[len("Adjusted: "):].split(":")[0] for n in notes}
    missing = expected_note_keys(query, fixed, knobs) - named
    assert not missing, (query, missing, notes)
    typed = [last(v) for v in query.values() if len(last(v)) >= 4]
    for element in at.markdown:
        if element.proto.allow_html:  # only the app's own constants may carry HTML
            assert not any(t in element.value for t in typed), element.value


@pytest.mark.parametrize("page, keys, fixed, examples", PAGES, ids=[p[0] for p in PAGES])
def test_any_link_renders_a_working_page(page, keys, fixed, examples):
    tab = Tab(page)

    @settings(max_examples=examples, derandomize=True, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(queries(keys))
    def check(query):
        check_link(tab.open(query), page, query, fixed)

    try:
        check()
    finally:
        tab.close()


def test_a_reused_tab_follows_each_new_link():
    """The cheap path above is real: an open tab shown a new link shows the new state."""
    tab = Tab("app.py")
    try:
        for depth in (5, 7, 2):
            at = tab.open({"preview-depth": str(depth)})
            assert at.slider[0].value == depth
    finally:
        tab.close()
