"""Calling a tool: argument validation against its JSON schema, one transaction, errors as data.

:func:`invoke` is the single path by which tool code runs — in procedural tests, in the
environment's ``step`` and in the studio — so every caller gets the same guarantees: bad
arguments are refused before the tool runs (naming the argument), a tool that raises rolls its
transaction back, and nothing but a :class:`Outcome` comes out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from core.data.db import DomainDB, IntegrityError
from core.runtime.context import InvalidArgument, ToolContext, ToolDB, ToolError
from core.runtime.sandbox import SandboxTimeout, deadline

_TYPES = {"integer": "a whole number", "number": "a number", "string": "a string", "boolean": "true or false"}


MAX_INT = 2**63 - 1  # what SQLite stores as an INTEGER
MAX_FLOAT = 1.7976931348623157e308
MAX_STRING = 10_000  # the length limit of a string parameter without maxLength
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _show(v: Any) -> str:
    """An argument in an error message, kept short (and a huge integer never turned into digits)."""
    if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 64:
        return f"an integer of about {int(v.bit_length() * 0.30103) + 1} digits"
    if isinstance(v, str) and len(v) > 80:
        return repr(v[:80]) + f"… ({len(v)} characters)"
    text = repr(v)
    return text if len(text) <= 120 else text[:120] + "…"


class ArgValidator:
    """A validator compiled from the JSON schema subset tool parameters use.

    Supported keywords: type, enum, minimum, maximum, format (date, date-time), maxLength,
    required, additionalProperties: false. Unknown keywords are refused at construction, so
    a schema is never silently half-checked.
    """

    KNOWN = {"type", "enum", "minimum", "maximum", "format", "maxLength", "description"}

    def __init__(self, schema: dict[str, Any]):
        self.props: dict[str, dict] = {k: dict(v) for k, v in (schema.get("properties") or {}).items()}
        self.required = list(schema.get("required") or [])
        self.closed = schema.get("additionalProperties", True) is False
        self.order = list(self.props)
        for name, s in self.props.items():
            extra = set(s) - self.KNOWN
            if extra:
                raise ValueError(f"parameter {name!r}: unsupported schema keyword(s) {', '.join(sorted(extra))}")
            if "enum" in s:
                s["_enum"] = frozenset(s["enum"])

    def __call__(self, args: Any) -> dict[str, Any]:
        if not isinstance(args, dict):
            raise InvalidArgument(f"arguments must be an object, got {type(args).__name__}")
        if self.closed:
            for k in args:
                if k not in self.props:
                    raise InvalidArgument(f"unknown argument {k!r} (expected: {', '.join(self.order) or 'none'})",
                                          argument=str(k))
        out: dict[str, Any] = {}
        for name in self.order:
            s = self.props[name]
            v = args.get(name)
            if v is None:
                if name in self.required:
                    raise InvalidArgument(f"missing required argument {name!r}", argument=name)
                out[name] = None
                continue
            out[name] = self.check(name, s, v)
        return out

    @staticmethod
    def check(name: str, s: dict, v: Any) -> Any:
        t = s.get("type")
        if t == "integer":
            if isinstance(v, float) and not isinstance(v, bool) and v.is_integer():
                v = int(v)
            if not isinstance(v, int) or isinstance(v, bool) or not -MAX_INT <= v <= MAX_INT:
                raise InvalidArgument(f"argument {name!r} must be {_TYPES[t]}, got {_show(v)}", argument=name)
        elif t == "number":
            # a JSON integer can be any size: math.isfinite(10**400) would raise, not answer
            if (not isinstance(v, int | float) or isinstance(v, bool) or (isinstance(v, int) and abs(v) > MAX_FLOAT)
                    or not math.isfinite(v)):
                raise InvalidArgument(f"argument {name!r} must be {_TYPES[t]}, got {_show(v)}", argument=name)
        elif t == "string":
            if not isinstance(v, str):
                raise InvalidArgument(f"argument {name!r} must be {_TYPES[t]}, got {_show(v)}", argument=name)
            limit = s.get("maxLength", MAX_STRING)
            if len(v) > limit:
                raise InvalidArgument(f"argument {name!r} is longer than {limit} characters", argument=name)
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate: no text the database can store
                raise InvalidArgument(f"argument {name!r} is not valid Unicode text", argument=name) from None
        elif t == "boolean":
            if not isinstance(v, bool):
                raise InvalidArgument(f"argument {name!r} must be {_TYPES[t]}, got {_show(v)}", argument=name)
        enum = s.get("_enum")
        if enum is not None and not (isinstance(v, str | int | float) and v in enum):
            raise InvalidArgument(f"argument {name!r} must be one of {', '.join(map(str, s['enum']))}; got {_show(v)}",
                                  argument=name)
        lo, hi = s.get("minimum"), s.get("maximum")
        if lo is not None and v < lo:
            raise InvalidArgument(f"argument {name!r} must be at least {lo}, got {_show(v)}", argument=name)
        if hi is not None and v > hi:
            raise InvalidArgument(f"argument {name!r} must be at most {hi}, got {_show(v)}", argument=name)
        fmt = s.get("format")
        if fmt == "date":
            try:
                if not _DATE.fullmatch(v):  # fromisoformat also takes week dates and basic forms
                    raise ValueError
                date.fromisoformat(v)
            except ValueError:
                raise InvalidArgument(f"argument {name!r} must be a date YYYY-MM-DD, got {_show(v)}",
                                      argument=name) from None
        elif fmt == "date-time":
            try:
                datetime.fromisoformat(v)
            except ValueError:
                raise InvalidArgument(f"argument {name!r} must be an ISO date-time, got {_show(v)}",
                                      argument=name) from None
        return v


@dataclass
class Outcome:
    ok: bool
    result: Any = None
    error: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": True, "result": self.result} if self.ok else {"ok": False, "error": self.error}

    @property
    def kind(self) -> str:
        return "ok" if self.ok else self.error.get("kind", "error")


def invoke(fn: Callable[..., Any], validate: ArgValidator, db: DomainDB, ctx: ToolContext, args: Any,
           seconds: float = 2.0, tooldb: ToolDB | None = None) -> Outcome:
    """Validate ``args``, run ``fn`` in a savepoint, and return an :class:`Outcome`."""
    try:
        clean = validate(args)
    except InvalidArgument as e:
        return Outcome(False, error=e.to_dict())
    conn = db.conn
    conn.execute("SAVEPOINT tool")
    try:
        with deadline(seconds):
            result = fn(tooldb or ToolDB(db), ctx, **clean)
    except (Exception, SandboxTimeout) as e:  # tool code is untrusted: any failure becomes data
        conn.execute("ROLLBACK TO tool")
        conn.execute("RELEASE tool")
        return Outcome(False, error=_error_of(e))
    conn.execute("RELEASE tool")
    return Outcome(True, result=result)


def _error_of(e: BaseException) -> dict[str, Any]:
    """The structured error an agent reads for a failed call."""
    if isinstance(e, ToolError):
        return e.to_dict()
    if isinstance(e, SandboxTimeout):
        return {"kind": "timeout", "message": str(e)}
    if isinstance(e, IntegrityError):
        return {"kind": "internal", "message": f"the tool wrote invalid data: {e}"}
    if isinstance(e, MemoryError):
        return {"kind": "memory", "message": "the tool ran out of memory (memory limit exceeded)"}
    return {"kind": "internal", "message": f"the tool failed: {type(e).__name__}: {e}"}
