"""CSV files read as RFC 4180 writes them — Chapter 9: a pipeline reads the table the user wrote.

The rules of ``csv:PATH`` (and of ``jaxnn predict`` and ``jaxnn eval`` on a CSV):

- Fields are split at the delimiter, and a field may be quoted with ``"``: a quoted field holds
  delimiters, line breaks and doubled quotes (``"a ""b"", c"``), as Python's :mod:`csv` module,
  spreadsheets and RFC 4180 write them. Spaces around a field are dropped.
- The text is UTF-8 (a byte order mark is skipped); a bad byte is reported on its own line.
- Line 1 names every column: an empty name (a trailing delimiter, say) is refused, not read as
  an empty target.
- A missing value is an empty cell or one of :data:`MISSING_TOKENS` (``NA``, ``N/A``, ``NaN``,
  ``null``, ``?``, in any case). The ``missing`` option says what to do (:data:`MISSING_POLICIES`):
  ``error`` (the default) names the first one, ``drop`` skips every row that has one, ``mean``
  fills a feature with its mean over the training split (rows without a target are skipped).
- A number must be finite and fit float32 (about +-3.4e38): ``1e308`` is finite but beyond it.

Errors name the file, the line a record starts on, and the column. A table whose cells are all
plain numbers is parsed by ``numpy.loadtxt`` (its C parser, with the same quoting rules); any
other table goes through :mod:`csv`, which is the reference: both give the same arrays.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import warnings
from collections.abc import Iterator
from typing import Literal

import numpy as np

from jaxnn.errors import UserError

__all__ = [
    "MISSING_POLICIES",
    "MISSING_TOKENS",
    "Table",
    "fill_means",
    "is_number",
    "read_header",
    "read_table",
    "records",
    "text_lines",
]

MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "?"})
MISSING_POLICIES = ("error", "drop", "mean")
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_TARGET_HINT = "; feature columns must be numeric (pick the label column with target=NAME)"
_MISSING_HINT = (
    "pass missing=drop to skip the rows that have one, or missing=mean to fill a feature with its "
    "training mean (--data-option missing=drop)"
)


def text_lines(path, where: str) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a UTF-8 file, each line decoded alone and keeping its ending.

    Raises:
      UserError: at the first line that is not UTF-8, naming the line and the byte in it.
    """
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if lineno == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                bad = raw[e.start : e.start + 1]
                raise UserError(
                    f"{where}: line {lineno}, byte {e.start + 1} ({bad!r}) is not UTF-8; expected "
                    f"UTF-8 text (save the file as UTF-8)"
                ) from None


def records(path, where: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """``(first line, fields)`` of every record, the header included; blank lines are skipped.

    Raises:
      UserError: for bad UTF-8 or bad quoting, naming the line.
    """
    reader = csv.reader(
        (line for _, line in text_lines(path, where)), delimiter=delimiter, strict=True
    )
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise _quoting_error(where, start, reader.line_num, str(e)) from None
        if len(row) > 1 or (row and row[0].strip()):
            yield start, row
        start = reader.line_num + 1


def _quoting_error(where: str, start: int, line: int, message: str) -> UserError:
    fix = 'quote the whole field and double the quotes inside it, e.g. "a ""b"" c"'
    if "new-line character" in message:
        return UserError(
            f"{where}: line {line}: a bare carriage return ends a line inside a field (old Mac "
            f"line endings?); expected \\n or \\r\\n line endings"
        )
    if "expected after" in message:
        return UserError(
            f"{where}: line {line}: a quoted field must end at a delimiter ({message}); {fix}"
        )
    return UserError(
        f"{where}: line {start}: a quoted field that opens in this record is never closed (read "
        f"to line {line}: {message}); close it, or {fix}"
    )


def is_number(cell: str) -> bool:
    """Whether ``cell`` reads as a number (``inf`` and ``nan`` included)."""
    return _number(cell) is not None


def _number(cell: str) -> float | None:
    if "_" in cell:  # float() takes "1_000"; numpy's parser does not
        return None
    try:
        return float(cell)
    except ValueError:
        return None


def read_header(path, where: str, delimiter: str, *, min_columns: int = 2) -> list[str]:
    """The column names on line 1, checked: named, distinct, at least ``min_columns``.

    Raises:
      UserError: for an empty line 1, numbers where names belong, an empty or repeated name.
    """
    start, row = next(records(path, where, delimiter), (0, []))
    names = [c.strip() for c in row]
    if start != 1 or not any(names):
        raise UserError(f"{where}: line 1 is empty; expected a header row of column names")
    if all(is_number(n) for n in names if n):
        example = delimiter.join(["x0", "x1", "...", "label"])
        raise UserError(
            f"{where}: line 1 holds numbers {delimiter.join(names)[:60]!r}; expected a header row "
            f"of column names. Add one, e.g. {example}"
        )
    _check_names(where, names, delimiter)
    if len(names) < min_columns:
        raise UserError(
            f"{where}: line 1 names {len(names)} column; expected at least one feature and a "
            f"target separated by {delimiter!r}"
        )
    return names


def _check_names(where: str, names: list[str], delimiter: str) -> None:
    empty = [i + 1 for i, n in enumerate(names) if not n]
    if empty:
        hint = (
            f"a trailing {delimiter!r} at the end of line 1 makes an empty last column: remove it"
            if empty == [len(names)]
            else "give every column a name"
        )
        raise UserError(f"{where}: line 1, column {empty[0]} has no name; {hint}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"{where}: line 1 names the column(s) {twice} more than once")


@dataclasses.dataclass
class Table:
    """The columns of a CSV that a loader asked for.

    Attributes:
      x: features (N, F), float64 with NaN where ``x_missing``; float32 when nothing is missing
        and the fast parser read it.
      x_missing: (N, F) bool, the missing cells of ``x``.
      y: the target column (N,): float32 numbers or stripped strings; None if not asked for.
      y_missing: (N,) bool, the missing targets.
      lines: (N,) int64, the line each record starts on (None from the fast parser).
    """

    x: np.ndarray
    x_missing: np.ndarray
    y: np.ndarray | None
    y_missing: np.ndarray
    lines: np.ndarray | None

    def line(self, row: int) -> int:
        """The line record ``row`` starts on (counted from the header when no lines are kept)."""
        return int(self.lines[row]) if self.lines is not None else row + 2


def read_table(
    path, where: str, header: list[str], features: list[int], target: int | None, *,
    delimiter: str, target_given: bool = True,
) -> Table:  # fmt: skip
    """The ``features`` columns (and the ``target`` column, if not None) of a CSV file.

    Raises:
      UserError: for a ragged row, a cell that is not a number in a numeric column, or a
        number that is not finite or beyond float32, naming the line and the column.
    """
    fast = _fast_table(path, delimiter, len(header), features, target)
    if fast is not None:
        return fast
    wanted = [*features, *([] if target is None else [target])]
    lines, cells = _cells(path, where, header, wanted, delimiter)
    hint = "" if target_given else _TARGET_HINT
    parsed = [_numeric(where, header[j], cells[k], lines, hint) for k, j in enumerate(features)]
    x = np.stack([v for v, _ in parsed], axis=1) if parsed else np.zeros((len(lines), 0))
    x_missing = np.stack([m for _, m in parsed], axis=1) if parsed else np.zeros(x.shape, bool)
    y, y_missing = None, np.zeros(len(lines), bool)
    if target is not None:
        y, y_missing = _target(where, header[target], cells[-1], lines)
    return Table(x, x_missing, y, y_missing, lines)


def _loadtxt(path, delimiter: str, usecols, dtype, ndmin: Literal[1, 2] = 2) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "no data": the exact parser reports it
        return np.loadtxt(
            path, delimiter=delimiter, skiprows=1, usecols=usecols, dtype=dtype, comments=None,
            encoding="utf-8", ndmin=ndmin, quotechar='"',
        )  # fmt: skip


def _fast_table(path, delimiter, width, features, target) -> Table | None:
    """The C parser's reading of a plain table, or None to leave it to the exact parser."""
    try:
        x, y = _fast_pair(path, delimiter, width, features, target)
    except (ValueError, UnicodeDecodeError):
        return None
    if x is None or not len(x) or not np.isfinite(x).all():
        return None  # NaN, infinity, 1e308 or nothing: the exact parser says which and where
    return Table(x, np.zeros(x.shape, bool), y, np.zeros(len(x), bool), None)


def _fast_pair(path, delimiter, width, features, target):
    if target is None:
        if not _plain_rows(path, delimiter, width):
            return None, None
        return _loadtxt(path, delimiter, features, np.float32), None
    try:
        table = _loadtxt(path, delimiter, None, np.float32)  # (N, columns): all numeric?
    except ValueError:
        if not _plain_rows(path, delimiter, width):
            return None, None
        return _string_targets(path, delimiter, features, target)
    if table.shape[1] != width or not np.isfinite(table[:, target]).all():
        return None, None
    x = table[:, :-1] if target == width - 1 else table[:, features]  # a view if possible
    return x, table[:, target]


def _plain_rows(path, delimiter: str, width: int) -> bool:
    """Whether every line holds ``width`` fields and no quote: columns picked by the C parser
    (``usecols``) are then those of the header (it does not count a row's fields)."""
    sep = delimiter.encode("utf-8")
    with open(path, "rb") as f:
        return all(line.count(sep) == width - 1 and b'"' not in line for line in f if line.strip())


def _string_targets(path, delimiter, features, target):
    """Features by the C parser and string labels, when every label is present."""
    x = _loadtxt(path, delimiter, features, np.float32)
    labels = np.char.strip(_loadtxt(path, delimiter, [target], str, ndmin=1))  # (N,)
    if np.isin(np.char.lower(labels), list(MISSING_TOKENS)).any():
        return None, None
    if all(is_number(str(v)) for v in labels):
        return None, None  # numeric labels: only the exact parser mixes them with bad cells
    return x, labels


def _cells(path, where, header, columns, delimiter) -> tuple[np.ndarray, list[list[str]]]:
    """The record start lines and, per column asked for, its stripped cells."""
    cells: list[list[str]] = [[] for _ in columns]
    width, lines = len(header), []
    data = records(path, where, delimiter)
    next(data, None)  # the header
    for start, row in data:
        if len(row) != width:
            raise UserError(
                f"{where}: line {start} has {len(row)} fields; expected {width}, one per header "
                f"column{_trailing(row, width, header)}"
            )
        lines.append(start)
        for k, j in enumerate(columns):
            cells[k].append(row[j].strip())
    if not lines:
        raise UserError(f"{where}: the file has a header but no data rows; expected data rows")
    return np.asarray(lines, np.int64), cells


def _trailing(row: list[str], width: int, header: list[str]) -> str:
    if len(row) == width + 1 and not row[-1].strip():
        return " (a trailing delimiter makes an empty last field: remove it)"
    return f" ({', '.join(header)})" if len(header) <= 8 else ""


def _numeric(where, name, cells, lines, hint="") -> tuple[np.ndarray, np.ndarray]:
    """float64 values (NaN where missing) and the missing mask of one numeric column."""
    values, missing = np.full(len(cells), np.nan), np.zeros(len(cells), bool)
    for i, cell in enumerate(cells):
        if cell.lower() in MISSING_TOKENS:
            missing[i] = True
            continue
        values[i] = _checked_number(where, name, cell, int(lines[i]), hint)
    return values, missing


def _checked_number(where, name, cell, line, hint) -> float:
    value = _number(cell)
    at = f"{where}: line {line}, column {name!r}"
    if value is None:
        raise UserError(f"{at}: expected a number, got {cell[:40]!r}{hint}")
    if not math.isfinite(value):
        raise UserError(f"{at}: expected a finite number, got {cell!r}")
    if abs(value) > _FLOAT32_MAX:
        raise UserError(
            f"{at}: {cell} is finite but beyond float32's range (about +-3.4e38); expected "
            f"numbers float32 holds: rescale the column"
        )
    return value


def _target(where, name, cells, lines) -> tuple[np.ndarray, np.ndarray]:
    """The target column: float32 if every present cell is a number, else stripped strings."""
    missing = np.asarray([c.lower() in MISSING_TOKENS for c in cells], bool)
    if all(is_number(c) for c, m in zip(cells, missing, strict=True) if not m):
        values, missing = _numeric(where, name, cells, lines)
        return values.astype(np.float32), missing
    return np.asarray(cells, dtype=str), missing


def missing_counts(table: Table) -> dict:
    """``{"cells", "rows"}``: how many cells are missing, and in how many rows."""
    rows = table.x_missing.any(axis=1) | table.y_missing
    return {"cells": int(table.x_missing.sum() + table.y_missing.sum()), "rows": int(rows.sum())}


def check_missing(where: str, table: Table, header: list[str], features: list[int], target):
    """Raise at the first missing cell, naming its line and column and the ways to go on."""
    counts = missing_counts(table)
    if not counts["cells"]:
        return
    rows = table.x_missing.any(axis=1) | table.y_missing
    row = int(np.flatnonzero(rows)[0])
    cols = [header[j] for j, m in zip(features, table.x_missing[row], strict=True) if m]
    name = cols[0] if cols else header[target]
    raise UserError(
        f"{where}: line {table.line(row)}, column {name!r} is missing a value ({counts['cells']} "
        f"missing cell(s) in {counts['rows']} row(s)); expected a number, or {_MISSING_HINT}"
    )


def drop_rows(table: Table, rows: np.ndarray) -> Table:
    """The table without the rows where ``rows`` is true."""
    keep = ~rows
    lines = table.lines[keep] if table.lines is not None else None
    y = table.y[keep] if table.y is not None else None
    return Table(table.x[keep], table.x_missing[keep], y, table.y_missing[keep], lines)


def fill_means(where: str, names: list[str], x: np.ndarray, train_rows):
    """``(x, means)``: ``x`` as float32 with each NaN replaced by its column's mean over
    ``train_rows``, and those means (float64, one per column).

    Raises:
      UserError: if a column has no value at all in the training rows.
    """
    train = x[train_rows]
    present = ~np.isnan(train)
    empty = [n for n, ok in zip(names, present.any(axis=0), strict=True) if not ok]
    if empty:
        raise UserError(
            f"{where}: column(s) {empty} have no value in the training split; expected at least "
            f"one to take a mean of (drop the column, or use missing=drop)"
        )
    means = np.where(present, train, 0.0).sum(axis=0) / present.sum(axis=0)
    return np.where(np.isnan(x), means, x).astype(np.float32), means
