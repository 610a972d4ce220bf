"""Which customer a row belongs to, from the schema's reference paths.

The customer table is the first table with a unique ``email`` column and a ``name`` column (the
people who talk to the agent). From any table T, follow ``ref`` columns, never visiting a table
twice, to the customer table: only the shortest such paths count (all of them when several tie).
A row is owned by the customers those paths reach from it; a customer row is owned by itself. A
table with no path, or a row whose every path ends in a null or a missing row, is unowned.

Used by task generation (a task must not act on another customer's records) and by
``bench/validity.py`` (which measures that it does not).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

from core.data.models import DomainSchema, Table, ToolSpec

__all__ = ["Ownership", "Path", "customer_table", "key_params", "owner_of", "owner_paths", "row_owners"]

Path = list[tuple[str, str, str]]  # [(table, ref column, next table)]


class _Rows(Protocol):
    def get(self, table: str, key: Any) -> dict[str, Any] | None: ...


def customer_table(schema: DomainSchema) -> Table | None:
    """The customer table: the first with a unique ``email`` column and a ``name`` column."""
    for t in schema.tables:
        if any(c.type == "email" and c.unique for c in t.columns) and any(c.type == "name" for c in t.columns):
            return t
    return None


def owner_paths(schema: DomainSchema, customer: str | None) -> dict[str, list[Path]]:
    """table -> its shortest reference paths to the ``customer`` table, as [(table, ref column, next table)].

    The customer table has one empty path; a table with no path to it is left out."""
    if customer is None:
        return {}
    out: dict[str, list[Path]] = {}
    for start in schema.tables:
        found: list[Path] = []
        queue: deque[tuple[str, Path]] = deque([(start.name, [])])
        while queue:
            table, path = queue.popleft()
            if found and len(path) > len(found[0]):
                break
            if table == customer:
                found.append(path)
                continue
            seen = {start.name, *(step[2] for step in path)}
            for col in schema.table(table).columns:
                if col.type == "ref" and col.table and col.table not in seen and schema.has_table(col.table):
                    queue.append((col.table, [*path, (table, col.name, col.table)]))
        if found:
            out[start.name] = found
    return out


def row_owners(db: _Rows, paths: dict[str, list[Path]], table: str, key: Any) -> set:
    """The customer keys that own row ``key`` of ``table`` in ``db`` (empty: unowned or no such row)."""
    owners = set()
    for path in paths.get(table, []):
        row = db.get(table, key)
        k = key
        for _, col, nxt in path:
            if row is None:
                break
            k = row.get(col)
            row = db.get(nxt, k) if k is not None else None
        if row is not None:
            owners.add(k)
    return owners


def key_params(schema: DomainSchema, spec: ToolSpec) -> list[tuple[str, str]]:
    """(parameter, table of the row it names) for a tool's parameters that carry an ``id`` column (that
    table's row) or a ``ref`` column (the referenced table's row): the rows a call acts on."""
    out = []
    for p in spec.params:
        if not p.column or "." not in p.column:
            continue
        t, c = p.column.split(".", 1)
        if not schema.has_table(t) or not schema.table(t).has_column(c):
            continue
        col = schema.table(t).column(c)
        if col.type == "id":
            out.append((p.name, t))
        elif col.type == "ref" and col.table and schema.has_table(col.table):
            out.append((p.name, col.table))
    return out


class Ownership:
    """A schema's customer table and ownership paths, computed once."""

    def __init__(self, schema: DomainSchema):
        self.schema = schema
        self.customer = customer_table(schema)
        self.paths = owner_paths(schema, self.customer.name if self.customer else None)

    def owned(self, table: str) -> bool:
        """Whether rows of ``table`` can belong to a customer at all."""
        return table in self.paths

    def owner_of(self, db: _Rows, table: str, key: Any) -> set:
        """The customer ids that own row ``key`` of ``table`` in ``db``; empty: unowned (or no such row)."""
        return row_owners(db, self.paths, table, key)


_CACHE: dict[int, tuple[DomainSchema, Ownership]] = {}


def owner_of(db: Any, table: str, key: Any) -> set:
    """The customer ids that own row ``key`` of ``table`` in ``db`` (a ``DomainDB``); empty: unowned."""
    schema = db.schema
    hit = _CACHE.get(id(schema))
    if hit is None or hit[0] is not schema:
        if len(_CACHE) > 64:
            _CACHE.clear()
        hit = _CACHE[id(schema)] = (schema, Ownership(schema))
    return hit[1].owner_of(db, table, key)
