"""Typed records read from plain mappings (YAML files, JSON cards, command-line overrides).

A record is a frozen dataclass whose fields are declared with :func:`key`: each field's default
and its check stand together, so they cannot drift apart. :func:`read_record` lays a mapping
over the defaults, refuses a key the record does not know (naming the source and the keys it
does know: a typo must not silently mean a default), reads float-like strings (``1e-4``, which
YAML leaves a string) as floats, checks every value, and then the record's own rule across its
fields (:meth:`Record.check`). :func:`record_dict` writes a record back as a plain dict: records
live in the code, dicts only at the edges where something is read or written.

Lists in a mapping become tuples in a record (records are frozen all the way down) and lists
again in its dict. Torch-free: the job layer uses these records too.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import reprlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, field, fields
from typing import Any, TypeVar

from inpaint.core.errors import ConfigError

#: A value check: an error fragment ("must be …") or None.
Check = Callable[[Any], "str | None"]
#: Integers beyond torch's int64 cannot be a count or a size; refused before they reach torch.
MAX_INT = 2**63 - 1
#: The most characters of a rejected value an error shows: a value can be huge (a long list, or
#: an alias bomb a file made expand), the message must stay one line.
SHOWN_CHARS = 200

R = TypeVar("R", bound="Record")


# --- quoting values in one-line errors ---------------------------------------------------------


def _shown_repr() -> reprlib.Repr:
    shown_repr = reprlib.Repr()
    shown_repr.maxlevel, shown_repr.maxlist, shown_repr.maxdict = 3, 8, 8
    shown_repr.maxstring, shown_repr.maxother = 80, 80
    return shown_repr


_SHOWN = _shown_repr()


def shown(value: Any) -> str:
    """``repr(value)`` cut to a one-line size: reprlib never walks past its limits, so even a
    structure of millions of items is summarised at once."""
    return clip(_SHOWN.repr(value))


def clip(text: str, limit: int = SHOWN_CHARS) -> str:
    """``text`` on one line, at most about ``limit`` characters (the middle left out)."""
    text = " ".join(str(text).split("\n"))
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}…({len(text) - 2 * half} characters left out)…{text[-half:]}"


# --- value checks: each returns an error fragment ("must be …") or None ------------------------


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    """A finite number: YAML's .inf and .nan, and floats like 1e300 that overflow the first
    multiplication, would reach training as NaN losses hours later."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v) and abs(v) < 1e30
    except OverflowError:  # an int beyond any float
        return False


def positive_int(v: Any) -> str | None:
    return None if is_int(v) and 0 < v <= MAX_INT else "must be a positive integer (below 2**63)"


def nonneg_int(v: Any) -> str | None:
    return None if is_int(v) and 0 <= v <= MAX_INT else "must be an integer >= 0 (below 2**63)"


def optional_positive_int(v: Any) -> str | None:
    return None if v is None or (is_int(v) and 0 < v <= MAX_INT) else "must be a positive integer (below 2**63) or null"


def int_range(low: int, high: int, why: str = "") -> Check:
    def check(v: Any) -> str | None:
        return None if is_int(v) and low <= v <= high else f"must be an integer from {low} to {high}{why}"

    return check


def nonneg_number(v: Any) -> str | None:
    return None if is_number(v) and v >= 0 else "must be a finite number >= 0"


def probability(v: Any) -> str | None:
    return None if is_number(v) and 0 <= v <= 1 else "must be a number between 0 and 1"


def boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def non_empty_str(v: Any) -> str | None:
    return None if isinstance(v, str) and v else "must be a non-empty string"


def optional_path(v: Any) -> str | None:
    return None if v is None or (isinstance(v, str) and v) else "must be a file path or null"


def text_list(v: Any) -> str | None:
    return None if isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v) else "must be a list of strings"


def optional(check: Check) -> Check:
    """``check``, with None (YAML's ``null``: the default) also allowed."""

    def checked(v: Any) -> str | None:
        return None if v is None else check(v)

    return checked


def optional_of(kind: type | tuple[type, ...], what: str) -> Check:
    """None or an instance of ``kind`` (a bool is no number here); ``what`` names it in the error."""

    def check(v: Any) -> str | None:
        ok = v is None or (isinstance(v, kind) and not isinstance(v, bool))
        return None if ok else f"must be {what} or null"

    return check


#: None or a string (a name, a path, a size like ``32gb``).
optional_text = optional_of(str, "a string")


def positive_int_list(length: int | None) -> Check:
    """A list of positive integers: ``length`` of them, or at least one when None."""

    def check(v: Any) -> str | None:
        ok = isinstance(v, (list, tuple)) and all(is_int(x) and 0 < x <= MAX_INT for x in v)
        if ok and (length is None and len(v) > 0 or len(v) == length):
            return None
        n = f"{length} " if length else ""
        return f"must be a list of {n}positive integers"

    return check


def choice(options: Sequence[str]) -> Check:
    def check(v: Any) -> str | None:
        return None if v in options else f"must be one of {', '.join(options)}"

    return check


def anything(v: Any) -> str | None:
    return None


# --- fields and records ------------------------------------------------------------------------


def key(default: Any, check: Check, *, resume_free: bool = False, read: Callable[..., Any] | None = None) -> Any:
    """A record field: its default and its check in one place.

    ``resume_free``: a training run may resume with another value (it changes how fast, how
    visibly or how long a run trains, not what it computes). ``read``: how a nested value is
    read, ``read(value, source, path, error)`` (for a field that holds a record of its own).
    """
    meta = {"check": check, "resume_free": resume_free, "read": read}
    if isinstance(default, (list, dict)):
        frozen_default = _frozen(default)
        return field(default_factory=lambda: copy.deepcopy(frozen_default), metadata=meta)
    return field(default=default, metadata=meta)


def required(check: Check, *, read: Callable[..., Any] | None = None) -> Any:
    """A record field without a default: :func:`read_record` refuses a mapping that lacks it."""
    return field(metadata={"check": check, "resume_free": False, "read": read})


def _frozen(value: Any) -> Any:
    """Lists as tuples, so that a record's values cannot change under it."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def _thawed(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_thawed(v) for v in value]
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: _thawed(v) for k, v in value.items()}
    return value


class Record:
    """Base of the typed records (dataclasses, frozen unless they are filled in step by step):
    :meth:`check` is the rule across fields (None when fine), :meth:`to_dict` the plain form."""

    def check(self) -> str | None:
        return None

    def to_dict(self) -> dict[str, Any]:
        return record_dict(self)


def record_fields(cls: type) -> dict[str, dataclasses.Field]:
    """The fields of a record class (or instance), in declaration order."""
    return {f.name: f for f in fields(cls)}


def field_default(f: dataclasses.Field) -> Any:
    if f.default is MISSING and f.default_factory is not MISSING:
        return f.default_factory()
    return f.default


def resume_free_fields(cls: type) -> list[str]:
    """Names of the fields of ``cls`` marked ``resume_free``."""
    return [f.name for f in fields(cls) if f.metadata.get("resume_free")]


def as_float_like(default: Any, value: Any) -> Any:
    """PyYAML reads ``1e-4`` (no dot) as a string; for fields that hold floats, read it as the
    number everyone means rather than failing on it."""
    if isinstance(default, (list, tuple)) and isinstance(value, list) and default and isinstance(default[0], float):
        return [as_float_like(default[0], v) for v in value]
    if isinstance(default, float) and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def unknown_key_message(source: str, key: str, known: Sequence[str]) -> str:
    """The one-line error for a key a record does not know."""
    return f"{source}: unknown key '{clip(key, 60)}': use one of {', '.join(known)}"


def read_value(f: dataclasses.Field, value: Any, source: str, path: str, error: type[Exception] = ConfigError) -> Any:
    """One field's value from a mapping: float-like strings read, checked, frozen. ``path`` is the
    dotted name the error shows (``train.seed``)."""
    reader = f.metadata.get("read")
    if reader is not None:
        return reader(value, source, path, error)
    value = as_float_like(field_default(f), copy.deepcopy(value))
    problem = f.metadata["check"](value)
    if problem:
        raise error(f"{source}: {path} = {shown(value)} {problem}")
    return _frozen(value)


def read_fields(
    cls: type, values: Mapping[str, Any], source: str, prefix: str = "", error: type[Exception] = ConfigError
) -> dict[str, Any]:
    """The checked values of the keys ``values`` gives (no defaults added): for layers that are
    merged before a record is made. ``prefix`` goes before each key in errors (``"train."``)."""
    if not isinstance(values, Mapping):
        raise error(f"{source}: {prefix.rstrip('.') or 'the record'} must be a mapping of keys to values")
    known = record_fields(cls)
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name not in known:
            raise error(unknown_key_message(source, f"{prefix}{name}", list(known)))
        out[name] = read_value(known[name], value, source, f"{prefix}{name}", error)
    return out


def read_record(
    cls: type[R], values: Mapping[str, Any], source: str, prefix: str = "", error: type[Exception] = ConfigError
) -> R:
    """A record of ``cls`` from ``values`` laid over its defaults: unknown keys, values their
    check refuses, and the record's own rule are ``error`` lines naming ``source``."""
    given = read_fields(cls, values, source, prefix, error)
    missing = [f"{prefix}{f.name}" for f in record_fields(cls).values() if f.name not in given and field_default(f) is MISSING]
    if missing:
        raise error(f"{source}: missing key(s) {', '.join(missing)}")
    record = cls(**given)
    problem = record.check()
    if problem:
        raise error(f"{source}: {problem}")
    return record


def record_dict(record: Record) -> dict[str, Any]:
    """A record as a plain dict (tuples as lists, nested records as dicts), for YAML and JSON."""
    return {f.name: _thawed(getattr(record, f.name)) for f in fields(record)}  # type: ignore[arg-type]
