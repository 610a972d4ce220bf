"""What a tool sees besides its arguments: the clock, a database handle, and the error types.

Tools never read the wall clock: ``ctx.today`` and ``ctx.now`` are fixed per environment (per
task), and new ids come from the database's counters, so every call is reproducible.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any


class ToolError(Exception):
    """An error a tool reports to the agent (never a crash)."""

    kind = "error"

    def __init__(self, message: str, *, argument: str | None = None, observed: dict | None = None):
        super().__init__(message)
        self.message = message
        self.argument = argument
        self.observed = observed or {}

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "message": self.message}
        if self.argument:
            d["argument"] = self.argument
        if self.observed:
            d["observed"] = self.observed
        return d


class NotFound(ToolError):
    kind = "not_found"

    def __init__(self, table: str, key: Any):
        super().__init__(f"no {table} record with id {key!r}")
        self.table, self.key = table, key


class PreconditionFailed(ToolError):
    kind = "precondition"


class InvalidArgument(ToolError):
    kind = "invalid_argument"


class ToolCrashed(ToolError):
    """The tool's code raised something unexpected; its transaction was rolled back."""

    kind = "internal"


class ToolContext:
    """The environment's clock. Plain strings so tools and rows stay JSON-shaped."""

    __slots__ = ("now", "today")

    def __init__(self, clock: str):
        dt = datetime.fromisoformat(clock).replace(microsecond=0)
        self.now = dt.isoformat()
        self.today = dt.date().isoformat()

    def add_days(self, day: str, n: int | float) -> str:
        return (date.fromisoformat(str(day)[:10]) + timedelta(days=int(n))).isoformat()

    def days_between(self, a: str, b: str) -> int:
        return (date.fromisoformat(str(b)[:10]) - date.fromisoformat(str(a)[:10])).days


class ToolDB:
    """The only door from tool code to the database: the domain's tables, nothing else.

    Tool code is checked so that it cannot read attributes starting with an underscore,
    so ``_db`` (and through it the SQLite connection) stays out of reach.
    """

    __slots__ = ("_db",)

    def __init__(self, db: Any):
        self._db = db

    def get(self, table: str, key: Any) -> dict | None:
        return self._db.get(table, key)

    def select(self, table: str, **filters: Any) -> list[dict]:
        return self._db.select(table, **filters)

    def count(self, table: str, **filters: Any) -> int:
        return self._db.count(table, **filters)

    def sum(self, table: str, column: str, **filters: Any) -> float:
        return self._db.sum(table, column, **filters)

    def insert(self, table: str, values: dict) -> dict:
        return self._db.insert(table, dict(values))

    def update(self, table: str, key: Any, values: dict) -> None:
        self._db.update(table, key, dict(values))

    def update_where(self, table: str, filters: dict, values: dict) -> int:
        return self._db.update_where(table, dict(filters), dict(values))

    def delete(self, table: str, key: Any) -> None:
        self._db.delete(table, key)
