"""A dependency-free progress bar for long simulator runs.

On a terminal it redraws one line in place at most ``REDRAW_INTERVAL_S`` apart::

    philly/fifo [##########..............]  45%  37,012/82,247  day 12  eta 12 s

On anything else (a log file, CI), when enabled explicitly, it prints one such line per 10 %.
``update`` is cheap enough to call every few thousand events: one clock read and a comparison.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

REDRAW_INTERVAL_S = 0.1
BAR_WIDTH = 24


def format_duration(seconds: float) -> str:
    """"12 s", "4.5 min", "1.2 h"."""
    if seconds < 100:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Progress:
    """Progress of ``total`` steps. ``stream`` defaults to sys.stderr (looked up when the bar is
    made, so that captured stderr is honoured); ``enabled`` defaults to whether ``stream`` is a TTY."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.total = max(int(total), 0)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.is_terminal = _is_terminal(self.stream)
        self.enabled = self.is_terminal if enabled is None else enabled
        self.done = 0
        self.note = ""
        self.started = time.monotonic()
        self._next_draw = self.started          # terminal: earliest time of the next redraw
        self._last_decile = 0                   # not a terminal: the last 10 % step printed
        self._drawn_width = 0
        self._closed = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def fraction(self) -> float:
        if self.total == 0:
            return 1.0
        return min(max(self.done / self.total, 0.0), 1.0)

    def update(self, done: int, note: str = "") -> None:
        """``done`` steps of ``total`` are done; ``note`` is shown after the counts."""
        self.done = done
        self.note = note
        if not self.enabled or self._closed:
            return
        if self.is_terminal:
            now = time.monotonic()
            if now >= self._next_draw:
                self._next_draw = now + REDRAW_INTERVAL_S
                self._draw_in_place(self.render(now))
        else:
            decile = int(self.fraction() * 10)
            if decile > self._last_decile:
                self._last_decile = decile
                self._write_line(self.render(time.monotonic()))

    def close(self) -> None:
        """Draws the final state (with the elapsed time) and ends the line; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if not self.enabled:
            return
        line = self.render(time.monotonic(), finished=True)
        if self.is_terminal:
            self._draw_in_place(line)
            self.stream.write("\n")
            self.stream.flush()
        elif int(self.fraction() * 10) > self._last_decile or self._last_decile == 0:
            self._write_line(line)  # not yet printed at this 10 % step

    def render(self, now: float, finished: bool = False) -> str:
        """``label [#####.....]  45%  37,012/82,247  note  eta 12 s`` (``in 40 s`` once finished)."""
        fraction = self.fraction()
        filled = int(fraction * BAR_WIDTH)
        parts = [f"{self.label} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}]", f"{fraction * 100:3.0f}%",
                 f"{self.done:,}/{self.total:,}"]
        if self.note:
            parts.append(self.note)
        elapsed = now - self.started
        if finished:
            parts.append(f"in {format_duration(elapsed)}")
        elif 0 < self.done < self.total:
            parts.append(f"eta {format_duration(elapsed / self.done * (self.total - self.done))}")
        return "  ".join(parts)

    def _draw_in_place(self, line: str) -> None:
        padding = " " * max(self._drawn_width - len(line), 0)  # blank out the rest of a longer previous line
        self.stream.write("\r" + line + padding)
        self.stream.flush()
        self._drawn_width = len(line)

    def _write_line(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()
