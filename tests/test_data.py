"""Tests for dualviz.data: synthetic construction, the validation gate and file loaders."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest

from dualviz import data
from dualviz.data import (
    DataError,
    Dataset,
    interpolation_residual,
    load_csv,
    load_file,
    load_npz,
    synthetic,
    target_matrix,
    validate_arrays,
)

EXPECTED_SPECTRA = {
    "equal": lambda r: 2.0 * np.ones(r),
    "linear": lambda r: 2.0 * (r - np.arange(r)) / r,
    "geometric": lambda r: 2.0 * 0.5 ** np.arange(r),
}


def make(**overrides):
    args = dict(
        n=40,
        d=12,
        k=5,
        x_rank=6,
        target_rank=4,
        spectrum="linear",
        noise=0.0,
        whiten=False,
        seed=3,
        interpolation=True,
    )
    args.update(overrides)
    return synthetic(**args)


def singular_values(a):
    return np.linalg.svd(a, compute_uv=False)


def npz_bytes(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def csv_text(ds: Dataset) -> str:
    header = [f"x{j}" for j in range(ds.d)] + [f"y{j + 1}" for j in range(ds.k)]
    lines = [",".join(header)]
    for xrow, yrow in zip(ds.X, ds.Y, strict=True):
        lines.append(",".join(repr(float(v)) for v in (*xrow, *yrow)))
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ synthetic


@pytest.mark.parametrize("spectrum", ["equal", "linear", "geometric"])
@pytest.mark.parametrize("whiten", [False, True])
def test_synthetic_ranks_and_spectrum_exact(spectrum, whiten):
    d = 8 if whiten else 12
    x_rank = d if whiten else 6
    ds = make(spectrum=spectrum, whiten=whiten, d=d, x_rank=x_rank, target_rank=4)
    assert ds.X.shape == (40, d) and ds.Y.shape == (40, 5)
    assert (ds.n, ds.d, ds.k) == (40, d, 5)
    assert np.linalg.matrix_rank(ds.X) == x_rank
    W = target_matrix(ds.X, ds.Y)
    assert W.shape == (d, 5)
    assert np.linalg.matrix_rank(W) == 4
    sv = singular_values(W)
    np.testing.assert_allclose(sv[:4], EXPECTED_SPECTRA[spectrum](4), rtol=0, atol=1e-10)
    np.testing.assert_allclose(sv[4:], 0.0, atol=1e-10)
    assert interpolation_residual(ds.X, ds.Y) < 1e-12


def test_synthetic_x_spectrum_is_geomspace_without_whitening():
    ds = make(x_rank=5)
    sv = singular_values(ds.X)
    np.testing.assert_allclose(sv[:5], np.geomspace(2.0, 1.0, 5), atol=1e-12)
    assert sv[5] < 1e-12


def test_whitening_gives_identity_gram():
    ds = make(d=7, x_rank=7, whiten=True)
    np.testing.assert_allclose(ds.X.T @ ds.X, np.eye(7), rtol=0, atol=1e-12)


def test_whitening_not_identity_when_off():
    ds = make(d=7, x_rank=7, whiten=False)
    assert np.max(np.abs(ds.X.T @ ds.X - np.eye(7))) > 0.1


def test_noise_under_interpolation_stays_feasible():
    clean = make(noise=0.0)
    noisy = make(noise=0.3, interpolation=True)
    assert not np.allclose(clean.Y, noisy.Y)  # the noise did something
    np.testing.assert_array_equal(clean.X, noisy.X)
    assert interpolation_residual(noisy.X, noisy.Y) < 1e-10


def test_noise_without_interpolation_is_infeasible():
    noisy = make(noise=0.3, interpolation=False)
    assert interpolation_residual(noisy.X, noisy.Y) > 1e-2


def test_interpolation_flag_irrelevant_without_noise():
    a = make(noise=0.0, interpolation=True)
    b = make(noise=0.0, interpolation=False)
    assert a.digest == b.digest


def test_synthetic_is_deterministic():
    a = make(noise=0.1, seed=11)
    b = make(noise=0.1, seed=11)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.Y, b.Y)
    assert a.digest == b.digest
    assert len(a.digest) == 16 and int(a.digest, 16) >= 0
    assert make(noise=0.1, seed=12).digest != a.digest


def test_digest_changes_with_data_and_ignores_name():
    ds = make()
    renamed = Dataset(ds.X, ds.Y, name="other")
    assert renamed.digest == ds.digest
    Y2 = ds.Y.copy()
    Y2[0, 0] += 1e-12
    assert Dataset(ds.X, Y2, name="synthetic").digest != ds.digest


def test_digest_includes_shape():
    X = np.arange(6.0).reshape(3, 2)
    a = Dataset(X, np.zeros((3, 2)), "a")
    b = Dataset(X.reshape(2, 3), np.zeros((2, 3)), "b")  # same bytes, other shapes
    assert a.digest != b.digest


def test_dataset_arrays_are_readonly_copies():
    X = np.ones((3, 2))
    ds = Dataset(X, np.ones((3, 1)), "t")
    X[0, 0] = 5.0
    assert ds.X[0, 0] == 1.0
    assert ds.X.dtype == np.float64 and ds.X.flags.c_contiguous
    with pytest.raises(ValueError):
        ds.X[0, 0] = 2.0
    with pytest.raises(ValueError):
        ds.Y[0, 0] = 2.0
    with pytest.raises(AttributeError):
        ds.name = "changed"


def test_dataset_pickle_roundtrip_keeps_readonly():
    ds = make()
    back = pickle.loads(pickle.dumps(ds))
    assert back.digest == ds.digest and back.name == ds.name
    assert not back.X.flags.writeable and not back.Y.flags.writeable


def test_synthetic_arrays_readonly():
    ds = make()
    assert not ds.X.flags.writeable and not ds.Y.flags.writeable
    assert ds.name == "synthetic"


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"n": 0}, "n must be at least 1"),
        ({"d": 0}, "d must be at least 1"),
        ({"k": 0}, "k must be at least 1"),
        ({"x_rank": 0}, "x_rank"),
        ({"x_rank": 13}, "x_rank"),
        ({"target_rank": 0}, "target_rank"),
        ({"target_rank": 6}, "target_rank"),  # > k = 5
        ({"x_rank": 3, "target_rank": 4}, "target_rank"),  # > x_rank
        ({"spectrum": "cubic"}, "spectrum"),
        ({"noise": -0.1}, "noise"),
        ({"noise": float("nan")}, "noise"),
        ({"noise": float("inf")}, "noise"),
        ({"whiten": True}, "whitening"),  # x_rank 6 != d 12
        ({"whiten": True, "n": 5, "d": 6, "x_rank": 5, "target_rank": 2}, "whitening"),
        ({"n": 2.5}, "n must be an integer"),
        ({"seed": -1}, "seed"),
    ],
)
def test_synthetic_refuses_bad_arguments(overrides, fragment):
    with pytest.raises(DataError, match=fragment):
        make(**overrides)


def test_synthetic_enforces_size_caps(monkeypatch):
    monkeypatch.setattr(data, "MAX_ROWS", 30)
    with pytest.raises(DataError, match="limit of 30"):
        make(n=40)


# ------------------------------------------------------------------------------ target matrix


def test_target_matrix_is_min_norm_solution():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, 6))  # underdetermined: many solutions
    Y = rng.standard_normal((3, 2))
    W = target_matrix(X, Y)
    np.testing.assert_allclose(X @ W, Y, atol=1e-12)
    np.testing.assert_allclose(W, np.linalg.pinv(X) @ Y, atol=1e-12)
    null = np.linalg.svd(X)[2][3:].T  # basis of null(X)
    other = W + null @ rng.standard_normal((3, 2))
    assert np.linalg.norm(other) > np.linalg.norm(W)


def test_target_matrix_least_squares_and_1d():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((10, 3))
    y = rng.standard_normal(10)
    w = target_matrix(X, y)
    assert w.shape == (3,)
    np.testing.assert_allclose(w, np.linalg.lstsq(X, y, rcond=None)[0], atol=1e-12)
    assert interpolation_residual(X, y) > 0.1


def test_target_matrix_zero_x():
    W = target_matrix(np.zeros((4, 3)), np.ones((4, 2)))
    np.testing.assert_array_equal(W, np.zeros((3, 2)))
    assert interpolation_residual(np.zeros((4, 3)), np.zeros((4, 2))) == 0.0


def test_target_matrix_rejects_mismatched_rows():
    with pytest.raises(DataError, match="X has 4 rows but Y has 3"):
        target_matrix(np.ones((4, 2)), np.ones((3, 1)))


# ------------------------------------------------------------------------------ validation


def test_validate_converts_and_reshapes():
    X = np.arange(6, dtype=np.int32).reshape(3, 2)
    ds = validate_arrays(X, np.array([True, False, True]), name="ints")
    assert ds.X.dtype == np.float64 and ds.Y.dtype == np.float64
    assert ds.Y.shape == (3, 1)
    np.testing.assert_array_equal(ds.Y[:, 0], [1.0, 0.0, 1.0])
    assert ds.name == "ints"
    assert not ds.X.flags.writeable


def test_validate_copies_fortran_input():
    X = np.asfortranarray(np.arange(6.0).reshape(3, 2))
    ds = validate_arrays(X, np.zeros((3, 1)))
    assert ds.X.flags.c_contiguous
    assert ds.name == "data"


@pytest.mark.parametrize(
    ("X", "Y", "fragment"),
    [
        (np.array([["a", "b"]]), np.zeros((1, 1)), "X holds text"),
        (np.array([[1, None]], dtype=object), np.zeros((1, 1)), "X holds Python objects"),
        (np.zeros((2, 2)), np.array([1 + 2j, 3j]), "Y holds complex"),
        (np.zeros(3), np.zeros(3), "X must be a 2-D"),
        (np.zeros((3, 2)), np.zeros((3, 1, 1)), "Y must be a 1-D or 2-D"),
        (np.zeros((0, 2)), np.zeros((0, 1)), "empty"),
        (np.zeros((3, 0)), np.zeros((3, 1)), "empty"),
        (np.zeros((3, 2)), np.zeros((3, 0)), "empty"),
        (np.zeros((5, 2)), np.zeros((4, 1)), "X has 5 rows but Y has 4"),
        ([[1.0, 2.0], [3.0]], np.zeros(2), "rectangular"),
    ],
)
def test_validate_refusals(X, Y, fragment):
    with pytest.raises(DataError, match=fragment):
        validate_arrays(X, Y)


def test_validate_counts_nan_and_inf():
    X = np.zeros((4, 3))
    X[0, 0] = np.nan
    X[1, 1] = np.nan
    Y = np.zeros((4, 1))
    Y[2, 0] = -np.inf
    with pytest.raises(DataError) as info:
        validate_arrays(X, Y)
    msg = str(info.value)
    assert "X contains 2 NaN" in msg
    assert "Y contains 1 infinite" in msg
    assert "\n" not in msg


def test_validate_inf_only_in_x():
    X = np.zeros((2, 2))
    X[0, 1] = np.inf
    with pytest.raises(DataError, match=r"X contains 1 infinite value\(s\) out of 4"):
        validate_arrays(X, np.zeros(2))


def test_validate_overflow_to_float64_counts_as_infinite():
    if np.finfo(np.longdouble).max <= np.finfo(np.float64).max:
        pytest.skip("longdouble is float64 on this platform")
    X = np.full((2, 2), np.finfo(np.longdouble).max, dtype=np.longdouble)
    with pytest.raises(DataError, match="infinite"):
        validate_arrays(X, np.zeros(2))


def test_validate_size_caps(monkeypatch):
    monkeypatch.setattr(data, "MAX_ROWS", 10)
    monkeypatch.setattr(data, "MAX_FEATURES", 3)
    monkeypatch.setattr(data, "MAX_OUTPUTS", 2)
    with pytest.raises(DataError, match="11 rows; the limit is 10"):
        validate_arrays(np.zeros((11, 2)), np.zeros(11))
    with pytest.raises(DataError, match="4 features"):
        validate_arrays(np.zeros((5, 4)), np.zeros(5))
    with pytest.raises(DataError, match="3 outputs"):
        validate_arrays(np.zeros((5, 2)), np.zeros((5, 3)))
    assert validate_arrays(np.zeros((10, 3)), np.zeros((10, 2))).n == 10


# ------------------------------------------------------------------------------ npz


def test_npz_roundtrip_path_bytes_and_filelike(tmp_path):
    ds = make(noise=0.05, interpolation=False)
    path = tmp_path / "set.npz"
    np.savez(path, X=ds.X, Y=ds.Y, extra=np.arange(3))
    from_path = load_npz(path)
    assert from_path.digest == ds.digest
    assert from_path.name == "set.npz"
    assert load_npz(str(path), name="custom").name == "custom"
    raw = path.read_bytes()
    assert load_npz(raw).digest == ds.digest
    with path.open("rb") as fh:
        from_fh = load_npz(fh)
    assert from_fh.digest == ds.digest and from_fh.name == "set.npz"


def test_npz_compressed_and_1d_y(tmp_path):
    buf = io.BytesIO()
    np.savez_compressed(buf, X=np.eye(3), Y=np.array([1, 2, 3]))
    ds = load_npz(buf.getvalue(), name="c.npz")
    assert ds.Y.shape == (3, 1)
    np.testing.assert_array_equal(ds.Y[:, 0], [1.0, 2.0, 3.0])


def test_npz_object_array_refused_without_unpickling(tmp_path, monkeypatch):
    path = tmp_path / "evil.npz"
    np.savez(path, X=np.array([[1, "a"]], dtype=object), Y=np.zeros(1), allow_pickle=True)

    def boom(*args, **kwargs):  # pragma: no cover - must never be called
        raise AssertionError("pickle.loads called")

    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(pickle, "load", boom)
    with pytest.raises(DataError, match="X holds Python objects; refusing to unpickle"):
        load_npz(path)


def test_npz_object_y_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, X=np.zeros((1, 1)), Y=np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="Y holds Python objects"):
        load_npz(path)


@pytest.mark.parametrize(
    "raw",
    [
        b"this is not a zip archive",
        b"",
        b"PK\x03\x04garbage that claims to be a zip",
    ],
)
def test_npz_not_an_npz(raw):
    with pytest.raises(DataError, match=r"not a valid \.npz"):
        load_npz(raw, name="bad.npz")


def test_npz_plain_npy_and_pickle_refused():
    buf = io.BytesIO()
    np.save(buf, np.zeros(3))
    with pytest.raises(DataError, match=r"not a valid \.npz"):
        load_npz(buf.getvalue())
    with pytest.raises(DataError, match=r"not a valid \.npz"):
        load_npz(pickle.dumps({"X": [1]}))


def test_npz_missing_keys_lists_found():
    raw = npz_bytes(features=np.zeros((2, 2)), Y=np.zeros(2))
    with pytest.raises(DataError) as info:
        load_npz(raw, name="k.npz")
    msg = str(info.value)
    assert "no array named X" in msg
    assert "'features'" in msg and "'Y'" in msg
    with pytest.raises(DataError, match="X or Y; keys found: none"):
        load_npz(npz_bytes(), name="empty.npz")


def test_npz_oversized_refused(tmp_path, monkeypatch):
    ds = make()
    path = tmp_path / "big.npz"
    np.savez(path, X=ds.X, Y=ds.Y)
    raw = path.read_bytes()
    monkeypatch.setattr(data, "MAX_FILE_BYTES", 1000)
    with pytest.raises(DataError, match="limit"):
        load_npz(path)
    with pytest.raises(DataError, match="limit"):
        load_npz(raw)
    with pytest.raises(DataError, match="limit"):
        load_npz(io.BytesIO(raw))
    monkeypatch.setattr(data, "MAX_FILE_BYTES", len(raw))
    assert load_npz(raw).digest == ds.digest  # exactly at the limit is fine


def test_npz_too_many_rows(monkeypatch):
    raw = npz_bytes(X=np.zeros((20, 2)), Y=np.zeros(20))
    monkeypatch.setattr(data, "MAX_ROWS", 10)
    with pytest.raises(DataError, match="20 rows; the limit is 10"):
        load_npz(raw)


def test_npz_shape_bomb_refused_from_header(monkeypatch):
    monkeypatch.setattr(data, "MAX_ROWS", 2)
    monkeypatch.setattr(data, "MAX_FEATURES", 2)
    monkeypatch.setattr(data, "MAX_OUTPUTS", 1)
    raw = npz_bytes(X=np.zeros((3, 3)), Y=np.zeros(3))
    with pytest.raises(DataError, match="more than the 4 values allowed"):
        load_npz(raw)


def test_npz_nan_refused():
    X = np.zeros((3, 2))
    X[1, 0] = np.nan
    with pytest.raises(DataError, match="X contains 1 NaN"):
        load_npz(npz_bytes(X=X, Y=np.zeros(3)))


def test_npz_missing_file(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        load_npz(tmp_path / "nope.npz")


def test_text_mode_file_refused(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("x,y\n1,2\n")
    with path.open("r") as fh, pytest.raises(DataError, match="binary mode"):
        load_csv(fh)


# ------------------------------------------------------------------------------ csv


def test_csv_roundtrip_exact(tmp_path):
    ds = make(noise=0.1, interpolation=False, seed=5)
    path = tmp_path / "set.csv"
    path.write_text(csv_text(ds), encoding="utf-8")
    back = load_csv(path)
    assert back.digest == ds.digest
    assert back.name == "set.csv"
    assert load_csv(path.read_bytes()).digest == ds.digest
    assert load_csv(io.BytesIO(path.read_bytes())).digest == ds.digest


def test_csv_column_roles_case_whitespace_and_order():
    text = "a, Y ,b,Y2\n1,10,2,20\n3,30,4,40\n\n"
    ds = load_csv(text.encode(), name="t.csv")
    np.testing.assert_array_equal(ds.X, [[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(ds.Y, [[10.0, 20.0], [30.0, 40.0]])
    assert ds.name == "t.csv"


def test_csv_yx_columns_are_features():
    ds = load_csv(b"y_hat,yx,y\n1,2,3\n")
    assert (ds.d, ds.k) == (2, 1)


def test_csv_bom_and_crlf():
    ds = load_csv("\ufeffx,y\r\n1.5,2\r\n".encode())
    np.testing.assert_array_equal(ds.X, [[1.5]])
    np.testing.assert_array_equal(ds.Y, [[2.0]])


def test_csv_non_numeric_cell_names_row_and_column():
    with pytest.raises(DataError, match=r"row 3, column 'b': 'oops' is not a number"):
        load_csv(b"a,b,y\n1,2,3\n4,oops,6\n", name="bad.csv")


def test_csv_empty_cell_refused():
    with pytest.raises(DataError, match=r"row 2, column 'y'"):
        load_csv(b"a,y\n1,\n")


def test_csv_without_target_column():
    with pytest.raises(DataError, match="no target column"):
        load_csv(b"a,b,target\n1,2,3\n")


def test_csv_without_feature_column():
    with pytest.raises(DataError, match="no feature column"):
        load_csv(b"y1,y2\n1,2\n")


def test_csv_ragged_row():
    with pytest.raises(DataError, match="row 3 has 2 cells but the header has 3"):
        load_csv(b"a,b,y\n1,2,3\n4,5\n")


def test_csv_empty_and_header_only():
    with pytest.raises(DataError, match="is empty"):
        load_csv(b"")
    with pytest.raises(DataError, match="no data rows"):
        load_csv(b"a,y\n\n")


def test_csv_not_utf8():
    with pytest.raises(DataError, match="not UTF-8"):
        load_csv(b"a,y\n\xff\xfe,1\n")


def test_csv_nan_and_inf_refused():
    with pytest.raises(DataError, match=r"X contains 1 NaN.*Y contains 1 infinite"):
        load_csv(b"a,y\nnan,1\n2,inf\n")


def test_csv_oversized(monkeypatch):
    monkeypatch.setattr(data, "MAX_FILE_BYTES", 10)
    with pytest.raises(DataError, match="limit"):
        load_csv(b"a,y\n1,2\n3,4\n")


def test_csv_too_many_rows(monkeypatch):
    monkeypatch.setattr(data, "MAX_ROWS", 2)
    with pytest.raises(DataError, match="3 rows; the limit is 2"):
        load_csv(b"a,y\n1,1\n2,2\n3,3\n")


# ------------------------------------------------------------------------------ dispatch


def test_load_file_dispatch(tmp_path):
    ds = make()
    npz = npz_bytes(X=ds.X, Y=ds.Y)
    assert load_file(npz, "Upload.NPZ").digest == ds.digest
    assert load_file(csv_text(ds).encode(), "upload.CSV").digest == ds.digest
    assert load_file(io.BytesIO(npz), "u.npz").name == "u.npz"


@pytest.mark.parametrize("name", ["data.txt", "data", "data.npz.gz"])
def test_load_file_unsupported_suffix(name):
    with pytest.raises(DataError, match="unsupported file type"):
        load_file(b"x,y\n1,2\n", name)


def test_load_file_wrong_content_for_suffix():
    with pytest.raises(DataError, match=r"not a valid \.npz"):
        load_file(b"x,y\n1,2\n", "actually.npz")


def test_data_error_is_value_error():
    assert issubclass(DataError, ValueError)


def test_repr_is_short_and_names_the_digest():
    ds = make()
    text = repr(ds)
    assert text.startswith("Dataset(name='synthetic', n=40, d=12, k=5")
    assert ds.digest in text and len(text) < 120


def test_w_star_is_computed_once_per_dataset_and_never_for_a_stale_array(monkeypatch):
    """A run reads W* for its spectrum, feasibility, closed form and dual: one SVD. Arrays a
    caller may change (writeable) are never answered from the cache."""
    from dualviz.config import Experiment
    from dualviz.linear.closed_forms import target_spectrum
    from dualviz.linear.programs import closed_form, solve_dual

    calls = []
    real = data._pseudo_inverse_times
    monkeypatch.setattr(data, "_pseudo_inverse_times", lambda X, Y: calls.append(1) or real(X, Y))
    ds = synthetic(30, 6, 3, 6, 2, "equal", 0.0, False, 0, interpolation=True)
    exp = Experiment(n=30, d=6, k=3, x_rank=6, target_rank=2)
    closed_form(exp, ds.X, ds.Y)
    solve_dual(exp, ds.X, ds.Y)
    target_spectrum(ds.X, ds.Y)
    assert len(calls) == 1 and not target_matrix(ds.X, ds.Y).flags.writeable
    X, Y = np.array(ds.X), np.array(ds.Y)  # writeable copies
    first = target_matrix(X, Y)
    Y *= 2.0
    assert np.allclose(target_matrix(X, Y), 2.0 * first) and len(calls) == 3
