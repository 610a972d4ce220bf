"""The domain database: an in-memory SQLite database behind a small facade.

The schema and every statement are built with SQLAlchemy Core (``Table`` objects, ``select``,
``insert``, ``update``) and compiled once per shape; they then run on the DB-API connection
directly, because a tool step must cost tens of microseconds, not milliseconds.

Tools receive a :class:`DomainDB` and can only reach the tables of their domain through it.
It keeps the pre-image of every row written since the last :meth:`DomainDB.mark` (an undo
log: ``None`` for a row that did not exist), so rewards compare only what changed, and it snapshots/restores the whole state with SQLite's serialize/deserialize.
"""

from __future__ import annotations

import hashlib
import sqlite3
import weakref
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from core.data.models import DomainSchema, Table

DIALECT = sqlite_dialect.dialect(paramstyle="qmark")
COUNTERS = "_counters"


class IntegrityError(RuntimeError):
    """A write the database refuses: a value that does not fit its column."""


def sa_metadata(schema: DomainSchema) -> sa.MetaData:
    """The domain's tables as SQLAlchemy Core objects."""
    md = sa.MetaData()
    kinds = {"TEXT": sa.Text, "INTEGER": sa.Integer, "REAL": sa.Float}
    for t in schema.tables:
        cols = [sa.Column(c.name, kinds[c.sql_kind], primary_key=(c.name == t.primary_key),
                          nullable=c.nullable or c.name == t.primary_key) for c in t.columns]
        st = sa.Table(t.name, md, *cols)
        for c in t.columns:  # lookups by reference or status stay fast on large tables
            if c.type == "ref" or (c.type == "enum" and c.name == "status") or (c.unique and c.type != "id"):
                sa.Index(f"ix_{t.name}_{c.name}", st.c[c.name])
    sa.Table(COUNTERS, md, sa.Column("tbl", sa.Text, primary_key=True), sa.Column("n", sa.Integer))
    return md


class _TableInfo:
    __slots__ = ("name", "pk", "cols", "satable", "get_sql", "insert_sql", "delete_sql", "bools",
                 "money", "enums", "required", "prefix", "cache", "colset")

    def __init__(self, t: Table, st: sa.Table):
        self.name, self.pk, self.satable = t.name, t.primary_key, st
        self.cols = [c.name for c in t.columns]
        self.colset = frozenset(self.cols)
        self.bools = [i for i, c in enumerate(t.columns) if c.type == "bool"]
        self.money = {c.name for c in t.columns if c.type == "money"}
        self.enums = {c.name: frozenset(c.values) for c in t.columns if c.type == "enum"}
        self.required = [c.name for c in t.columns if not c.nullable and c.name != t.primary_key]
        self.prefix = t.column(t.primary_key).prefix
        pkc = st.c[t.primary_key]
        self.get_sql = str(sa.select(st).where(pkc == sa.bindparam("k")).compile(dialect=DIALECT))
        self.insert_sql = str(sa.insert(st).compile(dialect=DIALECT))
        self.delete_sql = str(sa.delete(st).where(pkc == sa.bindparam("k")).compile(dialect=DIALECT))
        self.cache: dict[tuple, str] = {}


_LAYOUTS: dict[int, tuple[weakref.ref, sa.MetaData, dict[str, _TableInfo]]] = {}


def _layout(schema: DomainSchema) -> tuple[sa.MetaData, dict[str, _TableInfo]]:
    """Tables and compiled statements, built once per schema object and shared by its databases.

    Entries hold the schema weakly and leave when it is collected, so long-lived processes that
    load many domains do not accumulate layouts."""
    key = id(schema)
    hit = _LAYOUTS.get(key)
    if hit is None or hit[0]() is not schema:
        md = sa_metadata(schema)
        hit = _LAYOUTS[key] = (weakref.ref(schema), md,
                               {t.name: _TableInfo(t, md.tables[t.name]) for t in schema.tables})
        weakref.finalize(schema, _LAYOUTS.pop, key, None)
    return hit[1], hit[2]


class DomainDB:
    """One domain's state. Cheap to create; one SQLite in-memory connection."""

    def __init__(self, schema: DomainSchema, conn: sqlite3.Connection | None = None, *, create: bool = True):
        self.schema = schema
        self.conn = conn or sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA cache_size=-256")
        md, self.tables = _layout(schema)
        self.before: dict[str, dict[Any, dict | None]] = {}
        if create and conn is None:
            for st in md.sorted_tables:
                self.conn.execute(str(CreateTable(st).compile(dialect=DIALECT)))
                for ix in sorted(st.indexes, key=lambda i: i.name):
                    self.conn.execute(str(CreateIndex(ix).compile(dialect=DIALECT)))
            for t in schema.tables:
                self.conn.execute(f"INSERT INTO {COUNTERS} VALUES (?, 0)", (t.name,))

    # ---------------------------------------------------------------- helpers

    def _t(self, table: str) -> _TableInfo:
        try:
            return self.tables[table]
        except KeyError:
            raise KeyError(f"no table {table!r} in domain {self.schema.name}") from None

    def _row(self, ti: _TableInfo, tup: tuple) -> dict[str, Any]:
        row = dict(zip(ti.cols, tup, strict=True))
        for i in ti.bools:
            c = ti.cols[i]
            if row[c] is not None:
                row[c] = bool(row[c])
        return row

    def _where(self, ti: _TableInfo, filters: dict[str, Any], what: str) -> tuple[str, list]:
        for c in filters:
            if c not in ti.colset:
                raise KeyError(f"table {ti.name!r} has no column {c!r}")
        shape = (what, tuple((c, filters[c] is None) for c in filters))
        sql = ti.cache.get(shape)
        if sql is None:
            st = ti.satable
            conds = [st.c[c].is_(None) if isnull else st.c[c] == sa.bindparam(c) for c, isnull in shape[1]]
            if what == "select":
                q = sa.select(st)
            elif what == "count":
                q = sa.select(sa.func.count()).select_from(st)
            elif what == "keys":
                q = sa.select(st.c[ti.pk])
            else:  # sum:<column>
                q = sa.select(sa.func.coalesce(sa.func.sum(st.c[what[4:]]), sa.literal_column("0"))).select_from(st)
            if conds:
                q = q.where(*conds)
            if what in ("select", "keys"):
                q = q.order_by(st.c[ti.pk])
            sql = ti.cache[shape] = str(q.compile(dialect=DIALECT))
        return sql, [v for v in filters.values() if v is not None]

    def _check(self, ti: _TableInfo, values: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for c, v in values.items():
            if c not in ti.colset:
                raise IntegrityError(f"table {ti.name!r} has no column {c!r}")
            if v is not None:
                if c in ti.money:
                    if not isinstance(v, int | float) or isinstance(v, bool):
                        raise IntegrityError(f"{ti.name}.{c} takes an amount, got {v!r}")
                    v = round(v + 0.0, 2)
                elif c in ti.enums and v not in ti.enums[c]:
                    raise IntegrityError(f"{ti.name}.{c} cannot be {v!r} (one of {', '.join(sorted(ti.enums[c]))})")
            out[c] = v
        return out

    def _touch(self, table: str, key: Any, existed: bool = True) -> None:
        pre = self.before.get(table)
        if pre is None:
            pre = self.before[table] = {}
        if key not in pre:
            pre[key] = self.get(table, key) if existed else None


    # ---------------------------------------------------------------- reads (what tools call)

    def get(self, table: str, key: Any) -> dict[str, Any] | None:
        ti = self._t(table)
        tup = self.conn.execute(ti.get_sql, (key,)).fetchone()
        return None if tup is None else self._row(ti, tup)

    def select(self, table: str, **filters: Any) -> list[dict[str, Any]]:
        ti = self._t(table)
        sql, args = self._where(ti, filters, "select")
        return [self._row(ti, t) for t in self.conn.execute(sql, args).fetchall()]

    def count(self, table: str, **filters: Any) -> int:
        ti = self._t(table)
        sql, args = self._where(ti, filters, "count")
        return self.conn.execute(sql, args).fetchone()[0]

    def sum(self, table: str, column: str, **filters: Any) -> float:
        ti = self._t(table)
        if column not in ti.colset:
            raise KeyError(f"table {table!r} has no column {column!r}")
        sql, args = self._where(ti, filters, "sum:" + column)
        return round(self.conn.execute(sql, args).fetchone()[0] + 0.0, 2)

    # ---------------------------------------------------------------- writes (what tools call)

    def new_id(self, table: str) -> str:
        ti = self._t(table)
        n = self.conn.execute(f"UPDATE {COUNTERS} SET n = n + 1 WHERE tbl = ? RETURNING n", (table,)).fetchone()[0]
        return f"{ti.prefix}-{n:04d}"

    def insert(self, table: str, values: dict[str, Any]) -> dict[str, Any]:
        ti = self._t(table)
        vals = self._check(ti, values)
        if vals.get(ti.pk) is None:
            vals[ti.pk] = self.new_id(table)
        else:  # an explicit id: keep the counter past it so generated ids never collide
            tail = str(vals[ti.pk]).rsplit("-", 1)[-1]
            if tail.isdigit():
                self.conn.execute(f"UPDATE {COUNTERS} SET n = max(n, ?) WHERE tbl = ?", (int(tail), table))
        for c in ti.required:
            if vals.get(c) is None:
                raise IntegrityError(f"{table}.{c} cannot be empty")
        row = {c: vals.get(c) for c in ti.cols}
        try:
            self.conn.execute(ti.insert_sql, [row[c] for c in ti.cols])
        except sqlite3.IntegrityError as e:
            raise IntegrityError(f"{table}: {e}") from None
        pre = self.before.get(table)
        if pre is None or row[ti.pk] not in pre:
            self._touch(table, row[ti.pk], existed=False)
        return row

    def update(self, table: str, key: Any, values: dict[str, Any]) -> None:
        ti = self._t(table)
        if not values:
            return
        vals = self._check(ti, values)
        for c in ti.required:
            if c in vals and vals[c] is None:
                raise IntegrityError(f"{table}.{c} cannot be empty")
        if ti.pk in vals:
            raise IntegrityError(f"{table}.{ti.pk} is the row's id and cannot change")
        shape = ("update", tuple(vals))
        sql = ti.cache.get(shape)
        if sql is None:
            st = ti.satable
            # SET clauses in the dict's order, so parameters bind positionally in that order
            q = sa.update(st).where(st.c[ti.pk] == sa.bindparam("k")).ordered_values(
                *[(st.c[c], sa.bindparam("v_" + c)) for c in vals])
            compiled = q.compile(dialect=DIALECT)
            assert compiled.positiontup == [*("v_" + c for c in vals), "k"]
            sql = ti.cache[shape] = str(compiled)
        self._touch(table, key)
        self.conn.execute(sql, [*vals.values(), key])

    def update_where(self, table: str, filters: dict[str, Any], values: dict[str, Any]) -> int:
        keys = self.keys(table, **filters)
        for k in keys:
            self.update(table, k, values)
        return len(keys)

    def delete(self, table: str, key: Any) -> None:
        ti = self._t(table)
        self._touch(table, key)
        self.conn.execute(ti.delete_sql, (key,))

    # ---------------------------------------------------------------- engine side

    def keys(self, table: str, **filters: Any) -> list[Any]:
        ti = self._t(table)
        sql, args = self._where(ti, filters, "keys")
        return [t[0] for t in self.conn.execute(sql, args).fetchall()]

    def rows(self, table: str) -> list[dict[str, Any]]:
        return self.select(table)

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        return {t: self.select(t) for t in self.tables}

    def load(self, rows: dict[str, list[dict[str, Any]]]) -> None:
        """Bulk-load rows (seed data), then set each id counter past the highest id."""
        self.conn.execute("BEGIN")
        for table, trows in rows.items():
            ti = self._t(table)
            self.conn.executemany(ti.insert_sql, [[r.get(c) for c in ti.cols] for r in trows])
        self.conn.execute("COMMIT")
        self.sync_counters()

    def sync_counters(self) -> None:
        """Set each table's id counter past the highest numeric id suffix (PREFIX-0042 -> 42)."""
        for ti in self.tables.values():
            p = len(ti.prefix) + 2  # position after "PREFIX-"
            n = self.conn.execute(
                f'SELECT max(CAST(substr("{ti.pk}", {p}) AS INTEGER)) FROM "{ti.name}" '
                f'WHERE substr("{ti.pk}", 1, {p - 1}) = ? AND substr("{ti.pk}", {p}) GLOB \'[0-9]*\' '
                f'AND substr("{ti.pk}", {p}) NOT GLOB \'*[^0-9]*\'', (ti.prefix + "-",)).fetchone()[0] or 0
            self.conn.execute(f"UPDATE {COUNTERS} SET n = max(n, ?) WHERE tbl = ?", (n, ti.name))

    def changes(self) -> dict[str, dict[Any, dict | None]]:
        """Rows that differ from their pre-image since the last mark/restore: table -> key -> row (None: gone).

        Every write goes through this class, so this is the whole difference between the state
        at the last mark and now — a cheap stand-in for comparing full state hashes."""
        out: dict[str, dict[Any, dict | None]] = {}
        for table, pre in self.before.items():
            for key, old in pre.items():
                now = self.get(table, key)
                if now != old:
                    out.setdefault(table, {})[key] = now
        return out

    def mark(self) -> None:
        """Forget which rows were written (called at reset)."""
        self.before = {}

    def snapshot(self) -> bytes:
        return self.conn.serialize()

    def restore(self, data: bytes) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self.conn.deserialize(data)
        self.before = {}

    def copy(self) -> DomainDB:
        other = DomainDB(self.schema, create=False)
        other.conn.deserialize(self.snapshot())
        return other

    @classmethod
    def from_snapshot(cls, schema: DomainSchema, data: bytes) -> DomainDB:
        db = cls(schema, create=False)
        db.conn.deserialize(data)
        return db

    def table_digest(self, table: str) -> str:
        ti = self._t(table)
        h = hashlib.sha256()
        for tup in self.conn.execute(f'SELECT * FROM "{table}" ORDER BY "{ti.pk}"'):
            h.update(repr(self._row(ti, tup)).encode())
            h.update(b"\n")
        return h.hexdigest()

    def state_hash(self) -> str:
        """Canonical hash of the state: rows by table, ordered by primary key.

        Independent of insertion order, of SQLite's rowids and page layout, and of the id
        counters (an inserted-then-deleted row leaves no trace in the hash).
        """
        h = hashlib.sha256()
        for name in sorted(self.tables):
            h.update(name.encode())
            h.update(self.table_digest(name).encode())
        return h.hexdigest()[:32]

    def close(self) -> None:
        self.conn.close()


def diff_states(before: dict[str, list[dict]], after: dict[str, list[dict]], schema: DomainSchema) -> dict:
    """A readable diff: per table, rows inserted, deleted, and changed columns (old -> new)."""
    out: dict[str, Any] = {}
    for t in schema.tables:
        pk = t.primary_key
        b = {r[pk]: r for r in before.get(t.name, [])}
        a = {r[pk]: r for r in after.get(t.name, [])}
        ins = [a[k] for k in sorted(a.keys() - b.keys())]
        dele = [b[k] for k in sorted(b.keys() - a.keys())]
        upd = []
        for k in sorted(a.keys() & b.keys()):
            ch = {c: [b[k][c], a[k][c]] for c in a[k] if a[k][c] != b[k].get(c)}
            if ch:
                upd.append({"key": k, "changes": ch})
        if ins or dele or upd:
            out[t.name] = {"inserted": ins, "deleted": dele, "updated": upd}
    return out
