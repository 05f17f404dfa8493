"""Property tests for dualviz.config: the Experiment, its clamping, its URL codec and its hash.

Every strategy is derived from the knob table (KNOBS), so a knob added to the table is covered
without touching this file. All property tests are derandomized so the suite is reproducible.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shared import NASTY_TEXT

from dualviz import limits
from dualviz.config import (
    KNOBS,
    KNOBS_BY_KEY,
    KNOBS_BY_NAME,
    RELU_MAX_DEPTH,
    SYNTHETIC,
    ConfigError,
    Experiment,
    Knob,
    fit_network,
)

PROPERTY = settings(
    derandomize=True,
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}
HEX = "0123456789abcdef"
PYTHON_TYPES = {"choice": str, "str": str, "int": int, "float": float, "bool": bool}

# ---------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------


def knob_values(knob: Knob) -> st.SearchStrategy[Any]:
    """Valid values of one knob, on its own (cross-constraints are handled by `experiments`)."""
    if knob.kind == "choice":
        return st.sampled_from(knob.choices)
    if knob.kind == "bool":
        return st.booleans()
    if knob.kind == "int":
        return st.integers(int(knob.low), int(knob.high))
    if knob.kind == "float":
        # min_value=0.0 excludes -0.0 (see test_negative_zero_noise_has_the_hash_of_zero).
        return st.floats(knob.low, knob.high, allow_nan=False, allow_infinity=False)
    assert knob.kind == "str" and knob.name == "data", knob
    return st.one_of(st.just(SYNTHETIC), st.text(HEX, min_size=16, max_size=16))


@st.composite
def experiments(draw) -> Experiment:
    """Any valid Experiment: every knob in range and every cross-constraint satisfied."""
    values = {k.name: draw(knob_values(k)) for k in KNOBS}
    n, k = values["n"], values["k"]
    if values["whiten"]:
        values["d"] = d = draw(st.integers(1, min(n, int(KNOBS_BY_NAME["d"].high))))
        values["x_rank"] = d
    else:
        d = values["d"]
        values["x_rank"] = draw(st.integers(1, min(n, d)))
    values["target_rank"] = draw(st.integers(1, min(values["x_rank"], k)))
    if values["activation"] == "relu":
        values["depth"] = min(values["depth"], RELU_MAX_DEPTH)
        if values["dataset"] == "rank-one" and values["data"] == SYNTHETIC:
            values["bias"] = False  # rank-one data is trained without a bias
    if values["data"] == SYNTHETIC:  # a net that fits this server's job memory (no note)
        fit_network(values, limits.job_memory_bytes())
    return Experiment(**values)


def _text_of_number(x: float | int) -> str:
    return repr(x)


ALL_KEYS = sorted({*KNOBS_BY_KEY, *KNOBS_BY_NAME})

garbage_keys = st.one_of(
    st.sampled_from(ALL_KEYS),
    st.sampled_from(ALL_KEYS).map(str.upper),
    st.text(max_size=60),
)
garbage_values = st.one_of(
    st.sampled_from(NASTY_TEXT),
    st.text(max_size=30),
    st.integers().map(str),
    st.integers(-(10**400), 10**400).map(str),
    st.floats().map(_text_of_number),
    st.sampled_from([c for k in KNOBS for c in k.choices]).flatmap(
        lambda c: st.sampled_from([c, c.upper(), f" {c} "])),
)
garbage_dicts = st.dictionaries(garbage_keys, garbage_values, max_size=30)


# ---------------------------------------------------------------------------------------------
# Helpers: the contract an Experiment and its notes must satisfy
# ---------------------------------------------------------------------------------------------


def assert_valid(e: Experiment) -> None:
    """Every knob has its canonical type and lies in its bounds; cross-constraints hold."""
    for knob in KNOBS:
        value = getattr(e, knob.name)
        assert type(value) is PYTHON_TYPES[knob.kind], (knob.name, value)
        if knob.kind == "choice":
            assert value in knob.choices
        elif knob.kind in ("int", "float"):
            assert math.isfinite(value)
            assert knob.low <= value <= knob.high, (knob.name, value)
        elif knob.kind == "str":
            assert value == SYNTHETIC or (len(value) == 16 and set(value) <= set(HEX))
    if e.activation == "relu":
        assert e.depth <= RELU_MAX_DEPTH
    if e.dataset != "low-rank":
        return  # the rank and whitening knobs shape only the low-rank data
    assert e.x_rank <= min(e.n, e.d)
    assert e.target_rank <= min(e.x_rank, e.k)
    if e.whiten:
        assert e.x_rank == e.d <= e.n


_UNREADABLE = object()


def meaning(knob: Knob, raw: Any) -> Any:
    """What a raw value plainly means for a knob, or _UNREADABLE.

    A value that ends up different from its plain meaning was changed and must get a note.
    """
    if knob.kind == "choice":
        text = str(raw).strip().lower()
        return text if text in knob.choices else _UNREADABLE
    if knob.kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in TRUE_WORDS:
            return True
        return False if text in FALSE_WORDS else _UNREADABLE
    if knob.kind == "str":
        return str(raw)
    if isinstance(raw, bool):
        return _UNREADABLE
    try:
        number = float(raw)
    except (TypeError, ValueError, OverflowError):
        return _UNREADABLE
    return _UNREADABLE if math.isnan(number) else number


def assert_notes_explain(values: dict[Any, Any], e: Experiment, notes: list[str]) -> None:
    """Every unknown key and every value that was changed has a note that names it."""
    given: dict[str, Any] = {}
    unknown = []
    for key, value in values.items():  # later aliases of the same knob win, as in a dict
        knob = KNOBS_BY_KEY.get(key) or KNOBS_BY_NAME.get(key)
        if knob is None:
            unknown.append(key)
        else:
            given[knob.name] = value
    ignored = [n for n in notes if n.startswith("ignored unknown setting")]
    assert len(ignored) == len(unknown), (unknown, notes)
    for key in unknown:
        shown = str(key).encode("unicode_escape").decode("ascii")[:37]  # one line, escaped
        assert any(shown in n for n in ignored), (key, notes)
    for knob in KNOBS:
        out = getattr(e, knob.name)
        expected = meaning(knob, given[knob.name]) if knob.name in given else knob.default
        if expected is _UNREADABLE or out != expected:
            assert any(n.startswith(f"{knob.key}:") for n in notes), (knob.key, out, notes)


# ---------------------------------------------------------------------------------------------
# Round trip, garbage, idempotence
# ---------------------------------------------------------------------------------------------


@PROPERTY
@given(experiments())
def test_query_round_trip(e: Experiment) -> None:
    query = e.to_query()
    back, notes = Experiment.from_query(query)
    assert (back, notes) == (e, [])
    assert back.hash == e.hash
    assert back.to_dict() == e.to_dict()
    assert Experiment.from_query("?" + query) == (e, [])
    # every knob, in table order, so a link does not depend on today's defaults
    assert [pair.split("=")[0] for pair in query.split("&")] == [k.key for k in KNOBS]


@PROPERTY
@given(experiments())
def test_to_dict_round_trip_and_record(e: Experiment) -> None:
    assert Experiment.from_values(e.to_dict()) == (e, [])
    assert Experiment(**e.to_dict()) == e
    record = e.to_record()
    assert record == {**e.to_dict(), "hash": e.hash}


@PROPERTY
@given(garbage_dicts)
def test_garbage_values_are_clamped_with_notes(values: dict[str, str]) -> None:
    e, notes = Experiment.from_values(values)
    assert_valid(e)
    assert_notes_explain(values, e, notes)
    # idempotence: the output, fed back, needs no further change
    assert Experiment.from_values(e.to_dict()) == (e, [])
    assert Experiment.from_query(e.to_query()) == (e, [])


@PROPERTY
@given(garbage_dicts)
def test_garbage_through_a_query_string(values: dict[str, str]) -> None:
    e, notes = Experiment.from_query(urlencode(list(values.items())))
    assert_valid(e)
    # parse_qsl decodes what urlencode encoded, so the notes are those of from_values
    assert (e, notes) == Experiment.from_values(values)


@PROPERTY
@given(st.text())
def test_arbitrary_query_text_never_raises(query: str) -> None:
    e, notes = Experiment.from_query(query)
    assert_valid(e)
    assert all(isinstance(n, str) for n in notes)
    assert Experiment.from_values(e.to_dict()) == (e, [])


@PROPERTY
@given(st.text(alphabet=st.sampled_from("&=;?%+#x-_0123456789abcdefnaitrue"), max_size=40))
def test_query_punctuation_never_raises(query: str) -> None:
    e, _ = Experiment.from_query(query)
    assert_valid(e)


python_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**1000), 10**1000),
    st.floats(),
    st.complex_numbers(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.binary(max_size=10),
    st.text(max_size=10),
)


@PROPERTY
@given(st.dictionaries(st.sampled_from(ALL_KEYS), python_values, max_size=20))
def test_python_objects_as_values_never_raise(values: dict[str, Any]) -> None:
    e, notes = Experiment.from_values(values)
    assert_valid(e)
    assert_notes_explain(values, e, notes)


def test_huge_python_int_is_clamped_not_raised() -> None:
    e, notes = Experiment.from_values({"depth": 10**5000})
    assert e.depth == 10
    assert any(n.startswith("depth:") for n in notes)


def test_huge_integer_text_is_clamped() -> None:
    e, notes = Experiment.from_values({"depth": "1" + "0" * 5000, "seed": "-" + "9" * 5000})
    assert (e.depth, e.seed) == (10, 0)
    assert {n.split(":")[0] for n in notes} == {"depth", "seed"}


@pytest.mark.parametrize("text, expected", [
    ("inf", "high"), ("+inf", "high"), ("Infinity", "high"), ("1e308", "high"),
    ("1e309", "high"), ("-inf", "low"), ("-1e308", "low"),
])
def test_infinities_clamp_to_bounds(text: str, expected: str) -> None:
    for knob in KNOBS:
        if knob.kind not in ("int", "float"):
            continue
        e, notes = Experiment.from_values({knob.key: text})
        bound = knob.high if expected == "high" else knob.low
        value = getattr(e, knob.name)
        if knob.name in ("x_rank", "target_rank", "d") and value != bound:
            continue  # lowered further by a cross-constraint (and noted)
        assert value == bound, (knob.key, text, value)
        assert any(n.startswith(f"{knob.key}:") for n in notes)


@pytest.mark.parametrize("text", ["nan", "NaN", "", "abc", "<script>alert(1)</script>", "∞"])
def test_non_numbers_fall_back_to_the_default(text: str) -> None:
    for knob in KNOBS:
        if knob.kind not in ("int", "float"):
            continue
        e, notes = Experiment.from_values({knob.key: text})
        assert getattr(e, knob.name) == knob.default
        assert [n for n in notes if n.startswith(f"{knob.key}:")], (knob.key, notes)


def test_script_text_in_a_choice_falls_back_with_a_note() -> None:
    e, notes = Experiment.from_query("arch=%3Cscript%3Ealert(1)%3C/script%3E")
    assert e.arch == "standard"
    assert len(notes) == 1 and notes[0].startswith("arch:")


# ---------------------------------------------------------------------------------------------
# Cross-constraints
# ---------------------------------------------------------------------------------------------


@PROPERTY
@given(n=st.integers(1, 2000), d=st.integers(1, 200), k=st.integers(1, 20),
       x_rank=st.integers(1, 200), target_rank=st.integers(1, 20), whiten=st.booleans())
def test_cross_constraints_always_hold(n, d, k, x_rank, target_rank, whiten) -> None:
    values = dict(n=n, d=d, k=k, x_rank=x_rank, target_rank=target_rank, whiten=whiten)
    e, notes = Experiment.from_values(values)
    assert_valid(e)
    assert_notes_explain(values, e, notes)
    # Only what a constraint forced was changed.
    assert (e.n, e.k, e.whiten) == (n, k, whiten)
    if not whiten:
        assert e.d == d
        assert e.x_rank == min(x_rank, n, d)
    else:
        assert e.d == min(d, n)
    assert e.target_rank == min(target_rank, e.x_rank, k)


def test_whiten_sets_full_rank_with_a_note() -> None:
    e, notes = Experiment.from_values({"whiten": "yes", "d": "8", "n": "5", "x-rank": "2"})
    assert (e.d, e.x_rank, e.n) == (5, 5, 5)
    assert any(n.startswith("d:") for n in notes)
    assert any(n.startswith("x-rank:") for n in notes)


# ---------------------------------------------------------------------------------------------
# Hash
# ---------------------------------------------------------------------------------------------


def other_values(knob: Knob, current: Any) -> list[Any]:
    """A few other valid values of one knob (they may still break a cross-constraint)."""
    if knob.kind == "choice":
        candidates: list[Any] = list(knob.choices)
    elif knob.kind == "bool":
        candidates = [True, False]
    elif knob.kind == "str":
        candidates = [SYNTHETIC, "0123456789abcdef", "fedcba9876543210"]
    elif knob.kind == "int":
        lo, hi = int(knob.low), int(knob.high)
        candidates = [lo, hi, lo + 1, hi - 1, current - 1, current + 1, (lo + hi) // 2]
        candidates = [c for c in candidates if lo <= c <= hi]
    else:
        candidates = [knob.low, knob.high, (knob.low + knob.high) / 2, current * 1.5,
                      current / 1.5, math.nextafter(current, math.inf)]
        candidates = [c for c in candidates if knob.low <= c <= knob.high]
    return [c for c in dict.fromkeys(candidates) if c != current]


def single_changes(e: Experiment) -> list[tuple[str, Experiment]]:
    changed = []
    for knob in KNOBS:
        for value in other_values(knob, getattr(e, knob.name)):
            try:
                other = dataclasses.replace(e, **{knob.name: value})
            except ConfigError:
                continue  # breaks a cross-constraint: not a valid single change
            if getattr(other, knob.name) != value:
                continue  # normalized back (a bias asked of rank-one data): not a change
            changed.append((knob.name, other))
    return changed


def test_hash_is_16_hex_digits() -> None:
    h = Experiment().hash
    assert len(h) == 16 and set(h) <= set(HEX)
    assert Experiment().hash == h  # stable within a process
    assert Experiment().to_record()["hash"] == h


def test_every_knob_changes_the_hash_exactly_where_it_applies() -> None:
    """One computation, one hash: a knob that cannot change the result (t under weight
    decay, branches of a standard net, the synthetic-data knobs of an upload, ...) is left
    out of it; every other single change gives a new hash."""
    seen: set[str] = set()
    starts = (Experiment(), Experiment(arch="parallel"), Experiment(data="0123456789abcdef"),
              Experiment(activation="relu", depth=2, dataset="regression"),
              Experiment(activation="relu", dataset="rank-one"))
    for default in starts:
        changed = single_changes(default)
        applying = [(name, e) for name, e in changed if default.applies(name)]
        seen |= {name for name, _ in applying}
        hashes = {default.hash}
        for name, e in changed:
            assert e != default
            assert (e.hash != default.hash) == default.applies(name), name
            hashes.add(e.hash)
        assert len(hashes) == len(applying) + 1  # no two single changes collide either
    assert seen == {k.name for k in KNOBS}
    assert Experiment(regularization="weight-decay", t=3.0).hash == \
        Experiment(regularization="weight-decay").hash
    assert Experiment(t=3.0).hash != Experiment().hash


@settings(PROPERTY, max_examples=40)
@given(experiments())
def test_hash_changes_with_any_single_knob_that_applies(e: Experiment) -> None:
    assert len(e.hash) == 16 and set(e.hash) <= set(HEX)
    for name, other in single_changes(e):
        assert (other.hash != e.hash) == e.applies(name), (name, getattr(e, name),
                                                           getattr(other, name))
        assert other.canonical.hash == other.hash


@PROPERTY
@given(experiments())
def test_equal_experiments_have_equal_hashes(e: Experiment) -> None:
    twin = Experiment(**{k: v for k, v in reversed(list(e.to_dict().items()))})
    assert twin == e and twin.hash == e.hash
    as_text = Experiment.from_values({k.key: str(getattr(e, k.name)) for k in KNOBS})[0]
    assert as_text == e and as_text.hash == e.hash


def test_equivalent_spellings_share_a_hash() -> None:
    spellings = [
        {"beta": 1, "depth": 3, "whiten": False, "arch": "standard"},
        {"beta": "1.0", "depth": "3", "whiten": "no", "arch": " Standard "},
        {"beta": "1e0", "depth": 3.0, "whiten": "0", "arch": "STANDARD"},
        {"beta": 1.0, "depth": "3.0", "whiten": "", "arch": "standard"},
    ]
    results = [Experiment.from_values(s) for s in spellings]
    assert all(notes == [] for _, notes in results)
    assert len({e.hash for e, _ in results}) == 1
    assert results[0][0] == Experiment()


def test_negative_zero_noise_has_the_hash_of_zero() -> None:
    e, notes = Experiment.from_query("noise=-0")
    assert notes == []
    assert e == Experiment()
    assert e.hash == Experiment().hash


# ---------------------------------------------------------------------------------------------
# Direct construction
# ---------------------------------------------------------------------------------------------


def test_valid_construction_canonicalizes_types() -> None:
    e = Experiment(beta=1, t=2, noise=0, lr=1, depth=4.0, seed=7.0, whiten=1,
                   arch="Parallel", spectrum=" linear ")
    assert type(e.beta) is float and e.beta == 1.0
    assert type(e.t) is float and e.t == 2.0
    assert type(e.noise) is float and type(e.lr) is float
    assert type(e.depth) is int and e.depth == 4
    assert type(e.seed) is int and e.seed == 7
    assert e.whiten is True
    assert (e.arch, e.spectrum) == ("parallel", "linear")
    assert e == Experiment.from_values({"beta": "1", "t": "2", "depth": "4", "seed": "7",
                                        "whiten": "yes", "arch": "parallel",
                                        "spectrum": "linear", "d": "5", "x-rank": "5"})[0]
    assert e.hash == dataclasses.replace(e, beta=1.0).hash


def test_default_construction_matches_the_table() -> None:
    e = Experiment()
    assert_valid(e)
    assert e.to_dict() == {k.name: k.default for k in KNOBS}
    assert [k.key for k in KNOBS] == [k.name.replace("_", "-") for k in KNOBS]


INVALID = [
    {"arch": "foo"}, {"activation": "tanh"}, {"objective": ""}, {"spectrum": None},
    {"depth": 1}, {"depth": 11}, {"depth": 2.5}, {"depth": True}, {"depth": None},
    {"depth": "abc"}, {"width": 0}, {"width": 257}, {"branches": -1}, {"n": 0},
    {"beta": 0.0}, {"beta": 1e4}, {"beta": math.nan}, {"beta": math.inf}, {"t": -1.0},
    {"noise": -0.1}, {"noise": 11.0}, {"lr": 0.0}, {"seed": -1}, {"seed": 2**31},
    {"iterations": 0}, {"restarts": 21}, {"whiten": "maybe"}, {"whiten": 2},
    {"data": "foo"}, {"data": "0123456789ABCDEF"}, {"data": "0123456789abcde"},
    {"x_rank": 6}, {"d": 3}, {"target_rank": 4}, {"k": 1},
    {"whiten": True, "x_rank": 4}, {"whiten": True, "n": 3, "x_rank": 3},
]


@pytest.mark.parametrize("kwargs", INVALID, ids=[str(v) for v in INVALID])
def test_invalid_construction_raises_config_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="invalid experiment"):
        Experiment(**kwargs)


@PROPERTY
@given(st.data())
def test_any_out_of_range_value_raises_config_error(data) -> None:
    knob = data.draw(st.sampled_from([k for k in KNOBS if k.kind in ("int", "float")]))
    span = knob.high - knob.low
    too_low = st.floats(max_value=knob.low - max(1e-9, abs(knob.low) * 1e-9), allow_nan=False)
    too_high = st.floats(min_value=knob.high + max(1e-9, span * 1e-9), allow_nan=False)
    value = data.draw(st.one_of(too_low, too_high, st.just(math.nan)))
    with pytest.raises(ConfigError):
        Experiment(**{knob.name: value})


def test_messages_are_one_line() -> None:
    _, notes = Experiment.from_values({"arch": "a\nb", "depth": "1\n2"})
    assert notes and all("\n" not in n for n in notes)
    with pytest.raises(ConfigError) as info:
        Experiment(arch="a\nb")
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------
# Query details: repeated and unknown keys
# ---------------------------------------------------------------------------------------------


# Knobs whose every valid value is valid together with the other defaults.
INDEPENDENT = [k for k in KNOBS
               if k.name not in ("n", "d", "k", "x_rank", "target_rank", "relu_solver")]


@PROPERTY
@given(st.sampled_from(INDEPENDENT), st.data())
def test_repeated_keys_last_one_wins(knob: Knob, data) -> None:
    values = data.draw(st.lists(knob_values(knob), min_size=2, max_size=5))
    query = urlencode([(knob.key, str(v)) for v in values])
    e, notes = Experiment.from_query(query)
    assert notes == []
    assert getattr(e, knob.name) == values[-1]


def test_repeated_keys_last_one_wins_examples() -> None:
    assert Experiment.from_query("depth=4&depth=5")[0].depth == 5
    assert Experiment.from_query("arch=parallel&arch=standard")[0].arch == "standard"
    assert Experiment.from_query("whiten=1&d=5&whiten=0")[0].whiten is False
    # an invalid earlier value is overridden silently; an invalid last value is noted
    assert Experiment.from_query("depth=abc&depth=4") == (Experiment(depth=4), [])
    e, notes = Experiment.from_query("depth=4&depth=abc")
    assert e.depth == 3 and len(notes) == 1 and notes[0].startswith("depth:")
    # the field name and the URL key are the same knob; the later one wins
    assert Experiment.from_query("target-rank=1&target_rank=3")[0].target_rank == 3
    assert Experiment.from_query("target_rank=3&target-rank=1")[0].target_rank == 1


unknown_keys = st.text(max_size=50).filter(lambda s: s not in KNOBS_BY_KEY and s not in
                                           KNOBS_BY_NAME)


@PROPERTY
@given(experiments(), st.dictionaries(unknown_keys, st.text(max_size=20), min_size=1,
                                      max_size=5))
def test_unknown_keys_are_ignored_with_a_note(e: Experiment, extra: dict[str, str]) -> None:
    query = e.to_query() + "&" + urlencode(list(extra.items()))
    back, notes = Experiment.from_query(query)
    assert back == e and back.hash == e.hash
    assert len(notes) == len(extra)
    for key, note in zip(extra, notes, strict=True):
        assert note.startswith("ignored unknown setting")
        assert key.encode("unicode_escape").decode("ascii")[:37] in note


def test_unknown_key_examples() -> None:
    e, notes = Experiment.from_query("?depth=4&colour=blue&Depth=9&<b>=1")
    assert e == Experiment(depth=4) and e.hash == Experiment(depth=4).hash
    assert notes == ["ignored unknown setting 'colour'", "ignored unknown setting 'Depth'",
                     "ignored unknown setting '<b>'"]
    long_key = "k" * 100
    _, notes = Experiment.from_values({long_key: "1"})
    assert notes == [f"ignored unknown setting '{'k' * 37}...'"]


def test_replace_clamps_like_from_values() -> None:
    e, notes = Experiment().replace(depth=99, arch="parallel")
    assert (e.depth, e.arch) == (10, "parallel")
    assert len(notes) == 1 and notes[0].startswith("depth:")


def test_ascii_query_keys_are_case_sensitive() -> None:
    for knob in KNOBS:
        upper = knob.key.upper()
        e, notes = Experiment.from_values({upper: "1"})
        assert (e, notes) == (Experiment(), [f"ignored unknown setting '{upper}'"])
