"""CSV blocks decoded by pyarrow, equal to `coerce_csv_cell` on every cell.

Python spends ~100 ns creating a str per cell and ~300 ns in float() on this class of
machine, too slow for millions of cells. pyarrow's CSV reader splits and unquotes the
cells in C++, without the GIL (the reader runs it in a thread of its own, ahead of the
feature code); this module only changes *how* cells become values, never *what* they
become:

- Numbers: the column is cast to float64 by Arrow, which parses decimal text to the
  correctly rounded double, as float() does. Arrow's grammar is narrower than Python's
  (no surrounding spaces, no "1_000", no non-ASCII digits): then the cast fails and the
  column takes the string path below. Where Arrow is wider ("nan(1)"), or where
  `coerce_csv_cell` gives an int that a double cannot hold, the double is NaN, infinite
  or at least 2**53: those cells, and only those, are coerced one by one and the column
  stays numeric if they all turn out numbers (ints within ±2**53, where int and float
  render the same).
- Strings: each distinct cell is coerced once (one Arrow dictionary encoding), then
  broadcast back; a column that only holds numbers becomes numeric after all. The
  column keeps the codes and distinct values (`CodedColumn`), so that the baseline
  builder computes categorical features once per distinct value.

A numeric column is a float64 array with NaN for blanks: the `RawColumn` shortcut that
feature code reads exactly like the list of values. A block that pyarrow rejects
(ragged lines, bytes that are not UTF-8) or that holds NUL bytes returns None, and the
caller uses the csv module, which also words the errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from exporter.features.coded import CodedColumn
from exporter.features.compute import coerce_csv_cell
from exporter.features.table import FloatArray, RawColumn, RawTable

IndexArray = npt.NDArray[np.intp]

_EXACT_LIMIT = 2**53
_PROBE_CELLS = 256
# Arrow's parse unit: cache-sized pieces parse faster than one large block, and Arrow's
# threads take them in parallel when the feature code leaves a core free.
_ARROW_BLOCK_BYTES = 1 << 20


class BlockDecoder:
    """Decodes the blocks of complete CSV lines (each ending in LF) of one file, in order.

    Columns that decoded to numbers in the previous block are read as float64 by Arrow
    itself (no text column in between); if one holds text in a block after all, that
    block is read again as text. Arrow's float64 reading accepts what its cast does,
    plus spaces and tabs around the number, which float() strips too.
    """

    def __init__(self, header: list[str]) -> None:
        self.header = header
        self._numeric: frozenset[str] = frozenset()

    def decode(self, data: bytes, chunk_rows: int) -> Iterable[RawTable] | None:
        """The block as `RawTable`s of at most `chunk_rows` rows, or None for the csv
        module. The reader runs it ahead in a thread, where Arrow's parse and casts run
        without the GIL, while the previous block's features are computed.

        A block read with the previous block's float64 columns keeps them for the next
        one, and its text columns become values only as the caller takes its tables: in
        the caller's thread, so that the reader's, the longer path, does little more than
        Arrow's parse. Other blocks decide the next one's float64 columns, so their
        tables are made at once.
        """
        if b"\x00" in data:
            return None
        cells = self._read(data, self._numeric) if self._numeric else None
        typed = cells is not None
        if cells is None:
            cells = self._read(data, frozenset())
        if cells is None:
            return None
        # One array per block column (NaN for blanks), which the tables' columns slice.
        numbers = {
            name: cells[name].to_numpy() for name in self.header if cells[name].type == pa.float64()
        }
        doubtful = [name for name, values in numbers.items() if _doubtful(values, cells[name])]
        if doubtful:  # their text decides (see column_values)
            texts = self._read(data, frozenset(), include=doubtful)
            if texts is None:
                return None
            for name in doubtful:
                cells = cells.set_column(cells.schema.get_field_index(name), name, texts[name])
                del numbers[name]
        tables = self._tables(cells, numbers, chunk_rows)
        if typed:
            return tables
        made = list(tables)
        if made:
            first = made[0].columns
            self._numeric = frozenset(
                name for name in self.header if isinstance(first[name].values, np.ndarray)
            )
        return made

    def _tables(
        self, cells: pa.Table, numbers: dict[str, FloatArray], chunk_rows: int
    ) -> Iterator[RawTable]:
        for start in range(0, cells.num_rows, chunk_rows):
            piece = cells.slice(start, chunk_rows)
            columns = {
                name: RawColumn(_writable(numbers[name][start : start + chunk_rows]))
                if name in numbers
                else column_values(piece.column(j))
                for j, name in enumerate(self.header)
            }
            yield RawTable(piece.num_rows, columns)

    def _read(
        self, data: bytes, numeric: frozenset[str], include: list[str] | None = None
    ) -> pa.Table | None:
        types = {name: pa.float64() if name in numeric else pa.string() for name in self.header}
        try:
            return pa_csv.read_csv(
                pa.py_buffer(data),
                read_options=pa_csv.ReadOptions(
                    column_names=self.header, block_size=_ARROW_BLOCK_BYTES
                ),
                parse_options=pa_csv.ParseOptions(newlines_in_values=b'"' in data),
                # Blank cells are null; whitespace-only ones stay text (coerced to None).
                convert_options=pa_csv.ConvertOptions(
                    column_types=types,
                    include_columns=include or [],
                    null_values=[""],
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=True,
                ),
            )
        except pa.ArrowInvalid:
            return None


def _doubtful(values: FloatArray, numbers: pa.ChunkedArray) -> bool:
    """Whether a float64 column has values only the cells' text can settle: NaN, ±inf
    and from ±2**53 on, where 2**53 + 1 rounds to 2**53 (see column_values). `values`:
    the column as an array, whose NaN are its blanks and those values."""
    return int(np.count_nonzero(~(np.abs(values) < _EXACT_LIMIT))) > int(numbers.null_count)


def column_values(cells: pa.ChunkedArray) -> RawColumn:
    """One column's cells (text, null for blank) as the values `coerce_csv_cell` gives."""
    try:
        # A failing cast costs as much as a whole one: a column of text shows it early.
        pc.cast(cells.slice(0, _PROBE_CELLS), pa.float64())
        numbers = pc.cast(cells, pa.float64())
    except pa.ArrowInvalid:
        return _coerced(cells)
    values = _writable(numbers.to_numpy())
    null = cells.is_null().to_numpy()
    doubtful = np.flatnonzero(~(np.abs(values) < _EXACT_LIMIT) & ~null)
    if len(doubtful) and not _fill_exact(values, cells.take(doubtful).to_pylist(), doubtful):
        return _coerced(cells)
    return RawColumn(values)


def _writable(values: FloatArray) -> FloatArray:
    """Arrow lends a column without blanks read-only; feature code gets its own array."""
    return np.require(values, requirements="W")


def _fill_exact(values: FloatArray, cells: list[str], rows: IndexArray) -> bool:
    """`coerce_csv_cell` on a few cells into `values`; False if one is not a number."""
    coerced = {cell: coerce_csv_cell(cell) for cell in set(cells)}
    numbers = list(map(coerced.__getitem__, cells))
    if not all(_fits_array(value) for value in numbers):
        return False
    values[rows] = [np.nan if value is None else value for value in numbers]
    return True


def _fits_array(value: object) -> bool:
    """Whether a float64 holds the value as feature code reads it (ints: within 2**53)."""
    if value is None or type(value) is float:
        return True
    return type(value) is int and abs(value) <= _EXACT_LIMIT


def _coerced(cells: pa.ChunkedArray) -> RawColumn:
    encoded = pc.dictionary_encode(cells.combine_chunks(), null_encoding="encode")
    texts = encoded.dictionary.to_pylist()
    distinct = [None if cell is None else coerce_csv_cell(cell) for cell in texts]
    indices = encoded.indices.to_numpy()
    if all(map(_fits_array, distinct)):
        numbers = np.array(
            [np.nan if value is None else value for value in distinct], dtype=np.float64
        )
        return RawColumn(numbers[indices])
    decoded = np.empty(len(distinct), dtype=object)
    decoded[:] = distinct
    values: list[object] = decoded[indices].tolist()
    return CodedColumn(values, codes=indices.astype(np.intp), dictionary=distinct)
