"""Terminal output: tables, JSON, and a progress bar that stays quiet when piped."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table with right-aligned numbers."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for index, row in enumerate(cells):
        parts = []
        for i, text in enumerate(row):
            numeric = index > 0 and isinstance(rows[index - 1][i], int | float)
            parts.append(text.rjust(widths[i]) if numeric else text.ljust(widths[i]))
        lines.append("  ".join(parts).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    if value is None:
        return "-"
    return str(value)


def print_json(data: Any, stream: TextIO | None = None) -> None:
    """Pretty JSON on stdout."""
    print(json.dumps(data, indent=2, sort_keys=True, default=str), file=stream or sys.stdout)


class Progress:
    """``label [#####     ] 12/40`` redrawn in place on a terminal; silent otherwise."""

    def __init__(self, label: str, total: int | None, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.count = 0
        self._last_draw = 0.0

    def advance(self, step: int = 1) -> None:
        """Count ``step`` more units done."""
        self.count += step
        now = time.monotonic()
        if self.enabled and now - self._last_draw > 0.05:
            self._last_draw = now
            self._draw()

    def _draw(self) -> None:
        if self.total:
            filled = min(30, int(30 * self.count / self.total))
            bar = "#" * filled + " " * (30 - filled)
            text = f"\r{self.label} [{bar}] {self.count}/{self.total}"
        else:
            text = f"\r{self.label} {self.count}"
        self.stream.write(text)
        self.stream.flush()

    def done(self) -> None:
        """Finish the line."""
        if self.enabled:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
