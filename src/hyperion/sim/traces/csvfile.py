"""Reading the CSV files of trace formats: header check, row iteration with 1-based line numbers, gz transparency.

Also the one cell check the readers share, ``whole`` (a whole number >= 0), and ``FIX``, the
advice that ends a message about a bad row.
"""

from __future__ import annotations

import csv
import gzip
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from hyperion.sim.traces.base import TraceError

FIX = "fix or remove the row"


def rows(path: str, columns: tuple[str, ...], kind: str) -> Iterator[tuple[int, list[str]]]:
    """(line, values in ``columns`` order) for each data row; blank lines are passed over. Raises
    TraceError for a missing or empty file, a header without ``columns``, a row of another width
    than the header, text that is not CSV, and a file with no data rows. ``kind`` names the
    format in the message for a wrong header ("is this <kind>?")."""
    with open_text(path) as text:
        reader = csv.reader(text)
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
            raise TraceError(f"{path}: empty file; expected a header line {','.join(columns)} and one row per line") from None
        except csv.Error as error:
            raise TraceError(f"{path}:1: header: not valid CSV ({error}); expected {','.join(columns)}") from error
        except (UnicodeDecodeError, OSError) as error:
            raise TraceError(f"{path}: unreadable ({error}); expected UTF-8 CSV text, gzip-compressed only if named .gz") from error
        missing = [column for column in columns if column not in header]
        if missing:
            raise TraceError(f"{path}:1: header: expected columns {','.join(columns)}, got {','.join(header) or '(nothing)'} "
                             f"(missing {','.join(missing)}); is this {kind}?")
        index = [header.index(column) for column in columns]
        as_is = index == list(range(len(header)))
        width = len(header)
        count = 0
        try:
            for row in reader:
                if not row:
                    continue
                if len(row) != width:
                    raise TraceError(f"{path}:{reader.line_num}: expected {width} columns like the header, got {len(row)}; {FIX}")
                count += 1
                yield reader.line_num, row if as_is else [row[i] for i in index]
        except csv.Error as error:
            raise TraceError(f"{path}:{reader.line_num}: not valid CSV ({error}); {FIX}") from error
        except (UnicodeDecodeError, OSError) as error:
            raise TraceError(f"{path}: unreadable after line {reader.line_num} ({error}); expected UTF-8 CSV text") from error
    if not count:
        raise TraceError(f"{path}: no data rows after the header; expected one row per line")


@contextmanager
def open_text(path: str) -> Iterator[TextIO]:
    """The file as text (gunzipped when its name ends in ``.gz``); TraceError when it is missing."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        text = opener(path, "rt", encoding="utf-8-sig", newline="")
    except FileNotFoundError as error:
        raise TraceError(f"trace file not found: {path}") from error
    except OSError as error:
        raise TraceError(f"{path}: cannot open the trace file ({error})") from error
    with text:
        yield text


def whole(text: str, path: str, line: int, column: str) -> int:
    """The cell ``text`` (of ``column``, on ``line``) as a whole number >= 0; "8" and "8.0" both
    read as 8. TraceError for anything else."""
    try:
        value = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        value = int(number) if math.isfinite(number) and number.is_integer() else -1
    if value < 0:
        raise TraceError(f"{path}:{line}: {column}: expected a whole number >= 0, got {text!r}; {FIX}")
    return value
