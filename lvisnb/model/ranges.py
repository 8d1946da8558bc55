"""Range checks of numeric settings: one validator for :class:`lvisnb.model.presets.Preset` and
:class:`lvisnb.engine.config.TrainConfig`.

A :class:`Range` is an interval of the real line, closed or open at each end, unbounded above
when ``high`` is ``None``; :func:`range_problems` names every field of an object whose value is
not a finite number in its range, e.g. ``"lr must be finite and in (0, inf), got -0.02"``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple


class Range(NamedTuple):
    """``[low, high]``, open at ``low`` / ``high`` where the flag says so; ``high=None``: inf."""

    low: float
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: object) -> bool:
        """Whether ``value`` is a finite ``int`` / ``float`` (not a ``bool``) in the range."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if not math.isfinite(value):
            return False
        below = value <= self.low if self.low_open else value < self.low
        above = self.high is not None and (
            value >= self.high if self.high_open else value > self.high
        )
        return not (below or above)

    @property
    def interval(self) -> str:
        """``"[0, 1]"``, ``"(0, inf)"``: the range as a message writes it."""
        high = "inf)" if self.high is None else f"{self.high:g}{')' if self.high_open else ']'}"
        return f"{'(' if self.low_open else '['}{self.low:g}, {high}"


def range_problems(
    source: object,
    ranges: Mapping[str, Range],
    phrase: str = "finite and in",
    typed: bool = False,
) -> list[str]:
    """``"name must be <phrase> <interval>, got value"`` for each attribute ``name`` of
    ``source`` (a key of ``ranges``) whose value is out of its :class:`Range`.

    ``None`` (= off, or "the preset's") is always allowed; a tuple is checked element-wise and
    named whole. ``typed=True`` reports a value that is not a number (a ``bool``, a string, a
    tuple) as ``"name must be a number, got value"`` instead. Returns ``[]`` when all fit.
    """
    problems = []
    for name, bounds in ranges.items():
        value = getattr(source, name)
        if value is None:
            continue
        if typed and (isinstance(value, bool) or not isinstance(value, int | float)):
            problems.append(f"{name} must be a number, got {value!r}")
            continue
        values = value if isinstance(value, tuple) else (value,)
        if not all(bounds.contains(v) for v in values):
            problems.append(f"{name} must be {phrase} {bounds.interval}, got {value!r}")
    return problems
