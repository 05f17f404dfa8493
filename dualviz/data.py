"""Datasets: synthetic families (low-rank for linear nets, regression and rank-one data for ReLU
nets) and user uploads, validated from their declared sizes before anything is read.

A dataset is a pair of matrices ``X`` (N x d, one example per row) and ``Y`` (N x K, one
target per row).  The central derived quantity is the *target matrix*

    W* = X^+ Y,

the minimum-Frobenius-norm solution of ``X W = Y`` when that system is feasible
(interpolation regime) and the minimum-norm least-squares solution otherwise.

Everything that comes from a user goes through :func:`validate_arrays`, the single gate that
turns arbitrary input into a read-only, float64, C-contiguous :class:`Dataset` or raises a
:class:`DataError` carrying a one-line message fit to show to that user.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import math
import operator
import os
import re
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from . import limits

__all__ = [
    "MAX_FEATURES",
    "MAX_FILE_BYTES",
    "MAX_OUTPUTS",
    "MAX_ROWS",
    "SPECTRA",
    "DataError",
    "Dataset",
    "interpolation_residual",
    "load_csv",
    "load_file",
    "load_npz",
    "synthetic",
    "target_matrix",
    "validate_arrays",
]

# An upload may be larger than generated data (the knobs n <= 2000, d <= 200, K <= 20 of
# dualviz.config): it is given, not generated. What a job may train on either is bounded by its
# memory (dualviz.footprint, $DUALVIZ_JOB_MEMORY_MB).
MAX_ROWS = 5000
MAX_FEATURES = 500
MAX_OUTPUTS = 50
MAX_FILE_BYTES = limits.upload_bytes()

SPECTRA = ("equal", "linear", "geometric")

_TARGET_COLUMN = re.compile(r"y\d*", re.IGNORECASE)
_NUMERIC_KINDS = frozenset("biuf")  # bool, signed int, unsigned int, float

Source = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO


class DataError(ValueError):
    """A user-facing, one-line message saying what is wrong with the data."""


# --------------------------------------------------------------------------------------------
# Result object
# --------------------------------------------------------------------------------------------


def _frozen_copy(a: Any) -> np.ndarray:
    """Return a fresh float64, C-contiguous, read-only copy of ``a``."""
    out = np.array(a, dtype=np.float64, order="C", copy=True)
    out.flags.writeable = False
    return out


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """An immutable dataset ``(X, Y)`` with ``X`` of shape (N, d) and ``Y`` of shape (N, K).

    Construction always copies both arrays into float64, C-contiguous, read-only storage, so
    a ``Dataset`` never aliases caller memory.  Only the structure is checked here (2-D,
    matching rows); content checks (finite, non-empty, size caps) belong to
    :func:`validate_arrays`, which every user-supplied array must pass through.
    """

    X: np.ndarray
    Y: np.ndarray
    name: str

    def __post_init__(self) -> None:
        X = _frozen_copy(self.X)
        Y = _frozen_copy(self.Y)
        if X.ndim != 2 or Y.ndim != 2:
            raise DataError(
                f"Dataset needs 2-D X and Y, got X with shape {X.shape} and Y with shape {Y.shape}"
            )
        if X.shape[0] != Y.shape[0]:
            raise DataError(f"X has {X.shape[0]} rows but Y has {Y.shape[0]}")
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "Y", Y)
        object.__setattr__(self, "name", str(self.name))

    @property
    def n(self) -> int:
        """Number of examples N (rows of X and Y)."""
        return int(self.X.shape[0])

    @property
    def d(self) -> int:
        """Number of input features d (columns of X)."""
        return int(self.X.shape[1])

    @property
    def k(self) -> int:
        """Number of outputs K (columns of Y)."""
        return int(self.Y.shape[1])

    @cached_property
    def digest(self) -> str:
        """First 16 hex chars of sha256 over ``"N,d,K;"`` + X bytes + Y bytes (float64, C order).

        Depends only on the numbers (not on ``name``), so it is stable across runs and equal
        for the same data loaded from different files.  ``0.0`` and ``-0.0`` hash differently.
        """
        h = hashlib.sha256()
        h.update(f"{self.n},{self.d},{self.k};".encode("ascii"))
        h.update(self.X.tobytes(order="C"))
        h.update(self.Y.tobytes(order="C"))
        return h.hexdigest()[:16]

    def __reduce__(self) -> tuple[Any, ...]:
        # Re-run __post_init__ on unpickling so the arrays come back read-only.
        return (Dataset, (self.X, self.Y, self.name))

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, n={self.n}, d={self.d}, k={self.k}, "
            f"digest={self.digest!r})"
        )


# --------------------------------------------------------------------------------------------
# Target matrix
# --------------------------------------------------------------------------------------------


def _as_xy(X: Any, Y: Any) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if X.ndim != 2:
        raise DataError(f"X must be 2-D, got shape {X.shape}")
    if Y.ndim not in (1, 2):
        raise DataError(f"Y must be 1-D or 2-D, got shape {Y.shape}")
    if X.shape[0] != Y.shape[0]:
        raise DataError(f"X has {X.shape[0]} rows but Y has {Y.shape[0]}")
    return X, Y


_LAST_TARGET: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (X, Y, W*) of one dataset


def target_matrix(X: Any, Y: Any) -> np.ndarray:
    """Return ``W* = X^+ Y``, of shape (d, K) (or (d,) for 1-D ``Y``), read-only.

    A run asks for W* of its dataset several times (the spectrum, feasibility, the limits of
    the t-search, the optimal end-to-end map); for read-only arrays (every Dataset's) the last
    answer is kept, keyed by the arrays themselves.

    With the thin SVD ``X = U diag(s) V^T`` and the numerical rank
    ``r = #{i : s_i > s_max * max(N, d) * eps}`` (the ``numpy.linalg.matrix_rank`` rule),

        W* = V_r diag(1 / s_r) U_r^T Y.

    If ``X W = Y`` is feasible this is its minimum-Frobenius-norm solution; otherwise it is
    the minimum-norm least-squares solution.  ``X = 0`` gives ``W* = 0``.
    """
    cacheable = all(isinstance(a, np.ndarray) and not a.flags.writeable for a in (X, Y))
    if cacheable and _LAST_TARGET and _LAST_TARGET[0][0] is X and _LAST_TARGET[0][1] is Y:
        return _LAST_TARGET[0][2]
    W = _pseudo_inverse_times(*_as_xy(X, Y))
    W.flags.writeable = False
    if cacheable:
        _LAST_TARGET[:] = [(X, Y, W)]
    return W


def _pseudo_inverse_times(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    out_shape = (X.shape[1], *Y.shape[1:])
    if X.size == 0 or Y.size == 0:
        return np.zeros(out_shape)
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    tol = s[0] * max(X.shape) * np.finfo(np.float64).eps if s.size else 0.0
    r = int(np.count_nonzero(s > tol))
    if r == 0:
        return np.zeros(out_shape)
    coeffs = U[:, :r].T @ Y  # (r, K) or (r,)
    coeffs = coeffs / (s[:r, None] if coeffs.ndim == 2 else s[:r])
    return Vt[:r].T @ coeffs


def interpolation_residual(X: Any, Y: Any) -> float:
    """Relative residual ``||X W* - Y||_F / max(||Y||_F, tiny)`` with ``W* = X^+ Y``.

    Zero (up to rounding, ~1e-15) iff ``X W = Y`` is feasible, i.e. every column of ``Y``
    lies in range(X); ``Y = 0`` gives 0.  The threshold for "feasible" is the caller's call;
    synthetic interpolating data lands far below 1e-10.
    """
    W = target_matrix(X, Y)
    X, Y = _as_xy(X, Y)
    resid = float(np.linalg.norm(X @ W - Y))
    scale = max(float(np.linalg.norm(Y)), float(np.finfo(np.float64).tiny))
    return resid / scale


# --------------------------------------------------------------------------------------------
# Synthetic data
# --------------------------------------------------------------------------------------------


def _orthonormal(rng: np.random.Generator, m: int, r: int) -> np.ndarray:
    """Random m x r matrix with orthonormal columns: QR of a Gaussian, signs fixed by diag(R)."""
    q, rr = np.linalg.qr(rng.standard_normal((m, r)))
    signs = np.where(np.diag(rr) < 0, -1.0, 1.0)
    return q * signs


def spectrum_values(spectrum: str, r: int) -> np.ndarray:
    """Target singular values ``2 * p_i`` for i = 0..r-1, with profile ``p``.

    equal: p_i = 1;  linear: p_i = (r - i) / r;  geometric: p_i = 0.5**i.
    """
    i = np.arange(r, dtype=np.float64)
    if spectrum == "equal":
        p = np.ones(r)
    elif spectrum == "linear":
        p = (r - i) / r
    else:
        p = 0.5**i
    return 2.0 * p


def _int_arg(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise DataError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise DataError(f"{name} must be an integer, got {value!r}") from None


def synthetic(
    n: int,
    d: int,
    k: int,
    x_rank: int,
    target_rank: int,
    spectrum: str,
    noise: float,
    whiten: bool,
    seed: int,
    *,
    interpolation: bool,
) -> Dataset:
    """Build a synthetic dataset with exactly prescribed ranks and target spectrum.

    With ``rng = default_rng(seed)`` and ``orth(m, r)`` = Q factor of an m x r Gaussian:

    * ``X = U_x diag(s_x) V_x^T`` with ``U_x = orth(n, x_rank)``, ``V_x = orth(d, x_rank)``
      and ``s_x = geomspace(2, 1, x_rank)``; if ``whiten`` (needs ``x_rank == d <= n``),
      ``s_x = 1`` so ``X^T X = I_d``.
    * ``W0 = Q diag(s) R^T`` with ``Q = V_x orth(x_rank, target_rank)`` (columns in the row
      space of X, hence ``X^+ X W0 = W0``), ``R = orth(k, target_rank)`` and
      ``s = 2 * profile`` (see ``SPECTRA``): equal 1; linear (r - i)/r; geometric 0.5**i.
    * ``E = noise * G`` with ``G`` standard normal (n x k); if ``interpolation``,
      ``E <- U_x U_x^T E`` so ``X W = Y`` stays feasible.  ``Y = X W0 + E``.

    Hence with ``noise == 0``: rank X = x_rank, and ``target_matrix(X, Y) = W0`` has singular
    values ``s`` and rank target_rank.  Same arguments give bit-identical arrays (on the same
    numpy/BLAS build).  Without interpolation the noise makes ``XW = Y`` infeasible only if
    ``x_rank < n`` (otherwise range(X) is all of R^n).
    """
    n = _int_arg("n", n)
    d = _int_arg("d", d)
    k = _int_arg("k", k)
    x_rank = _int_arg("x_rank", x_rank)
    target_rank = _int_arg("target_rank", target_rank)
    seed = _int_arg("seed", seed)
    for label, value, cap in (("n", n, MAX_ROWS), ("d", d, MAX_FEATURES), ("k", k, MAX_OUTPUTS)):
        if value < 1:
            raise DataError(f"{label} must be at least 1, got {value}")
        if value > cap:
            raise DataError(f"{label} = {value} is above the limit of {cap}")
    if not 1 <= x_rank <= min(n, d):
        raise DataError(f"x_rank must be between 1 and min(n, d) = {min(n, d)}, got {x_rank}")
    if not 1 <= target_rank <= min(x_rank, k):
        raise DataError(
            f"target_rank must be between 1 and min(x_rank, k) = {min(x_rank, k)}, "
            f"got {target_rank}"
        )
    if spectrum not in SPECTRA:
        raise DataError(f"spectrum must be one of {', '.join(SPECTRA)}; got {spectrum!r}")
    try:
        noise = float(noise)
    except (TypeError, ValueError):
        raise DataError(f"noise must be a number, got {noise!r}") from None
    if not math.isfinite(noise) or noise < 0:
        raise DataError(f"noise must be finite and >= 0, got {noise}")
    if whiten and not (x_rank == d <= n):
        raise DataError(f"whitening needs x_rank == d <= n, got x_rank={x_rank}, d={d}, n={n}")
    if seed < 0:
        raise DataError(f"seed must be >= 0, got {seed}")

    rng = np.random.default_rng(seed)
    U_x = _orthonormal(rng, n, x_rank)
    V_x = _orthonormal(rng, d, x_rank)
    s_x = np.ones(x_rank) if whiten else np.geomspace(2.0, 1.0, x_rank)
    X = (U_x * s_x) @ V_x.T

    Q = V_x @ _orthonormal(rng, x_rank, target_rank)
    R = _orthonormal(rng, k, target_rank)
    s = spectrum_values(spectrum, target_rank)
    W0 = (Q * s) @ R.T

    Y = X @ W0
    G = rng.standard_normal((n, k))  # always drawn, so noise only scales it
    if noise > 0:
        E = noise * G
        if interpolation:
            E = U_x @ (U_x.T @ E)
        Y = Y + E
    return Dataset(X=X, Y=Y, name="synthetic")


# --------------------------------------------------------------------------------------------
# Validation gate
# --------------------------------------------------------------------------------------------


def _numeric_array(a: Any, label: str) -> np.ndarray:
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"{label} could not be read as a rectangular numeric array ({exc})"
        ) from None
    kind = arr.dtype.kind
    if kind == "O":
        raise DataError(f"{label} holds Python objects (dtype object); numbers are required")
    if kind in "US":
        raise DataError(f"{label} holds text (dtype {arr.dtype}); numbers are required")
    if kind == "c":
        raise DataError(f"{label} holds complex numbers; real numbers are required")
    if kind not in _NUMERIC_KINDS:
        raise DataError(f"{label} has non-numeric dtype {arr.dtype}; numbers are required")
    return arr


def _nonfinite_report(arr: np.ndarray, label: str) -> str | None:
    n_nan = int(np.count_nonzero(np.isnan(arr)))
    n_inf = int(np.count_nonzero(np.isinf(arr)))
    if n_nan == 0 and n_inf == 0:
        return None
    parts = []
    if n_nan:
        parts.append(f"{n_nan} NaN")
    if n_inf:
        parts.append(f"{n_inf} infinite")
    return f"{label} contains {' and '.join(parts)} value(s) out of {arr.size}"


def validate_arrays(X: Any, Y: Any, name: str = "data") -> Dataset:
    """The single validation gate for user data: return a :class:`Dataset` or raise DataError.

    Checks, in order: numeric dtype (bool/int/float; bool and int are converted), X 2-D, Y
    1-D or 2-D (1-D becomes N x 1), non-empty (N, d, K >= 1), matching rows, size caps
    (``MAX_ROWS``, ``MAX_FEATURES``, ``MAX_OUTPUTS``), and finiteness after conversion to
    float64 (values that overflow float64 count as infinite).
    """
    Xa = _numeric_array(X, "X")
    Ya = _numeric_array(Y, "Y")
    if Xa.ndim != 2:
        raise DataError(f"X must be a 2-D array (rows x features), got shape {Xa.shape}")
    if Ya.ndim == 1:
        Ya = Ya.reshape(-1, 1)
    elif Ya.ndim != 2:
        raise DataError(f"Y must be a 1-D or 2-D array (rows x outputs), got shape {Ya.shape}")
    if Xa.shape[0] == 0 or Xa.shape[1] == 0 or Ya.shape[1] == 0:
        raise DataError(
            f"data is empty: X has shape {Xa.shape} and Y has shape {Ya.shape}; "
            "need at least one row, feature and output"
        )
    if Xa.shape[0] != Ya.shape[0]:
        raise DataError(f"X has {Xa.shape[0]} rows but Y has {Ya.shape[0]}")
    n, d = Xa.shape
    k = Ya.shape[1]
    if n > MAX_ROWS:
        raise DataError(f"data has {n} rows; the limit is {MAX_ROWS}")
    if d > MAX_FEATURES:
        raise DataError(f"X has {d} features (columns); the limit is {MAX_FEATURES}")
    if k > MAX_OUTPUTS:
        raise DataError(f"Y has {k} outputs (columns); the limit is {MAX_OUTPUTS}")
    with np.errstate(over="ignore", invalid="ignore"):
        Xf = Xa.astype(np.float64, order="C")
        Yf = Ya.astype(np.float64, order="C")
    problems = [p for p in (_nonfinite_report(Xf, "X"), _nonfinite_report(Yf, "Y")) if p]
    if problems:
        raise DataError("; ".join(problems) + "; remove or fill them first")
    return Dataset(X=Xf, Y=Yf, name=str(name))


# --------------------------------------------------------------------------------------------
# File loading
# --------------------------------------------------------------------------------------------


def _too_big(size: int, label: str) -> DataError:
    return DataError(
        f"{label} is {size / 1e6:.1f} MB; the limit is {MAX_FILE_BYTES / 1e6:.1f} MB"
        if size >= 100_000
        else f"{label} is {size} bytes; the limit is {MAX_FILE_BYTES} bytes"
    )


def _read_source(source: Any, name: str | None, default: str) -> tuple[bytes, str]:
    """Read all bytes from a path, a bytes-like object or a binary file-like, size-capped."""
    cap = MAX_FILE_BYTES
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw = bytes(source)
        label = name or default
        if len(raw) > cap:
            raise _too_big(len(raw), label)
        return raw, label
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = name or path.name
        try:
            size = path.stat().st_size
            if size > cap:
                raise _too_big(size, label)
            with path.open("rb") as fh:
                raw = fh.read(cap + 1)
        except DataError:
            raise
        except OSError as exc:
            raise DataError(f"cannot read {label}: {exc.strerror or exc}") from None
        if len(raw) > cap:
            raise _too_big(len(raw), label)
        return raw, label
    read = getattr(source, "read", None)
    if read is None:
        raise DataError(
            f"cannot read data from a {type(source).__name__}; pass a path, bytes or a file"
        )
    label = name or os.path.basename(str(getattr(source, "name", "") or "")) or default
    try:
        raw = read(cap + 1)
    except Exception as exc:
        raise DataError(f"cannot read {label}: {exc}") from None
    if isinstance(raw, str):
        raise DataError(f"{label} was opened in text mode; open it in binary mode ('rb')")
    raw = bytes(raw)
    if len(raw) > cap:
        raise DataError(f"{label} is larger than the limit of {cap} bytes")
    return raw, label


_NPY_MAGIC = b"\x93NUMPY"
_NPY_MAX_HEADER = 10_000  # numpy's own default max_header_size
_ZIP_MAX_ENTRIES = 64  # an .npz of X and Y (and a few extras) needs no more


def _zip_entry_count(raw: bytes) -> int | None:
    """The entry count that the end-of-central-directory record declares (None: no record),
    read before zipfile builds an object for every entry."""
    tail = raw[-(22 + 0xFFFF):]
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        return None
    return int.from_bytes(tail[at + 10:at + 12], "little")


def _npy_header(fp: BinaryIO, where: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran_order, dtype, header length) of an .npy stream, every header version
    (1.0, 2.0, 3.0), read and checked without touching the data: only plain numbers pass
    (no objects, no structured or sub-array dtypes, no item larger than 8 bytes)."""
    magic = fp.read(8)
    if len(magic) < 8 or magic[:6] != _NPY_MAGIC:
        raise DataError(f"{where} is not a valid NumPy array (no .npy header)")
    major = magic[6]
    if major not in (1, 2, 3):
        raise DataError(f"{where} has an .npy header version {major}.{magic[7]} this app does "
                        "not read")
    size_bytes = 2 if major == 1 else 4
    length = int.from_bytes(fp.read(size_bytes), "little")
    if length > _NPY_MAX_HEADER:
        raise DataError(f"{where} has an .npy header of {length} bytes; the limit is "
                        f"{_NPY_MAX_HEADER}")
    text = fp.read(length)
    try:
        header = ast.literal_eval(text.decode("utf8" if major == 3 else "latin1"))
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError):
        raise DataError(f"{where} has an unreadable .npy header") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise DataError(f"{where} has an unreadable .npy header")
    descr, fortran, shape = header["descr"], header["fortran_order"], header["shape"]
    if not isinstance(descr, str):
        raise DataError(f"{where} is a structured array; plain numbers are required")
    if descr.lstrip("<>|=").startswith("O"):
        raise DataError(f"{where} holds Python objects; refusing to unpickle")
    try:
        dtype = np.dtype(descr)
    except (TypeError, ValueError):
        raise DataError(f"{where} has an unknown dtype {descr[:30]!r}") from None
    if dtype.hasobject:
        raise DataError(f"{where} holds Python objects; refusing to unpickle")
    if dtype.kind not in _NUMERIC_KINDS or dtype.subdtype is not None or dtype.itemsize > 8:
        raise DataError(f"{where} has dtype {descr[:30]!r}; plain numbers (bool, integers, "
                        "floats of at most 8 bytes) are required")
    if not (isinstance(shape, tuple) and all(isinstance(n, int) and not isinstance(n, bool)
                                             and n >= 0 for n in shape)
            and isinstance(fortran, bool)):
        raise DataError(f"{where} has an unreadable .npy header")
    return shape, fortran, dtype, 6 + 2 + size_bytes + length


def _load_npz_member(zf: zipfile.ZipFile, member: str, key: str, label: str) -> np.ndarray:
    """One array of the archive, its declared sizes checked before anything is decompressed:
    the zip entry's uncompressed size, then the .npy header's shape and item size; then
    exactly the declared bytes are read (a deflate stream cannot expand beyond them)."""
    where = f"{label}: {key}"
    info = zf.getinfo(member)
    columns = MAX_FEATURES if key == "X" else MAX_OUTPUTS
    max_values = MAX_ROWS * max(MAX_FEATURES, MAX_OUTPUTS)
    if info.file_size > 8 * max_values + _NPY_MAX_HEADER + 64:
        raise DataError(f"{where} unpacks to {info.file_size / 1e6:.1f} MB, more than an array "
                        f"of {max_values} values takes")
    try:
        with zf.open(info) as fp:
            shape, fortran, dtype, header_bytes = _npy_header(fp, where)
            count = math.prod(shape)
            if count > max_values:
                raise DataError(f"{where} has shape {shape}, more than the {max_values} values "
                                "allowed")
            if len(shape) > 2:
                raise DataError(f"{where} must be 1-D or 2-D, got shape {shape}")
            if shape and shape[0] > MAX_ROWS:
                raise DataError(f"{where} has {shape[0]} rows; the limit is {MAX_ROWS}")
            if len(shape) == 2 and shape[1] > columns:
                raise DataError(f"{where} has {shape[1]} columns; the limit is {columns}")
            nbytes = count * dtype.itemsize
            if info.file_size < header_bytes + nbytes:
                raise DataError(f"{where} is truncated ({info.file_size} bytes for "
                                f"{nbytes} bytes of data)")
            body = fp.read(nbytes)
    except DataError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise DataError(f"{where}: cannot read it ({str(exc)[:100]})") from None
    if len(body) != nbytes:
        raise DataError(f"{where} is truncated")
    return np.frombuffer(body, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def load_npz(source: Source, name: str | None = None) -> Dataset:
    """Load a ``.npz`` archive holding arrays ``X`` (N x d) and ``Y`` (N x K or N).

    ``source`` is a path, bytes, or a binary file-like (e.g. an upload); at most
    ``MAX_FILE_BYTES`` are accepted. Loading never unpickles (object arrays are refused) and
    never trusts a size it has not checked: the archive's entry count, each entry's
    uncompressed size and each array's declared shape and dtype are checked first, so memory
    stays within the size caps whatever the file claims. Keys are case-sensitive; other keys
    are ignored. ``name`` defaults to the file name.
    """
    raw, label = _read_source(source, name, "data.npz")
    if not raw.startswith(b"PK"):
        raise DataError(f"{label} is not a valid .npz file (expected a zip archive of arrays)")
    entries = _zip_entry_count(raw)
    if entries is None:
        raise DataError(f"{label} is not a valid .npz file")
    if entries > _ZIP_MAX_ENTRIES:
        raise DataError(f"{label} holds {entries} entries; an .npz of X and Y needs a few "
                        f"(the limit is {_ZIP_MAX_ENTRIES})")
    try:
        zf = zipfile.ZipFile(io.BytesIO(raw))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise DataError(f"{label} is not a valid .npz file") from None
    with zf:
        members = {n.removesuffix(".npy"): n for n in zf.namelist()}
        missing = [key for key in ("X", "Y") if key not in members]
        if missing:
            found = ", ".join(repr(key) for key in members) or "none"
            raise DataError(
                f"{label} has no array named {' or '.join(missing)}; keys found: {found}"
            )
        X = _load_npz_member(zf, members["X"], "X", label)
        Y = _load_npz_member(zf, members["Y"], "Y", label)
    return validate_arrays(X, Y, name=label)


_MAX_HEADER_LINE = 1 << 18  # characters of a CSV header (MAX_FEATURES + MAX_OUTPUTS names)
_MAX_CELL = 64  # characters per numeric cell that a data line may average


def _csv_lines(raw: bytes, label: str, limit: list[int]):
    """The lines of a UTF-8 file one at a time (a BOM dropped), each at most limit[0]
    characters: the caller tightens the limit once the header says how many cells a row has,
    so no line can make the parser build an unbounded row."""
    stream = io.BytesIO(raw)
    offset = 0
    first = True
    while True:
        line = stream.readline(4 * limit[0] + 4)
        if not line:
            return
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{label} is not UTF-8 text (bad byte at position "
                            f"{offset + exc.start})") from None
        if first:
            text = text.removeprefix("\ufeff")
            first = False
        if len(text.rstrip("\r\n")) > limit[0]:
            raise DataError(f"{label}: a line of more than {limit[0]} characters; a row of "
                            "this file cannot be that long")
        offset += len(line)
        yield text


def load_csv(source: Source, name: str | None = None) -> Dataset:
    """Load a comma-separated UTF-8 file with a header row.

    Columns named ``y``, ``y1``, ``y2``, ... (case-insensitive, ``y`` plus optional digits,
    surrounding spaces ignored) are targets, in file order; all other columns are features,
    in file order.  Blank lines are skipped.  Every cell must parse with ``float()``
    (so ``nan``/``inf`` parse, and are then refused by :func:`validate_arrays`).

    The file is parsed as a stream into a preallocated float64 table: the column and row caps
    apply while reading, so memory stays about the size of the largest allowed table.
    """
    raw, label = _read_source(source, name, "data.csv")
    limit = [_MAX_HEADER_LINE]
    reader = csv.reader(_csv_lines(raw, label, limit))
    try:
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            header = next(reader, None)
        if header is None:
            raise DataError(f"{label} is empty; expected a header row and data rows")
        columns = [cell.strip() for cell in header]
        if len(columns) > MAX_FEATURES + MAX_OUTPUTS:
            raise DataError(f"{label} has {len(columns)} columns; the limit is "
                            f"{MAX_FEATURES + MAX_OUTPUTS}")
        is_target = [bool(_TARGET_COLUMN.fullmatch(c)) for c in columns]
        if not any(is_target):
            raise DataError(
                f"{label} has no target column; name target columns y or y1, y2, ... "
                f"(header: {', '.join(columns)[:200]})"
            )
        if all(is_target):
            raise DataError(f"{label} has no feature column; every column is a target (y...)")
        limit[0] = _MAX_CELL * len(columns) + 1024
        table = np.empty((min(MAX_ROWS, 256), len(columns)))
        count = 0
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            line = reader.line_num
            if len(cells) != len(columns):
                raise DataError(
                    f"{label}: row {line} has {len(cells)} cells but the header has "
                    f"{len(columns)} columns"
                )
            if count == MAX_ROWS:
                raise DataError(f"{label} has at least {MAX_ROWS + 1} rows; the limit is "
                                f"{MAX_ROWS}")
            if count == len(table):
                table = np.concatenate([table, np.empty((min(len(table), MAX_ROWS - count),
                                                         len(columns)))])
            for j, (col, cell) in enumerate(zip(columns, cells, strict=True)):
                try:
                    table[count, j] = float(cell)
                except ValueError:
                    shown = cell if len(cell) <= 30 else cell[:27] + "..."
                    raise DataError(
                        f"{label}: row {line}, column {col!r}: {shown!r} is not a number"
                    ) from None
            count += 1
    except csv.Error as exc:
        raise DataError(f"{label} is not valid CSV (line {reader.line_num}: {exc})") from None
    if not count:
        raise DataError(f"{label} has a header but no data rows")
    mask = np.array(is_target)
    table = table[:count]
    return validate_arrays(table[:, ~mask], table[:, mask], name=label)


def load_file(source: Source, name: str) -> Dataset:
    """Load ``source`` as ``.npz`` or ``.csv`` according to the suffix of ``name``."""
    suffix = Path(str(name)).suffix.lower()
    if suffix == ".npz":
        return load_npz(source, name=name)
    if suffix == ".csv":
        return load_csv(source, name=name)
    shown = suffix or "no extension"
    raise DataError(f"{name}: unsupported file type ({shown}); use a .npz or .csv file")


# --------------------------------------------------------------------------------------------
# Data for ReLU networks
# --------------------------------------------------------------------------------------------

DATASETS = ("low-rank", "regression", "rank-one")  # the synthetic families
REGRESSION_TARGETS = ("sine", "abs", "teacher")
RANK_ONE_TARGETS = ("sign-changing", "collinear", "generic")


def regression(n: int, d: int, target: str, noise: float, seed: int) -> Dataset:
    """Points x_i uniform in [-1, 1]^d with a scalar target (K = 1), seeded.

    sine: y = sin(pi sum_j x_j); abs: y = |sum_j x_j| - 1/2; teacher: a two-layer ReLU net
    with 3 neurons and seeded weights, y = sum_j (x . u_j + b_j)_+ a_j. Plus noise * N(0, 1).
    No bias column: a ReLU net adds its own (see arrangements.with_bias).
    """
    n, d = _int_arg("n", n), _int_arg("d", d)
    if target not in REGRESSION_TARGETS:
        raise DataError(f"regression target must be one of {', '.join(REGRESSION_TARGETS)}")
    rng = np.random.default_rng(_int_arg("seed", seed))
    X = rng.uniform(-1.0, 1.0, size=(n, d))
    s = X.sum(axis=1)
    if target == "sine":
        y = np.sin(np.pi * s)
    elif target == "abs":
        y = np.abs(s) - 0.5
    else:
        U, b, a = rng.standard_normal((d, 3)), rng.uniform(-0.5, 0.5, 3), rng.standard_normal(3)
        y = np.maximum(X @ U + b, 0.0) @ a
    y = y + noise * rng.standard_normal(n)
    return Dataset(X, y[:, None], "synthetic regression")


def rank_one(n: int, d: int, k: int, target: str, seed: int) -> Dataset:
    """Rank-one data X = c a^T (docs/math.md §5) with a sign-changing c and a target
    Y = c+ alpha^T + c- gamma^T, where c+ = max(c, 0), c- = max(-c, 0):

    sign-changing: Y = c (K = 1), i.e. alpha = 1, gamma = -1 (P/D = sqrt 2 for three layers);
    collinear: gamma = alpha / 2 (non-negatively collinear: zero gap);
    generic: alpha and gamma independent Gaussian vectors in R^K.
    """
    n, d, k = _int_arg("n", n), _int_arg("d", d), _int_arg("k", k)
    if target not in RANK_ONE_TARGETS:
        raise DataError(f"rank-one target must be one of {', '.join(RANK_ONE_TARGETS)}")
    if n < 2:
        raise DataError("rank-one data needs N >= 2 so that c can change sign")
    rng = np.random.default_rng(_int_arg("seed", seed))
    c = rng.standard_normal(n)
    c[0], c[1] = abs(c[0]) + 0.1, -abs(c[1]) - 0.1  # both signs present
    a = rng.standard_normal(d)
    a /= np.linalg.norm(a)
    plus, minus = np.maximum(c, 0.0), np.maximum(-c, 0.0)
    if target == "sign-changing":
        alpha, gamma = np.ones(1), -np.ones(1)
    elif target == "collinear":
        alpha = rng.standard_normal(k)
        gamma = alpha / 2
    else:
        alpha, gamma = rng.standard_normal(k), rng.standard_normal(k)
    Y = np.outer(plus, alpha) + np.outer(minus, gamma)
    return Dataset(np.outer(c, a), Y, "synthetic rank-one")
