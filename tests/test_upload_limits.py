"""Uploads cannot take more memory than the size caps allow, whatever the file claims.

Decompression bombs (.npz members whose .npy header declares huge items, in every header
version; zip entries that unpack to far more than an array may hold; archives with a flood of
entries) are refused from their declared sizes, before anything is decompressed: the peak of
Python's allocations while loading stays a few MB above the file itself (tracemalloc). A CSV
is parsed as a stream with its row and column caps applied while reading.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from dualviz import data, limits
from dualviz.data import DataError, load_csv, load_file, load_npz

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parents[1]
BOMB_BYTES = 200 * 2**20  # what a naive loader would allocate for each bomb below
PAYLOAD = 10 * 2**20  # the zeros behind each bomb's header: an entry of an allowed size
ZEROS = bytes(2**20)


def npy_header(header: dict, version: int) -> bytes:
    """An .npy header of the given version, padded as numpy pads it."""
    text = repr(header)
    encoded = text.encode("utf8" if version == 3 else "latin1")
    size_bytes = 2 if version == 1 else 4
    pad = (-(6 + 2 + size_bytes + len(encoded) + 1)) % 64
    encoded += b" " * pad + b"\n"
    return (b"\x93NUMPY" + bytes([version, 0]) + len(encoded).to_bytes(size_bytes, "little")
            + encoded)


def archive(members: dict[str, tuple[bytes, int]]) -> bytes:
    """A deflated zip: each member is a header followed by `zeros` bytes of zeros, written
    as a stream (the bomb is built without holding it in memory)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, (head, zeros) in members.items():
            with zf.open(name, "w", force_zip64=zeros > 2**31) as out:
                out.write(head)
                for _ in range(zeros // len(ZEROS)):
                    out.write(ZEROS)
                out.write(bytes(zeros % len(ZEROS)))
    return buffer.getvalue()


def good_y() -> tuple[bytes, int]:
    return npy_header({"descr": "<f8", "fortran_order": False, "shape": (1,)}, 1), 8


def peak_while(load) -> tuple[float, str]:
    """(peak MB of Python allocations, the error message) of a load that must fail."""
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as info:
            load()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20, str(info.value)


BOMBS = {
    "v1 void item of 200 MB": ({"descr": f"|V{BOMB_BYTES}", "fortran_order": False,
                                "shape": (1,)}, 1, "plain numbers"),
    "v2 bytes item of 200 MB": ({"descr": f"|S{BOMB_BYTES}", "fortran_order": False,
                                 "shape": (1,)}, 2, "plain numbers"),
    "v3 header, 26 M floats": ({"descr": "<f8", "fortran_order": False,
                                "shape": (BOMB_BYTES // 8,)}, 3, "values allowed"),
    "v1 sub-array dtype": ({"descr": f"({BOMB_BYTES // 8},)<f8", "fortran_order": False,
                            "shape": (1,)}, 1, "plain numbers"),
    "v2 structured sub-array": ({"descr": [("a", "<f8", (BOMB_BYTES // 8,))],
                                 "fortran_order": False, "shape": (1,)}, 2, "structured"),
    "v3 object array": ({"descr": "|O", "fortran_order": False, "shape": (1,)}, 3,
                        "refusing to unpickle"),
    "v1 long double": ({"descr": "<f16", "fortran_order": False, "shape": (1,)}, 1,
                       "plain numbers"),
}


@pytest.mark.parametrize("name", list(BOMBS))
def test_npz_bombs_are_refused_from_their_headers_without_decompressing(name):
    header, version, words = BOMBS[name]
    raw = archive({"X.npy": (npy_header(header, version), PAYLOAD), "Y.npy": good_y()})
    assert len(raw) < 2**20  # a small upload ...
    peak, message = peak_while(lambda: load_npz(raw, name="bomb.npz"))
    assert words in message and message.startswith("bomb.npz: X")
    assert peak < 8, f"{peak:.1f} MB allocated while refusing {name}"  # ... stays small


def test_a_zip_entry_that_unpacks_beyond_any_allowed_array_is_refused():
    """A well-formed header with 1 GB of trailing data: refused from the entry's declared
    uncompressed size."""
    head = npy_header({"descr": "<f8", "fortran_order": False, "shape": (4, 2)}, 1)
    raw = archive({"X.npy": (head, 2**30), "Y.npy": good_y()})
    peak, message = peak_while(lambda: load_npz(raw, name="padded.npz"))
    assert "unpacks to 1073.7 MB" in message and peak < 8


def test_an_archive_with_a_flood_of_entries_is_refused_before_it_is_parsed():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for i in range(5000):
            zf.writestr(f"{i}.npy", b"")
    peak, message = peak_while(lambda: load_npz(buffer.getvalue(), name="many.npz"))
    assert "holds 5000 entries" in message and peak < 8


def test_every_header_version_of_a_real_array_loads():
    X = np.arange(12.0).reshape(4, 3)
    for version in (1, 2, 3):
        for fortran in (False, True):
            body = (np.asfortranarray(X) if fortran else X).tobytes(order="F" if fortran
                                                                   else "C")
            head = npy_header({"descr": "<f8", "fortran_order": fortran, "shape": (4, 3)},
                              version)
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.writestr("X.npy", head + body)
                zf.writestr("Y.npy", good_y()[0] + np.ones(4).tobytes())
            with pytest.raises(DataError, match="X has 4 rows but Y has 1"):  # both read
                load_npz(buffer.getvalue())
            dataset = load_npz(_with_y(buffer.getvalue(), np.arange(4.0)))
            np.testing.assert_array_equal(dataset.X, X)


def _with_y(raw: bytes, y: np.ndarray) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(raw))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("X.npy", source.read("X.npy"))
        out = io.BytesIO()
        np.save(out, y)
        zf.writestr("Y.npy", out.getvalue())
    return buffer.getvalue()


def test_a_truncated_member_is_refused():
    head = npy_header({"descr": "<f8", "fortran_order": False, "shape": (100, 2)}, 1)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("X.npy", head + bytes(80))
        zf.writestr("Y.npy", good_y()[0] + bytes(8))
    with pytest.raises(DataError, match="truncated"):
        load_npz(buffer.getvalue())


def test_a_csv_of_short_rows_is_refused_at_the_row_cap_with_bounded_memory():
    raw = b"x,y\n" + b"1,2\n" * (4_500_000)  # 18 MB, 4.5 M rows
    peak, message = peak_while(lambda: load_csv(raw, name="rows.csv"))
    assert message == f"rows.csv has at least {data.MAX_ROWS + 1} rows; the limit is " \
                      f"{data.MAX_ROWS}"
    assert peak < 8, f"{peak:.1f} MB while refusing 4.5 M rows (was 1.57 GB for 20 MB)"


def test_a_csv_with_one_endless_line_is_refused_with_bounded_memory():
    raw = b"x,y\n" + b"1," * (8 * 2**20) + b"2\n"
    peak, message = peak_while(lambda: load_csv(raw, name="wide.csv"))
    assert "a line of more than" in message and peak < 8
    header = b",".join(b"x%d" % i for i in range(2**20)) + b",y\n1,2\n"
    peak, message = peak_while(lambda: load_csv(header, name="header.csv"))
    assert "a line of more than" in message and peak < 8


def test_a_csv_at_the_caps_loads_into_a_table_of_its_own_size():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((data.MAX_ROWS, 20)), rng.standard_normal(data.MAX_ROWS)
    lines = [",".join([*(f"x{j}" for j in range(20)), "y"])]
    lines += [",".join(repr(float(v)) for v in (*row, t)) for row, t in zip(X, y, strict=True)]
    raw = ("\n".join(lines) + "\n").encode()
    tracemalloc.start()
    try:
        dataset = load_csv(raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(dataset.X, X)
    np.testing.assert_array_equal(dataset.Y[:, 0], y)
    table_mb = X.nbytes * 21 / 20 / 2**20
    assert peak / 2**20 < 4 * table_mb + 4  # the table (doubling as it grows), and a copy


def test_the_cli_refuses_a_bomb_with_one_line(tmp_path):
    header, version, _ = BOMBS["v1 void item of 200 MB"]
    path = tmp_path / "bomb.npz"
    path.write_bytes(archive({"X.npy": (npy_header(header, version), PAYLOAD),
                              "Y.npy": good_y()}))
    out = subprocess.run([sys.executable, "-m", "dualviz", "solve", "--data", str(path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.splitlines() == [
        f"dualviz: error: {path}: X has dtype '|V{BOMB_BYTES}'; plain numbers (bool, "
        "integers, floats of at most 8 bytes) are required"]


def test_the_cli_refuses_a_fifo_instead_of_waiting_on_it(tmp_path):
    fifo = tmp_path / "data.csv"
    os.mkfifo(fifo)
    out = subprocess.run([sys.executable, "-m", "dualviz", "solve", "--data", str(fifo)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.splitlines() == [f"dualviz: error: {fifo} is not a regular file"]


def test_streamlit_takes_no_larger_upload_than_the_app(monkeypatch):
    """Streamlit holds an upload in memory before the app sees it: its own limit is the
    app's, from the same variable."""
    from dualviz.ui.serve import streamlit_config

    monkeypatch.setenv("DUALVIZ_MAX_UPLOAD_MB", "7")
    assert streamlit_config(8501, "127.0.0.1")["server.maxUploadSize"] == 7
    monkeypatch.delenv("DUALVIZ_MAX_UPLOAD_MB")
    assert streamlit_config(8501, "127.0.0.1")["server.maxUploadSize"] == \
        limits.upload_bytes() // 2**20
    config = (ROOT / ".streamlit" / "config.toml").read_text()
    assert f"maxUploadSize = {limits.upload_bytes() // 2**20}" in config
    assert 'address = "127.0.0.1"' in config
    assert streamlit_config(8501, "127.0.0.1")["server.address"] == "127.0.0.1"


def test_uploads_over_the_cap_are_refused_by_size_first(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "MAX_FILE_BYTES", 1000)
    path = tmp_path / "big.csv"
    path.write_bytes(b"x,y\n" + b"1,2\n" * 1000)
    with pytest.raises(DataError, match="limit"):
        load_file(path, "big.csv")
    assert json.dumps(str(path))  # the path itself is fine: only its size is refused
