"""Training data files read in bounded chunks, as the `RawTable`s feature code reads.

CSV (header line, UTF-8, csv-module dialect) and JSON lines (.jsonl/.ndjson, one object
per line) are streamed; Parquet through pyarrow. Memory is a few read blocks and their
chunks, whatever the file size. The file's sha256 is computed from the bytes as they are
read. CSV cells become values through `coerce_csv_cell`, like the sidecar's CSV adapter:
blocks through its pyarrow equivalent (`csv_fast`), the few that pyarrow rejects through
the csv module.
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import io
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from exporter.features.compute import coerce_csv_cell
from exporter.features.table import RawColumn, RawTable, rows_to_table
from stats_service.baseline.contents import BaselineError
from stats_service.baseline.csv_fast import BlockDecoder
from stats_service.read_ahead import read_ahead

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
_BLOCK_BYTES = 8 << 20
# A CSV record (quoted newlines included) must fit in this; past it, quotes are unbalanced.
_MAX_RECORD_BYTES = 64 << 20


class DataReader:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.format = FORMATS.get(self.path.suffix.lower())
        if self.format is None:
            raise BaselineError(
                f"{self.path}: unsupported data file; expected a name ending in "
                f"{', '.join(FORMATS)}"
            )
        if not self.path.is_file():
            raise BaselineError(f"{self.path}: data file not found")
        self.total_bytes = self.path.stat().st_size
        self.bytes_read = 0
        self._sha256 = hashlib.sha256()

    @property
    def sha256(self) -> str:
        """Hex digest of the file; complete once `chunks()` is exhausted."""
        return self._sha256.hexdigest()

    def chunks(self, chunk_rows: int) -> Iterator[RawTable]:
        if self.format == "parquet":
            yield from self._parquet_chunks(chunk_rows)
            return
        with self.path.open("rb") as raw:
            if self.format == "csv":
                yield from self._csv_chunks(raw, chunk_rows)
            else:
                yield from self._jsonl_chunks(raw, chunk_rows)

    def _read(self, raw: BinaryIO) -> bytes:
        block = raw.read(_BLOCK_BYTES)
        self._sha256.update(block)
        self.bytes_read += len(block)
        return block

    def _lines(self, raw: BinaryIO, chunk_rows: int) -> Iterator[bytes]:
        """Chunks of at most `chunk_rows` complete lines."""
        pending = b""
        cuts = np.empty(0, dtype=np.int64)  # ends of complete lines in `pending`
        while True:
            if len(cuts) >= chunk_rows:
                cut = int(cuts[chunk_rows - 1]) + 1
                yield pending[:cut]
                pending, cuts = pending[cut:], cuts[chunk_rows:] - cut
                continue
            block = self._read(raw)
            if not block:
                break
            if not len(cuts) and len(pending) > _MAX_RECORD_BYTES:
                raise BaselineError(f"{self.path}: a line over 64 MiB")
            breaks = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == ord("\n"))
            cuts = np.concatenate((cuts, breaks + len(pending)))
            pending += block
        if len(cuts):
            cut = int(cuts[-1]) + 1
            yield pending[:cut]
            pending = pending[cut:]
        if pending:
            yield pending + b"\n"  # a last line without a line break

    def _csv_blocks(self, raw: BinaryIO) -> Iterator[bytes]:
        """The file in blocks of complete CSV lines, about one read block each.

        A quoted field may span lines: a line break only ends a CSV line where the
        count of quote characters before it (from the block's start, which is a line
        start) is even.
        """
        pending = b""
        while block := self._read(raw):
            # Cut in the new block, so that one copy joins the record begun before it:
            # each 8 MB copy costs as much as reading the block.
            cut = _line_end(block, last=True, quoted=pending.count(b'"') % 2 == 1)
            if cut:
                yield b"".join((pending, memoryview(block)[:cut]))
                pending = block[cut:]
                continue
            pending += block
            if len(pending) > _MAX_RECORD_BYTES:
                raise BaselineError(f"{self.path}: a record over 64 MiB (unbalanced quotes?)")
        if pending:
            yield pending + b"\n"  # a last line without a line break

    def _csv_chunks(self, raw: BinaryIO, chunk_rows: int) -> Iterator[RawTable]:
        blocks = self._csv_blocks(raw)
        first = next(blocks, b"")
        end = _line_end(first, last=False) or len(first)
        header = self._header(first[:end])
        decoder = BlockDecoder(header)
        rows_before = 0
        # Hashing, Arrow's parse and casts release the GIL: the next block decodes while
        # feature code runs on this one.
        decoded = read_ahead(
            (
                (block, decoder.decode(block, chunk_rows))
                for block in itertools.chain([first[end:]], blocks)
                if block
            ),
            "mlmon-csv",
        )
        for block, fast in decoded:
            tables = fast
            if tables is None:
                tables = _pieces(self._csv_module_chunk(block, header, rows_before), chunk_rows)
            for table in tables:
                rows_before += table.n_rows
                yield table

    def _header(self, line: bytes) -> list[str]:
        text = self._decode(line, "utf-8-sig", "the header line")
        header = next(csv.reader(io.StringIO(text, newline="")), [])
        if not header:
            raise BaselineError(f"{self.path}: no header line; expected the column names")
        duplicates = sorted({name for name in header if header.count(name) > 1})
        if duplicates:
            raise BaselineError(f"{self.path}: header: duplicate column {duplicates[0]!r}")
        return header

    def _decode(self, data: bytes, encoding: str, where: str) -> str:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise BaselineError(f"{self.path}: {where}: not UTF-8 text ({exc.reason})") from exc

    def _csv_module_chunk(self, chunk: bytes, header: list[str], rows_before: int) -> RawTable:
        text = self._decode(chunk, "utf-8", f"after data row {rows_before}")
        try:
            records = [r for r in csv.reader(io.StringIO(text, newline="")) if r]
        except csv.Error as exc:
            raise BaselineError(f"{self.path}: after data row {rows_before}: {exc}") from exc
        width = len(header)
        for i, record in enumerate(records):
            if len(record) > width:
                raise BaselineError(
                    f"{self.path}: data row {rows_before + i + 1}: "
                    f"expected at most {width} fields (the header's); got {len(record)}"
                )
        columns: dict[str, RawColumn] = {}
        for j, name in enumerate(header):
            cells = [record[j] if j < len(record) else "" for record in records]
            present = None
            if any(len(record) <= j for record in records):
                present = np.array([j < len(record) for record in records], dtype=bool)
            columns[name] = RawColumn(coerce_cells(cells), present)
        return RawTable(len(records), columns)

    def _jsonl_chunks(self, raw: BinaryIO, chunk_rows: int) -> Iterator[RawTable]:
        line_number = 0
        for chunk in self._lines(raw, chunk_rows):
            rows: list[dict[str, Any]] = []
            for line in self._decode(chunk, "utf-8", f"line {line_number + 1}").split("\n"):
                line_number += 1
                if line.strip():
                    rows.append(self._json_object(line, line_number))
            line_number -= 1  # the split counts an empty piece after the chunk's last LF
            if rows:
                yield rows_to_table(rows)

    def _json_object(self, line: str, line_number: int) -> dict[str, Any]:
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise BaselineError(f"{self.path}: line {line_number}: invalid JSON: {exc}") from exc
        if not isinstance(value, dict):
            kind = "a list" if isinstance(value, list) else type(value).__name__
            raise BaselineError(
                f"{self.path}: line {line_number}: expected a JSON object; got {kind}"
            )
        return value

    def _parquet_chunks(self, chunk_rows: int) -> Iterator[RawTable]:
        parquet: Any = importlib.import_module("pyarrow.parquet")
        with self.path.open("rb") as raw:
            while self._read(raw):
                pass
        self.bytes_read = 0
        data = parquet.ParquetFile(self.path)
        total_rows = max(1, data.metadata.num_rows)
        rows_done = 0
        for batch in data.iter_batches(batch_size=chunk_rows):
            columns = {
                name: RawColumn(batch.column(i).to_pylist())
                for i, name in enumerate(batch.schema.names)
            }
            rows_done += batch.num_rows
            self.bytes_read = self.total_bytes * rows_done // total_rows
            yield RawTable(batch.num_rows, columns)


def _line_end(data: bytes, *, last: bool, quoted: bool = False) -> int:
    """The end (past the LF) of the first or last line break outside quotes; 0: none.
    `quoted`: `data` begins inside a quoted field."""
    if b'"' not in data:
        if quoted:
            return 0
        return data.rfind(b"\n") + 1 if last else data.find(b"\n") + 1
    buf = np.frombuffer(data, dtype=np.uint8)
    breaks = np.flatnonzero(buf == ord("\n"))
    breaks = breaks[(np.cumsum(buf == ord('"'))[breaks] + quoted) % 2 == 0]
    if not len(breaks):
        return 0
    return int(breaks[-1 if last else 0]) + 1


def _pieces(table: RawTable, chunk_rows: int) -> Iterator[RawTable]:
    for start in range(0, table.n_rows, chunk_rows):
        window = slice(start, start + chunk_rows)
        columns = {
            name: RawColumn(
                column.values[window], None if column.present is None else column.present[window]
            )
            for name, column in table.columns.items()
        }
        yield RawTable(len(range(table.n_rows)[window]), columns)


def coerce_cells(cells: list[str]) -> list[Any]:
    """`coerce_csv_cell` on every cell, once per distinct cell."""
    decoded = {cell: coerce_csv_cell(cell) for cell in set(cells)}
    return list(map(decoded.__getitem__, cells))
