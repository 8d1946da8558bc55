"""One section of an LVIS file read column by column, with errors that name the record.

:class:`Records` reads the records of ``images``, ``annotations`` or ``categories`` the same way
whether they are dicts (:func:`lvisnb.annotations.json_file.load_json`) or msgspec structs
(:func:`lvisnb.annotations.tables.read_tables`): a required key as a list, an integer key as
int64, a number key as float64, each type-checked, and :meth:`Records.fault` builds the
:class:`~lvisnb.annotations.json_file.LVISFormatError` naming the file, ``section[index]``, the
record's id and the field. :func:`id_values` checks a section's ids (positive, unique).
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter, itemgetter, methodcaller

import numpy as np

from lvisnb.annotations.json_file import (
    ABSENT,
    INT,
    NUMBER,
    REQUIRED_KEYS,
    LVISFormatError,
    as_float64,
    short,
)


def missing_key(records: list, section: str, path) -> LVISFormatError:
    """The error for the first record of ``section`` without one of its required keys."""
    keys = REQUIRED_KEYS[section]
    for index, record in enumerate(records):
        missing = [key for key in keys if key not in record]
        if missing:
            return LVISFormatError(
                f"{path}: {section}[{index}] (id={record.get('id')!r}) "
                f"is missing required key '{missing[0]}'"
            )
    return LVISFormatError(f"{path}: a record of '{section}' is missing a required key")


@dataclass
class Records:
    """One section of an LVIS file, dicts (``typed=False``) or msgspec structs, read column by
    column; ``ids`` (int64, record order) once :meth:`set_ids` has checked them."""

    section: str
    records: list
    path: str
    typed: bool
    ids: np.ndarray | None = None

    def values(self, key: str) -> list:
        """Every record's required ``key`` (a missing one raises, naming the record)."""
        try:
            return list(map(attrgetter(key) if self.typed else itemgetter(key), self.records))
        except KeyError:
            raise missing_key(self.records, self.section, self.path) from None

    def optional(self, key: str) -> list:
        """Every record's optional ``key``; ``ABSENT`` where a dict lacks it."""
        if self.typed:
            return list(map(attrgetter(key), self.records))
        return list(map(methodcaller("get", key, ABSENT), self.records))

    def fault(self, index: int, key: str, reason: str) -> LVISFormatError:
        """The error naming the file, ``section[index]``, the record's id and ``key``."""
        return LVISFormatError(
            f"{self.path}: {self.section}[{index}] (id={int(self.ids[index])}) "
            f"field '{key}' {reason}"
        )

    def of_types(self, values: list, kinds: frozenset, what: str, key: str) -> None:
        """Raise for the first value whose type is not in ``kinds`` (``bool`` is not ``int``)."""
        if set(map(type, values)) <= kinds:
            return
        index = next(i for i, v in enumerate(values) if type(v) not in kinds)
        raise self.fault(index, key, f"must be {what}, got {short(values[index])}")

    def integers(self, key: str) -> np.ndarray:
        """int64 of the required integer ``key``."""
        values = self.values(key)
        self.of_types(values, INT, "an integer", key)
        try:
            return np.fromiter(values, dtype=np.int64, count=len(values))
        except OverflowError:
            index = next(i for i, v in enumerate(values) if not -(2**63) <= v < 2**63)
            raise self.fault(index, key, f"is {values[index]}, beyond 64-bit integers") from None

    def numbers(self, key: str) -> np.ndarray:
        """float64 of the required number ``key`` (an integer too large for a float is inf)."""
        values = self.values(key)
        self.of_types(values, NUMBER, "a number", key)
        return as_float64(values)

    def set_ids(self) -> np.ndarray:
        """Check the ``id`` of every record (:func:`id_values`) and keep them."""
        self.ids = id_values(self.values("id"), self.section, self.path)
        return self.ids


def id_values(ids: list, section: str, path) -> np.ndarray:
    """The ids of a section as int64, checked as
    :func:`lvisnb.annotations.validate.check_ids` says (positive 64-bit integers, unique);
    :class:`~lvisnb.annotations.json_file.LVISFormatError` naming the records otherwise."""
    if set(map(type, ids)) - INT:
        index = next(i for i, v in enumerate(ids) if type(v) is not int)
        raise LVISFormatError(
            f"{path}: {section}[{index}] field 'id' must be an integer, got {ids[index]!r}"
        )
    try:
        values = np.array(ids, dtype=np.int64)
    except OverflowError:
        index = next(i for i, v in enumerate(ids) if not -(2**63) <= v < 2**63)
        raise LVISFormatError(
            f"{path}: {section}[{index}] field 'id' is {ids[index]}, beyond 64-bit integers"
        ) from None
    bad = np.flatnonzero(values <= 0)
    if bad.size:
        index = int(bad[0])
        raise LVISFormatError(
            f"{path}: {section}[{index}] field 'id' is {ids[index]}; ids must be positive "
            f"({bad.size} record(s) of '{section}' have an id <= 0)"
        )
    order = np.argsort(values, kind="stable")
    repeated = np.flatnonzero(values[order][1:] == values[order][:-1])
    if repeated.size:
        first, second = sorted((int(order[repeated[0]]), int(order[repeated[0] + 1])))
        raise LVISFormatError(
            f"{path}: {section}[{first}] and {section}[{second}] share the id {ids[first]} "
            f"(field 'id'); ids must be unique ({repeated.size} repeated id(s) in '{section}')"
        )
    return values
