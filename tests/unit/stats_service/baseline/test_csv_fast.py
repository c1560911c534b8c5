"""The pyarrow CSV decoder must equal the csv module plus `coerce_csv_cell` on every cell."""

from __future__ import annotations

import csv
import io
import math
import random
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from exporter.features.compute import coerce_csv_cell
from exporter.features.table import RawColumn
from stats_service.baseline import readers
from stats_service.baseline.csv_fast import BlockDecoder
from stats_service.baseline.readers import DataReader

TRICKY = ["1e3", " 2", "nan", "", "abc", "-0", "inf", "+.5", "5.", "1_000", "\u0661\u0662", "0x10"]
TRICKY += ["12345678901234567890", "9007199254740993", "0.1", "1.2.3", "-", "  ", "NaN", "-.5"]
TRICKY += ["........", "1.2.3.4.5.6.7.8.9", "+-1", "1-", "\u0661.5", "1" * 30]
TRICKY += ["0." + "0" * 21 + "1", "0." + "0" * 22 + "1"]
TRICKY += ["nan(1)", "-nan", "Infinity", "1e400", "-1e400", "1e-400", "4.9e-324", "true", "FALSE"]
TRICKY += ["\t2", "2\t", "\x0b2", "\xa02", "1e5 ", "-0.0", "00012", "1.", ".e1"]


def decoded(column: RawColumn) -> list[Any]:
    if isinstance(column.values, np.ndarray):
        values: list[Any] = column.values.tolist()
        return values
    return column.values


def assert_same_as_coerce(cells: list[str], column: RawColumn) -> None:
    for cell, value in zip(cells, decoded(column), strict=True):
        expected = coerce_csv_cell(cell)
        if expected is None or (isinstance(expected, float) and math.isnan(expected)):
            assert value is None or math.isnan(value), cell
        elif isinstance(expected, str):
            assert (type(value), value) == (str, expected), cell
        elif isinstance(column.values, np.ndarray):
            # Same double, bit for bit (0 and -0 aside: features log both as 0).
            assert value == expected, cell
            if expected != 0:
                assert struct.pack("<d", value) == struct.pack("<d", float(expected)), cell
        else:
            assert (type(value), value) == (type(expected), expected), cell


def decode_chunk(data: bytes, n_fields: int) -> list[RawColumn] | None:
    """The block as one table's columns, or None when it is left to the csv module."""
    tables = BlockDecoder([f"f{j}" for j in range(n_fields)]).decode(data, 1 << 30)
    if tables is None:
        return None
    if not tables:  # blank lines only
        return [RawColumn([]) for _ in range(n_fields)]
    (table,) = tables
    return list(table.columns.values())


def one_column(cells: list[str]) -> RawColumn:
    """Decode cells as the second column (a lone blank cell would be a blank line)."""
    columns = decode_chunk("".join(f"k,{cell}\n" for cell in cells).encode(), 2)
    assert columns is not None
    assert columns[0].values == ["k"] * len(cells)
    return columns[1]


@pytest.mark.parametrize("cell", [c for c in TRICKY if c.strip()])
def test_tricky_cell_among_plain_numbers(cell: str) -> None:
    cells = ["1.5", cell, "-2", "", "3.25"]
    column = one_column(cells)
    assert_same_as_coerce(cells, column)


def test_all_tricky_cells_in_one_column() -> None:
    cells = [c for c in TRICKY if c.strip()] + [""]
    column = one_column(cells)
    assert isinstance(column.values, list)  # "abc" makes it a string column
    assert_same_as_coerce(cells, column)


def test_numbers_only_column_is_an_array() -> None:
    cells = ["1", "-2.50", "", "nan", "1e3", "0.000001", "+7", "123456789012345"]
    column = one_column(cells)
    assert isinstance(column.values, np.ndarray)
    assert_same_as_coerce(cells, column)


def test_int_beyond_2_53_keeps_the_list_form() -> None:
    cells = ["1", "9007199254740993"]
    column = one_column(cells)
    assert column.values == [1, 9007199254740993]


def test_random_plain_numbers_decode_bit_for_bit() -> None:
    rng = random.Random(11)
    cells = []
    for _ in range(5000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 17)))
        if rng.random() < 0.7:
            dot = rng.randint(0, len(digits))
            digits = f"{digits[:dot]}.{digits[dot:]}"
        cells.append(rng.choice(["", "-", "+"]) + (digits if digits != "." else "0"))
    for start in range(0, len(cells), 50):  # few enough non-plain cells per column
        block = cells[start : start + 50]
        assert_same_as_coerce(block, one_column(block))


def test_many_non_numbers_make_a_string_column() -> None:
    cells = [f"name{i % 7}" for i in range(300)] + ["", "12", "x" * 80, "x" * 80]
    column = one_column(cells)
    assert isinstance(column.values, list)
    assert_same_as_coerce(cells, column)
    assert column.values[301] == 12


def test_multi_column_chunk_and_crlf() -> None:
    data = b"1,a,2.5\r\n,b,\r\n-3,c,7\r\n"
    columns = decode_chunk(data, 3)
    assert columns is not None
    assert decoded(columns[0])[::2] == [1.0, -3.0]
    assert math.isnan(decoded(columns[0])[1])
    assert columns[1].values == ["a", "b", "c"]
    assert decoded(columns[2])[0] == 2.5


@pytest.mark.parametrize(
    "data",
    [
        b"1,2\n3\n",  # ragged
        b"1,2,3\n4\n",  # ragged, same delimiter count
        b"1,\xff\n",  # not UTF-8
        b"1,\x002\n",  # a NUL byte
    ],
)
def test_chunks_for_the_csv_module(data: bytes) -> None:
    assert decode_chunk(data, 2) is None


def csv_module_columns(data: bytes, n_fields: int) -> list[list[Any]] | None:
    """What the live path makes of the text: the csv module, then `coerce_csv_cell`."""
    records = [r for r in csv.reader(io.StringIO(data.decode(), newline="")) if r]
    if any(len(record) != n_fields for record in records):
        return None
    return [[coerce_csv_cell(record[j]) for record in records] for j in range(n_fields)]


def assert_same_as_csv_module(data: bytes, n_fields: int) -> None:
    columns = decode_chunk(data, n_fields)
    expected = csv_module_columns(data, n_fields)
    if columns is None:
        return  # the reader then uses the csv module itself
    assert expected is not None, data
    for column, values in zip(columns, expected, strict=True):
        got = decoded(column)
        assert len(got) == len(values), data
        for value, want in zip(got, values, strict=True):
            if want is None or (isinstance(want, float) and math.isnan(want)):
                assert value is None or math.isnan(value), data
            else:
                assert (isinstance(value, str), value) == (isinstance(want, str), want), data


@pytest.mark.parametrize(
    "data",
    [
        b'1,"a,b"\n"2",""\n',  # quoted cells, a quoted blank
        b'x,"say ""hi""\nthere"\n',  # doubled quotes, a line break inside quotes
        b'a"b,"c"d\n',  # quotes that do not open or close a field
        b"1,2\r3,4\n",  # a lone CR ends a line
        b"1,2\r\n\r\n3,4\r\n",  # CRLF and a blank line
        b"1,  \n2,\t\n",  # whitespace-only cells are blank
    ],
)
def test_quoting_and_line_ends_as_the_csv_module(data: bytes) -> None:
    assert decode_chunk(data, 2) is not None
    assert_same_as_csv_module(data, 2)


def test_random_csv_text_as_the_csv_module() -> None:
    rng = random.Random(3)
    alphabet = ["a", "1", ",", '"', "\n", "\r", " ", ".", "2", "e", "-", "n", "\t", "\u00e9"]
    for _ in range(1500):
        n_fields = rng.randint(1, 3)
        lines = []
        for _ in range(rng.randint(1, 6)):
            cells = []
            for _ in range(n_fields):
                cell = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 5)))
                if rng.random() < 0.5:
                    cell = '"' + cell.replace('"', '""') + '"'
                elif rng.random() < 0.6:
                    cell = "".join(c for c in cell if c not in ',"\r\n')
                cells.append(cell)
            lines.append(",".join(cells))
        data = (rng.choice(["\n", "\r\n"]).join(lines) + "\n").encode()
        if data.count(b'"') % 2 == 0:  # the reader cuts blocks where quotes are even
            assert_same_as_csv_module(data, n_fields)


def test_many_distinct_categories_and_booleans() -> None:
    cells = [f"user{i}" for i in range(5000)] + ["true", "false", "True", "", "7"]
    column = one_column(cells)
    assert isinstance(column.values, list)
    assert_same_as_coerce(cells, column)


def test_a_numeric_column_stays_exact_in_later_blocks() -> None:
    """Later blocks read the column as float64 in Arrow; cells only text can settle
    (ints past 2**53, "nan(1)", words) still come out as `coerce_csv_cell` says."""
    decoder = BlockDecoder(["k", "v"])
    (first,) = decoder.decode(b"a,1.5\nb,2\n", 100) or []
    assert isinstance(first.columns["v"].values, np.ndarray)
    for later in (["3", "9007199254740993"], ["nan(1)", "4"], ["1e400", "5"], ["x", "6"]):
        block = "".join(f"k,{cell}\n" for cell in later).encode()
        (table,) = decoder.decode(block, 100) or []
        assert_same_as_coerce(later, table.columns["v"])


def test_blocks_come_in_tables_of_at_most_chunk_rows() -> None:
    data = "".join(f"{i},x\n" for i in range(10)).encode()
    tables = list(BlockDecoder(["n", "s"]).decode(data, 4) or [])
    assert [table.n_rows for table in tables] == [4, 4, 2]
    assert decoded(tables[2].columns["n"]) == [8.0, 9.0]


def test_random_cells_over_a_number_alphabet() -> None:
    rng = random.Random(5)
    for _ in range(200):
        cells = [
            "".join(
                rng.choice("0123456789.-+eE_ nNaAiIfFtTyY()") for _ in range(rng.randint(0, 30))
            )
            for _ in range(rng.randint(1, 80))
        ]
        assert_same_as_coerce(cells, one_column(cells))


@pytest.mark.parametrize("block_bytes", [7, 13, 64, 257, 1000])
def test_quoted_line_breaks_across_read_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_bytes: int
) -> None:
    # A read block may end inside a quoted field: the next block then begins quoted.
    text = "a,b\n" + "".join(
        f'{i},"x{i}\nline ""q"" {i}\n"\n' if i % 3 == 0 else f"{i},y{i}\n" for i in range(300)
    )
    path = tmp_path / "train.csv"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setattr(readers, "_BLOCK_BYTES", block_bytes)
    cells = [cell for table in DataReader(path).chunks(1000) for cell in table.columns["b"].values]
    assert cells == [record[1] for record in csv.reader(io.StringIO(text))][1:]
