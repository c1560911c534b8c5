"""Vectorised decoding of plain CSV chunks, equal to `coerce_csv_cell` on every cell.

Python spends ~100 ns creating a str per cell and ~300 ns in float() on this class of
machine, too slow for millions of cells. This module works on the chunk's bytes with
numpy instead, and only changes *how* cells are decoded, never *what* they decode to:

- Numbers: cells of the form `[+-]digits[.digits]` with at most 15 significant digits
  (the integer of all digits, M, below 2**53) and at most 22 decimals are computed as
  M / 10**decimals. Both operands are exact doubles and IEEE division rounds correctly,
  so the result is float(cell) bit for bit (Clinger's fast path). Other cells ("1e3",
  "nan", 17-digit values...) are parsed by numpy from their bytes, which is float()
  itself; the few that may be ints beyond 2**53, or that numpy cannot read (" 2",
  non-ASCII digits), go through `coerce_csv_cell` one by one.
- Strings: each distinct cell is decoded and coerced once, then broadcast back.

A column whose cells all decode to numbers (int ones within ±2**53, where int and float
render the same) becomes a float64 array with NaN for blanks: the `RawColumn` shortcut
that feature code reads exactly like the list of values. Chunks this module does not
handle (quotes, a lone CR, NUL bytes, blank lines, ragged lines) return None, and the
caller uses the csv module.

Cells are read 8 bytes at a time: a uint64 view of the chunk at every byte offset, so
one gather fetches a word of a cell, and a mask per length keeps only the cell's bytes.
"""

from __future__ import annotations

import functools
import sys

import numpy as np
import numpy.typing as npt

from exporter.features.compute import coerce_csv_cell
from exporter.features.table import FloatArray, RawColumn

IntArray = npt.NDArray[np.int64]
WordArray = npt.NDArray[np.uint64]

_COMMA, _NEWLINE, _DOT, _MINUS, _PLUS = (ord(c) for c in ",\n.-+")
_MAX_NUMBER_WORDS = 3  # cells up to 24 bytes are candidates for the number parse
_MAX_STRING_WORDS = 8  # cells up to 64 bytes are grouped as words; longer ones one by one
_PAD = 8 * _MAX_STRING_WORDS
_MAX_DECIMALS = 22
_EXACT_LIMIT = 2**53
# Up to this many non-plain cells per column are coerced one by one and the column can
# still be numeric; beyond, the column is decoded as strings.
_FEW_CELLS = 64
_POW10 = 10.0 ** np.arange(8 * _MAX_NUMBER_WORDS)
_POW10_INT = 10 ** np.minimum(np.arange(8 * _MAX_NUMBER_WORDS), 16)
_ALL = 2**64 - 1
# _KEEP_LOW[k]: the first k bytes of a little-endian word; _KEEP_HIGH[k]: the last k.
_KEEP_LOW = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)
_KEEP_HIGH = np.array([_ALL ^ ((1 << (64 - 8 * k)) - 1) for k in range(9)], dtype=np.uint64)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_ONES = np.uint64(0x0101010101010101)
_LANES_16 = np.uint64(0x00FF00FF00FF00FF)
_LANES_32 = np.uint64(0x0000FFFF0000FFFF)
_LANE_64 = np.uint64(0x00000000FFFFFFFF)


@functools.cache
def _places(width: int) -> npt.NDArray[np.uint8]:
    return np.arange(width - 1, -1, -1, dtype=np.uint8)


def _byte_sums(values: npt.NDArray[np.uint8] | npt.NDArray[np.bool_]) -> IntArray:
    """Per row, the sum of its bytes (each word's sum below 256), 8 bytes at a time:
    multiplying a word by 0x0101010101010101 adds all its bytes into the top one."""
    per_word = values.view(np.uint64) * _ONES >> np.uint64(56)
    total = per_word[:, 0].astype(np.int64)
    for j in range(1, per_word.shape[1]):
        total += per_word[:, j].astype(np.int64)
    return total


def _digits_value(digits: npt.NDArray[np.uint8]) -> FloatArray:
    """Per row, its digit bytes (0-9, first = most significant) read as one number.

    8 digits per word by pairing neighbours: 2-digit, then 4-digit, then 8-digit values
    (no lane overflows: 99 < 2**8, 9999 < 2**16, 99999999 < 2**32). Exact as long as the
    result is below 2**53; above, it is only known to be above, which is all we ask.
    """
    words = digits.view(np.uint64)
    words = (words * np.uint64(10) + (words >> np.uint64(8))) & _LANES_16
    words = (words * np.uint64(100) + (words >> np.uint64(16))) & _LANES_32
    words = (words * np.uint64(10000) + (words >> np.uint64(32))) & _LANE_64
    value = words[:, 0].astype(np.float64)
    for j in range(1, words.shape[1]):
        value = value * 1e8 + words[:, j]
    return value


def decode_chunk(data: bytes, n_fields: int) -> list[RawColumn] | None:
    """Columns of complete CSV lines (each ending in LF), or None for the csv module."""
    if sys.byteorder != "little":  # the word arithmetic assumes little-endian words
        return None
    if b'"' in data or b"\x00" in data or not data.endswith(b"\n"):
        return None
    if b"\r" in data:
        if data.count(b"\r") != data.count(b"\r\n"):
            return None
        data = data.replace(b"\r\n", b"\n")
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero((buf == _COMMA) | (buf == _NEWLINE))
    line_ends = ends[n_fields - 1 :: n_fields]
    if len(ends) != data.count(b"\n") * n_fields or not (buf[line_ends] == _NEWLINE).all():
        return None
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    if n_fields == 1 and (ends == starts).any():
        return None  # a blank line: the csv module skips it
    chunk = _Chunk(data, buf)
    return [chunk.column(starts[j::n_fields], ends[j::n_fields]) for j in range(n_fields)]


class _Chunk:
    def __init__(self, data: bytes, buf: npt.NDArray[np.uint8]) -> None:
        self.data = data
        padded = np.concatenate((np.zeros(_PAD, np.uint8), buf, np.zeros(_PAD, np.uint8)))
        # words[i] = the 8 bytes of `padded` from offset i (unaligned, no copy).
        self.words: WordArray = np.ndarray(
            (len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,)
        )

    def column(self, starts: IntArray, ends: IntArray) -> RawColumn:
        lengths = ends - starts
        # A column of strings shows it in its first cells: skip the number parse then.
        probe = slice(0, 4 * _FEW_CELLS)
        if self.numbers(starts[probe], ends[probe], lengths[probe]) is not None:
            numbers = self.numbers(starts, ends, lengths)
            if numbers is not None:
                return RawColumn(numbers)
        return RawColumn(self.strings(starts, lengths))

    def numbers(self, starts: IntArray, ends: IntArray, lengths: IntArray) -> FloatArray | None:
        """The cells' values when every cell is blank or a number (NaN for blanks)."""
        blank = lengths == 0
        numbers, exact = self.plain_numbers(ends, lengths)
        others = np.flatnonzero(~(exact | blank))
        if len(others) > _FEW_CELLS:
            parsed = self.parsed_floats(starts[others], lengths[others])
            if parsed is None:
                return None
            numbers[others] = parsed
            # Where coerce_csv_cell gives an int, it equals this float up to 2**53; past
            # that (or for inf, which a huge int also parses to) ask it cell by cell.
            others = others[~((np.abs(parsed) <= _EXACT_LIMIT) | np.isnan(parsed))]
        if len(others) > _FEW_CELLS or not self.fill_numbers(numbers, starts, ends, others):
            return None
        numbers[blank] = np.nan
        return numbers

    def parsed_floats(self, starts: IntArray, lengths: IntArray) -> FloatArray | None:
        """float() of every cell (numpy parses ASCII bytes like float(); anything else
        fails), or None if one is not a float."""
        longest = int(lengths.max())
        if longest > 8 * _MAX_STRING_WORDS:
            return None
        n_words = -(-longest // 8)
        cells = self.left_aligned(starts, lengths, n_words).view(f"S{8 * n_words}").ravel()
        try:
            return cells.astype(np.float64)
        except ValueError:
            return None

    def right_aligned(self, ends: IntArray, lengths: IntArray, n_words: int) -> WordArray:
        """Each cell's last 8 * n_words bytes, zeros before the cell's start."""
        block = np.empty((len(ends), n_words), dtype=np.uint64)
        for j in range(n_words):
            back = 8 * (n_words - j)
            kept = np.clip(lengths - (back - 8), 0, 8)
            block[:, j] = self.words[ends + (_PAD - back)] & _KEEP_HIGH[kept]
        return block

    def left_aligned(self, starts: IntArray, lengths: IntArray, n_words: int) -> WordArray:
        """Each cell's first 8 * n_words bytes, zeros after the cell's end."""
        block = np.empty((len(starts), n_words), dtype=np.uint64)
        for j in range(n_words):
            kept = np.clip(lengths - 8 * j, 0, 8)
            block[:, j] = self.words[starts + (_PAD + 8 * j)] & _KEEP_LOW[kept]
        return block

    def plain_numbers(
        self, ends: IntArray, lengths: IntArray
    ) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
        """Values of cells `[+-]digits[.digits]` and the mask of cells decoded exactly."""
        n_cells = len(ends)
        n_words = min(-(-int(lengths.max(initial=0)) // 8), _MAX_NUMBER_WORDS)
        if n_words == 0:
            return np.zeros(n_cells), np.zeros(n_cells, dtype=bool)
        width = 8 * n_words
        words = self.right_aligned(ends, lengths, n_words)
        chars = words.view(np.uint8)
        digits = chars - np.uint8(ord("0"))
        is_digit = digits < 10
        is_dot = chars == _DOT
        is_minus = chars == _MINUS
        is_sign = is_minus | (chars == _PLUS)
        places = _places(width)  # characters after each column's character
        n_digits = _byte_sums(is_digit)
        n_dots, dot_place = _byte_sums(is_dot), _byte_sums(is_dot * places)
        n_signs, sign_place = _byte_sums(is_sign), _byte_sums(is_sign * places)
        plain = (
            (lengths <= width)
            & (n_digits >= 1)
            & (n_dots <= 1)
            & (n_digits + n_dots + n_signs == lengths)
            & ((n_signs == 0) | ((n_signs == 1) & (sign_place == lengths - 1)))
        )
        # All digits as one integer, the dot counting as a 0 digit (then dropped).
        with_dot = _digits_value(digits * is_digit)
        exact = plain & (with_dot < _EXACT_LIMIT) & (dot_place <= _MAX_DECIMALS)
        integer = np.minimum(with_dot, _EXACT_LIMIT).astype(np.int64)
        decimals = np.minimum(dot_place, _MAX_DECIMALS)  # in range for inexact cells too
        below_dot = integer % _POW10_INT[decimals]
        mantissa = np.where(n_dots == 1, (integer - below_dot) // 10 + below_dot, integer)
        values = mantissa / _POW10[decimals]
        values[_byte_sums(is_minus) == 1] *= -1.0
        return values, exact

    def fill_numbers(
        self, numbers: FloatArray, starts: IntArray, ends: IntArray, rows: IntArray
    ) -> bool:
        """Coerce a few cells one by one into `numbers`; False if one is not a number."""
        for row in rows.tolist():
            value = coerce_csv_cell(self.data[starts[row] : ends[row]].decode("utf-8"))
            if value is None:
                numbers[row] = np.nan
            elif type(value) is float or (type(value) is int and abs(value) <= _EXACT_LIMIT):
                numbers[row] = value
            else:
                return False
        return True

    def strings(self, starts: IntArray, lengths: IntArray) -> list[object]:
        out = np.full(len(starts), None, dtype=object)
        short = np.flatnonzero((lengths > 0) & (lengths <= 8 * _MAX_STRING_WORDS))
        if len(short):
            out[short] = self.distinct(starts[short], lengths[short])
        memo: dict[bytes, object] = {}
        for row in np.flatnonzero(lengths > 8 * _MAX_STRING_WORDS).tolist():
            cell = self.data[starts[row] : starts[row] + lengths[row]]
            if cell not in memo:
                memo[cell] = coerce_csv_cell(cell.decode("utf-8"))
            out[row] = memo[cell]
        values: list[object] = out.tolist()
        return values

    def distinct(self, starts: IntArray, lengths: IntArray) -> npt.NDArray[np.object_]:
        """Coerce each distinct cell once, grouping cells by a hash of their words."""
        words = self.left_aligned(starts, lengths, -(-int(lengths.max()) // 8))
        key = words[:, 0].copy()
        for k in range(1, words.shape[1]):
            key = key * _MIX + words[:, k]
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        if not (words == words[first[inverse]]).all():  # a hash collision: one by one
            first, inverse = np.arange(len(starts)), np.arange(len(starts))
        decoded = np.empty(len(first), dtype=object)
        for i, (start, length) in enumerate(
            zip(starts[first].tolist(), lengths[first].tolist(), strict=True)
        ):
            decoded[i] = coerce_csv_cell(self.data[start : start + length].decode("utf-8"))
        return decoded[inverse]
