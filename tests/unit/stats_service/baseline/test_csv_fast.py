"""The vectorised CSV decoder must equal `coerce_csv_cell` on every cell."""

from __future__ import annotations

import math
import random
import struct
from typing import Any

import numpy as np
import pytest

from exporter.features.compute import coerce_csv_cell
from exporter.features.table import RawColumn
from stats_service.baseline.csv_fast import decode_chunk

TRICKY = ["1e3", " 2", "nan", "", "abc", "-0", "inf", "+.5", "5.", "1_000", "\u0661\u0662", "0x10"]
TRICKY += ["12345678901234567890", "9007199254740993", "0.1", "1.2.3", "-", "  ", "NaN", "-.5"]
TRICKY += ["........", "1.2.3.4.5.6.7.8.9", "+-1", "1-", "\u0661.5", "1" * 30]
TRICKY += ["0." + "0" * 21 + "1", "0." + "0" * 22 + "1"]


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
        b'1,"a,b"\n',  # quotes: the csv module's job
        b"1,2\r3,4\n",  # a lone CR
        b"1,2\n3\n",  # ragged
        b"1,2,3\n4\n",  # ragged, same delimiter count
        b"1\n\n2\n",  # blank line
        b"1,2",  # no final line break
    ],
)
def test_chunks_for_the_csv_module(data: bytes) -> None:
    width = 1 if data == b"1\n\n2\n" else 2
    assert decode_chunk(data, width) is None


def test_random_cells_over_a_number_alphabet() -> None:
    rng = random.Random(5)
    for _ in range(200):
        cells = [
            "".join(rng.choice("0123456789.-+eE_ ") for _ in range(rng.randint(0, 30)))
            for _ in range(rng.randint(1, 80))
        ]
        assert_same_as_coerce(cells, one_column(cells))
